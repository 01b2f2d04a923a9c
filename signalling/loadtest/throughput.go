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

// pair is a sender and a receiver (the same client for the echo baseline).
type pair struct {
	from, to *client
	msg      message
}

func makePairs(f fleet, n int, echo bool, payload int) []pair {
	ps := make([]pair, n)
	for i := range ps {
		from, to := f[2*i], f[2*i+1]
		if echo {
			to = from
		}
		ps[i] = pair{from: from, to: to, msg: newMessage(to.peer, payload)}
	}
	return ps
}

// measureThroughput runs every pair as fast as its credit window allows for warmup+duration and
// counts the frames delivered during the last duration. Senders are stopped between writes, never
// by cancelling a write (coder/websocket closes a connection whose write context ends).
func measureThroughput(ctx context.Context, pairs []pair, o *Options) (*Throughput, error) {
	prefix := deliveryPrefix(o.Echo)
	var delivered, sent atomic.Int64
	credits := make([]chan struct{}, len(pairs))
	for i, p := range pairs {
		cr := make(chan struct{}, o.Window)
		for range o.Window {
			cr <- struct{}{}
		}
		credits[i] = cr
		p.to.handle(func(frame []byte) {
			if !bytes.HasPrefix(frame, prefix) {
				return
			}
			delivered.Add(1)
			select {
			case cr <- struct{}{}:
			default:
			}
		})
	}
	defer detach(pairs)

	wctx, cancel := context.WithTimeout(ctx, o.Warmup+o.Duration+30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	errs := make(chan error, len(pairs))
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 256+o.Payload)
			for {
				select {
				case <-credits[i]:
				case <-stop:
					return
				case <-wctx.Done():
					return
				}
				buf = p.msg.append(buf[:0], 0)
				if err := p.from.ws.Write(wctx, websocket.MessageText, buf); err != nil {
					errs <- fmt.Errorf("throughput: send from %s: %w", p.from.peer, err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	measured := func() (*Throughput, error) {
		if err := sleep(ctx, o.Warmup); err != nil {
			return nil, err
		}
		c0, t0, cpu := delivered.Load(), time.Now(), startCPU(o.ServerPID)
		if err := sleep(ctx, o.Duration); err != nil {
			return nil, err
		}
		c1, t1 := delivered.Load(), time.Now()
		secs := t1.Sub(t0).Seconds()
		return &Throughput{
			Pairs: len(pairs), Window: o.Window, Seconds: secs,
			Delivered: c1 - c0, PerSecond: float64(c1-c0) / secs, CPU: cpu.since(),
		}, nil
	}
	res, err := measured()
	close(stop)
	wg.Wait()
	err = firstError(err, errs)
	if res == nil {
		return nil, err
	}
	drain(&delivered, &sent) // every credit comes back once its frame has been delivered
	res.Sent = sent.Load()
	res.Undelivered = res.Sent - delivered.Load()
	return res, err
}

// detach removes the receivers' frame handlers.
func detach(pairs []pair) {
	for _, p := range pairs {
		p.to.handle(nil)
	}
}

// drain waits up to 5 s for the frames still in flight: until got catches up with sent.
func drain(got, sent *atomic.Int64) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && got.Load() < sent.Load() {
		time.Sleep(5 * time.Millisecond)
	}
}

// firstError closes errs (its senders have returned) and returns err or, when nil, the first error
// sent on errs.
func firstError(err error, errs chan error) error {
	close(errs)
	for e := range errs {
		if err == nil {
			err = e
		}
	}
	return err
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
