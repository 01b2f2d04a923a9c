// Package loadtest drives a signalling server (or a bare WebSocket echo server, as a baseline) with
// many WebSocket clients and measures what the targets ask for: server heap per idle
// connection, direct-message throughput, send→receive latency at a fixed offered rate, and presence
// fan-out time. Run is the entry point; the server can be in-process, remote, or a child Process.
//
// Clients speak the wire protocol of ../../shared/metered-protocol.md (§1–§3) with one JWT per
// client (unique sub). Each client has exactly one reader goroutine, which also answers the
// server's WebSocket pings while the client idles. Every phase is bounded in time and count.
package loadtest
