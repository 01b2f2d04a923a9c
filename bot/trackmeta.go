package bot

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Limits on __meteredTrackMeta per remote peer (§3.7).
const (
	maxTrackMetaEntries = 512
	maxTrackMetaBytes   = 8 << 10
)

// trackMetaCache holds a peer's __meteredTrackMeta by track id, evicting the oldest entry
// beyond 512 like the SDK. It survives connection replacement (§5.6).
type trackMetaCache struct {
	byID  map[string]json.RawMessage
	order []string
}

func newTrackMetaCache() *trackMetaCache { return &trackMetaCache{byID: map[string]json.RawMessage{}} }

func (c *trackMetaCache) set(trackID string, meta json.RawMessage) {
	if _, ok := c.byID[trackID]; !ok {
		c.order = append(c.order, trackID)
		if len(c.order) > maxTrackMetaEntries {
			delete(c.byID, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.byID[trackID] = meta
}

func (c *trackMetaCache) clear(trackID string) { delete(c.byID, trackID) }

func (c *trackMetaCache) get(trackID string) json.RawMessage { return c.byID[trackID] }

// trackMetaMessage is {"__meteredTrackMeta":{"trackId":…,"metadata":{…}}}.
type trackMetaMessage struct {
	TrackID  string
	Metadata json.RawMessage // nil = clear
}

var errNotTrackMeta = errors.New("not a track metadata message")

// parseTrackMeta recognises a __meteredTrackMeta control message (§5.2): trackId must be a
// non-empty string, metadata absent/null (clear) or a plain object.
func parseTrackMeta(data json.RawMessage) (trackMetaMessage, error) {
	var env struct {
		Meta *struct {
			TrackID  json.RawMessage `json:"trackId"`
			Metadata json.RawMessage `json:"metadata"`
		} `json:"__meteredTrackMeta"`
	}
	if json.Unmarshal(data, &env) != nil || env.Meta == nil {
		return trackMetaMessage{}, errNotTrackMeta
	}
	var id string
	if json.Unmarshal(env.Meta.TrackID, &id) != nil || id == "" {
		return trackMetaMessage{}, errors.New("__meteredTrackMeta without a trackId string")
	}
	m := bytes.TrimSpace(env.Meta.Metadata)
	if len(m) == 0 || bytes.Equal(m, []byte("null")) {
		return trackMetaMessage{TrackID: id}, nil
	}
	if m[0] != '{' {
		return trackMetaMessage{}, errors.New("__meteredTrackMeta metadata is not an object")
	}
	if len(m) > maxTrackMetaBytes {
		return trackMetaMessage{}, errors.New("__meteredTrackMeta metadata larger than 8 KiB")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, m); err != nil {
		return trackMetaMessage{}, err
	}
	return trackMetaMessage{TrackID: id, Metadata: buf.Bytes()}, nil
}

// signal is a decoded rtc-description / rtc-ice envelope (§5.2).
type signal struct {
	Description  *description
	Candidate    *candidateInit // nil with HasCandidate = end of candidates
	HasCandidate bool
}

// description is an SDP offer or answer.
type description struct {
	Type, SDP string
}

type candidateInit struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
	UsernameFragment *string `json:"usernameFragment"`
}

// parseSignal classifies a direct payload exactly like the SDK does: rtc-description with an
// offer/answer object, or rtc-ice with an object or null candidate. ok=false: not a signal.
func parseSignal(data json.RawMessage) (signal, bool) {
	var env struct {
		Type        string          `json:"type"`
		Description json.RawMessage `json:"description"`
		Candidate   json.RawMessage `json:"candidate"`
	}
	if json.Unmarshal(data, &env) != nil {
		return signal{}, false
	}
	switch env.Type {
	case "rtc-description":
		var d struct {
			Type *string `json:"type"`
			SDP  *string `json:"sdp"`
		}
		if json.Unmarshal(env.Description, &d) != nil || d.Type == nil || d.SDP == nil ||
			(*d.Type != "offer" && *d.Type != "answer") {
			return signal{}, false
		}
		return signal{Description: &description{Type: *d.Type, SDP: *d.SDP}}, true
	case "rtc-ice":
		c := bytes.TrimSpace(env.Candidate)
		if len(c) == 0 {
			return signal{}, false
		}
		if bytes.Equal(c, []byte("null")) {
			return signal{HasCandidate: true}, true
		}
		var ci candidateInit
		if c[0] != '{' || json.Unmarshal(c, &ci) != nil {
			return signal{}, false
		}
		return signal{Candidate: &ci, HasCandidate: true}, true
	}
	return signal{}, false
}
