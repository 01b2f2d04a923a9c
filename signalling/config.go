package signalling

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is a permission a credential may grant.
type Action string

// The four actions of the protocol (§1.2).
const (
	ActionSubscribe Action = "subscribe"
	ActionPublish   Action = "publish"
	ActionPresence  Action = "presence"
	ActionSend      Action = "send"
)

// AllActions is every action, in protocol order.
var AllActions = []Action{ActionSubscribe, ActionPublish, ActionPresence, ActionSend}

// ErrInvalidConfig is wrapped by every configuration validation error.
var ErrInvalidConfig = errors.New("invalid configuration")

// ConfigError names the configuration field that failed validation.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }

// Unwrap lets errors.Is(err, ErrInvalidConfig) match.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// ServerConfig configures the signalling server. Zero values are replaced by Defaults.
type ServerConfig struct {
	// Listen is the TCP address of the HTTP/WebSocket listener, e.g. "127.0.0.1:8787" (":0" picks a free port).
	Listen string `mapstructure:"listen" json:"listen"`
	// PublicURL is the ws:// or wss:// origin clients use; printed and used in examples. Empty: derived from Listen.
	PublicURL string `mapstructure:"public_url" json:"public_url"`
	// Apps are the tenants. Peer ids, channels and presence never cross apps.
	Apps []AppConfig `mapstructure:"apps" json:"apps"`
	// ICEServers are injected into welcome.metadata.iceServers when a token's metadata carries none.
	ICEServers []ICEServer `mapstructure:"ice_servers" json:"ice_servers"`
	// MaxMessageSize is advertised in welcome (bytes of data). Inbound frames up to MaxMessageSize+4096 are accepted.
	MaxMessageSize int `mapstructure:"max_message_size" json:"max_message_size"`
	// MaxChannelsPerConn caps subscriptions per connection (channel_limit_exceeded beyond).
	MaxChannelsPerConn int `mapstructure:"max_channels_per_conn" json:"max_channels_per_conn"`
	// RateLimit is the per-connection inbound message token bucket (close 4011 when exceeded).
	RateLimit RateLimitConfig `mapstructure:"rate_limit" json:"rate_limit"`
	// PingInterval is how often WebSocket-level pings are sent.
	PingInterval time.Duration `mapstructure:"ping_interval" json:"ping_interval"`
	// ReapAfter closes a connection with no inbound traffic (frames, pongs) for this long.
	ReapAfter time.Duration `mapstructure:"reap_after" json:"reap_after"`
	// ExpiryLead is how long before a JWT's exp the connection is closed with 4002.
	ExpiryLead time.Duration `mapstructure:"expiry_lead" json:"expiry_lead"`
	// WriteTimeout bounds one frame write; a client that cannot take a frame in this time is dropped.
	WriteTimeout time.Duration `mapstructure:"write_timeout" json:"write_timeout"`
	// SendQueue is the outbound frame queue per connection; a connection whose queue overflows is closed (1008).
	SendQueue int `mapstructure:"send_queue" json:"send_queue"`
	// ShutdownGrace bounds graceful shutdown (going_away, then 1001 closes).
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace" json:"shutdown_grace"`
	// Testing enables protocol-breaking hooks for conformance tests only. Never enable in production.
	Testing TestingConfig `mapstructure:"testing" json:"testing"`
}

// AppConfig is one tenant with its keys and limits.
type AppConfig struct {
	ID              string            `mapstructure:"id" json:"id"`
	PublishableKeys []PublishableKey  `mapstructure:"publishable_keys" json:"publishable_keys"`
	SecretKeys      []SecretKeyConfig `mapstructure:"secret_keys" json:"secret_keys"`
	MaxConnections  int               `mapstructure:"max_connections" json:"max_connections"` // 0 = unlimited; over the cap: close 4010
	Suspended       bool              `mapstructure:"suspended" json:"suspended"`             // every connection closes 4012
}

// PublishableKey is a browser-side credential; its id is the credential.
type PublishableKey struct {
	Key             string   `mapstructure:"key" json:"key"`
	ChannelPatterns []string `mapstructure:"channel_patterns" json:"channel_patterns"`
	Actions         []Action `mapstructure:"actions" json:"actions"`
	AllowedOrigins  []string `mapstructure:"allowed_origins" json:"allowed_origins"` // empty = any origin
}

// SecretKeyConfig is a key pair used to sign JWTs (kid = ID, HMAC key = Secret) and to call the REST API.
type SecretKeyConfig struct {
	ID              string   `mapstructure:"id" json:"id"`
	Secret          string   `mapstructure:"secret" json:"-"`
	ChannelPatterns []string `mapstructure:"channel_patterns" json:"channel_patterns"`
	Actions         []Action `mapstructure:"actions" json:"actions"`
}

// ICEServer is one RTCIceServer entry as the browser expects it.
type ICEServer struct {
	URLs       []string `mapstructure:"urls" json:"urls"`
	Username   string   `mapstructure:"username" json:"username,omitempty"`
	Credential string   `mapstructure:"credential" json:"credential,omitempty"`
}

// RateLimitConfig is a token bucket per connection. Pings never count.
type RateLimitConfig struct {
	Enabled   bool    `mapstructure:"enabled" json:"enabled"`
	PerSecond float64 `mapstructure:"per_second" json:"per_second"`
	Burst     int     `mapstructure:"burst" json:"burst"`
}

// TestingConfig holds deliberate protocol deviations used by conformance tests (§7 scenarios 28–32).
type TestingConfig struct {
	WelcomeDelay      time.Duration `mapstructure:"welcome_delay" json:"welcome_delay"`             // delay before welcome
	SnapshotBeforeAck bool          `mapstructure:"snapshot_before_ack" json:"snapshot_before_ack"` // break S7 ordering
	OmitPresenceLeft  bool          `mapstructure:"omit_presence_left" json:"omit_presence_left"`   // drop the left array
	WithholdSnapshot  bool          `mapstructure:"withhold_snapshot" json:"withhold_snapshot"`     // no snapshot on repeated subscribe
	NoSupersede       bool          `mapstructure:"no_supersede" json:"no_supersede"`               // disable S10 (variant tests)
}

// Enabled reports whether any hook is on.
func (t TestingConfig) Enabled() bool { return t != TestingConfig{} }

// DemoApp is the built-in app used when no configuration names any.
func DemoApp() AppConfig {
	return AppConfig{
		ID: "demo",
		PublishableKeys: []PublishableKey{{
			Key: "pk_live_demo", ChannelPatterns: []string{"**"},
			Actions: []Action{ActionSubscribe, ActionPublish, ActionPresence, ActionSend},
		}},
		SecretKeys: []SecretKeyConfig{{
			ID: "sk_id_demo", Secret: "sk_secret_demo", ChannelPatterns: []string{"**"},
			Actions: []Action{ActionSubscribe, ActionPublish, ActionPresence, ActionSend},
		}},
	}
}

// Defaults fills zero fields with the protocol's values. It reports whether the built-in demo app was added.
func (c *ServerConfig) Defaults() (addedDemo bool) {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8787"
	}
	if len(c.Apps) == 0 {
		c.Apps = []AppConfig{DemoApp()}
		addedDemo = true
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 65536
	}
	if c.MaxChannelsPerConn == 0 {
		c.MaxChannelsPerConn = 100
	}
	if c.RateLimit.PerSecond == 0 {
		c.RateLimit.PerSecond = 100
	}
	if c.RateLimit.Burst == 0 {
		c.RateLimit.Burst = 200
	}
	if c.PingInterval == 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.ReapAfter == 0 {
		c.ReapAfter = 40 * time.Second
	}
	if c.ExpiryLead == 0 {
		c.ExpiryLead = 250 * time.Millisecond
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SendQueue == 0 {
		c.SendQueue = 1024
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 5 * time.Second
	}
	for i := range c.Apps {
		for j := range c.Apps[i].PublishableKeys {
			k := &c.Apps[i].PublishableKeys[j]
			if k.Actions == nil {
				// Docs: subscribe, publish and presence default on, send defaults off.
				k.Actions = []Action{ActionSubscribe, ActionPublish, ActionPresence}
			}
			if k.ChannelPatterns == nil {
				k.ChannelPatterns = []string{"**"}
			}
		}
		for j := range c.Apps[i].SecretKeys {
			k := &c.Apps[i].SecretKeys[j]
			if k.Actions == nil {
				k.Actions = append([]Action(nil), AllActions...)
			}
			if k.ChannelPatterns == nil {
				k.ChannelPatterns = []string{"**"}
			}
		}
	}
	return addedDemo
}

// Validate checks the configuration; errors name the offending field and wrap ErrInvalidConfig.
func (c *ServerConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.MaxMessageSize < 1024 || c.MaxMessageSize > 1<<20 {
		bad("signal.max_message_size", "must be between 1024 and 1048576, got %d", c.MaxMessageSize)
	}
	if c.MaxChannelsPerConn < 1 {
		bad("signal.max_channels_per_conn", "must be positive")
	}
	if c.RateLimit.PerSecond <= 0 || c.RateLimit.Burst < 1 {
		bad("signal.rate_limit", "per_second and burst must be positive")
	}
	if c.ReapAfter <= c.PingInterval {
		bad("signal.reap_after", "must be longer than ping_interval (%s)", c.PingInterval)
	}
	if c.SendQueue < 16 {
		bad("signal.send_queue", "must be at least 16")
	}
	appIDs := map[string]bool{}
	keys := map[string]string{}
	for i, app := range c.Apps {
		f := fmt.Sprintf("signal.apps[%d]", i)
		if app.ID == "" {
			bad(f+".id", "required")
		}
		if appIDs[app.ID] {
			bad(f+".id", "duplicate app id %q", app.ID)
		}
		appIDs[app.ID] = true
		for j, k := range app.PublishableKeys {
			kf := fmt.Sprintf("%s.publishable_keys[%d]", f, j)
			if k.Key == "" {
				bad(kf+".key", "required")
			}
			if other, dup := keys[k.Key]; dup {
				bad(kf+".key", "key also used in %s", other)
			}
			keys[k.Key] = kf
			errs = append(errs, validateGrant(kf, k.ChannelPatterns, k.Actions)...)
		}
		for j, k := range app.SecretKeys {
			kf := fmt.Sprintf("%s.secret_keys[%d]", f, j)
			if k.ID == "" {
				bad(kf+".id", "required")
			}
			if len(k.Secret) < 8 {
				bad(kf+".secret", "must be at least 8 characters")
			}
			if other, dup := keys[k.ID]; dup {
				bad(kf+".id", "id also used in %s", other)
			}
			keys[k.ID] = kf
			errs = append(errs, validateGrant(kf, k.ChannelPatterns, k.Actions)...)
		}
	}
	for i, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			bad(fmt.Sprintf("signal.ice_servers[%d].urls", i), "required")
		}
		for _, u := range s.URLs {
			if !ValidICEURL(u) {
				bad(fmt.Sprintf("signal.ice_servers[%d].urls", i), "%q is not a stun:, stuns:, turn: or turns: URL", u)
			}
		}
	}
	return errors.Join(errs...)
}

func validateGrant(field string, patterns []string, actions []Action) []error {
	var errs []error
	for _, p := range patterns {
		if _, err := CompilePattern(p); err != nil {
			errs = append(errs, &ConfigError{Field: field + ".channel_patterns", Msg: err.Error()})
		}
	}
	for _, a := range actions {
		if !a.valid() {
			errs = append(errs, &ConfigError{Field: field + ".actions", Msg: fmt.Sprintf("unknown action %q", a)})
		}
	}
	return errs
}

func (a Action) valid() bool { return slices.Contains(AllActions, a) }

// ValidICEURL reports whether u is a stun:, stuns:, turn: or turns: URL (scheme case-insensitive)
// of 1–512 characters: the rule of the config and of the SDK for welcome.metadata.iceServers.
func ValidICEURL(u string) bool {
	if len(u) == 0 || len(u) > 512 {
		return false
	}
	l := strings.ToLower(u)
	for _, p := range []string{"stun:", "stuns:", "turn:", "turns:"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}
