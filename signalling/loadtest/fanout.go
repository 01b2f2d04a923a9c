package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/roomtape/roomtape/signalling"
)

// fanoutChannel is the channel of the presence phase.
const fanoutChannel = "bench/fanout"

// trial is one newcomer joining the fan-out channel, as the members see it.
type trial struct {
	peer    string
	base    time.Time
	joined  atomic.Int64 // members that received the joined frame
	left    atomic.Int64 // members that received the left frame
	last    atomic.Int64 // latest joined arrival, nanoseconds after base
	allIn   chan struct{}
	allGone chan struct{}
}

// measureFanout subscribes o.FanoutMembers members to one channel, then lets o.FanoutTrials
// newcomers subscribe one at a time and measures, for each, the time from writing the subscribe
// until the last member has received the newcomer's joined presence frame.
func measureFanout(ctx context.Context, d *dialer, o *Options) (*Fanout, error) {
	n := o.FanoutMembers
	members, err := connect(ctx, d, n, o.DialConcurrency,
		func(i int) string { return fmt.Sprintf("fanout-member-%d", i) },
		func(int) string { return fanoutChannel })
	if err != nil {
		return nil, fmt.Errorf("fan-out members: %w", err)
	}
	defer members.close()
	var cur atomic.Pointer[trial]
	for _, m := range members {
		m.handle(func(frame []byte) {
			t := cur.Load()
			if t == nil || !bytes.HasPrefix(frame, prefixPresence) {
				return
			}
			at := time.Since(t.base).Nanoseconds()
			var f signalling.Frame
			if json.Unmarshal(frame, &f) != nil || f.Channel != fanoutChannel {
				return
			}
			for _, e := range f.Joined {
				if e.PeerID == t.peer {
					for old := t.last.Load(); at > old && !t.last.CompareAndSwap(old, at); old = t.last.Load() {
					}
					if t.joined.Add(1) == int64(n) {
						close(t.allIn)
					}
				}
			}
			for _, e := range f.Left {
				if e.PeerID == t.peer && t.left.Add(1) == int64(n) {
					close(t.allGone)
				}
			}
		})
	}

	times := make([]time.Duration, 0, o.FanoutTrials)
	for i := range o.FanoutTrials {
		t, err := runTrial(ctx, d, &cur, fmt.Sprintf("fanout-newcomer-%d", i), n)
		if err != nil {
			return nil, err
		}
		times = append(times, t)
	}
	dist := summarize(times)
	return &Fanout{Members: n, Trials: len(times), P50: dist.P50, Mean: dist.Mean, Max: dist.Max}, nil
}

func runTrial(ctx context.Context, d *dialer, cur *atomic.Pointer[trial], peer string, members int) (time.Duration, error) {
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := d.dial(tctx, peer)
	if err != nil {
		return 0, fmt.Errorf("fan-out newcomer: %w", err)
	}
	defer c.close()
	t := &trial{peer: peer, allIn: make(chan struct{}), allGone: make(chan struct{})}
	t.base = time.Now()
	cur.Store(t)
	defer cur.Store(nil)
	snap, err := c.subscribe(tctx, fanoutChannel)
	if err != nil {
		return 0, fmt.Errorf("fan-out newcomer: %w", err)
	}
	if len(snap) != members {
		return 0, fmt.Errorf("fan-out newcomer snapshot: %d members, want %d", len(snap), members)
	}
	select {
	case <-t.allIn:
	case <-tctx.Done():
		return 0, fmt.Errorf("fan-out: %d of %d members saw %s join: %w", t.joined.Load(), members, peer, tctx.Err())
	}
	took := time.Duration(t.last.Load())
	// Leave, and let every member see it, so that trials do not overlap.
	c.close()
	select {
	case <-t.allGone:
	case <-tctx.Done():
		return 0, fmt.Errorf("fan-out: %d of %d members saw %s leave: %w", t.left.Load(), members, peer, tctx.Err())
	}
	return took, nil
}
