package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/roomtape/roomtape/signalling/loadtest"
)

// benchConfig is everything `roomtape bench signal` needs besides the global configuration.
type benchConfig struct {
	load     loadtest.Options // URL, key and probe are filled in by runBench
	url      string           // existing server; "" starts one as a child process
	app      string           // with url: app whose secret key signs the tokens
	keyID    string           // with url: secret key id
	baseline bool             // also measure a bare coder/websocket echo server
	json     bool
}

func newBenchCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load benchmarks",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchSignalCmd(g), newBenchEchoServerCmd(), newBenchRecordCmd(g), newBenchBotCmd(g), newBenchReceiverCmd(g))
	return cmd
}

func newBenchSignalCmd(g *globalFlags) *cobra.Command {
	bc := &benchConfig{}
	o := &bc.load
	cmd := &cobra.Command{
		Use:   "signal",
		Short: "Load-test the signalling server: heap per idle connection, direct throughput, latency, presence fan-out",
		Long: "Connect --conns clients (one JWT each) subscribed round robin to --channels channels and measure the\n" +
			"server's heap per idle connection (after a forced GC), then, with those clients still connected,\n" +
			"direct-message throughput over --pairs sender/receiver pairs, send→receive latency at --rate msg/s,\n" +
			"and the presence fan-out time of a --fanout member channel.\n\n" +
			"By default the server is started as a child process of this binary (`roomtape signal` with a\n" +
			"temporary config: one app, a fresh secret key, rate limiting off) and, with --baseline, a bare\n" +
			"coder/websocket echo server is measured first with the same clients. With --url an existing server\n" +
			"is used; its secret key comes from --config (--app, --key-id) and its heap from /metrics.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(LogConfig{Level: orDefault(g.logLevel, "info"), Format: orDefault(g.logFormat, "auto")}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if bc.url != "" {
				lc, err := g.load(nil)
				if err != nil {
					return err
				}
				key, err := selectSecretKey(lc.Signal, bc.app, bc.keyID)
				if err != nil {
					return err
				}
				o.KeyID, o.Secret = key.ID, key.Secret
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBench(ctx, bc, log, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Conns, "conns", 1000, "idle connections held for the whole run")
	f.IntVar(&o.Channels, "channels", 100, "channels the idle connections subscribe to, round robin")
	f.IntVar(&o.Rate, "rate", 5000, "offered messages per second in the latency phase")
	f.DurationVar(&o.Duration, "duration", 5*time.Second, "measured length of the throughput and of the latency phase")
	f.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured warm-up before each timed phase")
	f.DurationVar(&o.Settle, "settle", 2*time.Second, "wait after connecting before sampling the server's memory")
	f.IntVar(&o.Pairs, "pairs", 50, "sender/receiver pairs for the throughput and latency phases")
	f.IntVar(&o.Window, "window", 32, "messages in flight per pair in the throughput phase (keep below signal.send_queue)")
	f.IntVar(&o.Payload, "payload", 128, "padding bytes in each message's data")
	f.IntVar(&o.FanoutMembers, "fanout", 100, "members of the presence fan-out channel (negative skips the phase)")
	f.IntVar(&o.FanoutTrials, "fanout-trials", 20, "newcomers that join the fan-out channel, one at a time")
	f.StringVar(&bc.url, "url", "", "ws:// origin of an existing server (default: start one as a child process)")
	f.StringVar(&bc.app, "app", "", "with --url: app whose secret key signs the tokens (default: the first)")
	f.StringVar(&bc.keyID, "key-id", "", "with --url: secret key id (default: the app's first)")
	f.BoolVar(&bc.baseline, "baseline", true, "also measure a bare coder/websocket echo server (child process) for comparison")
	f.BoolVar(&bc.json, "json", false, "print the report as JSON")
	return cmd
}

// runBench measures the baseline (if asked) and the signalling server, then prints the report.
func runBench(ctx context.Context, bc *benchConfig, log *slog.Logger, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find own binary: %w", err)
	}
	fanout := max(bc.load.FanoutMembers, 0) + bc.load.FanoutTrials
	if err := raiseFileLimit(uint64(bc.load.Conns+fanout) + 1024); err != nil {
		return err
	}
	target := "child process"
	if bc.url != "" {
		target = bc.url
	}
	rep := loadtest.Report{Command: strings.Join(os.Args, " "), Env: loadtest.CurrentEnvironment(target)}
	if bc.baseline {
		o := bc.load
		o.Echo, o.KeyID, o.Secret, o.Log = true, "", "", log
		rep.Baseline, err = benchChild(ctx, exe, []string{"bench", "echo-server", "--listen", "127.0.0.1:0", "--debug-listen", "127.0.0.1:0"}, o)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}
	o := bc.load
	o.Log = log
	if bc.url != "" {
		o.URL = strings.TrimRight(bc.url, "/")
		o.Probe = &loadtest.HTTPProbe{MetricsURL: "http" + strings.TrimPrefix(o.URL, "ws") + "/metrics"}
		rep.Signal, err = loadtest.Run(ctx, o)
	} else {
		rep.Signal, err = benchSignalChild(ctx, exe, o)
	}
	if err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	rep.Checks = loadtest.Checks(rep.Signal)
	if bc.json {
		return writeJSON(stdout, rep)
	}
	return loadtest.WriteTable(stdout, rep)
}

// benchSignalChild runs `roomtape signal` as a child with a temporary configuration holding a
// fresh secret key, and measures it.
func benchSignalChild(ctx context.Context, exe string, o loadtest.Options) (*loadtest.Result, error) {
	dir, err := os.MkdirTemp("", "roomtape-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("bench: secret: %w", err)
	}
	o.KeyID, o.Secret = "sk_id_bench", "sk_secret_"+hex.EncodeToString(secret)
	cfg := fmt.Sprintf(`log:
  level: warn
signal:
  apps:
    - id: bench
      secret_keys:
        - id: %s
          secret: %s
  rate_limit:
    enabled: false
`, o.KeyID, o.Secret)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return benchChild(ctx, exe, []string{"signal", "--config", path, "--listen", "127.0.0.1:0", "--debug-listen", "127.0.0.1:0"}, o)
}

// benchChild starts exe with args, measures it with o (URL and probe filled in) and stops it.
func benchChild(ctx context.Context, exe string, args []string, o loadtest.Options) (res *loadtest.Result, err error) {
	p, err := loadtest.StartProcess(ctx, loadtest.ProcessConfig{Path: exe, Args: args, WantDebug: true})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := p.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if res != nil {
			res.Problems = append(res.Problems, serverWarnings(p.Stderr())...)
		}
	}()
	o.URL = p.URL
	o.Probe = &loadtest.HTTPProbe{DebugURL: p.DebugURL, PID: p.PID()}
	o.ServerPID = p.PID()
	return loadtest.Run(ctx, o)
}

// serverWarnings turns what the child logged (at warn level and above) into report lines.
func serverWarnings(stderr string) []string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	out := []string{fmt.Sprintf("server logged %d lines at warn or above; first: %s", len(lines), lines[0])}
	if len(lines) > 1 {
		out = append(out, "last: "+lines[len(lines)-1])
	}
	return out
}

// raiseFileLimit lifts RLIMIT_NOFILE to at least n (root may raise the hard limit); child
// processes inherit it.
func raiseFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("bench: getrlimit: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	want := lim
	want.Cur = n
	if want.Max < n {
		want.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("bench: raise open-file limit to %d (now %d, hard %d): %w", n, lim.Cur, lim.Max, err)
	}
	return nil
}

func newBenchEchoServerCmd() *cobra.Command {
	var listen, debugListen string
	cmd := &cobra.Command{
		Use:    "echo-server",
		Short:  "Serve the benchmark baseline: a bare coder/websocket echo server",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runEchoServer(ctx, listen, debugListen, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "listen address")
	cmd.Flags().StringVar(&debugListen, "debug-listen", "", "serve net/http/pprof on this address (off by default)")
	return cmd
}

// runEchoServer announces itself like `roomtape signal` and serves until ctx ends.
func runEchoServer(ctx context.Context, listen, debugListen string, stdout io.Writer) (err error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	fmt.Fprintf(stdout, "listening on ws://%s\n", ln.Addr())
	if debugListen != "" {
		dbg, err := startDebug(debugListen, stdout)
		if err != nil {
			_ = ln.Close()
			return err
		}
		defer func() { err = errors.Join(err, dbg.Close()) }()
	}
	return loadtest.ServeEcho(ctx, ln)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
