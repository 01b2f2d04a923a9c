package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a server running as a child process, e.g. `roomtape signal --listen 127.0.0.1:0`.
// Its first stdout line must be `listening on ws://HOST:PORT`; when WantDebug is set the next one
// must be `debug on http://HOST:PORT`. Close always stops it.
type Process struct {
	// URL is the announced ws:// origin, DebugURL the announced pprof origin ("" without WantDebug).
	URL, DebugURL string

	cmd     *exec.Cmd
	stderr  *tailBuffer
	done    chan struct{} // closed once the process has been waited for
	waitErr error
	once    sync.Once
	stopErr error
}

// ProcessConfig describes the child to start.
type ProcessConfig struct {
	Path      string
	Args      []string
	WantDebug bool          // wait for the `debug on` line too
	Startup   time.Duration // bound on waiting for the announcement lines (default 15s)
}

// StartProcess starts the child and waits for its announcement lines. The child is killed if the
// calling process dies (Linux parent-death signal) and by Close.
func StartProcess(ctx context.Context, pc ProcessConfig) (*Process, error) {
	if pc.Startup == 0 {
		pc.Startup = 15 * time.Second
	}
	p := &Process{stderr: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(pc.Path, pc.Args...)
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", pc.Path, err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", pc.Path, err)
	}
	lines := make(chan string, 16)
	go func() { // owned by the process: ends when stdout closes, i.e. when the child exits
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the announcement was read long ago: discard
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(pc.Startup)
	defer timer.Stop()
	for p.URL == "" || (pc.WantDebug && p.DebugURL == "") {
		select {
		case line := <-lines:
			if u, ok := strings.CutPrefix(line, "listening on "); ok && p.URL == "" {
				p.URL = u
			} else if u, ok := strings.CutPrefix(line, "debug on "); ok {
				p.DebugURL = u
			}
		case <-p.done:
			return nil, fmt.Errorf("%s exited before announcing its address: %v; stderr: %s", pc.Path, p.waitErr, p.stderr.String())
		case <-timer.C:
			_ = p.Close()
			return nil, fmt.Errorf("%s did not announce its address within %s; stderr: %s", pc.Path, pc.Startup, p.stderr.String())
		case <-ctx.Done():
			_ = p.Close()
			return nil, ctx.Err()
		}
	}
	return p, nil
}

// PID is the child's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stderr returns the last 64 KiB the child wrote to stderr.
func (p *Process) Stderr() string { return p.stderr.String() }

// Close asks the child to stop (SIGTERM), kills it after 10 s, and waits for it. It is idempotent;
// an exit caused by the signals is not an error.
func (p *Process) Close() error {
	p.once.Do(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		var ee *exec.ExitError
		if p.waitErr != nil && !(errors.As(p.waitErr, &ee) && !ee.Exited()) && !errors.Is(p.waitErr, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("server process: %w; stderr: %s", p.waitErr, p.stderr.String())
		}
	})
	return p.stopErr
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
