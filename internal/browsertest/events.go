package browsertest

import (
	"encoding/json"
	"slices"
)

// Event types recorded by the page (window.rt.events). Each comes from one SDK
// event; the names of the SDK events are in the comments.
const (
	EventJoined                 = "joined"                  // MeteredPeer "joined": Peer, Channel
	EventLeft                   = "left"                    // MeteredPeer "left": Peer, Channel, Reason
	EventState                  = "state"                   // MeteredPeer "state-change": From, To
	EventPeerJoined             = "peer-joined"             // MeteredPeer "peer-joined": Peer, Metadata (remote.metadata)
	EventPeerLeft               = "peer-left"               // MeteredPeer "peer-left": Peer
	EventData                   = "data"                    // MeteredPeer "data": Peer (sender), Kind, Data, Metadata
	EventError                  = "error"                   // MeteredPeer "error": Error
	EventRemoteState            = "remote-state"            // RemotePeer "state-change": Peer, From, To
	EventTrack                  = "track"                   // RemotePeer "track": Peer, Kind, TrackID, SenderTrackID, StreamIDs, Metadata, SignalledMetadata
	EventTrackMeta              = "track-meta"              // a __meteredTrackMeta control message arrived (SignallingClient "direct"): Peer, TrackID (sender's), Metadata (nil = cleared)
	EventTrackEnded             = "track-ended"             // inbound MediaStreamTrack "ended": Peer, Kind, TrackID
	EventStreamAdded            = "stream-added"            // RemotePeer "stream-added": Peer, StreamID, Metadata, SenderTrackID and SignalledMetadata of its first track
	EventStreamRemoved          = "stream-removed"          // RemotePeer "stream-removed": Peer, StreamID
	EventNegotiationError       = "negotiation-error"       // RemotePeer "negotiation-error": Peer, Error
	EventICECandidateError      = "ice-candidate-error"     // RemotePeer "ice-candidate-error": Peer, Error
	EventConnectionReset        = "connection-reset"        // RemotePeer "connection-reset": Peer
	EventDataChannel            = "data-channel"            // RemotePeer "data-channel": Peer, Label
	EventDataChannelCreated     = "dc-created"              // the page created its data channel (JoinOptions.DataChannel): Peer, Label
	EventDataChannelOpen        = "dc-open"                 // that channel's "open": Peer, Label
	EventDataChannelClose       = "dc-close"                // that channel's "close": Peer, Label
	EventSignallingConnected    = "signalling-connected"    // SignallingClient "connected": Peer, Reconnect
	EventSignallingDisconnected = "signalling-disconnected" // SignallingClient "disconnected": Code, Reason, WillReconnect
	EventServerError            = "server-error"            // SignallingClient "server-error": ErrorCode, Error
	EventGoingAway              = "going-away"              // SignallingClient "going-away": Data
	EventPageError              = "page-error"              // uncaught exception or unhandled rejection in the page
)

// Event is one entry of the page's event log. Fields not used by a type are zero.
type Event struct {
	Seq           int            `json:"seq"`  // index in the page's log, from 0
	T             int64          `json:"t"`    // milliseconds since the page loaded
	Type          string         `json:"type"` // one of the Event* constants
	Peer          string         `json:"peer"` // remote peer id (own id for joined/left/signalling-connected)
	Channel       string         `json:"channel"`
	From          string         `json:"from"` // state transitions
	To            string         `json:"to"`
	Kind          string         `json:"kind"`          // track kind ("audio", "video") or data kind ("broadcast", "direct")
	TrackID       string         `json:"trackId"`       // track id (receiver's for track events, sender's for track-meta)
	SenderTrackID string         `json:"senderTrackId"` // track events: the sender's track id, from the a=msid line of the m-section
	StreamID      string         `json:"streamId"`
	StreamIDs     []string       `json:"streamIds"`
	Metadata      map[string]any `json:"metadata"` // as the SDK delivered it: track/stream metadata, or peer metadata for peer-joined/data
	// SignalledMetadata (track and stream-added events) is the metadata that a
	// __meteredTrackMeta message delivered for SenderTrackID (the a=msid track
	// id of the m-section), whether or not the SDK matched it.
	//
	// The SDK looks track metadata up by the receiving MediaStreamTrack.id. In
	// Chromium that id equals the a=msid track id only if the receiving
	// transceiver was created by the remote offer; a transceiver that existed
	// before (created by the receiver's own addTrack) keeps a random receiving
	// track id. And the a=msid track id equals the sender's
	// MediaStreamTrack.id only if the sending transceiver came from the
	// sender's own addTrack, not from the other side's offer. So in a call
	// where both sides send over the same transceivers, at most one direction
	// gets Metadata from the SDK. Stream ids always survive (see TrackOfStream).
	SignalledMetadata map[string]any  `json:"signalledMetadata"`
	Label             string          `json:"label"`
	Reason            string          `json:"reason"`
	Error             string          `json:"error"`
	ErrorCode         string          `json:"errorCode"` // server-error code
	Code              int             `json:"code"`      // WebSocket close code
	WillReconnect     bool            `json:"willReconnect"`
	Reconnect         bool            `json:"reconnect"`
	Data              json.RawMessage `json:"data"`
	Raw               json.RawMessage `json:"-"` // the event as the page recorded it
}

// EffectiveMetadata is Metadata if the SDK delivered any, else SignalledMetadata.
func (e Event) EffectiveMetadata() map[string]any {
	if len(e.Metadata) > 0 {
		return e.Metadata
	}
	return e.SignalledMetadata
}

// Role is EffectiveMetadata()["role"] if it is a string.
func (e Event) Role() string {
	r, _ := e.EffectiveMetadata()["role"].(string)
	return r
}

// Predicate selects events for WaitEvent.
type Predicate func(Event) bool

// OfType matches events of any of the given types.
func OfType(types ...string) Predicate {
	return func(e Event) bool { return slices.Contains(types, e.Type) }
}

// FromPeer matches events about the remote peer id.
func FromPeer(id string) Predicate {
	return func(e Event) bool { return e.Peer == id }
}

// RemoteStateIs matches the remote peer's RemotePeer state-change to state.
func RemoteStateIs(peerID, state string) Predicate {
	return func(e Event) bool { return e.Type == EventRemoteState && e.Peer == peerID && e.To == state }
}

// PeerJoined matches the peer-joined event of peerID.
func PeerJoined(peerID string) Predicate {
	return func(e Event) bool { return e.Type == EventPeerJoined && e.Peer == peerID }
}

// PeerLeft matches the peer-left event of peerID.
func PeerLeft(peerID string) Predicate {
	return func(e Event) bool { return e.Type == EventPeerLeft && e.Peer == peerID }
}

// TrackOfStream matches a track event from peerID of the given kind ("" = any)
// that belongs to the sender's stream streamID (stream ids survive signalling;
// track ids do not, see Event.SignalledMetadata).
func TrackOfStream(peerID, kind, streamID string) Predicate {
	return func(e Event) bool {
		return e.Type == EventTrack && e.Peer == peerID && (kind == "" || e.Kind == kind) && slices.Contains(e.StreamIDs, streamID)
	}
}

// After matches events recorded after the event with Seq seq (see Page.LastSeq).
func After(seq int) Predicate {
	return func(e Event) bool { return e.Seq > seq }
}

// And matches events that every predicate matches.
func And(ps ...Predicate) Predicate {
	return func(e Event) bool {
		for _, p := range ps {
			if !p(e) {
				return false
			}
		}
		return true
	}
}
