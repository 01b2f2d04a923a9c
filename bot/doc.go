// Package bot joins a Metered Realtime channel as a receive-only peer and hands every remote
// track to a Consumer. It follows ../shared/metered-protocol.md §6.3: the bot is a pure answerer
// (pion cannot roll back an offer), keeps one pion PeerConnection per remote peer session, detects a
// peer's new session from the SDP o= session id and DTLS fingerprint (B8) and rebuilds that
// connection, buffers and filters ICE candidates (B10), binds __meteredTrackMeta metadata to tracks
// through the SDP msid track id (B13, B15), and keeps recording through its own signalling
// reconnects (B17). Each remote peer is served by one goroutine (an actor), so metadata,
// descriptions and candidates are applied in arrival order (B4) and a panic stays in that peer.
package bot
