package mediabench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/signalling"
)

// Receiver stacks and sinks of the child process.
const (
	StackBot  = "bot"  // roomtape's bot (package bot) with its transport
	StackPion = "pion" // a bare pion answerer: RegisterDefaultCodecs + RegisterDefaultInterceptors

	SinkDiscard = "discard" // read every packet and throw it away
	SinkDisk    = "disk"    // pion's oggwriter/ivfwriter (bare stack only)
)

// loopbackOnly is the address filter of every peer in the benchmark (publishers and receivers):
// one host candidate each, on 127.0.0.1.
var loopbackOnly = []string{"127.0.0.0/8"}

// ReceiverConfig configures the receiver child (`roomtape bench receiver`).
type ReceiverConfig struct {
	SignalURL string // ws:// origin of the signalling server (built-in demo app credentials)
	Channel   string
	PeerID    string // must start with "~" so that the benchmark's publishers connect to it
	Stack     string // StackBot or StackPion
	Sink      string // SinkDiscard or SinkDisk
	Out       string // with SinkDisk: folder for the files
	// Interval between counter lines on stdout. Default 250ms.
	Interval time.Duration
	Logger   *slog.Logger
}

func (c *ReceiverConfig) validate() error {
	var errs []error
	if c.SignalURL == "" || c.Channel == "" {
		errs = append(errs, errors.New("receiver: signal URL and channel are required"))
	}
	if len(c.PeerID) < 2 || c.PeerID[0] != '~' {
		errs = append(errs, fmt.Errorf("receiver: peer id %q must start with ~", c.PeerID))
	}
	switch {
	case c.Stack != StackBot && c.Stack != StackPion:
		errs = append(errs, fmt.Errorf("receiver: stack %q: want %s or %s", c.Stack, StackBot, StackPion))
	case c.Sink != SinkDiscard && c.Sink != SinkDisk:
		errs = append(errs, fmt.Errorf("receiver: sink %q: want %s or %s", c.Sink, SinkDiscard, SinkDisk))
	case c.Stack == StackBot && c.Sink == SinkDisk:
		errs = append(errs, errors.New("receiver: the bot writes files through `roomtape record`; use sink discard"))
	case c.Sink == SinkDisk && c.Out == "":
		errs = append(errs, errors.New("receiver: sink disk needs an output folder"))
	}
	return errors.Join(errs...)
}

// clientConfig is the signalling connection of a benchmark peer: a JWT minted with the built-in
// demo app's secret key (the in-process server runs that app).
func clientConfig(url, peerID, channel string, meta map[string]any) (signalling.ClientConfig, error) {
	key := signalling.DemoApp().SecretKeys[0]
	raw, err := json.Marshal(meta)
	if err != nil {
		return signalling.ClientConfig{}, fmt.Errorf("peer metadata: %w", err)
	}
	return signalling.ClientConfig{URL: url, Credentials: signalling.SecretKeyCredentials{
		KeyID: key.ID, Secret: key.Secret, Subject: peerID, TTL: time.Hour, PeerMetadata: raw,
		Channels:    []string{channel},
		Permissions: []signalling.Action{signalling.ActionSubscribe, signalling.ActionPresence, signalling.ActionSend, signalling.ActionPublish},
	}}, nil
}

// RunReceiver joins the channel and receives every track until ctx ends, printing Counters as a
// JSON line to stdout every Interval and a final line (Final set) once every track has ended.
func RunReceiver(ctx context.Context, cfg ReceiverConfig, stdout io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Sink == SinkDisk {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return fmt.Errorf("receiver: %w", err)
		}
	}
	cc, err := clientConfig(cfg.SignalURL, cfg.PeerID, cfg.Channel, map[string]any{"roomtape": "bench"})
	if err != nil {
		return err
	}
	t := newTally()
	enc := json.NewEncoder(stdout)
	var encMu sync.Mutex
	report := func(c Counters) {
		encMu.Lock()
		defer encMu.Unlock()
		_ = enc.Encode(c)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reporter; stops with runCtx
		defer wg.Done()
		tick := time.NewTicker(cfg.Interval)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
				report(t.snapshot())
			}
		}
	}()
	switch cfg.Stack {
	case StackBot:
		err = runBotReceiver(runCtx, cc, cfg, t)
	default:
		err = runBareReceiver(runCtx, cc, cfg, t)
	}
	cancel()
	wg.Wait()
	final := t.snapshot()
	final.Final = true
	report(final)
	return err
}

// runBotReceiver is roomtape's bot with a consumer that reads and discards every packet.
func runBotReceiver(ctx context.Context, cc signalling.ClientConfig, cfg ReceiverConfig, t *tally) error {
	tr, err := bot.NewTransport(bot.NetworkConfig{IncludeLoopback: true, IPs: loopbackOnly}, cfg.Logger)
	if err != nil {
		return err
	}
	defer tr.Close()
	consumer := bot.ConsumerFunc(func(info bot.TrackInfo, _ bot.TrackControl) bot.TrackSink {
		return &discardSink{t: t, c: t.start(info.PeerID)}
	})
	b, err := bot.New(bot.Config{Channel: cfg.Channel, Signalling: cc, Logger: cfg.Logger}, tr, consumer, bot.Events{})
	if err != nil {
		return err
	}
	return b.Run(ctx)
}

// discardSink counts a bot track's packets and drops them.
type discardSink struct {
	t *tally
	c *seqCounter
}

var _ bot.TrackSink = (*discardSink)(nil)

func (s *discardSink) WriteRTP(pkt *rtp.Packet, _ time.Time) {
	s.c.observe(pkt.SequenceNumber, pkt.MarshalSize())
}
func (s *discardSink) WriteRTCP([]rtcp.Packet, time.Time) {}
func (s *discardSink) Reconnected()                       {}
func (s *discardSink) End(bot.EndReason)                  { s.t.end(s.c) }
