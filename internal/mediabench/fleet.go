package mediabench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/publisher"
)

// receiverPrefix marks the peers the publishers connect to (the receivers under test).
const receiverPrefix = "~"

// sendCounter counts the RTP packets every publisher hands to the network, first sends and
// retransmissions (RTX, or the same payload type and sequence number again) apart. It is the
// outermost interceptor of the publishers' transport.
type sendCounter struct {
	packets, bytes atomic.Uint64 // first sends
	resent         atomic.Uint64 // retransmissions
}

func (s *sendCounter) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &countInterceptor{s: s}, nil
}

type countInterceptor struct {
	interceptor.NoOp
	s *sendCounter
}

func (c *countInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	var (
		mu      sync.Mutex
		started bool
		highest uint16
	)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		mu.Lock()
		first := h.PayloadType == info.PayloadType && (!started || int16(h.SequenceNumber-highest) > 0)
		if first {
			started, highest = true, h.SequenceNumber
		}
		mu.Unlock()
		if first {
			c.s.packets.Add(1)
			c.s.bytes.Add(uint64(h.MarshalSize() + len(payload)))
		} else {
			c.s.resent.Add(1)
		}
		return w.Write(h, payload, a)
	})
}

// fleet is N publishers in one channel, each sending the same audio and video clips in a loop
// to the receivers (peers whose id starts with receiverPrefix) and to nobody else.
type fleet struct {
	channel string
	watch   *watcher
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
}

// startFleet starts n publishers and waits until the server lists all of them in the channel.
func startFleet(ctx context.Context, url, channel string, n int, tr *bot.Transport, clip Clip, log *slog.Logger, timeout time.Duration) (*fleet, error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := startWatcher(runCtx, url, channel)
	if err != nil {
		cancel()
		return nil, err
	}
	f := &fleet{channel: channel, watch: w, cancel: cancel}
	only := func(id string) bool { return strings.HasPrefix(id, receiverPrefix) }
	for i := range n {
		sub := fmt.Sprintf("pub-%03d", i+1)
		cc, err := clientConfig(url, sub, channel, map[string]any{"name": sub})
		if err != nil {
			f.close()
			return nil, err
		}
		p, err := publisher.New(publisher.Config{
			Channel: channel, Signalling: cc, Loop: true, Peers: only, Logger: log,
			Streams: []publisher.Stream{{Role: "camera", Audio: clip.Audio, Video: clip.Video}},
		}, tr.API())
		if err != nil {
			f.close()
			return nil, err
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := p.Run(runCtx); err != nil {
				f.mu.Lock()
				f.errs = append(f.errs, fmt.Errorf("%s: %w", sub, err))
				f.mu.Unlock()
			}
		}()
	}
	if err := w.waitFor(ctx, "pub-", n, timeout); err != nil {
		f.close()
		return nil, fmt.Errorf("bench: publishers joining %s: %w", channel, err)
	}
	return f, nil
}

// waitReceiversGone waits until no receiver is in the channel any more, then a moment for the
// publishers to close their connections to it.
func (f *fleet) waitReceiversGone(ctx context.Context, timeout time.Duration) error {
	ok, err := f.watch.await(ctx, timeout, func() bool { return f.watch.count(receiverPrefix) == 0 })
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("a receiver was still listed in %s %s after it stopped", f.channel, timeout)
	}
	return sleep(ctx, time.Second)
}

// close stops every publisher and returns what failed while they ran.
func (f *fleet) close() error {
	f.watch.close()
	f.cancel()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.errs...)
}
