package signalling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/roomtape/roomtape/internal/logattr"
)

// Client errors.
var (
	// ErrNotConnected is returned by requests made while no socket is connected.
	ErrNotConnected = errors.New("signalling: not connected")
	// ErrDisconnected is returned by requests whose socket closed before the answer.
	ErrDisconnected = errors.New("signalling: disconnected before the answer")
	// ErrAckTimeout is returned when neither ack nor error arrived in time.
	ErrAckTimeout = errors.New("signalling: ack timeout")
)

// ServerError is an error frame correlated with a request (§3.2).
type ServerError struct {
	Code    string
	Message string
}

func (e *ServerError) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// CloseError ends Client.Run after a terminal close code (§3.3) or an exhausted reconnect budget.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("signalling closed with %d (%s)", e.Code, e.Reason)
}

// IsTerminalClose reports whether the SDK treats a close code as final (no reconnect).
func IsTerminalClose(code int) bool {
	switch code {
	case CloseInvalidToken, CloseChannelForbidden, CloseSuspended, CloseAdminDisconnect:
		return true
	}
	return false
}

// BackoffConfig is the reconnect schedule (§3.5).
type BackoffConfig struct {
	Initial     time.Duration // default 500ms
	Max         time.Duration // default 30s
	Multiplier  float64       // default 2
	Jitter      float64       // ± fraction, default 0.2
	MaxAttempts int           // consecutive failed attempts before giving up; 0 = never give up
}

// ClientConfig configures a Client. Zero durations take the SDK's values.
type ClientConfig struct {
	// URL is the server origin: ws://127.0.0.1:8787 or wss://rms.metered.ca. "/v1" is appended.
	URL         string
	Credentials Credentials
	Logger      *slog.Logger
	// Channels are subscribed after every welcome (more can be added with Subscribe).
	Channels          []string
	WelcomeTimeout    time.Duration // default 10s
	AckTimeout        time.Duration // default 15s
	PingAfter         time.Duration // app-level ping after this much inbound silence; default 20s
	InactivityTimeout time.Duration // reconnect after this much inbound silence; default 60s
	Backoff           BackoffConfig
	// SendRate and SendBurst pace outbound frames below the server's 100/s, 200 burst (B19).
	SendRate  float64 // default 80
	SendBurst int     // default 150
}

func (c *ClientConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.WelcomeTimeout, 10*time.Second)
	def(&c.AckTimeout, 15*time.Second)
	def(&c.PingAfter, 20*time.Second)
	def(&c.InactivityTimeout, 60*time.Second)
	def(&c.Backoff.Initial, 500*time.Millisecond)
	def(&c.Backoff.Max, 30*time.Second)
	if c.Backoff.Multiplier < 1 {
		c.Backoff.Multiplier = 2
	}
	if c.Backoff.Jitter <= 0 || c.Backoff.Jitter >= 1 {
		c.Backoff.Jitter = 0.2
	}
	if c.SendRate <= 0 {
		c.SendRate = 80
	}
	if c.SendBurst <= 0 {
		c.SendBurst = 150
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// PresenceEvent is one presence frame. Snapshot is true for the first presence frame after each
// (re)subscribe: it is the complete roster, not a delta (B3).
type PresenceEvent struct {
	Channel  string
	Joined   []PresenceEntry
	Left     []PresenceEntry
	Snapshot bool
}

// Handler receives the client's events, in arrival order, on one dispatcher goroutine. A handler
// may call the client's request methods (they do not block the reader). Nil fields are skipped.
type Handler struct {
	// Connected is called after each welcome; reconnect is false the first time.
	Connected func(w Welcome, reconnect bool)
	Presence  func(ev PresenceEvent)
	Direct    func(from string, data, fromMetadata json.RawMessage)
	Message   func(channel, from string, data, fromMetadata json.RawMessage)
	// Disconnected is called when a connected socket ends; willRetry is false when Run is returning.
	Disconnected func(code int, reason string, willRetry bool)
	// ServerError reports error frames that match no pending request.
	ServerError func(code, message string)
}

// Client is a Metered Realtime signalling client with the SDK's connection semantics: welcome
// timeout, request/ack correlation, app-level keepalive, reconnect with backoff and jitter,
// fresh credentials per attempt, automatic re-subscribe, and snapshot-then-delta presence (B2–B4).
type Client struct {
	cfg ClientConfig
	h   Handler
	log *slog.Logger

	mu       sync.Mutex
	channels map[string]bool // desired subscriptions, remembered at call time
	sock     *clientSocket   // nil while disconnected
	peerID   string

	events *eventQueue
}

// NewClient builds a client; call Run to connect.
func NewClient(cfg ClientConfig, h Handler) (*Client, error) {
	cfg.defaults()
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("signalling url %q: want ws://host[:port] or wss://host[:port]", cfg.URL)
	}
	if cfg.Credentials == nil {
		return nil, errors.New("signalling client: credentials are required")
	}
	c := &Client{cfg: cfg, h: h, log: cfg.Logger, channels: map[string]bool{}, events: newEventQueue()}
	for _, ch := range cfg.Channels {
		if code := ValidateChannel(ch); code != "" {
			return nil, fmt.Errorf("channel %q: %s", ch, code)
		}
		c.channels[ch] = true
	}
	return c, nil
}

// PeerID is the peer id of the latest welcome ("" before the first).
func (c *Client) PeerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerID
}

// Connected reports whether a socket is connected (welcome received).
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sock != nil
}

// Run connects and keeps reconnecting until ctx ends (returning nil), a terminal close code
// arrives, or the reconnect budget is exhausted (returning *CloseError or the last error).
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.events.run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	attempt := 0
	connectedOnce := false
	floor := time.Duration(0)
	for {
		res := c.session(ctx, connectedOnce)
		if res.welcomed {
			connectedOnce = true
			attempt = 0
		}
		if ctx.Err() != nil {
			return nil
		}
		if IsTerminalClose(res.code) {
			c.log.Error("signalling closed with a terminal code; not reconnecting", logattr.Code, res.code, "reason", res.reason)
			return &CloseError{Code: res.code, Reason: res.reason}
		}
		attempt++
		if max := c.cfg.Backoff.MaxAttempts; max > 0 && attempt > max {
			c.log.Error("reconnect budget exhausted", "attempts", attempt-1, logattr.Err, res.err)
			if res.code != 0 {
				return &CloseError{Code: res.code, Reason: res.reason}
			}
			return fmt.Errorf("signalling: %d connection attempts failed: %w", attempt-1, res.err)
		}
		if res.code == CloseOverConnLimit {
			floor = 30 * time.Second // one-shot floor after 4010 (§3.5)
		}
		delay := c.backoff(attempt, floor)
		floor = 0
		c.log.Info("reconnecting", "attempt", attempt, "delay", delay.Round(time.Millisecond), logattr.Code, res.code, logattr.Err, res.err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

func (c *Client) backoff(attempt int, floor time.Duration) time.Duration {
	b := c.cfg.Backoff
	d := float64(b.Initial)
	for i := 1; i < attempt && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	d = min(d, float64(b.Max))
	d = max(d, float64(floor))
	d += d * b.Jitter * (2*rand.Float64() - 1)
	return time.Duration(d)
}

// sessionResult says how one connection attempt ended.
type sessionResult struct {
	welcomed bool
	code     int // close code received, 0 if none
	reason   string
	err      error
}

// session runs one socket from dial to close.
func (c *Client) session(ctx context.Context, reconnect bool) sessionResult {
	q, err := c.cfg.Credentials.Query(ctx)
	if err != nil {
		return sessionResult{err: fmt.Errorf("credentials: %w", err)}
	}
	u := strings.TrimSuffix(c.cfg.URL, "/") + "/v1?" + q.Encode()
	dctx, cancel := context.WithTimeout(ctx, c.cfg.WelcomeTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return sessionResult{err: fmt.Errorf("dial %s: %w", redactURL(c.cfg.URL), err)}
	}
	ws.SetReadLimit(1 << 20)
	defer ws.CloseNow()

	// The first frame must be the welcome (S3).
	typ, data, err := ws.Read(dctx)
	if err != nil {
		code := int(websocket.CloseStatus(err))
		if code < 0 {
			code = 0
		}
		return sessionResult{code: code, reason: closeReason(err), err: fmt.Errorf("waiting for welcome: %w", err)}
	}
	var f Frame
	if typ != websocket.MessageText || json.Unmarshal(data, &f) != nil || f.Type != TypeWelcome || f.PeerID == "" {
		_ = ws.Close(CloseInactivity, "welcome expected")
		return sessionResult{err: errors.New("first frame was not a welcome")}
	}
	w := Welcome{PeerID: f.PeerID, ExpiresAt: f.ExpiresAt, ServerTime: int64(f.ServerTime), MaxMessageSize: f.MaxMessageSize, Metadata: f.Metadata}
	if w.MaxMessageSize <= 0 {
		w.MaxMessageSize = 65536
	}

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	s := newClientSocket(c, ws, w)
	c.mu.Lock()
	prev := c.peerID
	c.peerID, c.sock = w.PeerID, s
	channels := make([]string, 0, len(c.channels))
	for ch := range c.channels {
		channels = append(channels, ch)
	}
	c.mu.Unlock()
	log := c.log.With(logattr.Peer, w.PeerID)
	if reconnect && prev != "" && prev != w.PeerID {
		log.Warn("peer id changed on reconnect (publishable key?)", "previous", prev)
	}
	log.Info("signalling connected", "reconnect", reconnect)
	c.events.push(func() {
		if c.h.Connected != nil {
			c.h.Connected(w, reconnect)
		}
	})

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.writeLoop(sctx) }()
	go func() {
		defer wg.Done()
		for _, ch := range channels {
			c.resubscribe(sctx, s, ch)
		}
	}()
	code, reason, rerr := s.readLoop(sctx)
	c.mu.Lock()
	if c.sock == s {
		c.sock = nil
	}
	c.mu.Unlock()
	s.fail(ErrDisconnected)
	scancel()
	wg.Wait()
	willRetry := ctx.Err() == nil && !IsTerminalClose(code)
	c.events.push(func() {
		if c.h.Disconnected != nil {
			c.h.Disconnected(code, reason, willRetry)
		}
	})
	log.Info("signalling disconnected", logattr.Code, code, "reason", reason, logattr.Err, rerr)
	return sessionResult{welcomed: true, code: code, reason: reason, err: rerr}
}

// resubscribe replays a subscription, retrying up to 3 times 2 s apart like the SDK.
func (c *Client) resubscribe(ctx context.Context, s *clientSocket, ch string) {
	for try := 0; try < 3; try++ {
		err := s.request(ctx, Request{Type: TypeSubscribe, Channel: ch}, ch)
		if err == nil {
			return
		}
		var se *ServerError
		if errors.As(err, &se) || errors.Is(err, ErrDisconnected) || ctx.Err() != nil {
			c.log.Warn("subscribe failed", logattr.Channel, ch, logattr.Err, err)
			if se != nil {
				c.events.push(func() {
					if c.h.ServerError != nil {
						c.h.ServerError(se.Code, se.Message)
					}
				})
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

func (c *Client) current() (*clientSocket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sock == nil {
		return nil, ErrNotConnected
	}
	return c.sock, nil
}

// Subscribe joins channel and waits for the ack. The channel is remembered and re-subscribed
// after every reconnect even if this call fails with ErrNotConnected.
func (c *Client) Subscribe(ctx context.Context, channel string) error {
	if code := ValidateChannel(channel); code != "" {
		return &ServerError{Code: code, Message: "rejected locally"}
	}
	c.mu.Lock()
	c.channels[channel] = true
	c.mu.Unlock()
	s, err := c.current()
	if err != nil {
		return err
	}
	return s.request(ctx, Request{Type: TypeSubscribe, Channel: channel}, channel)
}

// Unsubscribe leaves channel and forgets it.
func (c *Client) Unsubscribe(ctx context.Context, channel string) error {
	c.mu.Lock()
	delete(c.channels, channel)
	c.mu.Unlock()
	s, err := c.current()
	if err != nil {
		return err
	}
	return s.request(ctx, Request{Type: TypeUnsubscribe, Channel: channel}, "")
}

// Publish sends data to every other subscriber of channel.
func (c *Client) Publish(ctx context.Context, channel string, data any) error {
	s, raw, err := c.payload(data)
	if err != nil {
		return err
	}
	return s.request(ctx, Request{Type: TypePublish, Channel: channel, Data: raw}, "")
}

// Send delivers data to peer `to` as a direct frame.
func (c *Client) Send(ctx context.Context, to string, data any) error {
	if !ValidPeerID(to) {
		return &ServerError{Code: CodeInvalidPeerID, Message: "rejected locally"}
	}
	s, raw, err := c.payload(data)
	if err != nil {
		return err
	}
	return s.request(ctx, Request{Type: TypeSend, To: to, Data: raw}, "")
}

// payload encodes data for the current socket, within the maxMessageSize of its welcome.
func (c *Client) payload(data any) (*clientSocket, json.RawMessage, error) {
	raw, ok := data.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return nil, nil, fmt.Errorf("encode payload: %w", err)
		}
	}
	s, err := c.current()
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > s.welcome.MaxMessageSize {
		return nil, nil, fmt.Errorf("payload of %d bytes exceeds maxMessageSize %d", len(raw), s.welcome.MaxMessageSize)
	}
	return s, raw, nil
}

func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i]
	}
	return s
}

func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}
