package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/roomtape/roomtape/internal/mediabench"
)

// mediaBenchFlags are the flags shared by `bench record` and `bench bot`.
type mediaBenchFlags struct {
	o    mediabench.Options
	json bool
}

func (f *mediaBenchFlags) register(cmd *cobra.Command, defaultSizes []int) {
	fl := cmd.Flags()
	fl.IntSliceVar(&f.o.Participants, "participants", defaultSizes, "fleet sizes to measure (publishers with Opus 20 ms + VP8 each)")
	fl.DurationVar(&f.o.Duration, "duration", 20*time.Second, "measured window per receiver and size")
	fl.DurationVar(&f.o.Warmup, "warmup", 5*time.Second, "unmeasured time after every track is receiving (0 = 5s)")
	fl.DurationVar(&f.o.ConnectTimeout, "connect-timeout", 0, "wait for every track to receive (default 30s + 300ms per participant)")
	fl.StringVar(&f.o.Video, "video", "", "IVF (VP8) clip to send (default: generate ~1 Mbps 640x480 VP8 with ffmpeg)")
	fl.IntVar(&f.o.Repeat, "repeat", 1, "measure every receiver this many times per size (alternating order); the table shows the median run")
	fl.BoolVar(&f.o.Baseline, "baseline", true, "also measure the bare pion receiver at every size")
	fl.StringVar(&f.o.TempDir, "tmp", "", "parent folder of the run's temporary files (default: the system's)")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON (the table then goes to stderr)")
}

func newBenchRecordCmd(g *globalFlags) *cobra.Command {
	f := &mediaBenchFlags{}
	cmd := &cobra.Command{
		Use:   "record",
		Short: "Measure `roomtape record` per participant against a bare pion save-to-disk loop",
		Long: "Start N Go publishers (Opus 20 ms + VP8 ~1 Mbps) in one channel of an in-process signalling server,\n" +
			"then record them with a bare pion save-to-disk loop (pion defaults, oggwriter/ivfwriter, no jitter\n" +
			"buffer) and with `roomtape record`, each as its own child process, one after the other. For each:\n" +
			"CPU cores per participant over the window (utime+stime of the child from /proc), Go heap (gctrace)\n" +
			"and RSS per track, packets lost/dropped (recorder: from its manifest), and the recorder/bare CPU ratio.\n" +
			"With --monitor (default) `roomtape record --mode both` is measured too: the cost of call monitoring\n" +
			"over recording alone (`--mode record`), same publishers, same run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMediaBench(cmd, g, f, mediabench.RunRecord)
		},
	}
	f.register(cmd, []int{10, 50, 100})
	cmd.Flags().BoolVar(&f.o.Monitor, "monitor", true, "also measure `roomtape record --mode both` (recording + call monitoring) against --mode record")
	return cmd
}

func newBenchBotCmd(g *globalFlags) *cobra.Command {
	f := &mediaBenchFlags{}
	cmd := &cobra.Command{
		Use:   "bot",
		Short: "Measure how many publishers one bot process keeps connected and receiving, against bare pion",
		Long: "Ramp N Go publishers (Opus 20 ms + VP8 ~1 Mbps) in one channel; at each size run a bare pion receiver\n" +
			"(pion defaults, read-and-discard) and the roomtape bot with a read-and-discard consumer, each as its own\n" +
			"child process. Reports CPU and memory per peer and the largest size each kept connected and receiving.\n" +
			"The ramp stops after the first size at which neither receiver kept up (--keep-going measures all).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMediaBench(cmd, g, f, mediabench.RunBot)
		},
	}
	f.register(cmd, []int{10, 25, 50, 100, 150})
	cmd.Flags().Float64Var(&f.o.MinRecvRatio, "min-recv-ratio", 0.95, "share of sent packets a receiver must get to count as keeping up")
	cmd.Flags().BoolVar(&f.o.KeepGoing, "keep-going", false, "measure every size even after both receivers fell behind")
	return cmd
}

func runMediaBench(cmd *cobra.Command, g *globalFlags, f *mediaBenchFlags, run func(context.Context, mediabench.Options) (*mediabench.Report, error)) error {
	log, err := newLogger(LogConfig{Level: orDefault(g.logLevel, "warn"), Format: orDefault(g.logFormat, "auto")}, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find own binary: %w", err)
	}
	maxN := 0
	for _, n := range f.o.Participants {
		maxN = max(maxN, n)
	}
	if err := raiseFileLimit(uint64(maxN)*16 + 1024); err != nil { // sockets of publishers and children
		return err
	}
	o := f.o
	o.Exe, o.Logger, o.Progress = exe, log, cmd.ErrOrStderr()
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if rep != nil {
		if perr := printMediaReport(cmd.OutOrStdout(), cmd.ErrOrStderr(), rep, f.json); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// printMediaReport prints the table to stdout, or the JSON to stdout and the table to stderr
// (after the progress lines) so that one run gives both.
func printMediaReport(stdout, stderr io.Writer, rep *mediabench.Report, asJSON bool) error {
	if !asJSON {
		return mediabench.WriteTable(stdout, rep)
	}
	fmt.Fprintln(stderr)
	if err := mediabench.WriteTable(stderr, rep); err != nil {
		return err
	}
	return writeJSON(stdout, rep)
}

// newBenchReceiverCmd is the child of `bench record` and `bench bot`: a bot or bare pion receiver
// that prints its packet counters as JSON lines. It reads no configuration file.
func newBenchReceiverCmd(g *globalFlags) *cobra.Command {
	rc := mediabench.ReceiverConfig{}
	cmd := &cobra.Command{
		Use:    "receiver",
		Short:  "Benchmark child: receive every track of a channel and print packet counters",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(LogConfig{Level: orDefault(g.logLevel, "warn"), Format: orDefault(g.logFormat, "json")}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			rc.Logger = log
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return mediabench.RunReceiver(ctx, rc, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&rc.SignalURL, "signal-url", "", "signalling origin (built-in demo app)")
	fl.StringVar(&rc.Channel, "channel", "", "channel to receive")
	fl.StringVar(&rc.PeerID, "peer-id", "~bench-receiver", "peer id (must start with ~)")
	fl.StringVar(&rc.Stack, "stack", mediabench.StackPion, "bot or pion")
	fl.StringVar(&rc.Sink, "sink", mediabench.SinkDiscard, "discard or disk (pion only)")
	fl.StringVar(&rc.Out, "out", "", "with --sink disk: output folder")
	fl.DurationVar(&rc.Interval, "interval", 250*time.Millisecond, "counter line interval")
	return cmd
}
