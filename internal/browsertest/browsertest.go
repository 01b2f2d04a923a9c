// Package browsertest runs the real, unmodified @metered-ca/realtime SDK in
// headless Chromium so that tests of other packages can check the signalling
// server (and anything else that talks to browsers) against genuine browser
// participants with a fake camera and microphone.
//
// A test launches a browser with [Launch], opens one [Page] per participant
// with [Browser.NewPage] and drives the SDK through the page's small
// JavaScript API (window.rt, see assets/rt.js):
//
//	b := browsertest.Launch(t)
//	alice := b.NewPage(t)
//	alice.AddCamera(t, map[string]any{"role": "camera"})
//	aliceID := alice.Join(t, browsertest.JoinOptions{URL: wsURL, Token: tok, Channel: "room"})
//	alice.WaitEvent(t, browsertest.RemoteStateIs(bobID, "connected"), 15*time.Second)
//	st := alice.WaitInbound(t, bobID, 10*time.Second, "audio", "video")
//
// The SDK is the UMD build in test/sdk/node_modules (run `npm ci` in test/sdk),
// served with a small test page from an httptest server on 127.0.0.1; nothing
// is fetched from the internet. Chromium comes from $ROOMTAPE_CHROMIUM or
// /usr/bin/chromium (Debian package "chromium"); a missing browser or SDK is a
// test failure, never a skip.
//
// Every page in one browser shares the Chromium process but has its own tab and
// browser context (separate storage). Several browsers may run at once. Pages
// and browsers are closed by t.Cleanup; a browser's cleanup also kills any
// Chromium child process that outlives it.
//
// The helpers call t.Fatal, so call them from the test goroutine only. Methods
// named Try... return errors instead and may be used from any goroutine.
package browsertest

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultTimeout bounds one JavaScript evaluation (and thus one SDK call such as
// join) unless [WithEvalTimeout] sets another value.
const DefaultTimeout = 20 * time.Second

// EnvChromium names the environment variable that overrides the Chromium binary.
const EnvChromium = "ROOMTAPE_CHROMIUM"

// DefaultChromium is the Chromium binary used when EnvChromium is unset.
const DefaultChromium = "/usr/bin/chromium"

// SDKFile is the path of the SDK's UMD build relative to the repository root.
const SDKFile = "test/sdk/node_modules/@metered-ca/realtime/dist/index.umd.js"

var (
	//go:embed assets/index.html
	indexHTML []byte
	//go:embed assets/rt.js
	rtJS []byte
	//go:embed assets/ice.js
	iceJS []byte
)

// Option configures [Launch].
type Option func(*launchConfig)

type launchConfig struct {
	flags         []flag
	evalTimeout   time.Duration
	allInterfaces bool
}

type flag struct {
	name  string
	value any
}

// WithFlag adds or overrides one Chromium command-line switch (name without
// dashes; value is a string, or a bool for a switch without value).
func WithFlag(name string, value any) Option {
	return func(c *launchConfig) { c.flags = append(c.flags, flag{name, value}) }
}

// WithFakeVideoFile makes the fake camera play a .y4m (or .mjpeg) file instead
// of Chromium's built-in pattern (20 fps); a y4m file plays at its own rate.
func WithFakeVideoFile(path string) Option {
	return WithFlag("use-file-for-fake-video-capture", path)
}

// WithFakeAudioFile makes the fake microphone play a .wav file instead of the
// built-in beep.
func WithFakeAudioFile(path string) Option {
	return WithFlag("use-file-for-fake-audio-capture", path)
}

// WithAllInterfaces lets WebRTC use every network interface. By default the
// pages keep ICE on loopback: Chromium gathers host candidates on all
// interfaces (and prefers them over 127.0.0.1), so the page drops every
// non-loopback candidate before the SDK signals it and before it reaches the
// browser (see assets/ice.js). The SDK itself is unchanged.
func WithAllInterfaces() Option {
	return func(c *launchConfig) { c.allInterfaces = true }
}

// WithEvalTimeout sets how long one JavaScript evaluation may take on the
// browser's pages (default DefaultTimeout).
func WithEvalTimeout(d time.Duration) Option {
	return func(c *launchConfig) { c.evalTimeout = d }
}

// Browser is one headless Chromium process plus the 127.0.0.1 web server that
// serves its test page.
type Browser struct {
	ctx         context.Context // chromedp browser context
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	site        *httptest.Server
	tempRoot    string // profile, XDG config and cache homes
	pid         int
	output      *tailBuffer
	evalTimeout time.Duration

	mu     sync.Mutex
	pages  []*Page
	closed bool
}

// ChromiumPath returns the Chromium binary the package uses.
func ChromiumPath() string {
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	return DefaultChromium
}

// RepoRoot returns the directory of go.mod, found by walking up from the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// SDKPath returns the absolute path of the SDK's UMD build.
func SDKPath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, filepath.FromSlash(SDKFile))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is missing (run `cd %s && npm ci`): %w", p, filepath.Join(root, "test", "sdk"), err)
	}
	return p, nil
}

// Launch starts a headless Chromium with a fake camera and microphone and a web
// server for its pages. t.Cleanup closes the browser and its pages.
func Launch(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	cfg := launchConfig{evalTimeout: DefaultTimeout}
	for _, o := range opts {
		o(&cfg)
	}

	exe := ChromiumPath()
	if fi, err := os.Stat(exe); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("browsertest: Chromium not found at %s (install it with `apt-get install -y chromium` or set %s to a Chromium binary): %v",
			exe, EnvChromium, err)
	}
	sdk, err := SDKPath()
	if err != nil {
		t.Fatalf("browsertest: the @metered-ca/realtime SDK is not installed: %v", err)
	}

	site := httptest.NewServer(siteHandler(sdk, !cfg.allInterfaces)) // listens on 127.0.0.1
	// One fresh directory per browser holds the profile and the XDG config and
	// cache homes: Chromium's crashpad handlers (which detach from the browser)
	// then name it on their command lines too, so cleanup can find them.
	tempRoot, err := os.MkdirTemp("", "roomtape-chromium-")
	if err != nil {
		site.Close()
		t.Fatalf("browsertest: temp dir: %v", err)
	}
	output := &tailBuffer{max: 64 << 10}

	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(filepath.Join(tempRoot, "profile")),
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(tempRoot, "config"), "XDG_CACHE_HOME="+filepath.Join(tempRoot, "cache")),
		chromedp.CombinedOutput(output),
		// Own process group (so cleanup can find every child) and SIGKILL when
		// the test binary dies (chromedp starts the browser from a locked thread).
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		}),
	}
	// The switches the project's test environment documents, plus the usual
	// automation ones (no background throttling of the participant tabs, no
	// extensions, no crash reporting).
	flags = append(flags,
		chromedp.Headless, // also hide-scrollbars, mute-audio
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-hang-monitor", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
	)
	for _, f := range cfg.flags {
		flags = append(flags, chromedp.Flag(f.name, f.value))
	}

	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(output.logf), chromedp.WithErrorf(output.logf))
	b := &Browser{
		ctx: ctx, cancel: cancel, allocCancel: allocCancel, site: site,
		tempRoot: tempRoot, output: output, evalTimeout: cfg.evalTimeout,
	}
	t.Cleanup(func() { b.close(t) })

	// The first Run starts the browser and binds it to ctx, so it must not get
	// a timeout context; a timer cancels a browser that never comes up.
	start := time.Now()
	timer := time.AfterFunc(60*time.Second, cancel)
	err = chromedp.Do(ctx)
	timer.Stop()
	if err != nil {
		t.Fatalf("browsertest: starting %s: %v\nChromium output:\n%s", exe, err, output.String())
	}
	if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		b.pid = c.Browser.Process().Pid
	}
	t.Logf("browsertest: Chromium pid %d started in %v (pages served from %s)", b.pid, time.Since(start).Round(time.Millisecond), site.URL)
	return b
}

// Origin is the page origin (http://127.0.0.1:PORT), the Origin header of the
// pages' WebSocket connections.
func (b *Browser) Origin() string { return b.site.URL }

// Processes counts the live (non-zombie) processes of this browser: the main
// Chromium process, its process group and every process whose command line
// names the browser's temporary directory.
func (b *Browser) Processes() int {
	return len(browserProcesses(b.pid, b.tempRoot))
}

// Close closes every page and the browser, and kills Chromium processes that
// outlive it. t.Cleanup calls it; calling it earlier is allowed.
func (b *Browser) Close(t testing.TB) {
	t.Helper()
	b.close(t)
}

func (b *Browser) close(t testing.TB) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	pages := append([]*Page(nil), b.pages...)
	b.mu.Unlock()

	start := time.Now()
	for _, p := range pages {
		p.close(t, false)
	}
	b.debugf(t, "pages closed after %v", time.Since(start))
	// Graceful close first (Browser.close), then make sure.
	cctx, ccancel := context.WithTimeout(b.ctx, 5*time.Second)
	if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("browsertest: closing Chromium: %v", err)
	}
	ccancel()
	b.cancel()
	b.allocCancel() // waits until the browser process is reaped
	b.site.Close()
	b.debugf(t, "browser process %d gone after %v", b.pid, time.Since(start))

	// Chromium normally takes every child with it; crashpad handlers detach and
	// exit a moment later. Whatever is left after a short grace is killed.
	deadline := time.Now().Add(2 * time.Second)
	for b.Processes() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if killed := killLeftovers(b.pid, b.tempRoot); len(killed) > 0 {
		t.Logf("browsertest: killed Chromium processes that outlived the browser: %v", killed)
	}
	b.debugf(t, "all processes gone after %v", time.Since(start))
	if err := removeAllRetry(b.tempRoot); err != nil {
		t.Logf("browsertest: removing %s: %v", b.tempRoot, err)
	}
	if t.Failed() {
		if out := b.output.String(); strings.TrimSpace(out) != "" {
			t.Logf("browsertest: Chromium output (tail):\n%s", out)
		}
	}
}

// debugf logs when $ROOMTAPE_BROWSERTEST_VERBOSE is set.
func (b *Browser) debugf(t testing.TB, format string, args ...any) {
	if os.Getenv("ROOMTAPE_BROWSERTEST_VERBOSE") != "" {
		t.Logf("browsertest: "+format, args...)
	}
}

func siteHandler(sdkPath string, loopbackOnly bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ice.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "window.__rtLoopbackOnly = %t;\n", loopbackOnly)
		w.Write(iceJS)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(indexHTML)
	})
	mux.HandleFunc("GET /rt.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(rtJS)
	})
	mux.HandleFunc("GET /sdk/index.umd.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFile(w, r, sdkPath)
	})
	return mux
}

// killLeftovers SIGKILLs the browser's processes (see browserProcesses) until
// a few passes in a row find none, and describes what it killed.
func killLeftovers(pgid int, tempRoot string) []string {
	var killed []string
	deadline := time.Now().Add(3 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n := 0
		for _, pid := range browserProcesses(pgid, tempRoot) {
			comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
				killed = append(killed, fmt.Sprintf("%d(%s)", pid, strings.TrimSpace(string(comm))))
			}
		}
		if n == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return killed
}

// browserProcesses lists the live (non-zombie) processes in process group pgid
// or whose command line or environment contains tempRoot+"/". Chromium passes
// the user data dir to its children, crashpad gets its database under
// XDG_CONFIG_HOME, and every child inherits XDG_CONFIG_HOME and XDG_CACHE_HOME.
func browserProcesses(pgid int, tempRoot string) []int {
	want := []byte(tempRoot + string(filepath.Separator))
	self := os.Getpid()
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		st, ok := procStat(pid)
		if !ok || st.state == 'Z' {
			continue
		}
		if pgid > 0 && st.pgrp == pgid {
			pids = append(pids, pid)
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(cmdline, want) {
			pids = append(pids, pid)
			continue
		}
		// Every child inherits the XDG_* variables that name tempRoot.
		if environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil && bytes.Contains(environ, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

type stat struct {
	state byte
	pgrp  int
}

// procStat reads the state and process group of pid from /proc/PID/stat.
func procStat(pid int) (stat, bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, false
	}
	// "pid (comm) S ppid pgrp ...": comm may hold spaces, so start after the last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return stat{}, false
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return stat{}, false
	}
	return stat{state: f[0][0], pgrp: pgrp}, true
}

// removeAllRetry removes dir, retrying while it fails or reappears (a dying
// Chromium child can still create files in its cache or profile).
func removeAllRetry(dir string) error {
	var err error
	gone := 0
	for i := 0; i < 100 && gone < 3; i++ {
		if err = os.RemoveAll(dir); err == nil {
			if _, serr := os.Stat(dir); os.IsNotExist(serr) {
				gone++
			} else {
				gone = 0
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil && gone < 3 {
		err = fmt.Errorf("%s keeps reappearing", dir)
	}
	return err
}

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) logf(format string, args ...any) {
	fmt.Fprintf(b, "chromedp: "+format+"\n", args...)
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

var _ io.Writer = (*tailBuffer)(nil)
