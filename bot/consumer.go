package bot

import (
	"encoding/json"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// TrackInfo identifies a remote track when it starts.
type TrackInfo struct {
	PeerID       string
	PeerMetadata json.RawMessage // from presence (the peer's JWT peerMetadata), may be nil
	// SessionID is the remote session (SDP o= session id); a new one means the peer's
	// RTCPeerConnection was replaced (reconnect, token expiry, reload).
	SessionID string
	// Connection counts the bot's PeerConnections to this peer, starting at 1.
	Connection int
	StreamID   string          // sender MediaStream id ("-" when the track has no stream)
	TrackID    string          // sender MediaStreamTrack.id (SDP msid)
	Metadata   json.RawMessage // __meteredTrackMeta bound at start (e.g. {"role":"camera"}), may be nil
	// StreamMetadata is the metadata of the first track seen for StreamID on this peer.
	StreamMetadata json.RawMessage
	Kind           string // "audio" or "video"
	MimeType       string // e.g. "audio/opus", "video/VP8"
	ClockRate      uint32
	Channels       uint16
	FmtpLine       string
	PayloadType    uint8
	SSRC           uint32
	RID            string
	// AudioLevelExtID is the negotiated id of the RFC 6464 audio level header extension
	// (urn:ietf:params:rtp-hdrext:ssrc-audio-level), 0 when the sender did not offer it.
	AudioLevelExtID uint8
	StartedAt       time.Time
}

// Role returns the "role" field of the track's metadata (or its stream's), or "".
func (t TrackInfo) Role() string {
	for _, m := range []json.RawMessage{t.Metadata, t.StreamMetadata} {
		var v struct {
			Role string `json:"role"`
		}
		if len(m) > 0 && json.Unmarshal(m, &v) == nil && v.Role != "" {
			return v.Role
		}
	}
	return ""
}

// EndReason says why a track ended.
type EndReason string

// Track end reasons.
const (
	EndRemoved         EndReason = "removed"          // renegotiation stopped the m-section (B14)
	EndSessionReplaced EndReason = "session_replaced" // a new-session offer replaced the connection (B8)
	EndPeerLeft        EndReason = "peer_left"        // presence left and grace expired (B16)
	EndConnectionLost  EndReason = "connection_lost"  // the connection closed or failed for good (B11)
	EndBotStopped      EndReason = "bot_stopped"      // the bot is shutting down
	EndIdentityChanged EndReason = "identity_changed" // the bot's peer id changed on reconnect (B17)
)

// TrackControl lets a consumer act on the sender of its track.
type TrackControl interface {
	// RequestKeyframe sends a PLI for the track (video only; ignored for audio).
	RequestKeyframe()
}

// TrackSink receives one track's media. Calls come from the track's reader goroutine, in
// order; WriteRTP must not block (queue and return) and must not retain pkt after returning
// unless it copies it.
type TrackSink interface {
	WriteRTP(pkt *rtp.Packet, arrival time.Time)
	WriteRTCP(pkts []rtcp.Packet, arrival time.Time)
	// Reconnected is called when the track's connection reaches "connected" again (after an ICE
	// restart), the moment to expect a timestamp gap and a fresh keyframe.
	Reconnected()
	// End is the last call for the track.
	End(reason EndReason)
}

// Consumer attaches sinks to tracks. It is called from the track's goroutine; returning nil
// ignores the track (its packets are still read and discarded so the sender is not stalled).
type Consumer interface {
	TrackStarted(info TrackInfo, ctrl TrackControl) TrackSink
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(info TrackInfo, ctrl TrackControl) TrackSink

// TrackStarted calls f.
func (f ConsumerFunc) TrackStarted(info TrackInfo, ctrl TrackControl) TrackSink { return f(info, ctrl) }

// Events are optional observers of what the bot does; nil fields are skipped. They are called
// from internal goroutines and must not block.
type Events struct {
	PeerJoined      func(peerID string, metadata json.RawMessage)
	PeerLeft        func(peerID string)
	SessionReplaced func(peerID, oldSession, newSession string)
	ConnectionState func(peerID, sessionID, state string)
	TrackStarted    func(info TrackInfo)
	TrackEnded      func(info TrackInfo, reason EndReason)
	DataChannel     func(peerID, label string)
	// Message is a channel broadcast; Direct an application direct message (not signalling).
	Message func(from string, data json.RawMessage, at time.Time)
	Direct  func(from string, data json.RawMessage, at time.Time)
}

// Merge returns Events that call e's handlers, then other's.
func (e Events) Merge(other Events) Events {
	return Events{
		PeerJoined:      chain2(e.PeerJoined, other.PeerJoined),
		PeerLeft:        chain1(e.PeerLeft, other.PeerLeft),
		SessionReplaced: chain3(e.SessionReplaced, other.SessionReplaced),
		ConnectionState: chain3(e.ConnectionState, other.ConnectionState),
		TrackStarted:    chain1(e.TrackStarted, other.TrackStarted),
		TrackEnded:      chain2(e.TrackEnded, other.TrackEnded),
		DataChannel:     chain2(e.DataChannel, other.DataChannel),
		Message:         chain3(e.Message, other.Message),
		Direct:          chain3(e.Direct, other.Direct),
	}
}

func chain1[A any](f, g func(A)) func(A) {
	return func(a A) {
		if f != nil {
			f(a)
		}
		if g != nil {
			g(a)
		}
	}
}

func chain2[A, B any](f, g func(A, B)) func(A, B) {
	return func(a A, b B) {
		if f != nil {
			f(a, b)
		}
		if g != nil {
			g(a, b)
		}
	}
}

func chain3[A, B, C any](f, g func(A, B, C)) func(A, B, C) {
	return func(a A, b B, c C) {
		if f != nil {
			f(a, b, c)
		}
		if g != nil {
			g(a, b, c)
		}
	}
}
