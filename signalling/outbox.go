package signalling

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/roomtape/roomtape/internal/logattr"
)

// Outbox sends direct messages in one FIFO without blocking the caller, so that for every peer
// an offer or answer always precedes its candidates. The client paces frames below the server's
// rate limit (B19). Failures are logged, not retried, like the SDK.
type Outbox struct {
	client *Client
	log    *slog.Logger

	mu    sync.Mutex
	items []outItem
	wake  chan struct{}
}

type outItem struct {
	to   string
	data any
}

// NewOutbox builds an outbox for c; call Run to start sending.
func NewOutbox(c *Client, log *slog.Logger) *Outbox {
	return &Outbox{client: c, log: log, wake: make(chan struct{}, 1)}
}

// Send queues data for peer to.
func (o *Outbox) Send(to string, data any) {
	o.mu.Lock()
	o.items = append(o.items, outItem{to, data})
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run sends queued messages until ctx ends.
func (o *Outbox) Run(ctx context.Context) {
	for {
		o.mu.Lock()
		items := o.items
		o.items = nil
		o.mu.Unlock()
		for _, it := range items {
			sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := o.client.Send(sctx, it.to, it.data)
			cancel()
			if err != nil {
				// Failures are logged, not retried (like the SDK): a peer that vanished gets
				// peer_not_found, and a later offer starts over.
				o.log.Debug("signal send failed", logattr.Peer, it.to, logattr.Err, err)
			}
		}
		if len(items) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		}
	}
}
