package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

// watchEnv is an embedded NATS server with a client listener and the job queue on it; the
// test plays the worker by publishing events.
type watchEnv struct {
	url string
	q   *pipeline.Queue
	js  jetstream.JetStream
}

func newWatchEnv(t *testing.T) *watchEnv {
	t.Helper()
	e, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect(pipeline.NATSConfig{}, "watch-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	q, err := pipeline.OpenQueue(context.Background(), nc, pipeline.NATSConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &watchEnv{url: e.ClientURL(), q: q, js: js}
}

// submit creates the job's state (and its queued event).
func (w *watchEnv) submit(t *testing.T, id string) {
	t.Helper()
	if _, err := w.q.Submit(context.Background(), pipeline.Job{Version: pipeline.JobVersion, ID: id, Channel: "room-a"}); err != nil {
		t.Fatal(err)
	}
}

func (w *watchEnv) publish(t *testing.T, evs ...pipeline.Event) {
	t.Helper()
	for _, ev := range evs {
		ev.Version = 1
		if ev.Time.IsZero() {
			ev.Time = time.Now().UTC()
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.js.Publish(context.Background(), pipeline.EventsSubject(ev.JobID), b); err != nil {
			t.Fatal(err)
		}
	}
}

func watchStats(id string, frozen bool, peers ...string) pipeline.Event {
	s := &monitor.Sample{At: time.Now().UTC(), IntervalMs: 5000, Health: "ok"}
	for _, p := range peers {
		s.Peers = append(s.Peers, monitor.PeerStats{Peer: p, Present: true, State: "connected", Health: "ok", Tracks: 1})
		s.Tracks = append(s.Tracks, monitor.TrackStats{Peer: p, Track: "camera", TrackID: p + "-v", Kind: "video", Role: "camera",
			Codec: "VP8", BitrateBps: 640_000, LossPct: 0.5, LossBeforeRecoveryPct: 2, JitterMs: 4, FPS: 30, Width: 640,
			Height: 360, SinceLastPacketMs: 12, Frozen: frozen})
	}
	return pipeline.Event{Type: pipeline.EventStats, JobID: id, Stats: s}
}

func watchAlert(id, state string) pipeline.Event {
	a := &recorder.Alert{Code: recorder.AlertFrozen, State: state, Peer: "alice", Track: "camera", Kind: "video",
		At: time.Now().UTC(), Since: time.Now().UTC().Add(-3 * time.Second), Value: 3, Threshold: 2, Message: "no frame for 3s"}
	return pipeline.Event{Type: pipeline.EventAlert, JobID: id, Peer: "alice", Alert: a}
}

// runBinary runs the built roomtape and returns stdout, stderr and the exit code.
func runBinary(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir() // no ./config.yaml
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%v did not end within 15s\nstdout:\n%s\nstderr:\n%s", args, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

// `roomtape watch` as a process against a NATS server: --json passes the job's events through
// and exits 0 at the final one; the text output prints the state, then a block per stats event
// and a line per alert as they come, then a summary; --once prints the view and exits; unknown
// and invalid job ids fail.
func TestWatchCLI(t *testing.T) {
	bin := buildBinary(t)
	env := newWatchEnv(t)
	nats := "--nats-url=" + env.url

	t.Run("json", func(t *testing.T) {
		id := "watch-json"
		env.submit(t, id)
		env.publish(t,
			pipeline.Event{Type: pipeline.EventStarted, JobID: id, Worker: "w1", Attempt: 1},
			watchStats(id, false, "alice"),
			watchAlert(id, recorder.AlertRaised),
			watchAlert(id, recorder.AlertCleared),
			pipeline.Event{Type: pipeline.EventFinished, JobID: id, Reason: "max duration reached"})
		stdout, stderr, code := runBinary(t, bin, "watch", id, "--json", nats)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		var types []string
		sc := bufio.NewScanner(strings.NewReader(stdout))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev pipeline.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.JobID != id {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			types = append(types, ev.Type)
			switch ev.Type {
			case pipeline.EventStats:
				if ev.Stats == nil || len(ev.Stats.Tracks) != 1 || ev.Stats.Tracks[0].Width != 640 {
					t.Errorf("stats event lost its sample: %s", sc.Text())
				}
			case pipeline.EventAlert:
				if ev.Alert == nil || ev.Alert.Code != recorder.AlertFrozen {
					t.Errorf("alert event lost its alert: %s", sc.Text())
				}
			}
		}
		want := "queued started stats alert alert finished"
		if got := strings.Join(types, " "); got != want {
			t.Errorf("event types %q, want %q\n%s", got, want, stdout)
		}
		if !strings.Contains(stderr, "watching job watch-json") {
			t.Errorf("stderr: %q", stderr)
		}
	})

	t.Run("text, live", func(t *testing.T) {
		id := "watch-text"
		env.submit(t, id)
		env.publish(t,
			pipeline.Event{Type: pipeline.EventStarted, JobID: id, Worker: "w1", Attempt: 1},
			pipeline.Event{Type: pipeline.EventParticipantJoined, JobID: id, Peer: "alice"},
			watchStats(id, false, "alice"))
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "watch", id, nats)
		cmd.Dir = t.TempDir()
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Caught up: the state of the replayed events is printed once.
		for !strings.Contains(stdout.String(), "video/camera VP8 640kbps") {
			if ctx.Err() != nil {
				t.Fatalf("no catch-up block:\n%s\n%s", stdout.String(), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		env.publish(t,
			pipeline.Event{Type: pipeline.EventParticipantJoined, JobID: id, Peer: "bob"},
			watchAlert(id, recorder.AlertRaised),
			watchStats(id, true, "alice", "bob"),
			watchAlert(id, recorder.AlertCleared),
			pipeline.Event{Type: pipeline.EventParticipantLeft, JobID: id, Peer: "bob"},
			pipeline.Event{Type: pipeline.EventFinished, JobID: id, Reason: "stopped", ManifestPath: "/rec/watch-text/manifest.json"})
		if err := cmd.Wait(); err != nil {
			t.Fatalf("watch: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		out := stdout.String()
		t.Logf("output:\n%s", out)
		wantContains(t, "output", out,
			"watching job watch-text · channel room-a · queued\n",
			"watch-text recording on w1 (attempt 1) elapsed", // catch-up block
			"  alice present connected health ok\n    video/camera VP8 640kbps loss 0.5 (2.0) jitter 4.0ms 30.0fps 640x360 last 12ms\n",
			" bob joined\n",
			" alert raised frozen alice/camera: no frame for 3s\n",
			"· 2 present · 2 tracks · 0 alerts\n", // the second stats block
			"30.0fps 640x360 last 12ms FROZEN\n",
			" alert cleared frozen alice/camera",
			" bob left\n",
			"job watch-text finished after ",
			": stopped\n  participants 2 · alerts raised 1, active at the end 0 · warnings 0\n  manifest: /rec/watch-text/manifest.json\n",
		)
		if strings.Contains(out, "\x1b") {
			t.Errorf("escape sequences when stdout is not a terminal:\n%q", out)
		}
	})

	t.Run("once", func(t *testing.T) {
		id := "watch-once"
		env.submit(t, id)
		env.publish(t, pipeline.Event{Type: pipeline.EventStarted, JobID: id, Worker: "w1", Attempt: 1}, watchStats(id, false, "alice"))
		stdout, stderr, code := runBinary(t, bin, "watch", id, "--once", nats)
		if code != 0 || !strings.Contains(stdout, "PEER") || !strings.Contains(stdout, "alice") || !strings.Contains(stdout, "640x360") {
			t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		stdout, _, code = runBinary(t, bin, "watch", id, "--once", "--json", nats)
		if n := strings.Count(stdout, "\n"); code != 0 || n != 3 {
			t.Errorf("--once --json: exit %d, %d lines\n%s", code, n, stdout)
		}
	})

	t.Run("unknown and invalid jobs", func(t *testing.T) {
		_, stderr, code := runBinary(t, bin, "watch", "no-such-job", nats)
		if code == 0 || !strings.Contains(stderr, "no-such-job: job not found") {
			t.Errorf("unknown job: exit %d, %q", code, stderr)
		}
		_, stderr, code = runBinary(t, bin, "watch", "bad id!", nats)
		if code == 0 || !strings.Contains(stderr, "invalid job: id") {
			t.Errorf("invalid id: exit %d, %q", code, stderr)
		}
	})
}

// On a terminal the view is redrawn in place, at most 4 times a second however fast events
// come, with no escape sequences but its own (hostile peer ids are stripped); Ctrl-C ends
// watching cleanly.
func TestWatchTerminalRedraw(t *testing.T) {
	env := newWatchEnv(t)
	id := "watch-tty"
	env.submit(t, id)
	env.publish(t, pipeline.Event{Type: pipeline.EventStarted, JobID: id, Worker: "w1", Attempt: 1})

	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- runWatch(context.Background(), env.q, id, watchOptions{tty: true, size: func() (int, int) { return 120, 40 }}, stdout, stderr)
	}()
	evil := "\x1b]0;owned\x07\x1b[2Jmallory"
	env.publish(t, pipeline.Event{Type: pipeline.EventParticipantJoined, JobID: id, Peer: evil})
	for i := 0; i < 100; i++ { // ~1 s of events far faster than the redraw rate
		env.publish(t, watchStats(id, i%2 == 0, "alice", evil))
		time.Sleep(10 * time.Millisecond)
	}
	env.publish(t, pipeline.Event{Type: pipeline.EventFinished, JobID: id, Reason: "stopped"})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end at the finished event")
	}
	took := time.Since(start)
	out := stdout.String()
	redraws := strings.Count(out, "\x1b[H")
	if limit := int(took/watchRedraw) + 3; redraws > limit || redraws < 3 {
		t.Errorf("%d redraws in %s (at most %d)", redraws, took, limit)
	}
	if !strings.HasPrefix(out, "\x1b[?25l\x1b[2J\x1b[H") || !strings.Contains(out, "\x1b[?25h") {
		t.Errorf("no clear/home at the start or cursor not restored: %q", out[:min(len(out), 40)])
	}
	rest := out
	for _, seq := range []string{"\x1b[?25l", "\x1b[?25h", "\x1b[2J", "\x1b[H", "\x1b[K", "\x1b[J"} {
		rest = strings.ReplaceAll(rest, seq, "")
	}
	if strings.ContainsAny(rest, "\x1b\x07") {
		t.Errorf("foreign control characters on the terminal: %q", rest)
	}
	last := out[strings.LastIndex(out, "\x1b[H"):]
	t.Logf("%d redraws in %s; last frame:\n%s", redraws, took, strings.ReplaceAll(last, "\x1b", "^["))
	wantContains(t, "last frame", last, "job watch-tty · channel room-a · done", "]0;owned[2Jmallory", "alice", "640x360",
		"job watch-tty finished after")

	// Ctrl-C: the watch ends without error and says the job goes on.
	ctx, cancel := context.WithCancel(context.Background())
	id = "watch-cancel"
	env.submit(t, id)
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	go func() { done <- runWatch(ctx, env.q, id, watchOptions{tty: true}, stdout, stderr) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(stderr.String(), "stopped watching; the job goes on") ||
			!strings.HasSuffix(stdout.String(), "\x1b[?25h") {
			t.Errorf("cancelled watch: %v %q %q", err, stderr.String(), stdout.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not end on cancel")
	}
}
