package mediabench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/roomtape/roomtape/recorder"
)

// receiverSpec is a receiver to measure: its child command and how to read its counters.
type receiverSpec struct {
	name, desc string
	args       []string
	// probe returns the child's current counters; final its totals after it exited.
	probe func(c *child) (Counters, error)
	final func(c *child) (Counters, error)
	// cleanup, when set, runs after the measurement (e.g. removes the recording).
	cleanup func()
}

// childCounters reads the Counters lines of `roomtape bench receiver`.
func childCounters(c *child) (Counters, error) { return c.counters(), nil }

func childFinal(c *child) (Counters, error) {
	if f, ok := c.finalCounters(); ok {
		return f, nil
	}
	return c.counters(), fmt.Errorf("no final counters line")
}

// manifestCounters reads a recorder's manifest.json (rewritten about once a second): tracks with
// an open file that has packets, and the totals of every file.
func manifestCounters(path string) func(*child) (Counters, error) {
	return func(*child) (Counters, error) {
		m, err := recorder.ReadManifest(path)
		if err != nil {
			return Counters{}, err
		}
		cnt := Counters{At: time.Now().UnixNano(), Final: m.Status != recorder.StatusRecording}
		for _, p := range m.Participants {
			active := false
			for _, t := range p.Tracks {
				for _, f := range t.Files {
					cnt.Packets += f.Packets
					cnt.Bytes += f.Bytes
					cnt.Lost += f.Lost
					cnt.Dropped += f.Dropped
					if f.EndReason == "" && f.Packets > 0 {
						cnt.Tracks++
						active = true
					}
				}
			}
			if active {
				cnt.Peers++
			}
		}
		return cnt, nil
	}
}

// snapshot is everything read at the start and at the end of the window.
type snapshot struct {
	at               time.Time
	child, bench     uint64 // CPU ticks
	machine          cpuTicks
	sentPkts, sentB  uint64
	resent           uint64
	recv             Counters
	udpRcvbuf, udpIn uint64
}

func (r *runner) snap(c *child, spec receiverSpec) (snapshot, error) {
	s := snapshot{at: time.Now()}
	var err error
	if s.child, err = procTicks(c.pid()); err != nil {
		return s, fmt.Errorf("child CPU: %w", err)
	}
	if s.bench, err = procTicks(os.Getpid()); err != nil {
		return s, err
	}
	if s.machine, err = machineTicks(); err != nil {
		return s, err
	}
	s.sentPkts, s.sentB, s.resent = r.sent.packets.Load(), r.sent.bytes.Load(), r.sent.resent.Load()
	s.udpRcvbuf, s.udpIn, _ = udpErrors()
	s.recv, err = spec.probe(c)
	return s, err
}

// measure runs one receiver against the current fleet of n participants: start, wait until every
// track receives (or the connect timeout), warm up, measure the window, stop, collect totals.
func (r *runner) measure(ctx context.Context, spec receiverSpec, n int) (*Phase, error) {
	ph := &Phase{Name: spec.name, Receiver: spec.desc, Args: strings.Join(spec.args, " "), LoadAvg: loadAvg(), Participants: n}
	r.progress("N=%d %s: starting (load %s)", n, spec.name, ph.LoadAvg)
	c, err := startChild(r.o.Exe, spec.args, r.dir)
	if err != nil {
		return nil, err
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cpu, err := c.stop(60 * time.Second)
		ph.LifetimeCPUSeconds = cpu
		if err != nil {
			ph.Problems = append(ph.Problems, err.Error())
		}
	}
	defer stop()

	started := time.Now()
	want := 2 * n
	deadline := started.Add(r.o.ConnectTimeout)
	var cnt Counters
	for {
		cnt, _ = spec.probe(c) // the manifest may not exist yet
		if cnt.Tracks >= want {
			ph.AllConnected = true
			break
		}
		if c.exited() {
			stop()
			return ph, fmt.Errorf("%s exited while connecting: %s", spec.name, strings.Join(ph.Problems, "; "))
		}
		if time.Now().After(deadline) {
			ph.Problems = append(ph.Problems, fmt.Sprintf("only %d of %d tracks receiving after %s", cnt.Tracks, want, r.o.ConnectTimeout))
			break
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return ph, err
		}
	}
	ph.ConnectSeconds = time.Since(started).Seconds()
	r.progress("N=%d %s: %d/%d tracks receiving after %.1fs; warm-up %s, window %s", n, spec.name, cnt.Tracks, want, ph.ConnectSeconds, r.o.Warmup, r.o.Duration)
	if cnt.Tracks == 0 {
		return ph, fmt.Errorf("%s received nothing", spec.name)
	}
	if err := sleep(ctx, r.o.Warmup); err != nil {
		return ph, err
	}
	s0, err := r.snap(c, spec)
	if err != nil {
		return ph, err
	}
	var rssMax uint64
	end := s0.at.Add(r.o.Duration)
	for time.Now().Before(end) {
		if err := sleep(ctx, min(time.Second, time.Until(end))); err != nil {
			return ph, err
		}
		if m, err := procMem(c.pid()); err == nil {
			rssMax = max(rssMax, m.RSS)
		}
	}
	s1, err := r.snap(c, spec)
	if err != nil {
		return ph, err
	}
	mem, _ := procMem(c.pid())
	heap, heapOK := c.heapIn(s0.at, s1.at)
	stop()
	ph.ChildLog = childWarnings(c.stderrText())
	final, ferr := spec.final(c)
	if ferr != nil {
		ph.Problems = append(ph.Problems, "final counters: "+ferr.Error())
	}

	secs := s1.at.Sub(s0.at).Seconds()
	cores := func(d uint64) float64 { return float64(d) / clockTicks / secs }
	ph.WindowSeconds = secs
	ph.Cores = cores(s1.child - s0.child)
	ph.BenchCores = cores(s1.bench - s0.bench)
	ph.SoftirqCores = cores(s1.machine.softirq - s0.machine.softirq)
	ph.OtherCores = max(cores(s1.machine.busy-s0.machine.busy)-ph.Cores-ph.BenchCores-ph.SoftirqCores, 0)
	ph.Peers, ph.Tracks = s1.recv.Peers, s1.recv.Tracks
	if ph.Peers > 0 {
		ph.CoresPerParticipant = ph.Cores / float64(ph.Peers)
	}
	ph.SentPPS = float64(s1.sentPkts-s0.sentPkts) / secs
	ph.SentMbps = float64(s1.sentB-s0.sentB) * 8 / secs / 1e6
	ph.ResentPPS = float64(s1.resent-s0.resent) / secs
	if rs := s1.recv.Time().Sub(s0.recv.Time()).Seconds(); rs > 0 {
		ph.RecvPPS = float64(s1.recv.Packets-s0.recv.Packets) / rs
		ph.RecvMbps = float64(s1.recv.Bytes-s0.recv.Bytes) * 8 / rs / 1e6
	}
	if ph.SentPPS > 0 {
		ph.RecvRatio = ph.RecvPPS / ph.SentPPS
	}
	if ph.RecvPPS > 0 {
		ph.MicrosPerPacket = ph.Cores * 1e6 / ph.RecvPPS
	}
	tracks := float64(max(ph.Tracks, 1))
	if heapOK {
		ph.HeapMB = heap
		ph.HeapKBPerTrk = heap * 1024 / tracks
	} else {
		ph.Problems = append(ph.Problems, "no gctrace line from the child: heap unknown")
	}
	ph.RSSMB = float64(rssMax) / (1 << 20)
	ph.RSSKBPerTrack = float64(rssMax) / 1024 / tracks
	// VmHWM may read a few pages below an earlier VmRSS sample (the kernel's RSS counters are
	// approximate); the peak of the whole life is at least what the window sampled.
	ph.PeakRSSMB = float64(max(mem.HWM, rssMax)) / (1 << 20)
	ph.Packets, ph.Lost, ph.Dropped = final.Packets, final.Lost, final.Dropped
	if total := final.Packets + final.Lost; total > 0 {
		ph.LossPct = float64(final.Lost) * 100 / float64(total)
	}
	ph.UDPRcvbufErrors = s1.udpRcvbuf - s0.udpRcvbuf
	r.progress("N=%d %s: %.3f cores (%.4f/participant), recv %.0f of %.0f pps, heap %.0f MB, lost %d, dropped %d",
		n, spec.name, ph.Cores, ph.CoresPerParticipant, ph.RecvPPS, ph.SentPPS, ph.HeapMB, ph.Lost, ph.Dropped)
	return ph, nil
}

// childWarnings summarizes what the child logged (it runs at warn level) as "N× message" lines,
// most frequent first: JSON log lines by their msg field, other lines as they are.
func childWarnings(stderr string) []string {
	if stderr == "" {
		return nil
	}
	counts := map[string]int{}
	for _, line := range strings.Split(stderr, "\n") {
		var rec struct {
			Msg string `json:"msg"`
		}
		msg := line
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg != "" {
			msg = rec.Msg
		}
		counts[tail(msg, 200)]++
	}
	msgs := slices.Collect(maps.Keys(counts))
	slices.SortFunc(msgs, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(a, b))
	})
	out := make([]string, 0, min(len(msgs), 10))
	for _, m := range msgs[:min(len(msgs), 10)] {
		out = append(out, fmt.Sprintf("%d× %s", counts[m], m))
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// recordConfig is the configuration file of the `roomtape record` child: warnings only, and the
// same loopback-only network as every other peer of the benchmark. Everything else is default.
const recordConfig = `log:
  level: warn
  format: json
bot:
  network:
    include_loopback: true
    ips: ["127.0.0.0/8"]
`

// writeRecordConfig writes recordConfig into dir.
func writeRecordConfig(dir string) (string, error) {
	path := filepath.Join(dir, "record-config.yaml")
	if err := os.WriteFile(path, []byte(recordConfig), 0o600); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return path, nil
}
