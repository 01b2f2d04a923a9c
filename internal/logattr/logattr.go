// Package logattr names the structured-log attribute keys shared by every roomtape package,
// so that a log query for one job, channel, peer or track works across components.
package logattr

// Attribute keys used with log/slog. Values must never contain tokens or secrets.
const (
	Job       = "job"
	Channel   = "channel"
	Peer      = "peer"
	Track     = "track"
	App       = "app"
	Conn      = "conn"
	RequestID = "request_id"
	Code      = "code"
	Remote    = "remote"
	Err       = "err"
	Component = "component"
)
