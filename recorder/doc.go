// Package recorder writes remote WebRTC tracks to files that play, last as long as the call and
// line up with each other. A Recording is a bot.Consumer: each track gets its own pipeline —
// a bounded queue filled by the bot's reader (never blocked by the disk), a time-based jitter
// buffer that reorders, drops duplicates and waits for NACK retransmissions, frame assembly that
// releases only complete frames (VP8, VP9, AV1, H.264; Opus packets), a keyframe gate with PLI
// requests, a timeline that maps 64-bit extended RTP time to the wall clock (re-anchored on SSRC
// changes and timestamp jumps), and a buffered writer flushed at least once a second.
//
// Files: Opus → Ogg with granule positions from the timeline, so DTX, mute, loss and reconnect
// pauses are filled with Opus silence and the file lasts as long as the wall-clock span; VP8, VP9
// and AV1 → IVF with 90 kHz PTS; H.264 → Annex-B. Each file is written as NAME.part and renamed
// on a clean close; manifest.json, rewritten atomically, ties files to participants, roles,
// wall-clock offsets, gaps, losses and partial files. Layout:
// <out>/<recording-id>/<peer>/<role-or-stream>-<kind>-<segment>.<ext>, with every name made safe.
package recorder
