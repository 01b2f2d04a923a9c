package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

// workerProcessEnv, when set in the environment, turns the test binary into a worker process
// (see workerProcess): tests SIGKILL or SIGTERM it like a real `roomtape worker`.
const workerProcessEnv = "ROOMTAPE_TEST_WORKER_PROCESS"

// workerProcessConfig is what a worker process needs, passed as JSON in workerProcessEnv.
type workerProcessConfig struct {
	NATS         string        `json:"nats"`
	AckWait      time.Duration `json:"ackWait"`
	SignalURL    string        `json:"signalURL"`
	Out          string        `json:"out"`
	ID           string        `json:"id"`
	DrainTimeout time.Duration `json:"drainTimeout"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerProcessEnv); spec != "" {
		os.Exit(workerProcess(spec))
	}
	os.Exit(m.Run())
}

// workerProcess runs one worker until SIGTERM (then drains) and returns the exit code.
func workerProcess(spec string) int {
	var c workerProcessConfig
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "worker process:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := pipeline.NATSConfig{URL: c.NATS, AckWait: c.AckWait}
	cfg.Defaults()
	nc, err := pipeline.Dial(cfg, c.ID, log)
	if err != nil {
		log.Error("dial", "err", err)
		return 1
	}
	q, err := pipeline.OpenQueue(ctx, nc, cfg, log)
	if err != nil {
		log.Error("queue", "err", err)
		return 1
	}
	w, err := pipeline.NewWorker(q, pipeline.WorkerConfig{
		ID: c.ID, Capacity: 2, DrainTimeout: c.DrainTimeout, PullWait: 500 * time.Millisecond, NakDelay: 100 * time.Millisecond,
		Profiles: map[string]pipeline.Profile{"default": pipeline.DemoProfile(c.SignalURL)},
		Bot:      bot.Config{Announce: true}, Recorder: recorder.Options{Dir: c.Out}, Network: testenv.LoopbackNetwork(), Logger: log,
	})
	if err != nil {
		log.Error("worker", "err", err)
		return 1
	}
	fmt.Println("worker ready")
	err = w.Run(ctx)
	// Graceful: drain the connection so every ack and event is flushed, then wait for it.
	_ = nc.Drain()
	for !nc.IsClosed() {
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

// workerProc is a running worker process started by a test.
type workerProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // after exited
}

// wait returns the process's exit error, failing the test after timeout.
func (p *workerProc) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("worker process still running after %s", timeout)
		return nil
	}
}

// startWorkerProcess runs this test binary as a worker process on the test's NATS server.
func (e *jobEnv) startWorkerProcess(id string, drain time.Duration) *workerProc {
	e.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	spec, _ := json.Marshal(workerProcessConfig{NATS: e.ns.ClientURL(), AckWait: e.cfg.AckWait, SignalURL: e.url, Out: e.out,
		ID: id, DrainTimeout: drain})
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerProcessEnv+"="+string(spec))
	cmd.Stderr = testWriter{e.t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &workerProc{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		n, _ := stdout.Read(buf)
		if n > 0 {
			close(ready)
		}
		for {
			if _, err := stdout.Read(buf); err != nil {
				break
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		e.t.Fatal("worker process did not start")
	}
	return p
}
