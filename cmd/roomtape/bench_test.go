package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/roomtape/roomtape/signalling"
	"github.com/roomtape/roomtape/signalling/loadtest"
)

// TestBenchSignalAgainstURL runs `roomtape bench signal --url … --json` end to end against an
// in-process server whose secret key comes from a config file, as an operator would.
func TestBenchSignalAgainstURL(t *testing.T) {
	srv, err := signalling.NewServer(signalling.ServerConfig{
		Apps: []signalling.AppConfig{{ID: "bench", SecretKeys: []signalling.SecretKeyConfig{{ID: "sk_id_b", Secret: "sk_secret_bench"}}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "signal:\n  apps:\n    - id: bench\n      secret_keys:\n        - id: sk_id_b\n          secret: sk_secret_bench\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"bench", "signal", "--config", cfg, "--url", "ws://" + ln.Addr().String(), "--json",
		"--baseline=false", "--conns", "10", "--channels", "2", "--pairs", "2", "--window", "4", "--rate", "200",
		"--duration", "200ms", "--warmup", "50ms", "--settle", "10ms", "--fanout", "5", "--fanout-trials", "2",
		"--log-level", "warn"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("bench: %v\nstderr: %s", err, errOut.String())
	}
	var rep loadtest.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, out.String())
	}
	s := rep.Signal
	if s == nil || s.Conns != 10 || s.Memory == nil || s.Throughput == nil || s.Throughput.Delivered == 0 ||
		s.Latency == nil || s.Latency.Samples == 0 || s.Fanout == nil || s.Fanout.Trials != 2 || len(rep.Checks) != 3 {
		t.Errorf("report: %s", out.String())
	}
	if rep.Baseline != nil {
		t.Errorf("baseline measured although --baseline=false")
	}
}

func TestRaiseFileLimitIsIdempotent(t *testing.T) {
	if err := raiseFileLimit(64); err != nil { // every system allows 64 open files
		t.Fatal(err)
	}
}
