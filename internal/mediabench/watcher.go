package mediabench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/roomtape/roomtape/signalling"
)

// watcher is a signalling client that follows the presence of one channel. Its id does not start
// with receiverPrefix, so publishers ignore it.
type watcher struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	present map[string]bool
	changed chan struct{}
}

func startWatcher(ctx context.Context, url, channel string) (*watcher, error) {
	cc, err := clientConfig(url, fmt.Sprintf("watch-%d", time.Now().UnixNano()), channel, nil)
	if err != nil {
		return nil, err
	}
	w := &watcher{present: map[string]bool{}, changed: make(chan struct{}, 1), done: make(chan struct{})}
	cc.Channels = []string{channel}
	c, err := signalling.NewClient(cc, signalling.Handler{Presence: w.onPresence})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go func() { defer close(w.done); _ = c.Run(runCtx) }()
	return w, nil
}

func (w *watcher) onPresence(ev signalling.PresenceEvent) {
	w.mu.Lock()
	if ev.Snapshot {
		clear(w.present)
	}
	for _, e := range ev.Joined {
		w.present[e.PeerID] = true
	}
	for _, e := range ev.Left {
		delete(w.present, e.PeerID)
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watcher) count(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for id := range w.present {
		if strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
}

// await waits until ok holds, checking it again at every presence change; false when timeout
// passed first.
func (w *watcher) await(ctx context.Context, timeout time.Duration, ok func() bool) (bool, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !ok() {
		select {
		case <-w.changed:
		case <-deadline.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return true, nil
}

// waitFor waits until at least n members whose id starts with prefix are present.
func (w *watcher) waitFor(ctx context.Context, prefix string, n int, timeout time.Duration) error {
	ok, err := w.await(ctx, timeout, func() bool { return w.count(prefix) >= n })
	if err == nil && !ok {
		err = fmt.Errorf("%d of %d present after %s", w.count(prefix), n, timeout)
	}
	return err
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
}
