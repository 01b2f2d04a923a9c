package signalling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Credentials produce the query parameter of one connection attempt. They are asked again on
// every (re)connect, like the SDK's tokenProvider, so a token can be fresh each time.
type Credentials interface {
	// Query returns exactly one of key=… or token=….
	Query(ctx context.Context) (url.Values, error)
	// StableIdentity reports whether the peer id survives reconnects (false for publishable keys).
	StableIdentity() bool
}

// SecretKeyCredentials mint a short-lived HS256 JWT on every connect (B1).
type SecretKeyCredentials struct {
	KeyID, Secret string
	Subject       string
	TTL           time.Duration // default 1h
	Channels      []string      // nil = the key's patterns
	Permissions   []Action      // nil = the key's actions
	Metadata      json.RawMessage
	PeerMetadata  json.RawMessage
	Now           func() time.Time // for tests; default time.Now
}

// Query mints a token.
func (s SecretKeyCredentials) Query(context.Context) (url.Values, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	t := now()
	tok, err := MintToken(s.KeyID, s.Secret, Claims{
		Subject: s.Subject, IssuedAt: t.Unix(), ExpiresAt: t.Add(ttl).Unix(),
		Channels: s.Channels, Permissions: s.Permissions, Metadata: s.Metadata, PeerMetadata: s.PeerMetadata,
	})
	if err != nil {
		return nil, err
	}
	return url.Values{"token": {tok}}, nil
}

// StableIdentity is true: the subject is the peer id.
func (SecretKeyCredentials) StableIdentity() bool { return true }

// StaticToken is a JWT obtained elsewhere; it cannot be refreshed, so after it expires every
// reconnect fails with 4002.
type StaticToken string

// Query returns the token.
func (s StaticToken) Query(context.Context) (url.Values, error) {
	if s == "" {
		return nil, errors.New("static token is empty")
	}
	return url.Values{"token": {string(s)}}, nil
}

// StableIdentity is true.
func (StaticToken) StableIdentity() bool { return true }

// PublishableKeyCredentials connect with a publishable key. The server assigns a new peer id on
// every connection, so a bot using one loses its identity on each reconnect.
type PublishableKeyCredentials string

// Query returns the key.
func (k PublishableKeyCredentials) Query(context.Context) (url.Values, error) {
	if k == "" {
		return nil, errors.New("publishable key is empty")
	}
	return url.Values{"key": {string(k)}}, nil
}

// StableIdentity is false.
func (PublishableKeyCredentials) StableIdentity() bool { return false }

// TokenURLCredentials fetch a token from an HTTP endpoint on every connect (the Go equivalent of
// the SDK's tokenProvider). The endpoint answers with a JSON object {"token": "..."} or the bare
// token as text/plain.
type TokenURLCredentials struct {
	URL     string
	Method  string            // default GET
	Header  map[string]string // e.g. Authorization for the token endpoint
	Client  *http.Client      // default: 10 s timeout
	Timeout time.Duration     // default 10 s, like the SDK's tokenProviderTimeoutMs
}

// Query fetches a token.
func (t TokenURLCredentials) Query(ctx context.Context) (url.Values, error) {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, t.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("token url: %w", err)
	}
	for k, v := range t.Header {
		req.Header.Set(k, v)
	}
	client := t.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token url: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("token url: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token url: HTTP %d", resp.StatusCode)
	}
	tok := strings.TrimSpace(string(body))
	if strings.HasPrefix(tok, "{") {
		var v struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("token url: decode: %w", err)
		}
		tok = v.Token
	}
	if tok == "" {
		return nil, errors.New("token url: empty token")
	}
	return url.Values{"token": {tok}}, nil
}

// StableIdentity is true: tokens carry a stable sub.
func (TokenURLCredentials) StableIdentity() bool { return true }
