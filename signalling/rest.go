package signalling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/roomtape/roomtape/internal/logattr"
)

// maxRESTBody is the largest REST request body (§1.8: 413 beyond 32 KB).
const maxRESTBody = 32 << 10

// restKey is the secret key that authenticated a REST call.
type restKey struct {
	app      *AppConfig
	key      *SecretKeyConfig
	patterns PatternSet
	actions  actionSet
}

type restHandler func(w http.ResponseWriter, r *http.Request, k restKey)

// withSecretKey authenticates "Authorization: Bearer sk_id:sk_secret" (publishable keys get 401).
func (s *Server) withSecretKey(h restHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		app, key, patterns, ok := s.auth.SecretKey(r.Header.Get("Authorization"))
		if !ok {
			restError(w, http.StatusUnauthorized, "unauthorized", "a secret key is required: Authorization: Bearer sk_id:sk_secret")
			return
		}
		h(w, r, restKey{app: app, key: key, patterns: patterns, actions: newActionSet(key.Actions)})
	}
}

func restError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": msg})
}

func restJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// readBody decodes a JSON body of at most maxRESTBody bytes, rejecting unknown fields.
func readBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRESTBody+1))
	if err != nil {
		restError(w, http.StatusBadRequest, "invalid_request", "cannot read body")
		return false
	}
	if len(body) > maxRESTBody {
		restError(w, http.StatusRequestEntityTooLarge, "invalid_request", "body larger than 32 KiB")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		restError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("invalid JSON body: %v", err))
		return false
	}
	return true
}

// checkRESTChannel validates the {id} channel and authorizes action on it.
func checkRESTChannel(w http.ResponseWriter, k restKey, ch string, action Action) bool {
	switch ValidateChannel(ch) {
	case CodeInvalidChannel:
		restError(w, http.StatusBadRequest, "invalid_request", "invalid channel name")
		return false
	case CodeChannelReserved:
		restError(w, http.StatusBadRequest, "channel_reserved", "channel prefix is reserved")
		return false
	}
	if !k.actions.has(action) {
		restError(w, http.StatusForbidden, "action_not_permitted", "key lacks the "+string(action)+" action")
		return false
	}
	if !k.patterns.Match(ch) {
		restError(w, http.StatusForbidden, "channel_not_authorized", "channel outside the key's patterns")
		return false
	}
	return true
}

type mintRequest struct {
	PeerID       string          `json:"peerId"`
	Channels     []string        `json:"channels,omitempty"`
	Permissions  []Action        `json:"permissions,omitempty"`
	ExpiresInSec int64           `json:"expiresInSec,omitempty"`
	Metadata     json.RawMessage `json:"metadata,omitempty"`
	PeerMetadata json.RawMessage `json:"peerMetadata,omitempty"`
}

func (s *Server) handleMintToken(w http.ResponseWriter, r *http.Request, k restKey) {
	var req mintRequest
	if !readBody(w, r, &req) {
		return
	}
	if !ValidPeerID(req.PeerID) {
		restError(w, http.StatusBadRequest, "invalid_request", "peerId must be 1-128 printable ASCII characters")
		return
	}
	ttl := time.Duration(req.ExpiresInSec) * time.Second
	switch {
	case req.ExpiresInSec == 0:
		ttl = time.Hour
	case req.ExpiresInSec < 0 || ttl > MaxMintTTL:
		restError(w, http.StatusBadRequest, "invalid_request", "expiresInSec must be between 1 and 86400")
		return
	}
	for _, p := range req.Permissions {
		if !p.valid() {
			restError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("unknown permission %q", p))
			return
		}
	}
	if len(req.Channels) > MaxTokenChannels || len(req.Permissions) > MaxTokenPermissions {
		restError(w, http.StatusBadRequest, "invalid_request", "too many channels or permissions")
		return
	}
	for _, c := range req.Channels {
		if _, err := CompilePattern(c); err != nil {
			restError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
	}
	now := time.Now()
	claims := Claims{
		Subject: req.PeerID, IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(),
		Channels: req.Channels, Permissions: req.Permissions, Metadata: req.Metadata, PeerMetadata: req.PeerMetadata,
	}
	tok, err := MintToken(k.key.ID, k.key.Secret, claims)
	if err != nil {
		restError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.log.Info("token minted", logattr.App, k.app.ID, logattr.Peer, req.PeerID, "ttl", ttl)
	restJSON(w, map[string]any{"token": tok, "expiresAt": claims.ExpiresAt})
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request, k restKey) {
	ch := r.PathValue("id")
	if !checkRESTChannel(w, k, ch, ActionPresence) {
		return
	}
	restJSON(w, map[string]any{"channel": ch, "peers": s.broker.Peers(k.app.ID, ch)})
}

type publishRequest struct {
	Data         json.RawMessage `json:"data"`
	From         string          `json:"from,omitempty"`
	PeerMetadata json.RawMessage `json:"peerMetadata,omitempty"`
}

// ServerPublisherID is the `from` of REST publishes that name no sender.
const ServerPublisherID = "_server"

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request, k restKey) {
	ch := r.PathValue("id")
	if !checkRESTChannel(w, k, ch, ActionPublish) {
		return
	}
	var req publishRequest
	if !readBody(w, r, &req) {
		return
	}
	if req.Data == nil {
		restError(w, http.StatusBadRequest, "missing_data", "data is required")
		return
	}
	from := req.From
	if from == "" {
		from = ServerPublisherID
	}
	if !ValidPeerID(from) {
		restError(w, http.StatusBadRequest, "invalid_request", "from must be 1-128 printable ASCII characters")
		return
	}
	if err := checkObject("peerMetadata", req.PeerMetadata, MaxPeerMetadataBytes); err != nil {
		restError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	n := s.broker.Publish(k.app.ID, ch, from, compactOrNil(req.PeerMetadata), req.Data, nil)
	restJSON(w, map[string]any{"channel": ch, "delivered": n})
}

func (s *Server) handleKick(w http.ResponseWriter, r *http.Request, k restKey) {
	peer := r.PathValue("id")
	if !ValidPeerID(peer) {
		restError(w, http.StatusBadRequest, "invalid_request", "invalid peer id")
		return
	}
	n := s.broker.Kick(k.app.ID, peer, CloseAdminDisconnect, "admin disconnect")
	s.log.Info("peer kicked", logattr.App, k.app.ID, logattr.Peer, peer, "closed", n)
	restJSON(w, map[string]any{"peerId": peer, "closed": n})
}
