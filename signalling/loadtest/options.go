package loadtest

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrInvalidOptions is wrapped by every Options validation error.
var ErrInvalidOptions = errors.New("invalid load test options")

// Options configure one Run. Zero values are replaced by Defaults.
type Options struct {
	// URL is the ws:// origin of the server, without path (clients append /v1).
	URL string
	// Echo says the server is a bare echo server (EchoHandler), the baseline: no credentials, no
	// subscribe, every frame comes back to its sender, and the presence phase is skipped.
	Echo bool
	// KeyID and Secret are a secret key the server knows; one JWT is minted per client with it.
	KeyID, Secret string
	// Probe samples the server's memory; nil skips the memory measurement.
	Probe Probe
	// ServerPID, when known (> 0), lets the CPU use of the server be told apart from other load.
	ServerPID int
	// Conns is how many clients connect and stay connected, idle, for the whole run (default 1000).
	Conns int
	// Channels spreads the idle clients over this many channels, round robin (default 100, at most Conns).
	Channels int
	// Pairs is how many sender→receiver pairs, taken from the idle clients, carry the throughput
	// and latency phases (default 50, at most Conns/2).
	Pairs int
	// Window is how many messages one pair may have in flight in the throughput phase (default 32).
	// It must stay below the server's send_queue, or the server closes slow receivers (1008).
	Window int
	// Rate is the offered load of the latency phase in messages per second over all pairs (default 5000).
	Rate int
	// Duration is the measured length of the throughput phase and of the latency phase (default 5s).
	Duration time.Duration
	// Warmup runs before each timed phase and is not measured (default 1s).
	Warmup time.Duration
	// Settle is the wait between connecting the idle clients and sampling memory (default 2s).
	Settle time.Duration
	// Payload is the number of padding bytes in each message's data (default 128).
	Payload int
	// FanoutMembers is the size of the presence fan-out channel (default 100; negative skips the phase).
	FanoutMembers int
	// FanoutTrials is how many newcomers join the fan-out channel one after another (default 20).
	FanoutTrials int
	// DialConcurrency bounds simultaneous connection set-ups (default 64).
	DialConcurrency int
	// Log receives progress records; nil discards them.
	Log *slog.Logger
}

// Defaults fills zero fields.
func (o *Options) Defaults() {
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set(&o.Conns, 1000)
	set(&o.Channels, 100)
	set(&o.Pairs, 50)
	set(&o.Window, 32)
	set(&o.Rate, 5000)
	set(&o.Payload, 128)
	set(&o.FanoutMembers, 100)
	set(&o.FanoutTrials, 20)
	set(&o.DialConcurrency, 64)
	if o.Channels > o.Conns {
		o.Channels = o.Conns
	}
	if o.Pairs > o.Conns/2 {
		o.Pairs = o.Conns / 2
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Settle == 0 {
		o.Settle = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the options after Defaults.
func (o *Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalidOptions))
	}
	if o.URL == "" {
		bad("url", "required")
	}
	if !o.Echo && (o.KeyID == "" || o.Secret == "") {
		bad("key", "a secret key id and secret are required to mint tokens")
	}
	if o.Conns < 2 {
		bad("conns", "must be at least 2, got %d", o.Conns)
	}
	if o.Channels < 1 || o.Channels > o.Conns {
		bad("channels", "must be between 1 and conns (%d), got %d", o.Conns, o.Channels)
	}
	if o.Pairs < 1 {
		bad("pairs", "must be positive, got %d", o.Pairs)
	}
	if o.Window < 1 {
		bad("window", "must be positive, got %d", o.Window)
	}
	if o.Rate < 1 {
		bad("rate", "must be positive, got %d", o.Rate)
	}
	if o.Duration <= 0 || o.Warmup < 0 || o.Settle < 0 {
		bad("duration", "duration must be positive, warmup and settle not negative")
	}
	if o.Payload < 0 || o.Payload > 60000 {
		bad("payload", "must be between 0 and 60000 bytes, got %d", o.Payload)
	}
	if o.FanoutMembers > 0 && o.FanoutTrials < 1 {
		bad("fanout_trials", "must be positive, got %d", o.FanoutTrials)
	}
	if o.DialConcurrency < 1 {
		bad("dial_concurrency", "must be positive, got %d", o.DialConcurrency)
	}
	return errors.Join(errs...)
}
