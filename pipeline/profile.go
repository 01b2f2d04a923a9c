package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/roomtape/roomtape/signalling"
)

// Profile is a named signalling service and the bot's credentials for it. Jobs name a profile;
// they never carry secrets. Exactly one credential kind must be set.
type Profile struct {
	// URL is the origin: ws://127.0.0.1:8787 for `roomtape signal`, wss://rms.metered.ca for Metered.
	URL string `mapstructure:"url" json:"url"`
	// SecretKeyID and SecretKey mint a fresh short-lived JWT on every connect (recommended).
	SecretKeyID string `mapstructure:"secret_key_id" json:"secret_key_id"`
	SecretKey   string `mapstructure:"secret_key" json:"-"`
	// TokenTTL is the lifetime of minted tokens (default 12h; each expiry makes browsers renegotiate).
	TokenTTL time.Duration `mapstructure:"token_ttl" json:"token_ttl"`
	// TokenURL is fetched on every connect for {"token": "..."} (your backend mints it).
	TokenURL string `mapstructure:"token_url" json:"token_url"`
	// TokenURLAuthorization is sent as the Authorization header to TokenURL.
	TokenURLAuthorization string `mapstructure:"token_url_authorization" json:"-"`
	// Token is a static JWT (it cannot be refreshed: reconnects after it expires fail).
	Token string `mapstructure:"token" json:"-"`
	// PublishableKey works but changes the bot's identity on every reconnect (not recommended).
	PublishableKey string `mapstructure:"publishable_key" json:"-"`
}

// DemoProfile targets a local `roomtape signal` running its built-in demo app.
func DemoProfile(url string) Profile {
	return Profile{URL: url, SecretKeyID: "sk_id_demo", SecretKey: "sk_secret_demo"}
}

// Validate checks the URL and that exactly one credential is configured.
func (p Profile) Validate() error {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("url %q: want ws://host:port or wss://host", p.URL)
	}
	n := 0
	for _, set := range []bool{p.SecretKeyID != "" || p.SecretKey != "", p.TokenURL != "", p.Token != "", p.PublishableKey != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return errors.New("no credentials: set secret_key_id + secret_key, token_url, token or publishable_key")
	case n > 1:
		return errors.New("more than one credential kind is set")
	case (p.SecretKeyID == "") != (p.SecretKey == ""):
		return errors.New("secret_key_id and secret_key go together")
	}
	return nil
}

// ClientConfig builds the signalling connection for a bot with identity peerID and peer
// metadata (e.g. {"roomtape":"recorder"}, which apps can use to hide the bot).
func (p Profile) ClientConfig(peerID string, peerMetadata map[string]any, channel string) (signalling.ClientConfig, error) {
	if err := p.Validate(); err != nil {
		return signalling.ClientConfig{}, err
	}
	cc := signalling.ClientConfig{URL: p.URL}
	switch {
	case p.SecretKeyID != "":
		meta, err := json.Marshal(peerMetadata)
		if err != nil {
			return cc, fmt.Errorf("peer metadata: %w", err)
		}
		ttl := p.TokenTTL
		if ttl <= 0 {
			ttl = 12 * time.Hour
		}
		cc.Credentials = signalling.SecretKeyCredentials{
			KeyID: p.SecretKeyID, Secret: p.SecretKey, Subject: peerID, TTL: ttl, PeerMetadata: meta,
			Channels:    []string{escapePattern(channel)},
			Permissions: []signalling.Action{signalling.ActionSubscribe, signalling.ActionPresence, signalling.ActionSend, signalling.ActionPublish},
		}
	case p.TokenURL != "":
		t := signalling.TokenURLCredentials{URL: p.TokenURL}
		if p.TokenURLAuthorization != "" {
			t.Header = map[string]string{"Authorization": p.TokenURLAuthorization}
		}
		cc.Credentials = t
	case p.Token != "":
		cc.Credentials = signalling.StaticToken(p.Token)
	default:
		cc.Credentials = signalling.PublishableKeyCredentials(p.PublishableKey)
	}
	return cc, nil
}

// escapePattern turns a channel name into a glob that matches only itself.
func escapePattern(ch string) string {
	out := make([]byte, 0, len(ch))
	for i := 0; i < len(ch); i++ {
		if ch[i] == '*' || ch[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, ch[i])
	}
	return string(out)
}
