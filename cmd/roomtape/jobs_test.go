package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/signalling"
)

func TestParseConfigJobSections(t *testing.T) {
	lc, err := ParseConfig(strings.NewReader(`
nats:
  url: nats://a:4222,nats://b:4222
  replicas: 3
  ack_wait: 45s
  max_deliver: 3
  dedupe_window: 5m
  credentials_file: /etc/roomtape/nats.creds
  tls: {ca: /etc/ssl/ca.pem}
worker: {id: rec-1, capacity: 8, drain_timeout: 2m, metrics_listen: ":9464"}
jobs: {profile: acme, max_duration: 2h, stop_when_empty: 30s}
`), nil, []string{"ROOMTAPE_NATS_STREAM=JOBS2", "ROOMTAPE_WORKER_CAPACITY=4"})
	if err != nil {
		t.Fatal(err)
	}
	n, w, j := lc.NATS, lc.Worker, lc.Jobs
	if n.URL != "nats://a:4222,nats://b:4222" || n.Replicas != 3 || n.AckWait != 45*time.Second || n.MaxDeliver != 3 ||
		n.DedupeWindow != 5*time.Minute || n.CredentialsFile != "/etc/roomtape/nats.creds" || n.TLS.CA != "/etc/ssl/ca.pem" ||
		n.Stream != "JOBS2" || n.Consumer != "roomtape-workers" {
		t.Errorf("nats = %+v", n)
	}
	if w.ID != "rec-1" || w.Capacity != 4 || w.DrainTimeout != 2*time.Minute || w.MetricsListen != ":9464" {
		t.Errorf("worker = %+v", w)
	}
	if j.Profile != "acme" || j.MaxDuration != 2*time.Hour || j.StopWhenEmpty != 30*time.Second || j.MaxDurationLimit != 24*time.Hour {
		t.Errorf("jobs = %+v", j)
	}
	// Defaults.
	lc, err = ParseConfig(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lc.NATS.URL != pipeline.EmbeddedURL || lc.NATS.AckWait != 30*time.Second || lc.NATS.MaxDeliver != 5 ||
		lc.Worker.DrainTimeout != 30*time.Second || lc.Jobs.Profile != "default" {
		t.Errorf("defaults: nats %+v worker %+v jobs %+v", lc.NATS, lc.Worker, lc.Jobs)
	}
	for yaml, want := range map[string]string{
		"nats: {replicas: 3}":                     "nats.replicas",
		"nats: {url: localhost}":                  "nats.url",
		"nats: {url: nats://x:1, replicas: 2}":    "nats.replicas",
		"nats: {max_deliver: 1}":                  "nats.max_deliver",
		"nats: {subject: roomtape.events.jobs}":   "nats.subject",
		"jobs: {max_duration: 48h}":               "jobs.max_duration",
		"worker: {capacity: -1}":                  "worker.capacity",
		"nats: {user: u, credentials_file: x.cr}": "nats.url", // credentials need an external server
	} {
		_, err := ParseConfig(strings.NewReader(yaml), nil, nil)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, signalling.ErrInvalidConfig) {
			t.Errorf("%s: error %v, want one naming %s", yaml, err, want)
		}
	}
}

// The CLI end to end: `roomtape worker` with its embedded NATS server, then `submit --wait`,
// `status --json`, `jobs`, a duplicate `submit`, and `stop` of a running job, each through the
// cobra root with a config file.
func TestWorkerSubmitStatusStopCLI(t *testing.T) {
	url := testenv.SignalServer(t, signalling.ServerConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`log: {level: warn}
profiles:
  default: {url: %s, secret_key_id: sk_id_demo, secret_key: sk_secret_demo}
bot: {network: {include_loopback: true, ips: ["127.0.0.0/8"]}}
recorder: {out_dir: %s}
nats: {listen: "%s", store_dir: %s, ack_wait: 5s}
worker: {id: cli-w, capacity: 2, drain_timeout: 5s, metrics_listen: "127.0.0.1:0"}
`, url, filepath.Join(dir, "rec"), natsAddr, filepath.Join(dir, "nats"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	workerOut := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- runCLI(ctx, workerOut, io.Discard, "worker", "--config", cfgPath, "--json") }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(workerOut.String(), `"ready":true`) {
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready: %q", workerOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ready struct {
		Worker, NATS, Metrics string
	}
	if err := json.Unmarshal([]byte(workerOut.String()), &ready); err != nil || ready.Worker != "cli-w" || !strings.HasPrefix(ready.Metrics, "http://127.0.0.1:") {
		t.Fatalf("ready line %q: %v", workerOut.String(), err)
	}

	var out, errOut bytes.Buffer
	if err := runCLI(context.Background(), &out, &errOut, "submit", "--config", cfgPath, "--channel", "cli-room",
		"--id", "cli-1", "--duration", "2s", "--label", "team=core", "--wait"); err != nil {
		t.Fatalf("submit --wait: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "recording cli-1: finished") || !strings.Contains(errOut.String(), "recording on cli-w (attempt 1)") {
		t.Errorf("submit --wait printed:\n%s\n%s", out.String(), errOut.String())
	}
	out.Reset()
	if err := runCLI(context.Background(), &out, io.Discard, "status", "--config", cfgPath, "cli-1", "--json"); err != nil {
		t.Fatal(err)
	}
	var st pipeline.JobState
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.State != pipeline.StateDone || st.Worker != "cli-w" || st.Labels["team"] != "core" {
		t.Fatalf("status --json: %v %s", err, out.String())
	}
	out.Reset()
	if err := runCLI(context.Background(), &out, io.Discard, "submit", "--config", cfgPath, "--channel", "cli-room", "--id", "cli-1", "--json"); err != nil {
		t.Fatal(err)
	}
	var res pipeline.SubmitResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || !res.Duplicate {
		t.Fatalf("duplicate submit: %v %s", err, out.String())
	}

	out.Reset()
	if err := runCLI(context.Background(), &out, io.Discard, "submit", "--config", cfgPath, "--channel", "cli-room", "--id", "cli-2", "--duration", "1h"); err != nil {
		t.Fatal(err)
	}
	waitState(t, cfgPath, "cli-2", pipeline.StateRecording)
	out.Reset()
	start := time.Now()
	if err := runCLI(context.Background(), &out, io.Discard, "stop", "--config", cfgPath, "cli-2", "--wait"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second || !strings.Contains(out.String(), "recording cli-2: finished") {
		t.Errorf("stop --wait took %s and printed %q", took, out.String())
	}
	out.Reset()
	if err := runCLI(context.Background(), &out, io.Discard, "jobs", "--config", cfgPath); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "cli-2") ||
		!strings.Contains(lines[2], "done") {
		t.Errorf("jobs:\n%s", out.String())
	}
	if err := runCLI(context.Background(), io.Discard, io.Discard, "status", "--config", cfgPath, "nope"); err == nil ||
		!errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("status of an unknown job: %v", err)
	}
}

func runCLI(ctx context.Context, stdout, stderr io.Writer, args ...string) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func waitState(t *testing.T, cfgPath, id, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out bytes.Buffer
		err := runCLI(context.Background(), &out, io.Discard, "status", "--config", cfgPath, id, "--json")
		var st pipeline.JobState
		if err == nil && json.Unmarshal(out.Bytes(), &st) == nil && st.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %s (%v %s)", id, state, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wantContains reports every one of wants that out (named what) lacks.
func wantContains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer goroutine and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
