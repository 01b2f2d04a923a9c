package loadtest

import (
	"context"
	"fmt"
	"time"
)

// Run measures one server: it connects o.Conns idle clients (subscribed to o.Channels channels),
// samples the server's memory before and after, then runs the throughput, latency and presence
// fan-out phases while the idle clients stay connected. It returns what it measured so far along
// with the first error.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.Defaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	res := &Result{Server: "roomtape signal", Conns: o.Conns, Channels: o.Channels}
	if o.Echo {
		res.Server, res.Channels = "coder/websocket echo", 0
	}
	tl := &tally{}
	defer func() { res.Problems = append(res.Problems, tl.problems()...) }()
	d := &dialer{origin: o.URL, echo: o.Echo, keyID: o.KeyID, secret: o.Secret, expires: time.Now().Add(6 * time.Hour), tally: tl}

	var before MemSample
	if o.Probe != nil {
		var err error
		if before, err = o.Probe.Sample(ctx); err != nil {
			return res, fmt.Errorf("memory before: %w", err)
		}
	}
	o.Log.Info("connecting idle clients", "server", res.Server, "conns", o.Conns, "channels", o.Channels)
	start := time.Now()
	idle, err := connect(ctx, d, o.Conns, o.DialConcurrency,
		func(i int) string { return fmt.Sprintf("bench-%d", i) },
		func(i int) string { return fmt.Sprintf("bench/idle-%d", i%o.Channels) })
	if err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	defer idle.close()
	res.ConnectSeconds = time.Since(start).Seconds()

	if o.Probe != nil {
		if err := sleep(ctx, o.Settle); err != nil {
			return res, err
		}
		after, err := o.Probe.Sample(ctx)
		if err != nil {
			return res, fmt.Errorf("memory after: %w", err)
		}
		n := float64(o.Conns)
		res.Memory = &Memory{
			Before: before, After: after,
			HeapPerConn:       (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n,
			StackPerConn:      (float64(after.StackInuse) - float64(before.StackInuse)) / n,
			GoroutinesPerConn: float64(after.Goroutines-before.Goroutines) / n,
		}
		if before.RSS > 0 && after.RSS > 0 {
			res.Memory.RSSPerConn = (float64(after.RSS) - float64(before.RSS)) / n
		}
		o.Log.Info("memory", "heap_per_conn", int(res.Memory.HeapPerConn), "stack_per_conn", int(res.Memory.StackPerConn))
	}

	pairs := makePairs(idle, o.Pairs, o.Echo, o.Payload)
	o.Log.Info("throughput phase", "pairs", o.Pairs, "window", o.Window, "duration", o.Duration)
	if res.Throughput, err = measureThroughput(ctx, pairs, &o); err != nil {
		return res, err
	}
	o.Log.Info("latency phase", "rate", o.Rate, "duration", o.Duration)
	if res.Latency, err = measureLatency(ctx, pairs, &o); err != nil {
		return res, err
	}
	if !o.Echo && o.FanoutMembers > 0 {
		o.Log.Info("presence fan-out phase", "members", o.FanoutMembers, "trials", o.FanoutTrials)
		if res.Fanout, err = measureFanout(ctx, d, &o); err != nil {
			return res, err
		}
	}
	return res, nil
}
