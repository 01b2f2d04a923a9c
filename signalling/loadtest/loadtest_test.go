package loadtest

import (
	"context"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomtape/roomtape/signalling"
)

const (
	testKeyID  = "sk_id_loadtest"
	testSecret = "sk_secret_loadtest"
)

// newTestServer starts an in-process signalling server with rate limiting off on a free port and
// returns its ws:// origin.
func newTestServer(tb testing.TB) string {
	tb.Helper()
	cfg := signalling.ServerConfig{
		Apps:      []signalling.AppConfig{{ID: "bench", SecretKeys: []signalling.SecretKeyConfig{{ID: testKeyID, Secret: testSecret}}}},
		RateLimit: signalling.RateLimitConfig{Enabled: false},
	}
	srv, err := signalling.NewServer(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	return "ws://" + ln.Addr().String()
}

// inProcessProbe reads this process's memory after a GC (server and clients together: the
// numbers are only checked for presence, not size).
var inProcessProbe = ProbeFunc(func(context.Context) (MemSample, error) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return MemSample{HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, StackInuse: m.StackInuse,
		Goroutines: runtime.NumGoroutine(), ForcedGC: true}, nil
})

func newTestCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func tinyOptions(url string) Options {
	return Options{
		URL: url, KeyID: testKeyID, Secret: testSecret, Probe: inProcessProbe,
		Conns: 20, Channels: 4, Pairs: 5, Window: 8, Rate: 500,
		Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Settle: 10 * time.Millisecond,
		Payload: 32, FanoutMembers: 10, FanoutTrials: 3,
	}
}

func TestRunSignalTiny(t *testing.T) {
	ctx := newTestCtx(t, 30*time.Second)
	res, err := Run(ctx, tinyOptions(newTestServer(t)))
	if err != nil {
		t.Fatalf("Run: %v (partial result %+v)", err, res)
	}
	if len(res.Problems) > 0 {
		t.Errorf("problems: %v", res.Problems)
	}
	if res.Memory == nil || res.Memory.After.HeapAlloc == 0 {
		t.Errorf("memory not sampled: %+v", res.Memory)
	}
	if tp := res.Throughput; tp == nil || tp.Delivered <= 0 || tp.PerSecond <= 0 || tp.Undelivered != 0 {
		t.Errorf("throughput: %+v", tp)
	}
	if l := res.Latency; l == nil || l.Samples == 0 || l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99 || l.Lost != 0 {
		t.Errorf("latency: %+v", l)
	}
	if f := res.Fanout; f == nil || f.Trials != 3 || f.Members != 10 || f.P50 <= 0 || f.Max < f.P50 {
		t.Errorf("fan-out: %+v", f)
	}
	checks := Checks(res)
	if len(checks) != 3 {
		t.Errorf("checks: %+v", checks)
	}
	var out strings.Builder
	if err := WriteTable(&out, Report{Env: CurrentEnvironment("in-process"), Signal: res, Checks: checks}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server heap per idle conn", "latency p99 @ 500 msg/s", "presence fan-out to 10 members"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunEchoTiny(t *testing.T) {
	ctx := newTestCtx(t, 30*time.Second)
	hs := httptest.NewServer(EchoHandler())
	t.Cleanup(hs.Close)
	o := tinyOptions("ws" + strings.TrimPrefix(hs.URL, "http"))
	o.Echo, o.KeyID, o.Secret = true, "", ""
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Throughput.Delivered <= 0 || res.Latency.Samples == 0 || res.Latency.P50 <= 0 || res.Fanout != nil {
		t.Errorf("echo result: throughput %+v latency %+v fanout %+v", res.Throughput, res.Latency, res.Fanout)
	}
}

func TestRunRejectsWrongKey(t *testing.T) {
	ctx := newTestCtx(t, 30*time.Second)
	o := tinyOptions(newTestServer(t))
	o.Secret = "not-the-secret"
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "4001") {
		t.Fatalf("Run with a wrong secret: err = %v, want a 4001 close", err)
	}
}

func TestStampOf(t *testing.T) {
	m := newMessage("peer-1", 4)
	frame := m.append(nil, 123456789)
	if got, ok := stampOf(frame); !ok || got != 123456789 {
		t.Errorf("stampOf(send) = %d, %v", got, ok)
	}
	direct := []byte(`{"type":"direct","from":"peer-0","data":{"t":42,"p":"xxxx"}}`)
	if got, ok := stampOf(direct); !ok || got != 42 {
		t.Errorf("stampOf(direct) = %d, %v", got, ok)
	}
	if _, ok := stampOf([]byte(`{"type":"pong"}`)); ok {
		t.Error("stampOf(pong) ok")
	}
}

func TestParseHeapProfile(t *testing.T) {
	const text = "heap profile: 1: 2 [3: 4] @ heap/1048576\n" +
		"# runtime.MemStats\n# Alloc = 111\n# HeapAlloc = 1234\n# HeapSys = 9999\n# HeapInuse = 2048\n# Stack = 65536 / 65536\n"
	s, err := ParseHeapProfile(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if s != (MemSample{HeapAlloc: 1234, HeapInuse: 2048, StackInuse: 65536, ForcedGC: true}) {
		t.Errorf("got %+v", s)
	}
	if _, err := ParseHeapProfile(strings.NewReader("no stats\n")); err == nil {
		t.Error("no error for a profile without MemStats")
	}
}

func TestParseMetrics(t *testing.T) {
	const text = "# HELP go_goroutines x\ngo_goroutines 12\ngo_memstats_heap_alloc_bytes 1.5e+06\n" +
		"go_memstats_heap_inuse_bytes 2e+06\ngo_memstats_stack_inuse_bytes 65536\nprocess_resident_memory_bytes 1e+07\n"
	s, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if s != (MemSample{HeapAlloc: 1500000, HeapInuse: 2000000, StackInuse: 65536, RSS: 10000000, Goroutines: 12}) {
		t.Errorf("got %+v", s)
	}
}

func TestHTTPProbeMetrics(t *testing.T) {
	url := newTestServer(t)
	p := &HTTPProbe{MetricsURL: "http" + strings.TrimPrefix(url, "ws") + "/metrics"}
	s, err := p.Sample(newTestCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if s.HeapAlloc == 0 || s.Goroutines == 0 || s.ForcedGC {
		t.Errorf("sample %+v", s)
	}
}

func TestStartProcessAnnouncesAndStops(t *testing.T) {
	ctx := newTestCtx(t, 10*time.Second)
	p, err := StartProcess(ctx, ProcessConfig{
		Path:      "/bin/sh",
		Args:      []string{"-c", `echo oops >&2; echo "listening on ws://127.0.0.1:1"; echo "debug on http://127.0.0.1:2"; exec sleep 30`},
		WantDebug: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.URL != "ws://127.0.0.1:1" || p.DebugURL != "http://127.0.0.1:2" {
		t.Errorf("URL %q, DebugURL %q", p.URL, p.DebugURL)
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s; SIGTERM should end sleep at once", d)
	}
	if !strings.Contains(p.Stderr(), "oops") {
		t.Errorf("stderr %q", p.Stderr())
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStartProcessFailsWhenChildExitsEarly(t *testing.T) {
	ctx := newTestCtx(t, 10*time.Second)
	_, err := StartProcess(ctx, ProcessConfig{Path: "/bin/sh", Args: []string{"-c", "echo bad config >&2; exit 3"}})
	if err == nil || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("err = %v, want the child's stderr in it", err)
	}
}
