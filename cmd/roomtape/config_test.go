package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/roomtape/roomtape/signalling"
)

const baseYAML = `
log:
  level: debug
  format: json
signal:
  listen: 127.0.0.1:9999
  public_url: wss://rt.example
  max_message_size: 32768
  ping_interval: 5s
  reap_after: 12s
  expiry_lead: 500ms
  rate_limit:
    enabled: true
    per_second: 50
    burst: 80
  ice_servers:
    - urls: ["stun:stun.example.net:3478"]
    - urls: ["turn:turn.example.net:3478"]
      username: u
      credential: p
  apps:
    - id: acme
      max_connections: 10
      publishable_keys:
        - key: pk_live_acme
          channel_patterns: ["acme/*"]
          allowed_origins: ["https://acme.example"]
      secret_keys:
        - id: sk_id_acme
          secret: sk_secret_acme
          actions: [subscribe, presence]
`

func TestParseConfigYAML(t *testing.T) {
	lc, err := ParseConfig(strings.NewReader(baseYAML), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := lc.Signal
	if lc.Log.Level != "debug" || lc.Log.Format != "json" || lc.AddedDemo {
		t.Fatalf("log = %+v, addedDemo = %v", lc.Log, lc.AddedDemo)
	}
	if s.Listen != "127.0.0.1:9999" || s.PublicURL != "wss://rt.example" || s.MaxMessageSize != 32768 ||
		s.PingInterval != 5*time.Second || s.ReapAfter != 12*time.Second || s.ExpiryLead != 500*time.Millisecond {
		t.Fatalf("signal = %+v", s)
	}
	if s.RateLimit != (signalling.RateLimitConfig{Enabled: true, PerSecond: 50, Burst: 80}) {
		t.Fatalf("rate limit = %+v", s.RateLimit)
	}
	if len(s.ICEServers) != 2 || s.ICEServers[1].Username != "u" || s.ICEServers[1].Credential != "p" || s.ICEServers[0].URLs[0] != "stun:stun.example.net:3478" {
		t.Fatalf("ice servers = %+v", s.ICEServers)
	}
	if len(s.Apps) != 1 {
		t.Fatalf("apps = %+v", s.Apps)
	}
	app := s.Apps[0]
	pk, sk := app.PublishableKeys[0], app.SecretKeys[0]
	if app.ID != "acme" || app.MaxConnections != 10 || pk.Key != "pk_live_acme" || pk.ChannelPatterns[0] != "acme/*" ||
		pk.AllowedOrigins[0] != "https://acme.example" || sk.Secret != "sk_secret_acme" {
		t.Fatalf("app = %+v", app)
	}
	// Defaults fill what the file leaves out.
	if strings.Join(actionStrings(pk.Actions), ",") != "subscribe,publish,presence" {
		t.Fatalf("publishable default actions = %v", pk.Actions)
	}
	if strings.Join(actionStrings(sk.Actions), ",") != "subscribe,presence" || sk.ChannelPatterns[0] != "**" {
		t.Fatalf("secret key = %+v", sk)
	}
	if s.MaxChannelsPerConn != 100 || s.SendQueue != 1024 || s.WriteTimeout != 10*time.Second || s.ShutdownGrace != 5*time.Second {
		t.Fatalf("defaults not applied: %+v", s)
	}
}

func actionStrings(as []signalling.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
}

func TestParseConfigDefaultsAndDemoApp(t *testing.T) {
	for name, r := range map[string]*strings.Reader{"nil reader": nil, "empty file": strings.NewReader(""), "no apps": strings.NewReader("signal:\n  listen: 127.0.0.1:0\n")} {
		t.Run(name, func(t *testing.T) {
			var lc loadedConfig
			var err error
			if r == nil {
				lc, err = ParseConfig(nil, nil, nil)
			} else {
				lc, err = ParseConfig(r, nil, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !lc.AddedDemo || len(lc.Signal.Apps) != 1 || lc.Signal.Apps[0].ID != "demo" {
				t.Fatalf("addedDemo = %v, apps = %+v", lc.AddedDemo, lc.Signal.Apps)
			}
			if lc.Log.Level != "info" || lc.Log.Format != "auto" || lc.Signal.MaxMessageSize != 65536 ||
				lc.Signal.PingInterval != 30*time.Second || lc.Signal.ReapAfter != 40*time.Second || lc.Signal.ExpiryLead != 250*time.Millisecond {
				t.Fatalf("defaults = %+v %+v", lc.Log, lc.Signal)
			}
		})
	}
}

func TestParseConfigEnvironmentOverrides(t *testing.T) {
	env := []string{
		"ROOMTAPE_SIGNAL_LISTEN=127.0.0.1:0",
		"ROOMTAPE_SIGNAL_PING_INTERVAL=2s",
		"ROOMTAPE_SIGNAL_RATE_LIMIT_ENABLED=false",
		"ROOMTAPE_SIGNAL_RATE_LIMIT_BURST=300",
		"ROOMTAPE_LOG_LEVEL=warn",
		"ROOMTAPE_UNRELATED=1",        // unknown ROOMTAPE_ variables are ignored
		"SIGNAL_LISTEN=10.0.0.1:1",    // no prefix: ignored
		"ROOMTAPE_SIGNAL_LISTENX=bad", // not a key: ignored
		"PATH=/usr/bin",
	}
	lc, err := ParseConfig(strings.NewReader(baseYAML), nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if lc.Signal.Listen != "127.0.0.1:0" || lc.Signal.PingInterval != 2*time.Second || lc.Log.Level != "warn" {
		t.Fatalf("env overrides not applied: listen %q ping %s level %q", lc.Signal.Listen, lc.Signal.PingInterval, lc.Log.Level)
	}
	if lc.Signal.RateLimit.Enabled || lc.Signal.RateLimit.Burst != 300 || lc.Signal.RateLimit.PerSecond != 50 {
		t.Fatalf("rate limit = %+v", lc.Signal.RateLimit)
	}
	// Without a file, the environment alone works.
	lc, err = ParseConfig(nil, nil, []string{"ROOMTAPE_SIGNAL_LISTEN=0.0.0.0:1234"})
	if err != nil || lc.Signal.Listen != "0.0.0.0:1234" {
		t.Fatalf("env without file: %v %q", err, lc.Signal.Listen)
	}
}

func TestParseConfigFlagsOverrideEnvironment(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("listen", "", "")
	fs.String("unchanged", "", "")
	if err := fs.Set("listen", "127.0.0.1:4242"); err != nil {
		t.Fatal(err)
	}
	flags := map[string]*pflag.Flag{"signal.listen": fs.Lookup("listen"), "signal.public_url": fs.Lookup("unchanged")}
	lc, err := ParseConfig(strings.NewReader(baseYAML), flags, []string{"ROOMTAPE_SIGNAL_LISTEN=127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if lc.Signal.Listen != "127.0.0.1:4242" {
		t.Fatalf("listen = %q, want the flag's value", lc.Signal.Listen)
	}
	if lc.Signal.PublicURL != "wss://rt.example" {
		t.Fatalf("an unchanged flag overrode public_url: %q", lc.Signal.PublicURL)
	}
}

func TestParseConfigRejectsUnknownKeys(t *testing.T) {
	for name, y := range map[string]string{
		"top level":     "sginal:\n  listen: x\n",
		"signal key":    "signal:\n  lisen: 127.0.0.1:0\n",
		"nested":        "signal:\n  rate_limit:\n    enabled: true\n    brust: 5\n",
		"app key":       "signal:\n  apps:\n    - id: a\n      secretkeys: []\n",
		"log key":       "log:\n  colour: true\n",
		"wrong type":    "signal:\n  max_message_size: big\n",
		"bad duration":  "signal:\n  ping_interval: soon\n",
		"invalid YAML":  "signal: [\n",
		"bad env value": "",
	} {
		t.Run(name, func(t *testing.T) {
			var env []string
			if name == "bad env value" {
				env = []string{"ROOMTAPE_SIGNAL_REAP_AFTER=forever"}
			}
			if _, err := ParseConfig(strings.NewReader(y), nil, env); err == nil {
				t.Fatalf("ParseConfig accepted %q", y)
			}
		})
	}
}

func TestParseConfigValidationErrors(t *testing.T) {
	app := func(body string) string {
		return "signal:\n  apps:\n    - id: a\n" + body
	}
	tests := []struct {
		name, yaml, field string
	}{
		{"message size too small", "signal:\n  max_message_size: 10\n", "signal.max_message_size"},
		{"message size too big", "signal:\n  max_message_size: 2000000\n", "signal.max_message_size"},
		{"channels per conn", "signal:\n  max_channels_per_conn: -1\n", "signal.max_channels_per_conn"},
		{"rate", "signal:\n  rate_limit:\n    per_second: -1\n", "signal.rate_limit"},
		{"reap shorter than ping", "signal:\n  ping_interval: 10s\n  reap_after: 5s\n", "signal.reap_after"},
		{"send queue", "signal:\n  send_queue: 4\n", "signal.send_queue"},
		{"ice url", "signal:\n  ice_servers:\n    - urls: [\"http://x\"]\n", "signal.ice_servers[0].urls"},
		{"ice without urls", "signal:\n  ice_servers:\n    - username: u\n", "signal.ice_servers[0].urls"},
		{"app id", "signal:\n  apps:\n    - max_connections: 1\n", "signal.apps[0].id"},
		{"duplicate app", "signal:\n  apps:\n    - id: a\n    - id: a\n", "signal.apps[1].id"},
		{"empty publishable key", app("      publishable_keys:\n        - key: \"\"\n"), "signal.apps[0].publishable_keys[0].key"},
		{"short secret", app("      secret_keys:\n        - id: sk\n          secret: short\n"), "signal.apps[0].secret_keys[0].secret"},
		{"missing secret id", app("      secret_keys:\n        - secret: long-enough-secret\n"), "signal.apps[0].secret_keys[0].id"},
		{"bad pattern", app("      publishable_keys:\n        - key: pk\n          channel_patterns: [\"a\\\\\"]\n"), "signal.apps[0].publishable_keys[0].channel_patterns"},
		{"bad action", app("      secret_keys:\n        - id: sk\n          secret: long-enough-secret\n          actions: [admin]\n"), "signal.apps[0].secret_keys[0].actions"},
		{"key reused", "signal:\n  apps:\n    - id: a\n      publishable_keys: [{key: k}]\n    - id: b\n      publishable_keys: [{key: k}]\n", "signal.apps[1].publishable_keys[0].key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tc.yaml), nil, nil)
			if err == nil {
				t.Fatal("ParseConfig succeeded")
			}
			if !errors.Is(err, signalling.ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			var ce *signalling.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a ConfigError", err)
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestParseConfigReportsEveryInvalidField(t *testing.T) {
	_, err := ParseConfig(strings.NewReader("signal:\n  max_message_size: 1\n  send_queue: 1\n"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "signal.max_message_size") || !strings.Contains(err.Error(), "signal.send_queue") {
		t.Fatalf("error %v, want both fields named", err)
	}
}
