package mediabench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a receiver under test running as a child process. It reads the child's stdout for
// Counters lines (receiver children) and its stderr for GODEBUG=gctrace=1 lines (every child);
// other stderr output is kept (the last 64 KiB) for error messages.
type child struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been waited for
	waitErr error
	readers sync.WaitGroup

	mu     sync.Mutex
	latest Counters
	final  *Counters
	gcs    []gcSample
	stderr []byte
	once   sync.Once
}

// gcSample is one garbage collection of the child: when the benchmark saw it and the live heap.
type gcSample struct {
	at     time.Time
	liveMB float64
}

// startChild starts exe with args in dir. The child runs with GODEBUG=gctrace=1 and is killed if
// the benchmark dies (Linux parent-death signal).
func startChild(exe string, args []string, dir string) (*child, error) {
	c := &child{done: make(chan struct{})}
	c.cmd = exec.Command(exe, args...)
	c.cmd.Dir = dir
	c.cmd.Env = withGCTrace(os.Environ())
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", exe, err)
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", exe, err)
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", exe, err)
	}
	c.readers.Add(2)
	go func() { defer c.readers.Done(); c.readStdout(stdout) }()
	go func() { defer c.readers.Done(); c.readStderr(stderr) }()
	go func() { // owns the process: waits once both pipes are drained
		c.readers.Wait()
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func withGCTrace(env []string) []string {
	out := make([]string, 0, len(env)+1)
	gd := "gctrace=1"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			if v != "" {
				gd = v + ",gctrace=1"
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "GODEBUG="+gd)
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var cnt Counters
		if json.Unmarshal(line, &cnt) != nil || cnt.At == 0 {
			continue
		}
		c.mu.Lock()
		c.latest = cnt
		if cnt.Final {
			c.final = &cnt
		}
		c.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

func (c *child) readStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if live, ok := parseGCTrace(line); ok {
			c.mu.Lock()
			c.gcs = append(c.gcs, gcSample{at: time.Now(), liveMB: live})
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		c.stderr = append(c.stderr, line...)
		c.stderr = append(c.stderr, '\n')
		if len(c.stderr) > 64<<10 {
			c.stderr = append(c.stderr[:0], c.stderr[len(c.stderr)-64<<10:]...)
		}
		c.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// gcTraceHeap matches "4->5->2 MB" in a gctrace line: heap at GC start, at GC end, live heap.
var gcTraceHeap = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB`)

// parseGCTrace returns the live heap (MB) reported by one GODEBUG=gctrace=1 line.
func parseGCTrace(line string) (float64, bool) {
	if !strings.HasPrefix(line, "gc ") || !strings.Contains(line, " @") {
		return 0, false
	}
	m := gcTraceHeap.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	live, err := strconv.ParseFloat(m[3], 64)
	return live, err == nil
}

// counters returns the last Counters line.
func (c *child) counters() Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest
}

// finalCounters returns the final Counters line, if the child printed one.
func (c *child) finalCounters() (Counters, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final == nil {
		return Counters{}, false
	}
	return *c.final, true
}

// heapIn returns the largest live heap of the collections seen in [from, to], or of the last one
// before to when none happened in the window.
func (c *child) heapIn(from, to time.Time) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	best, found := 0.0, false
	var last *gcSample
	for i := range c.gcs {
		g := &c.gcs[i]
		if g.at.After(to) {
			break
		}
		last = g
		if !g.at.Before(from) {
			best, found = max(best, g.liveMB), true
		}
	}
	if !found && last != nil {
		return last.liveMB, true
	}
	return best, found
}

// stderrText is the last 64 KiB of non-gctrace stderr output.
func (c *child) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(bytes.TrimSpace(c.stderr))
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the child to finish (SIGTERM), kills it after grace, and waits. It returns the CPU
// seconds of its whole life (rusage) and an error when it exited on its own with a failure.
func (c *child) stop(grace time.Duration) (cpuSeconds float64, err error) {
	c.once.Do(func() {
		if !c.exited() {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(grace):
				_ = c.cmd.Process.Kill()
				<-c.done
				c.waitErr = errors.Join(c.waitErr, fmt.Errorf("did not stop within %s after SIGTERM; killed", grace))
			}
		}
	})
	<-c.done
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpuSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	var ee *exec.ExitError
	if c.waitErr != nil && !(errors.As(c.waitErr, &ee) && !ee.Exited()) {
		err = fmt.Errorf("child %s: %w; stderr: %s", c.cmd.Args[1], c.waitErr, tail(c.stderrText(), 2000))
	}
	return cpuSeconds, err
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
