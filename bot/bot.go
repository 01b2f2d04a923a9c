package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomtape/roomtape/internal/logattr"
	"github.com/roomtape/roomtape/signalling"
)

// ErrChannelForbidden ends Run when the server refuses the bot's subscription (the credential
// does not cover the channel, lacks an action, or the name is invalid or reserved): retrying
// cannot help.
var ErrChannelForbidden = errors.New("channel refused by the signalling server")

// Config configures one bot in one channel.
type Config struct {
	Channel string
	// Signalling is the connection to the signalling server; Channels and handlers are set by the bot.
	Signalling signalling.ClientConfig
	// Announce publishes {"type":"roomtape.recording","state":"started"|"stopped"} on the channel.
	Announce bool
	// LeftGrace keeps a peer's connection (and its recording) this long after presence "left"
	// while media may still flow (B16). Default 90s.
	LeftGrace time.Duration
	// DeadSessionTimeout closes a connection that stayed disconnected/failed this long, after the
	// browser's ICE-restart ladder has certainly given up (B11). Default 5m.
	DeadSessionTimeout time.Duration
	// MaxTracksPerPeer refuses offers with more sending m-sections than this. Default 16.
	MaxTracksPerPeer int
	Logger           *slog.Logger
}

func (c *Config) defaults() {
	if c.LeftGrace <= 0 {
		c.LeftGrace = 90 * time.Second
	}
	if c.DeadSessionTimeout <= 0 {
		c.DeadSessionTimeout = 5 * time.Minute
	}
	if c.MaxTracksPerPeer <= 0 {
		c.MaxTracksPerPeer = 16
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Bot is one receive-only participant of a channel.
type Bot struct {
	cfg       Config
	transport *Transport
	consumer  Consumer
	events    Events
	log       *slog.Logger
	client    *signalling.Client
	out       *signalling.Outbox

	ctx    context.Context // lives until Run returns; parent of every peer actor
	cancel context.CancelFunc
	wg     sync.WaitGroup // peer actors and helper goroutines

	mu         sync.Mutex
	peers      map[string]*remotePeer
	selfID     string
	iceServers []webrtc.ICEServer
	announced  bool
	stopped    bool // no new peers once the bot is stopping

	failOnce sync.Once
	failErr  error
	failed   chan struct{} // closed by fail
}

// New builds a bot. consumer receives every track; events may be zero.
func New(cfg Config, t *Transport, consumer Consumer, events Events) (*Bot, error) {
	cfg.defaults()
	if code := signalling.ValidateChannel(cfg.Channel); code != "" {
		return nil, fmt.Errorf("bot channel %q: %s", cfg.Channel, code)
	}
	if t == nil || consumer == nil {
		return nil, errors.New("bot: transport and consumer are required")
	}
	if !cfg.Signalling.Credentials.StableIdentity() {
		cfg.Logger.Warn("bot uses a publishable key: its peer id changes on every reconnect, and each reconnect forces every browser to renegotiate")
	}
	b := &Bot{
		cfg: cfg, transport: t, consumer: consumer, events: events,
		log:    cfg.Logger.With(logattr.Channel, cfg.Channel),
		peers:  map[string]*remotePeer{},
		failed: make(chan struct{}),
	}
	b.iceServers = toWebRTCServers(t.cfg.ICEServers)
	sc := cfg.Signalling
	sc.Channels = []string{cfg.Channel}
	sc.Logger = b.log
	client, err := signalling.NewClient(sc, signalling.Handler{
		Connected: b.onConnected, Presence: b.onPresence, Direct: b.onDirect, Message: b.onMessage,
		ServerError: b.onServerError,
	})
	if err != nil {
		return nil, err
	}
	b.client = client
	b.out = signalling.NewOutbox(client, b.log)
	return b, nil
}

// Run joins the channel and records until ctx ends (nil) or signalling fails for good.
// On return every connection is closed and every track has ended.
func (b *Bot) Run(ctx context.Context) error {
	b.ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	clientCtx, stopClient := context.WithCancel(context.WithoutCancel(ctx))
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.out.Run(clientCtx) }()
	errc := make(chan error, 1)
	go func() { errc <- b.client.Run(clientCtx) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		errc = nil
	case <-b.failed:
		err = b.failErr
	}
	b.shutdown(EndBotStopped)
	if b.cfg.Announce && err == nil {
		actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if perr := b.client.Publish(actx, b.cfg.Channel, announcement("stopped")); perr != nil {
			b.log.Debug("announce stop failed", logattr.Err, perr)
		}
		cancel()
	}
	stopClient()
	if errc != nil {
		if cerr := <-errc; err == nil {
			err = cerr
		}
	}
	b.cancel()
	b.wg.Wait()
	return err
}

// onServerError ends the bot when its subscription is refused for good (see ErrChannelForbidden).
func (b *Bot) onServerError(code, msg string) {
	b.log.Warn("signalling error", logattr.Code, code, "message", msg)
	switch code {
	case signalling.CodeChannelNotAuthorized, signalling.CodeActionNotPermitted,
		signalling.CodeChannelReserved, signalling.CodeInvalidChannel:
		b.failOnce.Do(func() {
			b.failErr = fmt.Errorf("join %s: %w: %s (%s)", b.cfg.Channel, ErrChannelForbidden, code, msg)
			close(b.failed)
		})
	}
}

// PeerID is the bot's own peer id ("" before the first welcome).
func (b *Bot) PeerID() string { return b.client.PeerID() }

// shutdown closes every peer's connection and waits for their actors.
func (b *Bot) shutdown(reason EndReason) {
	b.mu.Lock()
	peers := make([]*remotePeer, 0, len(b.peers))
	for _, p := range b.peers {
		peers = append(peers, p)
	}
	b.peers = map[string]*remotePeer{}
	if reason == EndBotStopped {
		b.stopped = true
	}
	b.mu.Unlock()
	for _, p := range peers {
		p.stop(reason)
	}
}

func announcement(state string) map[string]string {
	return map[string]string{"type": "roomtape.recording", "state": state}
}

func (b *Bot) onConnected(w signalling.Welcome, reconnect bool) {
	b.mu.Lock()
	prev := b.selfID
	b.selfID = w.PeerID
	if servers, ok := iceServersFromWelcome(w.Metadata); ok {
		b.iceServers = servers
	}
	first := !b.announced
	b.announced = true
	b.mu.Unlock()
	if reconnect && prev != "" && prev != w.PeerID {
		// B17: browsers will treat the new id as a new peer and renegotiate with it.
		b.log.Warn("bot peer id changed; closing every connection", "previous", prev, "current", w.PeerID)
		b.shutdown(EndIdentityChanged)
	}
	if first && b.cfg.Announce {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			defer cancel()
			if err := b.client.Publish(ctx, b.cfg.Channel, announcement("started")); err != nil {
				b.log.Warn("announce start failed", logattr.Err, err)
			}
		}()
	}
}

func (b *Bot) onPresence(ev signalling.PresenceEvent) {
	if ev.Channel != b.cfg.Channel {
		return
	}
	self := b.client.PeerID()
	if ev.Snapshot {
		present := map[string]bool{}
		for _, e := range ev.Joined {
			present[e.PeerID] = true
		}
		b.mu.Lock()
		var gone []*remotePeer
		for id, p := range b.peers {
			if !present[id] {
				gone = append(gone, p)
			}
		}
		b.mu.Unlock()
		for _, p := range gone {
			p.post(p.onLeft)
		}
		b.log.Info("roster snapshot", "members", len(ev.Joined))
	}
	for _, e := range ev.Joined {
		if e.PeerID == self {
			continue
		}
		p := b.peer(e.PeerID, true)
		meta := e.Metadata
		p.post(func() { p.onJoined(meta) })
	}
	if ev.Snapshot {
		return // the SDK ignores the left array of a snapshot
	}
	for _, e := range ev.Left {
		if p := b.peer(e.PeerID, false); p != nil {
			p.post(p.onLeft)
		}
	}
}

func (b *Bot) onDirect(from string, data, _ json.RawMessage) {
	if sig, ok := parseSignal(data); ok {
		p := b.peer(from, false)
		if p == nil {
			b.log.Debug("dropping signal from a peer not in the roster", logattr.Peer, from)
			return
		}
		p.post(func() { p.onSignal(sig) })
		return
	}
	if tm, err := parseTrackMeta(data); err == nil {
		// Lenient (B15): accept metadata even before the sender's presence arrives.
		p := b.peer(from, true)
		p.setTrackMeta(tm)
		return
	} else if !errors.Is(err, errNotTrackMeta) {
		b.log.Warn("invalid track metadata", logattr.Peer, from, logattr.Err, err)
		return
	}
	if b.events.Direct != nil {
		b.events.Direct(from, data, time.Now())
	}
}

func (b *Bot) onMessage(channel, from string, data, _ json.RawMessage) {
	if channel == b.cfg.Channel && b.events.Message != nil {
		b.events.Message(from, data, time.Now())
	}
}

// peer returns the actor for id, creating it when create is set.
func (b *Bot) peer(id string, create bool) *remotePeer {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.peers[id]; p != nil || !create {
		return p
	}
	if b.stopped || b.ctx.Err() != nil {
		return nil
	}
	p := newRemotePeer(b, id)
	b.peers[id] = p
	b.wg.Add(1)
	go func() { defer b.wg.Done(); p.run() }()
	return p
}

// forget removes p from the peer map (after it closed for good).
func (b *Bot) forget(p *remotePeer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peers[p.id] == p {
		delete(b.peers, p.id)
	}
}

func (b *Bot) currentICEServers() []webrtc.ICEServer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.iceServers
}

func toWebRTCServers(in []signalling.ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(in))
	for _, s := range in {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// iceServersFromWelcome validates welcome.metadata.iceServers like the SDK (§5.14): an array of
// at most 16 entries, every URL a stun/stuns/turn/turns URL of 1–512 characters; any violation
// ignores the whole list. ok=false when there is no valid list.
func iceServersFromWelcome(meta json.RawMessage) ([]webrtc.ICEServer, bool) {
	if len(meta) == 0 {
		return nil, false
	}
	var m struct {
		ICEServers []struct {
			URLs       json.RawMessage `json:"urls"`
			Username   any             `json:"username"`
			Credential any             `json:"credential"`
		} `json:"iceServers"`
	}
	if json.Unmarshal(meta, &m) != nil || m.ICEServers == nil || len(m.ICEServers) > 16 {
		return nil, false
	}
	out := make([]webrtc.ICEServer, 0, len(m.ICEServers))
	for _, s := range m.ICEServers {
		var urls []string
		var one string
		if json.Unmarshal(s.URLs, &one) == nil {
			urls = []string{one}
		} else if json.Unmarshal(s.URLs, &urls) != nil || len(urls) == 0 {
			return nil, false
		}
		for _, u := range urls {
			if !signalling.ValidICEURL(u) {
				return nil, false
			}
		}
		srv := webrtc.ICEServer{URLs: urls}
		if u, ok := s.Username.(string); ok && len(u) <= 1024 {
			srv.Username = u
		}
		if c, ok := s.Credential.(string); ok && len(c) <= 1024 {
			srv.Credential = c
		}
		out = append(out, srv)
	}
	return out, true
}
