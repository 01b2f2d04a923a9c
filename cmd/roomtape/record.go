package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

type recordFlags struct {
	profileFlags
	channel       string
	out           string
	id            string
	duration      time.Duration
	stopWhenEmpty time.Duration
	jsonOut       bool
	loopback      bool
	mode          string
}

func newRecordCmd(g *globalFlags) *cobra.Command {
	f := &recordFlags{}
	cmd := &cobra.Command{
		Use:   "record --channel C [--signal-url ws://...] [--out DIR] [--duration 30s] [--stop-when-empty 30s]",
		Short: "Record a channel now (no NATS): every remote track to files plus manifest.json",
		Long: "Join the channel as the bot and record until Ctrl-C, --duration or --stop-when-empty.\n" +
			"Credentials come from the config's profile; with none, the built-in demo app's secret key is\n" +
			"used against ws://<signal.listen>, so it works with a `roomtape signal` started without config.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.run(cmd, nil, func(ctx context.Context, lc loadedConfig) error {
				return runRecord(ctx, lc, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.channel, "channel", "", "channel to record (required)")
	cmd.Flags().StringVar(&f.out, "out", "", "output folder (config recorder.out_dir)")
	cmd.Flags().StringVar(&f.id, "id", "", "recording id, the folder name (default: <channel>-<time>)")
	cmd.Flags().DurationVar(&f.duration, "duration", 0, "stop after this long (0 = until Ctrl-C)")
	cmd.Flags().DurationVar(&f.stopWhenEmpty, "stop-when-empty", 0, "stop once nobody else was in the channel for this long")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the final manifest as JSON instead of a table")
	cmd.Flags().BoolVar(&f.loopback, "loopback", false, "gather 127.0.0.1 candidates (peers on this host only)")
	cmd.Flags().StringVar(&f.mode, "mode", "", "record (files), monitor (quality and alerts, no media files) or both (default: config jobs.mode)")
	_ = cmd.MarkFlagRequired("channel")
	return cmd
}

func runRecord(ctx context.Context, lc loadedConfig, f *recordFlags, stdout, stderr io.Writer) error {
	log, err := newLogger(lc.Log, stderr)
	if err != nil {
		return err
	}
	prof, err := f.resolve(lc)
	if err != nil {
		return err
	}
	cc, err := prof.ClientConfig(lc.Bot.PeerID, lc.Bot.PeerMetadata, f.channel)
	if err != nil {
		return err
	}
	netCfg := lc.Bot.Network
	netCfg.IncludeLoopback = netCfg.IncludeLoopback || f.loopback
	tr, err := bot.NewTransport(netCfg, log)
	if err != nil {
		return err
	}
	defer tr.Close()
	out := f.out
	if out == "" {
		out = lc.Recorder.OutDir
	}
	id := f.id
	if id == "" {
		id = fmt.Sprintf("%s-%s-%s", recorder.SafeName(f.channel), time.Now().UTC().Format("20060102T150405Z"), uuid.NewString()[:4])
	}
	live := isTerminal(stderr) && !f.jsonOut
	spec := pipeline.RecordSpec{
		Bot: bot.Config{
			Channel: f.channel, Signalling: cc, Announce: lc.Bot.Announce, LeftGrace: lc.Bot.LeftGrace,
			DeadSessionTimeout: lc.Bot.DeadSessionTimeout, MaxTracksPerPeer: lc.Bot.MaxTracksPerPeer,
		},
		Recorder: recorder.Options{
			Dir: out, ID: id, JitterLatency: lc.Recorder.JitterLatency, FlushInterval: lc.Recorder.FlushInterval,
			CaptureMessages: lc.Recorder.CaptureMessages,
		},
		MaxDuration: f.duration, StopWhenEmpty: f.stopWhenEmpty, Logger: log,
		Mode: f.mode, Monitor: lc.Monitor.monitorConfig(lc.Recorder.JitterLatency),
	}
	if spec.Mode == "" {
		spec.Mode = lc.Jobs.Mode
	}
	if _, err := pipeline.ParseMode(spec.Mode); err != nil {
		return err
	}
	var alerts atomic.Int32
	spec.OnAlert = func(a recorder.Alert) {
		if a.State == recorder.AlertRaised {
			alerts.Add(1)
		} else {
			alerts.Add(-1)
		}
		if !f.jsonOut {
			fmt.Fprintf(stderr, "\r\033[K%s alert %s %s: %s\n", a.At.Local().Format("15:04:05"), a.State, a.Code, a.Message)
		}
	}
	if live {
		spec.Progress = func(p pipeline.Progress) {
			fmt.Fprintf(stderr, "\r\033[K● %s  participants %d  tracks %d  files %d  %s  alerts %d",
				p.Elapsed.Truncate(time.Second), p.Participants, p.Tracks, p.Files, humanBytes(p.Bytes), alerts.Load())
			if p.Done {
				fmt.Fprintln(stderr)
			}
		}
	}
	fmt.Fprintf(stderr, "recording %s into %s\n", f.channel, filepath.Join(out, id))
	m, err := pipeline.Record(ctx, spec, tr)
	if m != nil {
		if f.jsonOut {
			if jerr := writeJSON(stdout, m); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			printSummary(stdout, m, filepath.Join(out, id))
		}
	}
	return err
}

// printSummary shows participants, tracks, files, durations and losses.
func printSummary(w io.Writer, m *recorder.Manifest, dir string) {
	end := time.Now()
	if m.EndedAt != nil {
		end = *m.EndedAt
	}
	fmt.Fprintf(w, "recording %s: %s, %s, %d participants\n", m.RecordingID, m.Status, end.Sub(m.StartedAt).Round(100*time.Millisecond), len(m.Participants))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTICIPANT\tTRACK\tCODEC\tFILE\tSTART\tDURATION\tLOST\tGAPS\tPARTIAL")
	for _, r := range m.Files() {
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%.1fs\t%.1fs\t%d\t%d\t%v\n", r.Participant.PeerID, r.Track.Key, r.Track.Kind,
			r.Track.Codec, r.File.Path, float64(r.File.StartOffsetMs)/1000, float64(r.File.DurationMs)/1000,
			r.File.Lost, len(r.File.Gaps), r.File.Partial)
	}
	_ = tw.Flush()
	printQuality(w, m)
	fmt.Fprintf(w, "manifest: %s\n", filepath.Join(dir, recorder.ManifestName))
	if m.Report != "" {
		fmt.Fprintf(w, "report:   %s\n", filepath.Join(dir, m.Report))
	}
}

// printQuality shows the monitor's per-track summary and the alerts, when monitoring ran.
func printQuality(w io.Writer, m *recorder.Manifest) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	header := false
	for _, p := range m.Participants {
		for _, t := range p.Tracks {
			q := t.Quality
			if q == nil {
				continue
			}
			if !header {
				fmt.Fprintln(tw, "PARTICIPANT\tTRACK\tPACKETS\tLOSS\tLOSS BEFORE NACK\tJITTER\tBITRATE\tFPS\tSIZE\tFREEZES\tSPEECH")
				header = true
			}
			size, speech, fps := "-", "-", "-"
			if q.Width > 0 {
				size = fmt.Sprintf("%dx%d", q.Width, q.Height)
			}
			if t.Kind == "video" {
				fps = fmt.Sprintf("%.1f", q.FPSMean)
			}
			if q.AudioLevel {
				speech = fmt.Sprintf("%.0f%%", q.SpeechPct)
			}
			fmt.Fprintf(tw, "%s\t%s/%s\t%d\t%.2f%%\t%.2f%%\t%.1f ms\t%.0f kbps\t%s\t%s\t%d\t%s\n", p.PeerID, t.Key, t.Kind,
				q.Packets, q.LossPct, q.LossBeforeRecoveryPct, q.JitterMeanMs, q.BitrateMeanBps/1000, fps, size, q.Freezes, speech)
		}
	}
	_ = tw.Flush()
	raised := 0
	for _, a := range m.Alerts {
		if a.State == recorder.AlertRaised {
			raised++
		}
	}
	if raised > 0 {
		fmt.Fprintf(w, "alerts: %d raised (see manifest alerts)\n", raised)
	}
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
