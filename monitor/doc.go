// Package monitor measures the quality and liveness of every remote track of a room from RTP
// alone, without decoding, so that it stays cheap enough to run next to every recording: packets,
// loss before and after NACK recovery, late and duplicate packets, RFC 3550 jitter, bit rate,
// frame rate, keyframes and resolution (from payload descriptors and keyframe headers), freezes,
// and speech activity from the RFC 6464 audio level header extension.
//
// A Monitor takes tracks from a bot.Consumer (Track) and presence and connection states from
// bot.Events (Events). Run closes an interval every Config.Interval: a Sample (a line of
// stats.jsonl, the body of a "stats" event), per-track Quality summaries for the manifest, and
// Prometheus metrics. Twice a second it evaluates the alert rules of Thresholds and reports
// every raise and clear.
package monitor
