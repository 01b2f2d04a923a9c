package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/roomtape/roomtape/pipeline"
)

type submitFlags struct {
	channel, id, profile, prefix string
	mode                         string
	duration, stopWhenEmpty      time.Duration
	codecs, labels               []string
	capture, announce            bool
	wait, jsonOut                bool
}

func newSubmitCmd(g *globalFlags) *cobra.Command {
	f := &submitFlags{}
	cmd := &cobra.Command{
		Use:   "submit --channel C [--duration 1h] [--id ID] [--label k=v] [--wait]",
		Short: "Submit a recording job to the queue (optionally follow it until it ends)",
		Long: "Submit a recording job. The id is the idempotency key: submitting the same id again does\n" +
			"not start a second recording. With --wait, follow the job's events with a live status and\n" +
			"print the manifest summary at the end (with --json: one JSON event per line).",
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	fl.StringVar(&f.channel, "channel", "", "channel to record (required)")
	fl.StringVar(&f.id, "id", "", "job id, 1-64 of A-Z a-z 0-9 _ - (default: <channel>-<time>-<random>)")
	fl.StringVar(&f.profile, "profile", "", "signalling profile (default: config jobs.profile)")
	fl.DurationVar(&f.duration, "duration", 0, "maximum recording length (default: config jobs.max_duration)")
	fl.DurationVar(&f.stopWhenEmpty, "stop-when-empty", 0, "stop once nobody else was in the channel this long (0 = never; default: config jobs.stop_when_empty)")
	fl.StringSliceVar(&f.codecs, "codecs", nil, "codecs to negotiate, e.g. opus,vp8 (default: the worker's)")
	fl.StringVar(&f.mode, "mode", "", "record (files), monitor (quality and alerts, no media files) or both (default: config jobs.mode)")
	fl.StringVar(&f.prefix, "prefix", "", "output folder under the worker's recorder.out_dir, e.g. acme/2026")
	fl.StringArrayVar(&f.labels, "label", nil, "label k=v echoed in every event (repeatable)")
	fl.BoolVar(&f.capture, "capture-messages", true, "write channel messages to messages.jsonl (default: the worker's)")
	fl.BoolVar(&f.announce, "announce", true, "announce the recording on the channel (default: the worker's)")
	fl.BoolVar(&f.wait, "wait", false, "follow the job until it finishes or fails")
	fl.BoolVar(&f.jsonOut, "json", false, "JSON output")
	_ = cmd.MarkFlagRequired("channel")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return g.run(cmd, nil, func(ctx context.Context, lc loadedConfig) error {
			j, err := f.job(cmd)
			if err != nil {
				return err
			}
			return runSubmit(ctx, lc, j, f.wait, f.jsonOut, cmd.OutOrStdout(), cmd.ErrOrStderr())
		})
	}
	return cmd
}

// job builds the job from the flags; options not given on the command line are left to the
// worker's defaults.
func (f *submitFlags) job(cmd *cobra.Command) (pipeline.Job, error) {
	id := f.id
	if id == "" {
		id = newJobID(f.channel)
	}
	j := pipeline.Job{Version: pipeline.JobVersion, ID: id, Channel: f.channel, Profile: f.profile}
	fl := cmd.Flags()
	j.Options.MaxDuration = pipeline.Duration(f.duration)
	if fl.Changed("stop-when-empty") {
		d := pipeline.Duration(f.stopWhenEmpty)
		j.Options.StopWhenEmpty = &d
	}
	if len(f.codecs) > 0 {
		j.Options.Codecs = f.codecs
	}
	j.Options.OutputPrefix = f.prefix
	j.Options.Mode = f.mode
	if fl.Changed("capture-messages") {
		j.Options.CaptureMessages = &f.capture
	}
	if fl.Changed("announce") {
		j.Options.Announce = &f.announce
	}
	for _, kv := range f.labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return j, fmt.Errorf("--label %q: want key=value", kv)
		}
		if j.Labels == nil {
			j.Labels = map[string]string{}
		}
		j.Labels[k] = v
	}
	return j, j.Validate()
}

// newJobID is <channel>-<UTC time>-<random>, with the channel reduced to id characters.
func newJobID(channel string) string {
	var b strings.Builder
	for _, r := range channel {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
		if b.Len() >= 36 {
			break
		}
	}
	return fmt.Sprintf("%s-%s-%s", strings.Trim(b.String(), "-"), time.Now().UTC().Format("20060102T150405Z"), uuid.NewString()[:6])
}

// openClientQueue connects a client command to the queue.
func openClientQueue(ctx context.Context, lc loadedConfig, name string, log *slog.Logger) (*pipeline.Queue, func(), error) {
	nc, err := pipeline.Dial(lc.NATS, name, log)
	if err != nil {
		return nil, nil, err
	}
	q, err := pipeline.OpenQueue(ctx, nc, lc.NATS, log)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return q, func() { drainConn(nc, 5*time.Second) }, nil
}

func runSubmit(ctx context.Context, lc loadedConfig, j pipeline.Job, wait, jsonOut bool, stdout, stderr io.Writer) error {
	log, err := newLogger(lc.Log, stderr)
	if err != nil {
		return err
	}
	q, done, err := openClientQueue(ctx, lc, "roomtape submit", log)
	if err != nil {
		return err
	}
	defer done()
	res, err := q.Submit(ctx, j)
	if err != nil {
		return err
	}
	switch {
	case jsonOut && !wait:
		return writeJSON(stdout, res)
	case res.Duplicate:
		fmt.Fprintf(stderr, "job %s was already submitted (%s): not submitted again\n", j.ID, res.State.State)
	default:
		fmt.Fprintf(stderr, "submitted job %s (channel %s)\n", j.ID, j.Channel)
	}
	if !wait {
		if !jsonOut {
			fmt.Fprintln(stdout, j.ID)
		}
		return nil
	}
	return followJob(ctx, q, j.ID, jsonOut, stdout, stderr)
}

// followJob prints a job's events until it finishes or fails: a live status line on a terminal
// (a line per event otherwise), then the manifest summary; with jsonOut, one event per line.
func followJob(ctx context.Context, q *pipeline.Queue, id string, jsonOut bool, stdout, stderr io.Writer) error {
	live := newLiveStatus(id, stderr, isTerminal(stderr) && !jsonOut)
	defer live.stop()
	var final pipeline.Event
	enc := json.NewEncoder(stdout)
	err := q.Follow(ctx, id, func(ev pipeline.Event) bool {
		if jsonOut {
			_ = enc.Encode(ev)
		} else {
			live.update(ev)
		}
		if ev.Final() {
			final = ev
			return false
		}
		return true
	})
	live.stop()
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "stopped following; the job goes on (roomtape status %s)\n", id)
		return nil
	}
	if err != nil {
		return err
	}
	if final.Type == pipeline.EventFailed {
		return fmt.Errorf("job %s failed: %s", id, final.Reason)
	}
	if !jsonOut {
		if final.Manifest != nil {
			printSummary(stdout, final.Manifest, filepath.Dir(final.ManifestPath))
		} else {
			fmt.Fprintf(stdout, "job %s finished: %s\n", id, orNone(final.Reason))
		}
	}
	return nil
}

// liveStatus renders a job's progress from its events.
type liveStatus struct {
	id    string
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	state string
	// counts from events
	worker       string
	attempt      int
	since        time.Time
	participants map[string]bool
	tracks       int
	warnings     int
	quit         chan struct{}
	once         sync.Once
	ticker       sync.WaitGroup
}

func newLiveStatus(id string, w io.Writer, tty bool) *liveStatus {
	l := &liveStatus{id: id, w: w, tty: tty, state: "queued", participants: map[string]bool{}, quit: make(chan struct{})}
	if tty {
		l.ticker.Add(1)
		go func() {
			defer l.ticker.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-l.quit:
					return
				case <-t.C:
					l.mu.Lock()
					l.render()
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

func (l *liveStatus) stop() {
	l.once.Do(func() {
		close(l.quit)
		l.ticker.Wait()
		if l.tty {
			l.mu.Lock()
			l.render()
			fmt.Fprintln(l.w)
			l.mu.Unlock()
		}
	})
}

// update applies one event; without a terminal each notable event becomes one line.
func (l *liveStatus) update(ev pipeline.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := ""
	switch ev.Type {
	case pipeline.EventQueued:
		l.state = "queued"
	case pipeline.EventStarted:
		l.state, l.worker, l.attempt, l.since = "recording", ev.Worker, ev.Attempt, ev.Time
		l.participants, l.tracks = map[string]bool{}, 0
		line = fmt.Sprintf("recording on %s (attempt %d)", ev.Worker, ev.Attempt)
	case pipeline.EventParticipantJoined:
		l.participants[ev.Peer] = true
		line = ev.Peer + " joined"
	case pipeline.EventParticipantLeft:
		delete(l.participants, ev.Peer)
		line = ev.Peer + " left"
	case pipeline.EventTrackStarted:
		l.tracks++
		line = fmt.Sprintf("%s: %s track started (%s)", ev.Peer, trackName(ev.Track), codecOf(ev.Track))
	case pipeline.EventTrackEnded:
		l.tracks--
		line = fmt.Sprintf("%s: %s track ended (%s)", ev.Peer, trackName(ev.Track), ev.Reason)
	case pipeline.EventFirstKeyframe:
		line = fmt.Sprintf("first keyframe written %.2fs after submission", float64(ev.ElapsedMs)/1000)
	case pipeline.EventWarning:
		l.warnings++
		line = fmt.Sprintf("warning %s: %s", ev.Warning, ev.Reason)
		if ev.Warning == pipeline.WarnHandedOff || ev.Warning == pipeline.WarnRetrying {
			l.state = "queued"
		}
	case pipeline.EventStopping:
		l.state = "stopping"
		line = "stop requested"
	case pipeline.EventFinished:
		l.state = "done"
		line = "finished: " + orNone(ev.Reason)
	case pipeline.EventFailed:
		l.state = "failed"
		line = "failed: " + ev.Reason
	}
	if l.tty {
		l.render()
		return
	}
	if line != "" {
		fmt.Fprintf(l.w, "%s %s: %s\n", ev.Time.Local().Format("15:04:05"), l.id, line)
	}
}

// render redraws the status line (caller holds mu).
func (l *liveStatus) render() {
	elapsed := ""
	if !l.since.IsZero() {
		elapsed = "  " + time.Since(l.since).Truncate(time.Second).String()
	}
	who := ""
	if l.worker != "" {
		who = fmt.Sprintf(" on %s (attempt %d)", l.worker, l.attempt)
	}
	fmt.Fprintf(l.w, "\r\033[K● %s %s%s%s  participants %d  tracks %d  warnings %d", l.id, l.state, who, elapsed,
		len(l.participants), l.tracks, l.warnings)
}

func trackName(t *pipeline.EventTrack) string {
	if t == nil {
		return "?"
	}
	if t.Role != "" {
		return t.Role + "/" + t.Kind
	}
	return t.Kind
}

func codecOf(t *pipeline.EventTrack) string {
	if t == nil {
		return ""
	}
	return t.Codec
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
