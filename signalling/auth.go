package signalling

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Limits on JWT claims (§1.3).
const (
	MaxMetadataBytes     = 8 << 10
	MaxPeerMetadataBytes = 4 << 10
	MaxTokenChannels     = 100
	MaxTokenPermissions  = 16
	// MaxMintTTL is the longest lifetime the REST API mints (a self-signed JWT may live longer).
	MaxMintTTL = 24 * time.Hour
)

// Claims are the JWT claims the protocol defines. Channels nil means "the key's patterns";
// an empty, non-nil list allows nothing.
type Claims struct {
	Subject      string          `json:"sub"`
	ExpiresAt    int64           `json:"exp"`
	IssuedAt     int64           `json:"iat,omitempty"`
	NotBefore    int64           `json:"nbf,omitempty"`
	Issuer       string          `json:"iss,omitempty"`
	Channels     []string        `json:"channels,omitzero"`    // omitzero: an empty list is kept (allows nothing)
	Permissions  []Action        `json:"permissions,omitzero"` // omitzero: an empty list is kept (grants nothing)
	Metadata     json.RawMessage `json:"metadata,omitempty"`
	PeerMetadata json.RawMessage `json:"peerMetadata,omitempty"`
}

// The jwt.Claims interface; time validation is done by Authenticator, not the jwt library.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *Claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *Claims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *Claims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// MintToken signs claims with HS256 and the secret key (kid = keyID).
func MintToken(keyID, secret string, c Claims) (string, error) {
	if keyID == "" || secret == "" {
		return "", errors.New("mint token: key id and secret are required")
	}
	if !ValidPeerID(c.Subject) {
		return "", fmt.Errorf("mint token: sub %q must be 1-128 printable ASCII characters", c.Subject)
	}
	if c.ExpiresAt == 0 {
		return "", errors.New("mint token: exp is required")
	}
	if err := checkObject("metadata", c.Metadata, MaxMetadataBytes); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if err := checkObject("peerMetadata", c.PeerMetadata, MaxPeerMetadataBytes); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, &c)
	tok.Header["kid"] = keyID
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return s, nil
}

// AuthError is a credential rejection; Close is the WebSocket close code to use (§1.3).
type AuthError struct {
	Close  int
	Reason string
}

func (e *AuthError) Error() string { return fmt.Sprintf("auth rejected (%d): %s", e.Close, e.Reason) }

func invalidToken(format string, args ...any) error {
	return &AuthError{Close: CloseInvalidToken, Reason: fmt.Sprintf(format, args...)}
}

// actionSet is a bitmask of Actions.
type actionSet uint8

func newActionSet(as []Action) actionSet {
	var s actionSet
	for _, a := range as {
		if i := slices.Index(AllActions, a); i >= 0 {
			s |= 1 << i
		}
	}
	return s
}

func (s actionSet) has(a Action) bool {
	i := slices.Index(AllActions, a)
	return i >= 0 && s&(1<<i) != 0
}

// Identity is an authenticated connection's identity and grants.
type Identity struct {
	App          *AppConfig
	PeerID       string
	ExpiresAt    time.Time // zero for publishable keys
	Metadata     json.RawMessage
	PeerMetadata json.RawMessage
	Publishable  bool
	KeyID        string // secret key id, or a redacted publishable key: safe to log

	actions       actionSet
	keyPatterns   PatternSet
	tokenPatterns PatternSet // nil: no channels claim
}

// Can reports whether the identity holds action a.
func (id *Identity) Can(a Action) bool { return id.actions.has(a) }

// Allows reports whether channel ch is authorized by both the key's patterns and the token's claim.
func (id *Identity) Allows(ch string) bool {
	if !id.keyPatterns.Match(ch) {
		return false
	}
	return id.tokenPatterns == nil || id.tokenPatterns.Match(ch)
}

type pkEntry struct {
	app      *AppConfig
	key      *PublishableKey
	patterns PatternSet
}

type skEntry struct {
	app      *AppConfig
	key      *SecretKeyConfig
	patterns PatternSet
}

// Authenticator validates publishable keys, JWTs and REST secret keys against the configured apps.
type Authenticator struct {
	pks        map[string]pkEntry
	sks        map[string]skEntry
	expiryLead time.Duration
	now        func() time.Time
}

// NewAuthenticator indexes the apps' keys. The config must have passed Validate.
func NewAuthenticator(cfg *ServerConfig) (*Authenticator, error) {
	a := &Authenticator{pks: map[string]pkEntry{}, sks: map[string]skEntry{}, expiryLead: cfg.ExpiryLead, now: time.Now}
	for i := range cfg.Apps {
		app := &cfg.Apps[i]
		for j := range app.PublishableKeys {
			k := &app.PublishableKeys[j]
			ps, err := CompilePatterns(k.ChannelPatterns)
			if err != nil {
				return nil, fmt.Errorf("app %s key %s: %w", app.ID, k.Key, err)
			}
			a.pks[k.Key] = pkEntry{app: app, key: k, patterns: ps}
		}
		for j := range app.SecretKeys {
			k := &app.SecretKeys[j]
			ps, err := CompilePatterns(k.ChannelPatterns)
			if err != nil {
				return nil, fmt.Errorf("app %s key %s: %w", app.ID, k.ID, err)
			}
			a.sks[k.ID] = skEntry{app: app, key: k, patterns: ps}
		}
	}
	return a, nil
}

// Publishable authenticates a publishable-key connection from the given Origin header.
func (a *Authenticator) Publishable(key, origin string) (*Identity, error) {
	e, ok := a.pks[key]
	if !ok {
		return nil, invalidToken("unknown publishable key")
	}
	if len(e.key.AllowedOrigins) > 0 && !slices.Contains(e.key.AllowedOrigins, origin) {
		return nil, invalidToken("origin %q not allowed for this key", origin)
	}
	return &Identity{
		App: e.app, PeerID: uuid.NewString(), Publishable: true, KeyID: redactKey(e.key.Key),
		actions: newActionSet(e.key.Actions), keyPatterns: e.patterns,
	}, nil
}

// Token authenticates a JWT (§1.3): HS256 only, known kid, valid sub, exp required and not
// within the pre-expiry window, nbf honoured, claim sizes bounded.
func (a *Authenticator) Token(raw string) (*Identity, error) {
	var claims Claims
	var entry skEntry
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		e, ok := a.sks[kid]
		if !ok {
			return nil, errors.New("unknown kid")
		}
		entry = e
		return []byte(e.key.Secret), nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		return nil, invalidToken("%s", describeJWTError(err))
	}
	if !ValidPeerID(claims.Subject) {
		return nil, invalidToken("sub missing or not 1-128 printable ASCII characters")
	}
	now := a.now()
	if claims.ExpiresAt == 0 {
		return nil, invalidToken("exp is required")
	}
	exp := time.Unix(claims.ExpiresAt, 0)
	if !now.Add(a.expiryLead).Before(exp) {
		return nil, &AuthError{Close: CloseTokenExpired, Reason: "token expired"}
	}
	if claims.NotBefore != 0 && now.Add(5*time.Second).Before(time.Unix(claims.NotBefore, 0)) {
		return nil, invalidToken("token not valid yet (nbf)")
	}
	if err := checkObject("metadata", claims.Metadata, MaxMetadataBytes); err != nil {
		return nil, invalidToken("%v", err)
	}
	if err := checkObject("peerMetadata", claims.PeerMetadata, MaxPeerMetadataBytes); err != nil {
		return nil, invalidToken("%v", err)
	}
	if len(claims.Channels) > MaxTokenChannels {
		return nil, invalidToken("more than %d channels", MaxTokenChannels)
	}
	if len(claims.Permissions) > MaxTokenPermissions {
		return nil, invalidToken("more than %d permissions", MaxTokenPermissions)
	}
	for _, p := range claims.Permissions {
		if !p.valid() {
			return nil, invalidToken("unknown permission %q", p)
		}
	}
	id := &Identity{
		App: entry.app, PeerID: claims.Subject, ExpiresAt: exp, KeyID: entry.key.ID,
		Metadata: compactOrNil(claims.Metadata), PeerMetadata: compactOrNil(claims.PeerMetadata),
		actions: newActionSet(entry.key.Actions), keyPatterns: entry.patterns,
	}
	if claims.Permissions != nil {
		id.actions &= newActionSet(claims.Permissions)
	}
	if claims.Channels != nil {
		id.tokenPatterns = make(PatternSet, 0, len(claims.Channels))
		for _, c := range claims.Channels {
			p, err := CompilePattern(c)
			if err != nil {
				return nil, invalidToken("channels claim: %v", err)
			}
			id.tokenPatterns = append(id.tokenPatterns, p)
		}
	}
	return id, nil
}

// SecretKey authenticates a REST "Authorization: Bearer sk_id:sk_secret" header value.
func (a *Authenticator) SecretKey(authorization string) (*AppConfig, *SecretKeyConfig, PatternSet, bool) {
	cred, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return nil, nil, nil, false
	}
	id, secret, ok := strings.Cut(strings.TrimSpace(cred), ":")
	if !ok {
		return nil, nil, nil, false
	}
	e, ok := a.sks[id]
	if !ok || subtle.ConstantTimeCompare([]byte(secret), []byte(e.key.Secret)) != 1 {
		return nil, nil, nil, false
	}
	return e.app, e.key, e.patterns, true
}

func describeJWTError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature invalid"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token unverifiable (alg or kid)"
	default:
		return "token invalid"
	}
}

// checkObject accepts an absent/null value or a JSON object of at most max bytes.
func checkObject(name string, v json.RawMessage, max int) error {
	if len(v) == 0 || isNull(v) {
		return nil
	}
	t := bytes.TrimSpace(v)
	if len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%s must be a JSON object", name)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, t); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if buf.Len() > max {
		return fmt.Errorf("%s is %d bytes, over the %d-byte limit", name, buf.Len(), max)
	}
	return nil
}

func compactOrNil(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || isNull(v) {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return nil
	}
	return buf.Bytes()
}

// redactKey keeps enough of a publishable key to tell keys apart in logs. A publishable key is
// public but it is the whole credential, so it is never logged in full.
func redactKey(k string) string {
	if len(k) <= 10 {
		return "…"
	}
	return k[:10] + "…"
}
