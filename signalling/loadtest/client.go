package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/roomtape/roomtape/signalling"
)

// frameHandler handles one inbound text frame on the client's reader goroutine. It must not keep
// frame, which is reused for the next read.
type frameHandler func(frame []byte)

// client is one WebSocket connection to the server under test. Until start it is read
// synchronously (handshake, subscribe); after start its single reader goroutine passes every text
// frame to the current handler, which a phase swaps in and out.
type client struct {
	ws      *websocket.Conn
	peer    string
	tally   *tally
	handler atomic.Pointer[frameHandler]
	closing atomic.Bool
	done    chan struct{} // closed when the reader goroutine has returned
	started bool
}

var (
	prefixError    = []byte(`{"type":"error"`)
	prefixPresence = []byte(`{"type":"presence"`)
)

// tally counts what went wrong across all clients: error frames and connections the server ended.
type tally struct {
	errorFrames atomic.Int64
	lastError   atomic.Pointer[string]
	lost        atomic.Int64
	lastLoss    atomic.Pointer[string]
}

func (t *tally) problems() []string {
	var out []string
	if n := t.errorFrames.Load(); n > 0 {
		out = append(out, fmt.Sprintf("%d error frames from the server (last: %s)", n, *t.lastError.Load()))
	}
	if n := t.lost.Load(); n > 0 {
		out = append(out, fmt.Sprintf("%d connections ended by the server or the network (last: %s)", n, *t.lastLoss.Load()))
	}
	return out
}

// dialer opens clients against one server.
type dialer struct {
	origin        string
	echo          bool
	keyID, secret string
	expires       time.Time
	tally         *tally
}

// dial connects as peer and, for the signalling server, waits for the welcome.
func (d *dialer) dial(ctx context.Context, peer string) (*client, error) {
	u := d.origin + "/v1"
	if !d.echo {
		tok, err := signalling.MintToken(d.keyID, d.secret, signalling.Claims{
			Subject: peer, IssuedAt: time.Now().Unix(), ExpiresAt: d.expires.Unix(),
		})
		if err != nil {
			return nil, err
		}
		u += "?token=" + url.QueryEscape(tok)
	}
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", peer, err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{ws: ws, peer: peer, tally: d.tally, done: make(chan struct{})}
	if d.echo {
		return c, nil
	}
	f, err := c.readFrame(ctx)
	if err != nil {
		c.ws.CloseNow()
		return nil, fmt.Errorf("welcome for %s: %w", peer, err)
	}
	if f.Type != signalling.TypeWelcome || f.PeerID != peer {
		c.ws.CloseNow()
		return nil, fmt.Errorf("welcome for %s: got %s frame (peerId %q)", peer, f.Type, f.PeerID)
	}
	return c, nil
}

// readFrame reads and decodes one frame synchronously; only valid before start.
func (c *client) readFrame(ctx context.Context) (signalling.Frame, error) {
	var f signalling.Frame
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		if code := websocket.CloseStatus(err); code != -1 {
			return f, fmt.Errorf("closed by server with %d: %w", int(code), err)
		}
		return f, err
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("decode %q: %w", truncate(data), err)
	}
	return f, nil
}

// subscribe joins ch and returns the presence snapshot (the other members). Only valid before start.
func (c *client) subscribe(ctx context.Context, ch string) ([]signalling.PresenceEntry, error) {
	req, err := json.Marshal(signalling.Request{Type: signalling.TypeSubscribe, Channel: ch, RequestID: "sub"})
	if err != nil {
		return nil, err
	}
	if err := c.ws.Write(ctx, websocket.MessageText, req); err != nil {
		return nil, fmt.Errorf("subscribe %s to %s: %w", c.peer, ch, err)
	}
	acked := false
	for {
		f, err := c.readFrame(ctx)
		if err != nil {
			return nil, fmt.Errorf("subscribe %s to %s: %w", c.peer, ch, err)
		}
		switch f.Type {
		case signalling.TypeAck:
			acked = acked || f.RequestID == "sub"
		case signalling.TypeError:
			return nil, fmt.Errorf("subscribe %s to %s: error %s: %s", c.peer, ch, f.Code, f.Message)
		case signalling.TypePresence:
			if f.Channel == ch && acked {
				return f.Joined, nil
			}
		}
	}
}

// start runs the reader goroutine; close stops it.
func (c *client) start() {
	c.started = true
	go c.readLoop()
}

func (c *client) readLoop() {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if !c.closing.Load() {
				c.tally.lost.Add(1)
				msg := fmt.Sprintf("%s: %v", c.peer, err)
				c.tally.lastLoss.Store(&msg)
			}
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		frame := buf.Bytes()
		if bytes.HasPrefix(frame, prefixError) {
			c.tally.errorFrames.Add(1)
			msg := string(truncate(frame))
			c.tally.lastError.Store(&msg)
		}
		if h := c.handler.Load(); h != nil {
			(*h)(frame)
		}
	}
}

// handle installs h (nil: drop frames) for the frames read from now on.
func (c *client) handle(h frameHandler) {
	if h == nil {
		c.handler.Store(nil)
		return
	}
	c.handler.Store(&h)
}

// close drops the connection without a close handshake and waits for the reader.
func (c *client) close() {
	c.closing.Store(true)
	c.ws.CloseNow()
	if c.started {
		<-c.done
	}
}

// fleet is a set of clients that are closed together.
type fleet []*client

func (f fleet) close() {
	for _, c := range f {
		if c != nil {
			c.close()
		}
	}
}

// connect dials n clients named name(i), subscribing client i to channel(i) when channel is not nil,
// with at most limit set-ups at once. On error every client opened so far is closed.
func connect(ctx context.Context, d *dialer, n, limit int, name func(int) string, channel func(int) string) (fleet, error) {
	out := make(fleet, n)
	err := forEach(ctx, n, limit, func(ctx context.Context, i int) error {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		c, err := d.dial(dctx, name(i))
		if err != nil {
			return err
		}
		out[i] = c
		if channel != nil && !d.echo {
			if _, err := c.subscribe(dctx, channel(i)); err != nil {
				return err
			}
		}
		c.start()
		return nil
	})
	if err != nil {
		out.close()
		return nil, err
	}
	return out, nil
}

// forEach calls fn(ctx, i) for every i in [0, n) with at most limit calls at once. After the first
// error it starts no more calls, cancels ctx for the running ones, waits for them and returns it.
func forEach(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, limit)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
