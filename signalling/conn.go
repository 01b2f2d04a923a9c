package signalling

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/roomtape/roomtape/internal/logattr"
)

// Conn is one accepted WebSocket client. It owns a reader goroutine (which processes inbound
// frames strictly in order, S13) and a writer goroutine (the only one that writes to the socket).
// Other goroutines talk to it only through enqueue and closeWith.
type Conn struct {
	srv *Server
	ws  *websocket.Conn
	id  *Identity
	log *slog.Logger

	// subs is guarded by the broker's per-app lock.
	subs        map[string]struct{}
	maxChannels int

	qmu     sync.Mutex
	queue   [][]byte
	qtypes  []string
	wake    chan struct{} // cap 1: something was queued or a close was requested
	closing bool
	code    int
	reason  string

	batch   *batchConn   // nil in tests that build a Conn by hand
	lastIn  atomic.Int64 // unix nanos of the last inbound frame or pong
	limiter *rate.Limiter
}

func newConn(s *Server, ws *websocket.Conn, id *Identity, connID uint64) *Conn {
	c := &Conn{
		srv: s, ws: ws, id: id,
		subs:        map[string]struct{}{},
		maxChannels: s.cfg.MaxChannelsPerConn,
		wake:        make(chan struct{}, 1),
		log:         s.log.With(logattr.App, id.App.ID, logattr.Peer, id.PeerID, logattr.Conn, connID),
	}
	if s.cfg.RateLimit.Enabled {
		c.limiter = rate.NewLimiter(rate.Limit(s.cfg.RateLimit.PerSecond), s.cfg.RateLimit.Burst)
	}
	c.lastIn.Store(time.Now().UnixNano())
	return c
}

// PeerID is the connection's peer id.
func (c *Conn) PeerID() string { return c.id.PeerID }

// enqueue queues a frame for the writer. It never blocks; a connection whose queue is full is
// closed (1008) rather than losing frames silently (§6.2).
func (c *Conn) enqueue(frame []byte, typ string) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	if len(c.queue) >= c.srv.cfg.SendQueue {
		c.closing, c.code, c.reason = true, ClosePolicyViolation, "send queue overflow"
		c.qmu.Unlock()
		c.log.Warn("send queue overflow; closing connection")
		c.signal()
		return
	}
	c.queue = append(c.queue, frame)
	c.qtypes = append(c.qtypes, typ)
	c.qmu.Unlock()
	c.signal()
}

// closeWith asks the writer to flush what is queued, then close with code. The first request wins.
func (c *Conn) closeWith(code int, reason string) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	c.closing, c.code, c.reason = true, code, reason
	c.qmu.Unlock()
	c.signal()
}

// goAway sends the going_away frame, then closes with 1001 (S17).
func (c *Conn) goAway(frame []byte) {
	c.enqueue(frame, TypeGoingAway)
	c.closeWith(CloseGoingAway, "server shutting down")
}

func (c *Conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conn) take() (frames [][]byte, types []string, closing bool, code int, reason string) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	frames, types = c.queue, c.qtypes
	c.queue, c.qtypes = nil, nil
	return frames, types, c.closing, c.code, c.reason
}

// run serves the connection until it ends; it returns after both goroutines have stopped.
func (c *Conn) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		c.writeLoop(ctx)
	}()
	var expiry *time.Timer
	if !c.id.ExpiresAt.IsZero() {
		d := time.Until(c.id.ExpiresAt.Add(-c.srv.cfg.ExpiryLead))
		expiry = time.AfterFunc(d, func() { c.closeWith(CloseTokenExpired, "token expired") })
	}
	c.readLoop(ctx)
	if expiry != nil {
		expiry.Stop()
	}
	c.srv.broker.Unregister(c)
	cancel()
	wg.Wait()
	// The reader can stop with the socket still open: on a frame over the read limit coder/websocket
	// only sends close 1009 and returns, so without this the TCP connection leaked and the client
	// saw its close only when its own close timeout fired (S18). Finish the close handshake (drain,
	// wait for the client's close, at most ~5 s) and release the connection; a no-op when the socket
	// is already closed.
	_ = c.ws.Close(websocket.StatusInternalError, "")
}

func (c *Conn) readLoop(ctx context.Context) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			c.noteClosed(err)
			return
		}
		c.lastIn.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			c.srv.metrics.in("binary")
			c.replyError(CodeMalformedMessage, "binary frames are not supported", "")
			continue
		}
		c.handle(data)
	}
}

// noteClosed records why the reader stopped.
func (c *Conn) noteClosed(err error) {
	code := websocket.CloseStatus(err)
	c.qmu.Lock()
	sent := c.code
	c.qmu.Unlock()
	switch {
	case sent != 0:
		// We closed it; counted by the writer.
	case code != -1:
		c.srv.metrics.closes.WithLabelValues(closeLabel(int(code))).Inc()
		c.log.Debug("client closed", logattr.Code, int(code))
	case errors.Is(err, context.Canceled):
	default:
		c.srv.metrics.closes.WithLabelValues("abnormal").Inc()
		c.log.Debug("connection lost", logattr.Err, err)
	}
}

func (c *Conn) writeLoop(ctx context.Context) {
	ping := time.NewTicker(c.srv.cfg.PingInterval)
	defer ping.Stop()
	var pingWG sync.WaitGroup
	defer pingWG.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			frames, types, closing, code, reason := c.take()
			if !c.writeBatch(ctx, frames, types) {
				return
			}
			if closing {
				c.srv.metrics.closes.WithLabelValues(closeLabel(code)).Inc()
				c.log.Info("closing connection", logattr.Code, code, "reason", reason)
				_ = c.ws.Close(websocket.StatusCode(code), reason)
				return
			}
		case <-ping.C:
			silent := time.Since(time.Unix(0, c.lastIn.Load()))
			if silent > c.srv.cfg.ReapAfter {
				c.log.Info("reaping silent connection", "silent", silent.Round(time.Millisecond))
				c.srv.metrics.closes.WithLabelValues("reaped").Inc()
				_ = c.ws.CloseNow()
				return
			}
			pingWG.Add(1)
			go func() {
				defer pingWG.Done()
				pctx, cancel := context.WithTimeout(ctx, c.srv.cfg.ReapAfter)
				defer cancel()
				if c.ws.Ping(pctx) == nil {
					c.lastIn.Store(time.Now().UnixNano())
				}
			}()
		}
	}
}

// writeBatch writes the frames of one wake-up with one deadline and, through batchConn, one
// write(2).
func (c *Conn) writeBatch(ctx context.Context, frames [][]byte, types []string) bool {
	if len(frames) == 0 {
		return true
	}
	wctx, cancel := context.WithTimeout(ctx, c.srv.cfg.WriteTimeout)
	defer cancel()
	if c.batch != nil {
		c.batch.begin()
	}
	for i, f := range frames {
		if err := c.ws.Write(wctx, websocket.MessageText, f); err != nil {
			if c.batch != nil {
				_ = c.batch.end(c.srv.cfg.WriteTimeout)
			}
			c.log.Debug("write failed", logattr.Err, err)
			return false
		}
		c.srv.metrics.out(types[i])
	}
	if c.batch != nil {
		if err := c.batch.end(c.srv.cfg.WriteTimeout); err != nil {
			c.log.Debug("write failed", logattr.Err, err)
			_ = c.ws.CloseNow()
			return false
		}
	}
	return true
}

func (c *Conn) replyError(code, msg, requestID string) {
	c.srv.metrics.errors.WithLabelValues(code).Inc()
	c.log.Debug("request error", logattr.Code, code, logattr.RequestID, requestID, "msg", msg)
	c.enqueue(encodeError(code, msg, requestID), TypeError)
}

// handle processes one inbound text frame (§2.2, S5, S11, S12, S14).
func (c *Conn) handle(frame []byte) {
	req, err := DecodeRequest(frame)
	if err != nil {
		var de *DecodeError
		errors.As(err, &de)
		c.srv.metrics.in("malformed")
		c.replyError(de.Code, de.Msg, de.RequestID)
		return
	}
	if req.Type == TypePing {
		c.srv.metrics.in(TypePing)
		c.enqueue(framePong, TypePong)
		return
	}
	if c.limiter != nil && !c.limiter.Allow() {
		c.closeWith(CloseOverRate, "message rate exceeded")
		return
	}
	switch req.Type {
	case TypeSubscribe, TypeUnsubscribe, TypePublish, TypeSend:
		c.srv.metrics.in(req.Type)
	default:
		c.srv.metrics.in("unknown")
		c.replyError(CodeUnknownType, "unknown message type", req.RequestID)
		return
	}
	switch req.Type {
	case TypeSubscribe:
		if code, msg := c.checkChannel(req.Channel, ActionSubscribe); code != "" {
			c.replyError(code, msg, req.RequestID)
			return
		}
		if code := c.srv.broker.Subscribe(c, req.Channel, req.IncludeSenderMetadata, req.RequestID); code != "" {
			c.replyError(code, "connection already holds the maximum number of subscriptions", req.RequestID)
		}
	case TypeUnsubscribe:
		// A reserved channel is never joined, so leaving it is simply acked (S5); channel_reserved
		// applies to subscribe and publish only (§3.2).
		if ValidateChannel(req.Channel) == CodeInvalidChannel {
			c.replyError(CodeInvalidChannel, "invalid channel name", req.RequestID)
			return
		}
		c.srv.broker.Unsubscribe(c, req.Channel, req.RequestID)
	case TypePublish:
		if code, msg := c.checkChannel(req.Channel, ActionPublish); code != "" {
			c.replyError(code, msg, req.RequestID)
			return
		}
		if req.Data == nil {
			c.replyError(CodeMissingData, "publish requires a data field", req.RequestID)
			return
		}
		c.srv.broker.Publish(c.id.App.ID, req.Channel, c.id.PeerID, c.id.PeerMetadata, req.Data, c)
		if req.RequestID != "" {
			c.enqueue(encodeAck(req.RequestID), TypeAck)
		}
	case TypeSend:
		if !ValidPeerID(req.To) {
			c.replyError(CodeInvalidPeerID, "to must be 1-128 printable ASCII characters", req.RequestID)
			return
		}
		if !c.id.Can(ActionSend) {
			c.replyError(CodeActionNotPermitted, "credential lacks the send action", req.RequestID)
			return
		}
		if req.Data == nil {
			c.replyError(CodeMissingData, "send requires a data field", req.RequestID)
			return
		}
		if code := c.srv.broker.Send(c, req.To, req.Data, req.RequestID); code != "" {
			c.replyError(code, "no live connection for that peer", req.RequestID)
		}
	}
}

// checkChannel validates a channel name and authorizes action on it.
func (c *Conn) checkChannel(ch string, action Action) (code, msg string) {
	switch ValidateChannel(ch) {
	case CodeInvalidChannel:
		return CodeInvalidChannel, "channel must be 1-256 bytes without control characters"
	case CodeChannelReserved:
		return CodeChannelReserved, "channel prefix is reserved"
	}
	if !c.id.Can(action) {
		return CodeActionNotPermitted, "credential lacks the " + string(action) + " action"
	}
	if !c.id.Allows(ch) {
		return CodeChannelNotAuthorized, "channel outside allowed patterns"
	}
	return "", ""
}
