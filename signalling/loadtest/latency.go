package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// recorder collects the latencies one receiver observed.
type recorder struct {
	mu      sync.Mutex
	samples []time.Duration
}

// measureLatency offers o.Rate messages per second, spread evenly over the pairs, for
// warmup+duration (open loop: a sender that falls behind sends at once and the lag is reported).
// Each message carries its send time; the receiver records now minus that time for messages sent
// after the warm-up.
func measureLatency(ctx context.Context, pairs []pair, o *Options) (*Latency, error) {
	prefix := deliveryPrefix(o.Echo)
	cpu := startCPU(o.ServerPID)
	base := time.Now()
	warm := o.Warmup.Nanoseconds()
	var received, sent atomic.Int64
	recs := make([]*recorder, len(pairs))
	perPair := int(float64(o.Rate)/float64(len(pairs))*(o.Warmup+o.Duration).Seconds()) + 16
	for i, p := range pairs {
		rec := &recorder{samples: make([]time.Duration, 0, perPair)}
		recs[i] = rec
		p.to.handle(func(frame []byte) {
			if !bytes.HasPrefix(frame, prefix) {
				return
			}
			now := time.Since(base).Nanoseconds()
			received.Add(1)
			t, ok := stampOf(frame)
			if !ok || t < warm {
				return
			}
			rec.mu.Lock()
			rec.samples = append(rec.samples, time.Duration(now-t))
			rec.mu.Unlock()
		})
	}
	defer detach(pairs)

	interval := time.Duration(float64(time.Second) * float64(len(pairs)) / float64(o.Rate))
	end := o.Warmup + o.Duration
	wctx, cancel := context.WithTimeout(ctx, end+30*time.Second)
	defer cancel()
	errs := make(chan error, len(pairs))
	var maxLag atomic.Int64
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 256+o.Payload)
			next := interval * time.Duration(i) / time.Duration(len(pairs)) // stagger the pairs
			for next < end {
				if d := next - time.Since(base); d > 0 {
					if sleep(wctx, d) != nil {
						return
					}
				}
				now := time.Since(base)
				if lag := int64(now - next); lag > maxLag.Load() {
					maxLag.Store(lag) // racy maximum: good enough for a report
				}
				buf = p.msg.append(buf[:0], now.Nanoseconds())
				if err := p.from.ws.Write(wctx, websocket.MessageText, buf); err != nil {
					errs <- fmt.Errorf("latency: send from %s: %w", p.from.peer, err)
					return
				}
				sent.Add(1)
				next += interval
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(base)
	use := cpu.since()
	err := firstError(nil, errs)
	drain(&received, &sent)
	detach(pairs)
	var all []time.Duration
	for _, r := range recs {
		r.mu.Lock()
		all = append(all, r.samples...)
		r.mu.Unlock()
	}
	d := summarize(all)
	return &Latency{
		Pairs: len(pairs), OfferedRate: o.Rate, AchievedRate: float64(sent.Load()) / elapsed.Seconds(),
		Samples: len(all), P50: d.P50, P90: d.P90, P99: d.P99, Max: d.Max,
		MaxSendLag: ms(time.Duration(maxLag.Load())), Lost: sent.Load() - received.Load(), CPU: use,
	}, err
}
