package monitor

import (
	"time"

	"github.com/roomtape/roomtape/recorder"
)

// Sample is one stats interval of a job: a line of stats.jsonl and the body of a "stats" event.
type Sample struct {
	At         time.Time        `json:"at"`
	OffsetMs   int64            `json:"offsetMs"` // from the recording's start (manifest startedAt)
	IntervalMs int64            `json:"intervalMs"`
	Health     string           `json:"health"` // job health: ok, warning (an alert is active)
	Peers      []PeerStats      `json:"peers"`
	Tracks     []TrackStats     `json:"tracks"`
	Alerts     []recorder.Alert `json:"alerts"` // alerts active at the end of the interval
}

// PeerStats is the rolling health of one participant.
type PeerStats struct {
	Peer    string `json:"peer"`
	Present bool   `json:"present"`         // in the channel's presence
	State   string `json:"state,omitempty"` // latest connection state of its newest session
	Health  string `json:"health"`          // ok, warning
	Tracks  int    `json:"tracks"`          // live tracks
	// Speaking: one of its audio tracks carried speech in the interval.
	Speaking bool     `json:"speaking"`
	Alerts   []string `json:"alerts,omitempty"` // codes of its active alerts
}

// TrackStats is one live track over one interval. Counters are cumulative for the track (this
// session of it); rates and the loss percentages are for the interval.
type TrackStats struct {
	Peer    string `json:"peer"`
	Track   string `json:"track"` // logical track key (the manifest's track key)
	TrackID string `json:"trackId"`
	Session string `json:"session"`
	Kind    string `json:"kind"`
	Role    string `json:"role,omitempty"`
	Codec   string `json:"codec"`

	Packets            uint64 `json:"packets"`
	Bytes              uint64 `json:"bytes"`
	Expected           uint64 `json:"expected"`
	LostBeforeRecovery uint64 `json:"lostBeforeRecovery"`
	Recovered          uint64 `json:"recovered"`
	Lost               uint64 `json:"lost"`
	Late               uint64 `json:"late"`
	Duplicates         uint64 `json:"duplicates"`

	LossPct               float64 `json:"lossPct"` // interval: holes never filled / expected
	LossBeforeRecoveryPct float64 `json:"lossBeforeRecoveryPct"`
	JitterMs              float64 `json:"jitterMs"` // RFC 3550 estimate at the end of the interval
	BitrateBps            float64 `json:"bitrateBps"`
	PacketRate            float64 `json:"packetRate"`
	SinceLastPacketMs     int64   `json:"sinceLastPacketMs"`

	// Video.
	Frames             uint64  `json:"frames,omitempty"`
	FPS                float64 `json:"fps,omitempty"`
	Keyframes          uint64  `json:"keyframes,omitempty"`
	KeyframeIntervalMs int64   `json:"keyframeIntervalMs,omitempty"` // between the last two keyframes
	SinceKeyframeMs    int64   `json:"sinceKeyframeMs,omitempty"`
	Width              int     `json:"width,omitempty"`
	Height             int     `json:"height,omitempty"`
	Frozen             bool    `json:"frozen,omitempty"`
	Freezes            int     `json:"freezes,omitempty"`
	FrozenMs           int64   `json:"frozenMs,omitempty"`

	// Audio. Level is the loudest RFC 6464 level of the interval in dBov (0 is full scale,
	// -127 silence); nil when the sender sends no audio levels.
	Level     *float64 `json:"levelDbov,omitempty"`
	SpeechPct float64  `json:"speechPct,omitempty"` // share of the interval's packets that were speech
	Speaking  bool     `json:"speaking,omitempty"`
}
