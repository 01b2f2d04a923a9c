package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/publisher"
	"github.com/roomtape/roomtape/signalling"
)

// jobEnv is an embedded NATS server with JetStream, a queue client, a signalling server with
// the demo app and an output folder: everything a worker needs, on loopback.
type jobEnv struct {
	t      testing.TB
	ns     *pipeline.Embedded
	cfg    pipeline.NATSConfig
	q      *pipeline.Queue
	url    string // signalling origin
	out    string
	tr     *bot.Transport
	logger *slog.Logger
}

// newJobEnv starts the environment; ackWait is short so that redelivery tests are fast.
func newJobEnv(t testing.TB, ackWait time.Duration) *jobEnv {
	t.Helper()
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	e := &jobEnv{t: t, ns: ns, url: testenv.SignalServer(t, signalling.ServerConfig{}), out: t.TempDir(), tr: testenv.Transport(t)}
	e.logger = testLogger(t)
	e.cfg = pipeline.NATSConfig{URL: ns.ClientURL(), AckWait: ackWait, MaxDeliver: 5, RequestTimeout: 5 * time.Second}
	e.cfg.Defaults()
	e.q = e.queue("client")
	return e
}

// testLogger logs to the test output at warn level (ROOMTAPE_TEST_LOG=debug for more).
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("ROOMTAPE_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// queue opens a queue on a connection of its own (each worker is its own NATS client).
func (e *jobEnv) queue(name string) *pipeline.Queue {
	e.t.Helper()
	nc, err := e.ns.Connect(e.cfg, name, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	q, err := pipeline.OpenQueue(context.Background(), nc, e.cfg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

// workerConfig is the configuration every test worker starts from.
func (e *jobEnv) workerConfig(id string, capacity int) pipeline.WorkerConfig {
	return pipeline.WorkerConfig{
		ID: id, Capacity: capacity, DrainTimeout: 20 * time.Second, PullWait: 500 * time.Millisecond,
		NakDelay: 100 * time.Millisecond, RetryDelay: 500 * time.Millisecond,
		Profiles:  map[string]pipeline.Profile{"default": pipeline.DemoProfile(e.url)},
		Bot:       bot.Config{Announce: true},
		Network:   testenv.LoopbackNetwork(),
		Transport: e.tr,
		Logger:    e.logger,
	}
}

// runningWorker is a worker started by a test.
type runningWorker struct {
	*pipeline.Worker
	q      *pipeline.Queue
	cancel context.CancelFunc
	done   chan struct{}
}

// stop cancels the worker (a SIGTERM) and waits until Run returned.
func (w *runningWorker) stop() {
	w.cancel()
	<-w.done
}

// startWorker runs a worker on its own NATS connection until the test ends.
func (e *jobEnv) startWorker(cfg pipeline.WorkerConfig) *runningWorker {
	e.t.Helper()
	q := e.queue(cfg.ID)
	cfg.Recorder.Dir = e.out
	w, err := pipeline.NewWorker(q, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rw := &runningWorker{Worker: w, q: q, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rw.done)
		if err := w.Run(ctx); err != nil {
			e.t.Errorf("worker %s: %v", cfg.ID, err)
		}
	}()
	e.t.Cleanup(rw.stop)
	return rw
}

// job is a valid job for channel with a max duration.
func job(id, channel string, maxDur time.Duration) pipeline.Job {
	return pipeline.Job{Version: pipeline.JobVersion, ID: id, Channel: channel,
		Options: pipeline.JobOptions{MaxDuration: pipeline.Duration(maxDur)}, Labels: map[string]string{"test": id}}
}

func (e *jobEnv) submit(j pipeline.Job) pipeline.SubmitResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.q.Submit(ctx, j)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// eventLog collects a job's events in the background.
type eventLog struct {
	mu     sync.Mutex
	events []pipeline.Event
	notify chan struct{}
}

// follow starts collecting the events of job id (from the first one stored).
func (e *jobEnv) follow(id string) *eventLog {
	l := &eventLog{notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.q.Follow(ctx, id, func(ev pipeline.Event) bool {
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
			select {
			case l.notify <- struct{}{}:
			default:
			}
			return true
		})
	}()
	e.t.Cleanup(func() { cancel(); <-done })
	return l
}

// wait returns the first event matching ok, failing the test after timeout.
func (l *eventLog) wait(t testing.TB, timeout time.Duration, what string, ok func(pipeline.Event) bool) pipeline.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, ev := range l.events {
			if ok(ev) {
				l.mu.Unlock()
				return ev
			}
		}
		l.mu.Unlock()
		select {
		case <-l.notify:
		case <-deadline.C:
			t.Fatalf("no %s event within %s; events so far:\n%s", what, timeout, l.dump())
		}
	}
}

func (l *eventLog) waitType(t testing.TB, timeout time.Duration, typ string) pipeline.Event {
	t.Helper()
	return l.wait(t, timeout, typ, func(ev pipeline.Event) bool { return ev.Type == typ })
}

func (l *eventLog) all() []pipeline.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]pipeline.Event(nil), l.events...)
}

func (l *eventLog) count(typ string) int {
	n := 0
	for _, ev := range l.all() {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func (l *eventLog) dump() string {
	var b strings.Builder
	for _, ev := range l.all() {
		fmt.Fprintf(&b, "  %s %s worker=%s attempt=%d peer=%s warning=%s reason=%q\n", ev.Time.Format("15:04:05.000"),
			ev.Type, ev.Worker, ev.Attempt, ev.Peer, ev.Warning, ev.Reason)
	}
	return b.String()
}

// publish starts a Go publisher with camera (VP8) + microphone (Opus) in channel as peer,
// looping the 6 s clips.
func (e *jobEnv) publish(channel, peer string) func() {
	e.t.Helper()
	return e.publishClips(channel, peer, true)
}

// publishClips is publish with a choice: loop, or send the clips once and then keep the tracks
// open and silent.
func (e *jobEnv) publishClips(channel, peer string, loop bool) func() {
	e.t.Helper()
	dir := fixtures.Dir(e.t)
	cc, err := pipeline.DemoProfile(e.url).ClientConfig(peer, map[string]any{"name": peer}, channel)
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := publisher.New(publisher.Config{Channel: channel, Loop: loop, Signalling: cc, Streams: []publisher.Stream{{
		Role: "camera", Audio: filepath.Join(dir, fixtures.Audio), Video: filepath.Join(dir, fixtures.Camera)}}}, e.tr.API())
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

// needFFmpeg fails (never skips) when ffmpeg/ffprobe are missing.
func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (apt-get install ffmpeg); ./scripts/test installs it", tool)
		}
	}
}

// decodesCleanly: ffmpeg decodes the whole file without a single error message (see
// testenv.Probe for why the file's own time base is kept).
func decodesCleanly(t testing.TB, path string) { testenv.Probe(t, path) }

// decodedFrames counts what ffprobe can read from a file (tolerating a truncated tail, as a
// crashed worker leaves it) and its last packet time.
func decodedFrames(t testing.TB, path string) (int, time.Duration) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(string(out)), ","))
	if err != nil {
		t.Fatalf("ffprobe frames of %s: %q", path, out)
	}
	pts, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	lines := strings.Fields(strings.TrimSpace(string(pts)))
	var last float64
	if len(lines) > 0 {
		last, _ = strconv.ParseFloat(strings.Trim(lines[len(lines)-1], ","), 64)
	}
	return n, time.Duration(last * float64(time.Second))
}
