package loadtest

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one Run measured. Durations are in milliseconds, sizes in bytes.
type Result struct {
	Server         string      `json:"server"`
	Conns          int         `json:"conns"`
	Channels       int         `json:"channels,omitempty"`
	ConnectSeconds float64     `json:"connect_seconds"` // time to set up every idle connection
	Memory         *Memory     `json:"memory,omitempty"`
	Throughput     *Throughput `json:"throughput,omitempty"`
	Latency        *Latency    `json:"latency,omitempty"`
	Fanout         *Fanout     `json:"fanout,omitempty"`
	Problems       []string    `json:"problems,omitempty"`
}

// Memory is the server's memory before and after the idle clients connected.
type Memory struct {
	Before            MemSample `json:"before"`
	After             MemSample `json:"after"`
	HeapPerConn       float64   `json:"heap_per_conn_bytes"`
	StackPerConn      float64   `json:"stack_per_conn_bytes"`
	RSSPerConn        float64   `json:"rss_per_conn_bytes,omitempty"`
	GoroutinesPerConn float64   `json:"goroutines_per_conn"`
}

// Throughput is the closed-loop direct-message phase.
type Throughput struct {
	Pairs       int     `json:"pairs"`
	Window      int     `json:"window"`
	Seconds     float64 `json:"seconds"`
	Delivered   int64   `json:"delivered"`     // in the measured window
	PerSecond   float64 `json:"per_second"`    // delivered / seconds
	Sent        int64   `json:"sent"`          // whole phase, warm-up included
	Undelivered int64   `json:"undelivered"`   // sent but not delivered after draining
	CPU         *CPUUse `json:"cpu,omitempty"` // during the measured window
}

// Latency is the open-loop phase at a fixed offered rate.
type Latency struct {
	Pairs        int     `json:"pairs"`
	OfferedRate  int     `json:"offered_per_second"`
	AchievedRate float64 `json:"achieved_per_second"`
	Samples      int     `json:"samples"`
	P50          float64 `json:"p50_ms"`
	P90          float64 `json:"p90_ms"`
	P99          float64 `json:"p99_ms"`
	Max          float64 `json:"max_ms"`
	MaxSendLag   float64 `json:"max_send_lag_ms"` // how far the senders fell behind their schedule
	Lost         int64   `json:"lost"`
	CPU          *CPUUse `json:"cpu,omitempty"` // during the whole phase
}

// Fanout is the presence phase: the time from a newcomer's subscribe until every member of the
// channel has received its joined frame.
type Fanout struct {
	Members int     `json:"members"`
	Trials  int     `json:"trials"`
	P50     float64 `json:"p50_ms"`
	Mean    float64 `json:"mean_ms"`
	Max     float64 `json:"max_ms"`
}

// Environment describes where a run happened.
type Environment struct {
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemTotal  string `json:"mem_total,omitempty"`
	LoadAvg   string `json:"loadavg_at_start,omitempty"`
	Target    string `json:"target"` // "child process" or the URL
}

// CurrentEnvironment reads the machine's description (Linux /proc where available).
func CurrentEnvironment(target string) Environment {
	e := Environment{
		Date: time.Now().UTC().Format(time.RFC3339), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(), Target: target,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, _ := strings.Cut(string(b), "\n"); strings.HasPrefix(l, "MemTotal:") {
			e.MemTotal = strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:"))
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		e.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return e
}

// Check is one target of the issue compared with a measurement.
type Check struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Pass     bool   `json:"pass"`
}

// The targets.
const (
	TargetHeapPerConn = 32 << 10 // bytes
	TargetPerSecond   = 50000    // delivered direct frames per second
	TargetP99         = 10.0     // milliseconds at 5000 msg/s
)

// Checks compares r with the targets; phases that did not run are left out.
func Checks(r *Result) []Check {
	var cs []Check
	if m := r.Memory; m != nil {
		cs = append(cs, Check{
			Name: fmt.Sprintf("server heap per idle connection (%d conns)", r.Conns), Target: "≤ 32 KiB",
			Measured: fmt.Sprintf("%.1f KiB", m.HeapPerConn/1024), Pass: m.HeapPerConn <= TargetHeapPerConn,
		})
	}
	if t := r.Throughput; t != nil {
		cs = append(cs, Check{
			Name: "delivered direct messages per second", Target: "≥ 50000",
			Measured: fmt.Sprintf("%.0f", t.PerSecond), Pass: t.PerSecond >= TargetPerSecond,
		})
	}
	if l := r.Latency; l != nil {
		cs = append(cs, Check{
			Name: fmt.Sprintf("p99 send→receive at %d msg/s", l.OfferedRate), Target: "< 10 ms",
			Measured: fmt.Sprintf("%.2f ms", l.P99), Pass: l.Samples > 0 && l.P99 < TargetP99,
		})
	}
	return cs
}

// Report is the output of `roomtape bench signal`.
type Report struct {
	Command  string      `json:"command,omitempty"`
	Env      Environment `json:"environment"`
	Signal   *Result     `json:"signal"`
	Baseline *Result     `json:"baseline,omitempty"`
	Checks   []Check     `json:"checks"`
}

// WriteTable prints rep for humans: one row per metric, the baseline next to the server.
func WriteTable(w io.Writer, rep Report) error {
	s, b := rep.Signal, rep.Baseline
	if b == nil {
		b = &Result{}
	}
	if rep.Command != "" {
		fmt.Fprintf(w, "%s\n", rep.Command)
	}
	fmt.Fprintf(w, "%s, %d CPUs (%s), %s, load average at start %s, target %s\n\n",
		rep.Env.Date, rep.Env.CPUs, rep.Env.CPUModel, rep.Env.GoVersion, rep.Env.LoadAvg, rep.Env.Target)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "metric\t%s\t%s\tratio\t\n", s.Server, orDash(b.Server))
	row := func(name string, sv, bv float64, ok bool, format string) {
		if !ok {
			return
		}
		bs, ratio := "-", "-"
		if bv != 0 {
			bs = fmt.Sprintf(format, bv)
			ratio = fmt.Sprintf("%.2fx", sv/bv)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, fmt.Sprintf(format, sv), bs, ratio)
	}
	cpuRows := func(phase string, c, bc *CPUUse) {
		if c == nil {
			return
		}
		if bc == nil {
			bc = &CPUUse{}
		}
		row(phase+": server CPU (cores)", c.Server, bc.Server, true, "%.2f")
		row(phase+": bench clients CPU (cores)", c.Bench, bc.Bench, true, "%.2f")
		row(phase+": other CPU on the machine (cores)", c.Other, bc.Other, true, "%.2f")
	}
	row("idle connections", float64(s.Conns), float64(b.Conns), true, "%.0f")
	row("connect time (s)", s.ConnectSeconds, b.ConnectSeconds, true, "%.1f")
	if m := s.Memory; m != nil {
		bm := b.Memory
		if bm == nil {
			bm = &Memory{}
		}
		heap := "server heap per idle conn (KiB)"
		if !m.After.ForcedGC {
			heap += " [no forced GC: includes garbage]"
		}
		row(heap, m.HeapPerConn/1024, bm.HeapPerConn/1024, true, "%.1f")
		row("server stacks per idle conn (KiB)", m.StackPerConn/1024, bm.StackPerConn/1024, true, "%.1f")
		row("server RSS per idle conn (KiB)", m.RSSPerConn/1024, bm.RSSPerConn/1024, m.RSSPerConn > 0, "%.1f")
		row("server goroutines per conn", m.GoroutinesPerConn, bm.GoroutinesPerConn, true, "%.2f")
	}
	if t := s.Throughput; t != nil {
		bt := b.Throughput
		if bt == nil {
			bt = &Throughput{}
		}
		row(fmt.Sprintf("delivered msg/s (%d pairs, window %d)", t.Pairs, t.Window), t.PerSecond, bt.PerSecond, true, "%.0f")
		cpuRows("throughput", t.CPU, bt.CPU)
		if t.CPU != nil {
			var per float64 // the baseline's, 0 = not measured
			if bt.CPU != nil && bt.PerSecond > 0 {
				per = bt.CPU.Server * 1e6 / bt.PerSecond
			}
			row("server CPU per delivered msg (µs)", t.CPU.Server*1e6/t.PerSecond, per, t.CPU.Server > 0, "%.1f")
		}
	}
	if l := s.Latency; l != nil {
		bl := b.Latency
		if bl == nil {
			bl = &Latency{}
		}
		at := fmt.Sprintf(" @ %d msg/s (ms)", l.OfferedRate)
		row("latency p50"+at, l.P50, bl.P50, true, "%.3f")
		row("latency p90"+at, l.P90, bl.P90, true, "%.3f")
		row("latency p99"+at, l.P99, bl.P99, true, "%.3f")
		row("latency max"+at, l.Max, bl.Max, true, "%.3f")
		row("achieved rate (msg/s)", l.AchievedRate, bl.AchievedRate, true, "%.0f")
		row("max sender lag behind schedule (ms)", l.MaxSendLag, bl.MaxSendLag, true, "%.3f")
		cpuRows("latency", l.CPU, bl.CPU)
	}
	if f := s.Fanout; f != nil {
		row(fmt.Sprintf("presence fan-out to %d members p50 (ms)", f.Members), f.P50, 0, true, "%.3f")
		row(fmt.Sprintf("presence fan-out to %d members max (ms)", f.Members), f.Max, 0, true, "%.3f")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, c := range rep.Checks {
		verdict := "MISS"
		if c.Pass {
			verdict = "ok"
		}
		fmt.Fprintf(w, "%-4s %s: %s (target %s)\n", verdict, c.Name, c.Measured, c.Target)
	}
	for _, r := range []*Result{rep.Signal, rep.Baseline} {
		if r == nil {
			continue
		}
		for _, ph := range []struct {
			name string
			cpu  *CPUUse
		}{{"throughput", cpuOf(r.Throughput)}, {"latency", cpuOfLatency(r.Latency)}} {
			if ph.cpu != nil && ph.cpu.Other > NoisyOtherCores {
				fmt.Fprintf(w, "note (%s): other processes used %.2f cores during the %s phase; its timings are not representative\n",
					r.Server, ph.cpu.Other, ph.name)
			}
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "problem (%s): %s\n", r.Server, p)
		}
	}
	return nil
}

// NoisyOtherCores is the foreign CPU load above which WriteTable flags a timed phase.
const NoisyOtherCores = 0.25

func cpuOf(t *Throughput) *CPUUse {
	if t == nil {
		return nil
	}
	return t.CPU
}

func cpuOfLatency(l *Latency) *CPUUse {
	if l == nil {
		return nil
	}
	return l.CPU
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
