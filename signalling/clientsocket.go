package signalling

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/roomtape/roomtape/internal/logattr"
)

// clientSocket is one connected socket of a Client: a reader (the caller of readLoop), a paced
// writer goroutine, and the table of requests waiting for their ack.
type clientSocket struct {
	c       *Client
	ws      *websocket.Conn
	welcome Welcome

	out     chan []byte
	limiter *rate.Limiter

	mu      sync.Mutex
	pending map[string]*pendingRequest
	failed  error
	// snapshotDue marks channels whose next presence frame is a full roster (set on subscribe ack).
	snapshotDue map[string]bool
}

type pendingRequest struct {
	done    chan error // buffered 1
	channel string     // for subscribe: arms snapshotDue when the ack arrives
}

func newClientSocket(c *Client, ws *websocket.Conn, w Welcome) *clientSocket {
	return &clientSocket{
		c: c, ws: ws, welcome: w,
		out:         make(chan []byte, 256),
		limiter:     rate.NewLimiter(rate.Limit(c.cfg.SendRate), c.cfg.SendBurst),
		pending:     map[string]*pendingRequest{},
		snapshotDue: map[string]bool{},
	}
}

// request sends req with a fresh requestId and waits for its ack or error.
func (s *clientSocket) request(ctx context.Context, req Request, subscribeChannel string) error {
	req.RequestID = uuid.NewString()
	frame, err := json.Marshal(req)
	if err != nil {
		return err
	}
	p := &pendingRequest{done: make(chan error, 1), channel: subscribeChannel}
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return s.failed
	}
	s.pending[req.RequestID] = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, req.RequestID)
		s.mu.Unlock()
	}()
	timer := time.NewTimer(s.c.cfg.AckTimeout)
	defer timer.Stop()
	select {
	case s.out <- frame:
	case <-ctx.Done():
		return ctx.Err()
	case err := <-p.done:
		return err
	case <-timer.C:
		return ErrAckTimeout
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return ErrAckTimeout
	}
}

// fail resolves every pending request with err and refuses new ones.
func (s *clientSocket) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = err
	}
	for _, p := range s.pending {
		select {
		case p.done <- err:
		default:
		}
	}
}

func (s *clientSocket) resolve(requestID string, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[requestID]
	if p == nil {
		return false
	}
	if err == nil && p.channel != "" {
		s.snapshotDue[p.channel] = true
	}
	select {
	case p.done <- err:
	default:
	}
	return true
}

var framePing = []byte(`{"type":"ping"}`)

// writeLoop is the only writer of the socket. Requests are paced (B19); pings are not.
func (s *clientSocket) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-s.out:
			if string(f) != string(framePing) {
				if err := s.limiter.Wait(ctx); err != nil {
					return
				}
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := s.ws.Write(wctx, websocket.MessageText, f)
			cancel()
			if err != nil {
				s.c.log.Debug("signalling write failed", logattr.Err, err)
				_ = s.ws.CloseNow()
				return
			}
		}
	}
}

// readLoop reads frames until the socket ends, keeping the SDK's liveness rules: ping after
// PingAfter of inbound silence, close (4000) after InactivityTimeout.
func (s *clientSocket) readLoop(ctx context.Context) (code int, reason string, err error) {
	type result struct {
		typ  websocket.MessageType
		data []byte
		err  error
	}
	frames := make(chan result)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			typ, data, err := s.ws.Read(rctx)
			select {
			case frames <- result{typ, data, err}:
			case <-rctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()

	cfg := s.c.cfg
	lastIn := time.Now()
	tick := time.NewTicker(min(cfg.PingAfter, cfg.InactivityTimeout) / 4)
	defer tick.Stop()
	lastPing := time.Time{}
	for {
		select {
		case <-ctx.Done():
			_ = s.ws.Close(websocket.StatusNormalClosure, "client requested close")
			return 0, "", ctx.Err()
		case <-tick.C:
			silent := time.Since(lastIn)
			if silent >= cfg.InactivityTimeout {
				_ = s.ws.Close(CloseInactivity, "inactivity timeout")
				return CloseInactivity, "inactivity timeout", errors.New("no frame from the server within the inactivity timeout")
			}
			if silent >= cfg.PingAfter && time.Since(lastPing) >= cfg.PingAfter {
				lastPing = time.Now()
				select {
				case s.out <- framePing:
				default:
				}
			}
		case r := <-frames:
			if r.err != nil {
				c := int(websocket.CloseStatus(r.err))
				if c < 0 {
					c = 0
				}
				return c, closeReason(r.err), r.err
			}
			if r.typ != websocket.MessageText {
				continue // binary frames are ignored and do not count as activity
			}
			lastIn = time.Now()
			s.dispatch(r.data)
		}
	}
}

// dispatch routes one inbound frame; it runs on the reader, so ordering is arrival order (B4).
func (s *clientSocket) dispatch(data []byte) {
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		s.c.log.Debug("dropping malformed frame from server", logattr.Err, err)
		return
	}
	c := s.c
	switch f.Type {
	case TypeAck:
		s.resolve(f.RequestID, nil)
	case TypeError:
		if f.RequestID != "" && s.resolve(f.RequestID, &ServerError{Code: f.Code, Message: f.Message}) {
			return
		}
		if f.Code == CodeUnknownType {
			return // an older server that does not know ping
		}
		c.log.Warn("server error", logattr.Code, f.Code, "message", f.Message)
		c.events.push(func() {
			if c.h.ServerError != nil {
				c.h.ServerError(f.Code, f.Message)
			}
		})
	case TypePresence:
		s.mu.Lock()
		snap := s.snapshotDue[f.Channel]
		delete(s.snapshotDue, f.Channel)
		s.mu.Unlock()
		ev := PresenceEvent{Channel: f.Channel, Joined: f.Joined, Left: f.Left, Snapshot: snap}
		c.events.push(func() {
			if c.h.Presence != nil {
				c.h.Presence(ev)
			}
		})
	case TypeDirect:
		c.events.push(func() {
			if c.h.Direct != nil {
				c.h.Direct(f.From, f.Data, f.FromMetadata)
			}
		})
	case TypeMessage:
		c.events.push(func() {
			if c.h.Message != nil {
				c.h.Message(f.Channel, f.From, f.Data, f.FromMetadata)
			}
		})
	case TypeGoingAway:
		c.log.Info("server is going away", "retry_after_ms", f.RetryAfterMs)
	case TypePong, TypeWelcome:
	default:
		c.log.Debug("ignoring unknown frame type", "type", f.Type)
	}
}

// eventQueue runs callbacks in order on one goroutine, never blocking the pusher.
type eventQueue struct {
	mu    sync.Mutex
	items []func()
	wake  chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

func (q *eventQueue) push(fn func()) {
	q.mu.Lock()
	q.items = append(q.items, fn)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run executes callbacks until ctx ends, then drains what is already queued.
func (q *eventQueue) run(ctx context.Context) {
	for {
		if q.runQueued() {
			continue
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			q.runQueued()
			return
		}
	}
}

// runQueued runs the callbacks queued so far; it reports whether there were any.
func (q *eventQueue) runQueued() bool {
	q.mu.Lock()
	items := q.items
	q.items = nil
	q.mu.Unlock()
	for _, fn := range items {
		fn()
	}
	return len(items) > 0
}
