package signalling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Frame types of the wire protocol (§2.2, §2.3).
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypePublish     = "publish"
	TypeSend        = "send"
	TypePing        = "ping"

	TypeWelcome   = "welcome"
	TypeAck       = "ack"
	TypeError     = "error"
	TypeMessage   = "message"
	TypeDirect    = "direct"
	TypePresence  = "presence"
	TypeGoingAway = "going_away"
	TypePong      = "pong"
)

// Error codes of §3.2.
const (
	CodeMalformedMessage     = "malformed_message"
	CodeUnknownType          = "unknown_type"
	CodeInvalidChannel       = "invalid_channel"
	CodeInvalidPeerID        = "invalid_peer_id"
	CodeChannelNotAuthorized = "channel_not_authorized"
	CodeChannelReserved      = "channel_reserved"
	CodeChannelLimitExceeded = "channel_limit_exceeded"
	CodePeerNotFound         = "peer_not_found"
	CodeMissingData          = "missing_data"
	CodeActionNotPermitted   = "action_not_permitted"
	CodeOverMessageQuota     = "over_message_quota"
	CodeBackendError         = "backend_error"
	CodeInternalError        = "internal_error"
)

// WebSocket close codes of §3.3.
const (
	CloseNormal           = 1000
	CloseGoingAway        = 1001
	ClosePolicyViolation  = 1008
	CloseMessageTooBig    = 1009
	CloseInactivity       = 4000 // sent by clients only
	CloseInvalidToken     = 4001
	CloseTokenExpired     = 4002
	CloseChannelForbidden = 4003
	CloseOverConnLimit    = 4010
	CloseOverRate         = 4011
	CloseSuspended        = 4012
	CloseAdminDisconnect  = 4020
)

// MaxRequestIDLen is the longest accepted requestId.
const MaxRequestIDLen = 128

// Request is a decoded client→server frame. Data is nil when the "data" key is absent
// and the literal "null" when it is present with a null value.
type Request struct {
	Type                  string          `json:"type"`
	RequestID             string          `json:"requestId,omitempty"`
	Channel               string          `json:"channel,omitempty"`
	To                    string          `json:"to,omitempty"`
	Data                  json.RawMessage `json:"data,omitempty"`
	IncludeSenderMetadata bool            `json:"includeSenderMetadata,omitempty"`
}

// DecodeError is returned by DecodeRequest; Code is the §3.2 error code and RequestID the
// request id when it could still be recovered (so the error can be correlated).
type DecodeError struct {
	Code      string
	RequestID string
	Msg       string
}

func (e *DecodeError) Error() string { return e.Code + ": " + e.Msg }

// DecodeRequest parses one inbound text frame. It never panics; every failure is a *DecodeError.
func DecodeRequest(frame []byte) (*Request, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(frame, &raw); err != nil || raw == nil {
		return nil, &DecodeError{Code: CodeMalformedMessage, Msg: "frame is not a JSON object"}
	}
	var req Request
	if rid, ok := raw["requestId"]; ok && !isNull(rid) {
		if err := json.Unmarshal(rid, &req.RequestID); err != nil {
			return nil, &DecodeError{Code: CodeMalformedMessage, Msg: "requestId must be a string"}
		}
		if len(req.RequestID) > MaxRequestIDLen {
			return nil, &DecodeError{Code: CodeMalformedMessage, Msg: fmt.Sprintf("requestId longer than %d", MaxRequestIDLen)}
		}
	}
	t, ok := raw["type"]
	if !ok || isNull(t) || json.Unmarshal(t, &req.Type) != nil {
		return nil, &DecodeError{Code: CodeMalformedMessage, RequestID: req.RequestID, Msg: "type missing or not a string"}
	}
	str := func(key string, dst *string) error {
		v, ok := raw[key]
		if !ok || isNull(v) {
			return nil
		}
		if json.Unmarshal(v, dst) != nil {
			return &DecodeError{Code: CodeMalformedMessage, RequestID: req.RequestID, Msg: key + " must be a string"}
		}
		return nil
	}
	if err := str("channel", &req.Channel); err != nil {
		return nil, err
	}
	if err := str("to", &req.To); err != nil {
		return nil, err
	}
	if v, ok := raw["includeSenderMetadata"]; ok && !isNull(v) {
		if json.Unmarshal(v, &req.IncludeSenderMetadata) != nil {
			return nil, &DecodeError{Code: CodeMalformedMessage, RequestID: req.RequestID, Msg: "includeSenderMetadata must be a boolean"}
		}
	}
	if d, ok := raw["data"]; ok {
		req.Data = d
	}
	return &req, nil
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// PresenceEntry is one member in a presence frame.
type PresenceEntry struct {
	PeerID   string          `json:"peerId"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Welcome is the first server frame on an accepted connection. ExpiresAt is nil for publishable keys
// and is always encoded (as null then), as the SDK requires the key.
type Welcome struct {
	Type           string          `json:"type"`
	PeerID         string          `json:"peerId"`
	ExpiresAt      *int64          `json:"expiresAt"`
	ServerTime     int64           `json:"serverTime"`
	MaxMessageSize int             `json:"maxMessageSize"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

// Frame is a decoded server→client frame, as a client sees it.
type Frame struct {
	Type           string          `json:"type"`
	RequestID      string          `json:"requestId,omitempty"`
	Code           string          `json:"code,omitempty"`
	Message        string          `json:"message,omitempty"`
	PeerID         string          `json:"peerId,omitempty"`
	ExpiresAt      *int64          `json:"expiresAt,omitempty"`
	ServerTime     float64         `json:"serverTime,omitempty"`
	MaxMessageSize int             `json:"maxMessageSize,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	Channel        string          `json:"channel,omitempty"`
	From           string          `json:"from,omitempty"`
	Data           json.RawMessage `json:"data,omitempty"`
	FromMetadata   json.RawMessage `json:"fromMetadata,omitempty"`
	Joined         []PresenceEntry `json:"joined,omitempty"`
	Left           []PresenceEntry `json:"left,omitempty"`
	RetryAfterMs   int             `json:"retryAfterMs,omitempty"`
}

// The encoders below build server frames with exactly the shapes of §2.3. They append JSON by hand
// for the hot paths (direct, message, ack) to avoid reflection per delivered frame.

func encodeAck(requestID string) []byte {
	b := make([]byte, 0, 32+len(requestID))
	b = append(b, `{"type":"ack","requestId":`...)
	b = appendJSONString(b, requestID)
	return append(b, '}')
}

func encodeError(code, msg, requestID string) []byte {
	b := make([]byte, 0, 64+len(msg)+len(requestID))
	b = append(b, `{"type":"error","code":`...)
	b = appendJSONString(b, code)
	if msg != "" {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, msg)
	}
	if requestID != "" {
		b = append(b, `,"requestId":`...)
		b = appendJSONString(b, requestID)
	}
	return append(b, '}')
}

func encodeDirect(from string, data, fromMeta json.RawMessage) []byte {
	b := make([]byte, 0, 48+len(from)+len(data)+len(fromMeta))
	b = append(b, `{"type":"direct","from":`...)
	b = appendJSONString(b, from)
	return appendDataTail(b, data, fromMeta)
}

func encodeMessage(channel, from string, data, fromMeta json.RawMessage) []byte {
	b := make([]byte, 0, 64+len(channel)+len(from)+len(data)+len(fromMeta))
	b = append(b, `{"type":"message","channel":`...)
	b = appendJSONString(b, channel)
	b = append(b, `,"from":`...)
	b = appendJSONString(b, from)
	return appendDataTail(b, data, fromMeta)
}

// appendDataTail closes a direct or message frame: data, the sender's metadata when present, '}'.
func appendDataTail(b []byte, data, fromMeta json.RawMessage) []byte {
	b = append(b, `,"data":`...)
	b = append(b, data...)
	if len(fromMeta) > 0 {
		b = append(b, `,"fromMetadata":`...)
		b = append(b, fromMeta...)
	}
	return append(b, '}')
}

// encodePresence always carries both arrays (S4) unless omitLeft (a test hook) is set.
func encodePresence(channel string, joined, left []PresenceEntry, omitLeft bool) []byte {
	b := make([]byte, 0, 64+len(channel)+48*(len(joined)+len(left)))
	b = append(b, `{"type":"presence","channel":`...)
	b = appendJSONString(b, channel)
	b = append(b, `,"joined":`...)
	b = appendEntries(b, joined)
	if !omitLeft {
		b = append(b, `,"left":`...)
		b = appendEntries(b, left)
	}
	return append(b, '}')
}

func appendEntries(b []byte, es []PresenceEntry) []byte {
	b = append(b, '[')
	for i, e := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"peerId":`...)
		b = appendJSONString(b, e.PeerID)
		if len(e.Metadata) > 0 {
			b = append(b, `,"metadata":`...)
			b = append(b, e.Metadata...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

var (
	framePong = []byte(`{"type":"pong"}`)
)

func encodeGoingAway(retryAfterMs int) []byte {
	return fmt.Appendf(nil, `{"type":"going_away","retryAfterMs":%d}`, retryAfterMs)
}

func encodeWelcome(w Welcome) []byte {
	w.Type = TypeWelcome
	b, err := json.Marshal(w)
	if err != nil { // only RawMessage fields can fail, and they were validated on the way in
		panic(fmt.Sprintf("encode welcome: %v", err))
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal, byte-identical to encoding/json without
// HTML escaping: \b and \f short escapes, invalid UTF-8 as \ufffd, U+2028/U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		// Multi-byte: escape what encoding/json escapes (invalid UTF-8 as \ufffd, U+2028/9).
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == 0x2028 || r == 0x2029 {
			b = append(b, s[start:i]...)
			switch r {
			case utf8.RuneError:
				b = append(b, `\ufffd`...)
			case 0x2028:
				b = append(b, `\u2028`...)
			default:
				b = append(b, `\u2029`...)
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
