package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// MemSample is one reading of the server's memory. With ForcedGC the heap figures were read right
// after a full garbage collection, so HeapAlloc is the live heap; otherwise they include garbage.
type MemSample struct {
	HeapAlloc  uint64 `json:"heap_alloc_bytes"`
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
	StackInuse uint64 `json:"stack_inuse_bytes"`
	RSS        uint64 `json:"rss_bytes"` // 0 when unknown
	Goroutines int    `json:"goroutines"`
	ForcedGC   bool   `json:"forced_gc"`
}

// Probe samples the memory of the server under test.
type Probe interface {
	Sample(ctx context.Context) (MemSample, error)
}

// ProbeFunc adapts a function to Probe (used for in-process servers and tests).
type ProbeFunc func(ctx context.Context) (MemSample, error)

// Sample calls f.
func (f ProbeFunc) Sample(ctx context.Context) (MemSample, error) { return f(ctx) }

var (
	_ Probe = ProbeFunc(nil)
	_ Probe = (*HTTPProbe)(nil)
)

// HTTPProbe reads a server's memory over HTTP. With DebugURL (a net/http/pprof server, as started
// by `roomtape signal --debug-listen`) it asks for a heap profile with gc=1, which runs a full GC
// first, and reads the runtime.MemStats printed with it. Otherwise it reads the Prometheus
// go_memstats_* series from MetricsURL (no forced GC: the heap includes uncollected garbage).
// With PID > 0 it also reads the process's resident set size from /proc.
type HTTPProbe struct {
	DebugURL   string // e.g. http://127.0.0.1:40123 (no path)
	MetricsURL string // e.g. http://127.0.0.1:8787/metrics
	PID        int
	Client     *http.Client // nil: http.DefaultClient
}

// Sample takes one reading.
func (p *HTTPProbe) Sample(ctx context.Context) (MemSample, error) {
	var (
		s   MemSample
		err error
	)
	switch {
	case p.DebugURL != "":
		s, err = p.pprof(ctx)
	case p.MetricsURL != "":
		s, err = p.metrics(ctx)
	default:
		return s, fmt.Errorf("probe: neither a debug nor a metrics URL")
	}
	if err != nil {
		return s, err
	}
	if p.PID > 0 {
		if rss, err := readRSS(p.PID); err == nil {
			s.RSS = rss
		}
	}
	return s, nil
}

func (p *HTTPProbe) get(ctx context.Context, u string, parse func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	hc := p.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: GET %s: %s", u, resp.Status)
	}
	return parse(resp.Body)
}

func (p *HTTPProbe) pprof(ctx context.Context) (MemSample, error) {
	var s MemSample
	err := p.get(ctx, p.DebugURL+"/debug/pprof/heap?gc=1&debug=1", func(r io.Reader) error {
		var err error
		s, err = ParseHeapProfile(r)
		return err
	})
	if err != nil {
		return s, err
	}
	err = p.get(ctx, p.DebugURL+"/debug/pprof/goroutine?debug=1", func(r io.Reader) error {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil {
			return fmt.Errorf("probe: goroutine profile: %w", err)
		}
		n, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
		if !ok {
			return fmt.Errorf("probe: goroutine profile starts with %q", line)
		}
		s.Goroutines, err = strconv.Atoi(n)
		return err
	})
	return s, err
}

func (p *HTTPProbe) metrics(ctx context.Context) (MemSample, error) {
	var s MemSample
	err := p.get(ctx, p.MetricsURL, func(r io.Reader) error {
		var err error
		s, err = ParseMetrics(r)
		return err
	})
	return s, err
}

// ParseHeapProfile reads the "# runtime.MemStats" trailer of a debug=1 heap profile. The result
// has ForcedGC set, as the caller is expected to have asked for gc=1.
func ParseHeapProfile(r io.Reader) (MemSample, error) {
	s := MemSample{ForcedGC: true}
	found := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok {
			continue
		}
		var dst *uint64
		switch key {
		case "HeapAlloc":
			dst = &s.HeapAlloc
		case "HeapInuse":
			dst = &s.HeapInuse
		case "Stack": // "Stack = inuse / sys"
			dst = &s.StackInuse
			val, _, _ = strings.Cut(val, " ")
		default:
			continue
		}
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return s, fmt.Errorf("heap profile %s: %w", key, err)
		}
		*dst = n
		found++
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("heap profile: %w", err)
	}
	if found < 3 {
		return s, fmt.Errorf("heap profile: no runtime.MemStats (HeapAlloc, HeapInuse, Stack) found")
	}
	return s, nil
}

// ParseMetrics reads go_memstats_heap_alloc_bytes, go_memstats_heap_inuse_bytes,
// go_memstats_stack_inuse_bytes, go_goroutines and process_resident_memory_bytes from a
// Prometheus text exposition.
func ParseMetrics(r io.Reader) (MemSample, error) {
	var s MemSample
	found := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_alloc_bytes":
			s.HeapAlloc = uint64(f)
			found++
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuse = uint64(f)
		case "go_memstats_stack_inuse_bytes":
			s.StackInuse = uint64(f)
		case "go_goroutines":
			s.Goroutines = int(f)
		case "process_resident_memory_bytes":
			s.RSS = uint64(f)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("metrics: %w", err)
	}
	if found == 0 {
		return s, fmt.Errorf("metrics: go_memstats_heap_alloc_bytes not found")
	}
	return s, nil
}

// readRSS returns the resident set size of process pid from /proc (Linux only).
func readRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
