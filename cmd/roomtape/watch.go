package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/roomtape/roomtape/internal/watchview"
	"github.com/roomtape/roomtape/pipeline"
)

// watchRedraw is the shortest time between two redraws of the terminal view (≤ 4 per second);
// the view is also redrawn every watchRefresh so that elapsed times and ages move.
const (
	watchRedraw  = 250 * time.Millisecond
	watchRefresh = time.Second
)

func newWatchCmd(g *globalFlags) *cobra.Command {
	var jsonOut, once bool
	cmd := &cobra.Command{
		Use:   "watch JOB",
		Short: "Live view of one job: participants, tracks, quality stats and alerts",
		Long: "Show one job live: its state, participants and their tracks (bitrate, loss, jitter, fps,\n" +
			"resolution, audio level, freezes) from the monitor's stats events, and active and recent\n" +
			"alerts. The job's events so far are replayed first, then new ones are shown as they come.\n" +
			"On a terminal the view is redrawn in place; otherwise a text block is printed per stats\n" +
			"event and a line per other notable event. Ends (exit 0) with a short summary once the job\n" +
			"has finished or failed; Ctrl-C stops watching and leaves the job running.\n" +
			"With --json, every event is printed as one JSON line as published.",
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().String("nats-url", "", "\"embedded\" or nats://host:port,... (config nats.url)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print each event as one JSON line (for scripts)")
	cmd.Flags().BoolVar(&once, "once", false, "print the job's current view (or its events so far, with --json) and exit")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id := args[0]
		if err := pipeline.ValidateJobID(id); err != nil {
			return &pipeline.JobError{Field: "id", Msg: err.Error()}
		}
		bound := map[string]*pflag.Flag{"nats.url": cmd.Flags().Lookup("nats-url")}
		return g.runClient(cmd, bound, func(ctx context.Context, q *pipeline.Queue) error {
			stdout := cmd.OutOrStdout()
			o := watchOptions{json: jsonOut, once: once, tty: isTerminal(stdout), size: termSize(stdout)}
			return runWatch(ctx, q, id, o, stdout, cmd.ErrOrStderr())
		})
	}
	return cmd
}

type watchOptions struct {
	json, once bool
	// tty: redraw the view in place; size returns the terminal's columns and rows (0 = unknown).
	tty  bool
	size func() (int, int)
}

// termSize reads the size of w's terminal at each call (it may be resized while watching).
func termSize(w io.Writer) func() (int, int) {
	return func() (int, int) {
		f, ok := w.(*os.File)
		if !ok {
			return 0, 0
		}
		cols, rows, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return 0, 0
		}
		return cols, rows
	}
}

// watchMsg is one stored event: its JSON and stream sequence.
type watchMsg struct {
	data []byte
	seq  uint64
}

// runWatch shows job id until its final event, ctx ends, or (once) the stored events are shown.
func runWatch(ctx context.Context, q *pipeline.Queue, id string, o watchOptions, stdout, stderr io.Writer) error {
	st, err := q.Status(ctx, id)
	if errors.Is(err, pipeline.ErrNotFound) {
		return fmt.Errorf("%w (roomtape jobs lists the known jobs)", err)
	}
	if err != nil {
		return err
	}
	v := watchview.New(st)
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, last, err := subscribeEvents(subCtx, q, id)
	if err != nil {
		return err
	}
	w := &watcher{v: v, o: o, out: stdout}
	if o.tty && !o.json && !o.once {
		defer w.restoreCursor()
	}
	// The header: the state record, before any event.
	switch {
	case o.json:
		fmt.Fprintf(stderr, "watching %s\n", v.HeaderLine())
	case o.tty && !o.once:
		w.draw(true)
	case !o.once:
		fmt.Fprintf(stdout, "watching %s\n", v.HeaderLine())
	}
	caughtUp := last == 0
	var tick <-chan time.Time
	if o.tty && !o.json && !o.once {
		t := time.NewTicker(watchRedraw)
		defer t.Stop()
		tick = t.C
	}
	for {
		if caughtUp && !w.caughtUp {
			w.caughtUp = true
			w.onCaughtUp()
			if !v.Final() && st.Terminal() {
				// The job ended but its final event is gone (events are kept for
				// nats.events_max_age, states longer): the state record has the end.
				w.finish(stdout, false)
				return nil
			}
			if o.once && !v.Final() {
				return nil
			}
		}
		if v.Final() && w.caughtUp {
			w.finish(stdout, true)
			return nil
		}
		select {
		case <-ctx.Done():
			if o.tty && !o.json && !o.once {
				w.draw(true)
			}
			fmt.Fprintf(stderr, "stopped watching; the job goes on (roomtape status %s)\n", id)
			return nil
		case <-tick:
			w.tick()
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					msgs = nil // ctx.Done is ready
					continue
				}
				return fmt.Errorf("watch %s: event subscription closed", id)
			}
			w.handle(m.data)
			if m.seq >= last {
				caughtUp = true
			}
		}
	}
}

// subscribeEvents replays the job's stored events and then delivers new ones. last is the
// stream sequence of the newest event stored when it was called (0: none): once it has been
// delivered, the view has caught up with the past.
func subscribeEvents(ctx context.Context, q *pipeline.Queue, id string) (<-chan watchMsg, uint64, error) {
	js, err := jetstream.New(q.Conn(), jetstream.WithDefaultTimeout(q.Config().RequestTimeout))
	if err != nil {
		return nil, 0, fmt.Errorf("watch %s: %w", id, err)
	}
	subject := pipeline.EventsSubject(id)
	stream, err := js.Stream(ctx, q.Config().EventsStream)
	if err != nil {
		return nil, 0, fmt.Errorf("watch %s: events stream: %w", id, err)
	}
	var last uint64
	switch m, err := stream.GetLastMsgForSubject(ctx, subject); {
	case err == nil:
		last = m.Sequence
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, 0, fmt.Errorf("watch %s: last event: %w", id, err)
	}
	cons, err := js.OrderedConsumer(ctx, q.Config().EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("watch %s: %w", id, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, 0, fmt.Errorf("watch %s: %w", id, err)
	}
	out := make(chan watchMsg, 256)
	go func() {
		defer close(out)
		defer it.Stop()
		for {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrConnectionClosed) {
					return
				}
				continue
			}
			var seq uint64
			if meta, err := m.Metadata(); err == nil {
				seq = meta.Sequence.Stream
			}
			select {
			case out <- watchMsg{data: m.Data(), seq: seq}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, last, nil
}

// watcher applies events to the view and prints it in the chosen way.
type watcher struct {
	v        *watchview.View
	o        watchOptions
	out      io.Writer
	caughtUp bool // past events replayed: print as they come
	// terminal
	drawn     bool
	dirty     bool
	lastDraw  time.Time
	hidCursor bool
}

// handle applies one event. While replaying the past, text output stays quiet (the state is
// printed once caught up); JSON output passes every event through.
func (w *watcher) handle(data []byte) {
	if w.o.json {
		if line, ok := jsonLine(data); ok {
			_, _ = w.out.Write(line)
		}
	}
	var ev pipeline.Event
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	if !w.v.Apply(ev) {
		return
	}
	w.dirty = true
	if w.o.json || w.o.tty || w.o.once || !w.caughtUp {
		return
	}
	switch {
	case ev.Type == pipeline.EventStats:
		fmt.Fprint(w.out, w.v.RenderBlock(time.Now()))
	case ev.Final(): // the summary follows
	default:
		if line := w.v.EventLine(ev); line != "" {
			fmt.Fprintln(w.out, line)
		}
	}
}

// onCaughtUp prints the state the replay has built.
func (w *watcher) onCaughtUp() {
	switch {
	case w.o.json:
	case w.o.once:
		cols, _ := w.size()
		fmt.Fprint(w.out, w.v.Render(time.Now(), cols))
	case w.o.tty:
		w.draw(false) // within watchRedraw of the last frame: the next tick draws it
	case !w.v.Final():
		fmt.Fprint(w.out, w.v.RenderBlock(time.Now()))
	}
}

// finish shows the end: the last frame and the summary (no summary with --json).
func (w *watcher) finish(stdout io.Writer, fromEvent bool) {
	if w.o.json {
		return
	}
	if w.o.tty && !w.o.once {
		w.draw(true)
		w.restoreCursor()
	}
	if !fromEvent && !w.o.once && !w.o.tty {
		fmt.Fprint(stdout, w.v.RenderBlock(time.Now()))
	}
	w.v.WriteSummary(stdout)
}

func (w *watcher) tick() {
	if !w.caughtUp {
		return
	}
	// Ticks come every watchRedraw; a frame drawn just after the previous tick must not make
	// this one wait for the next.
	since := time.Since(w.lastDraw) + watchRedraw/10
	if w.dirty && since >= watchRedraw || since >= watchRefresh {
		w.draw(false)
	}
}

// draw redraws the terminal view in place: cursor home, each line followed by erase-to-end,
// then erase below. The view is cut to the terminal's size so it never scrolls.
func (w *watcher) draw(force bool) {
	if !force && time.Since(w.lastDraw) < watchRedraw {
		return
	}
	cols, rows := w.size()
	lines := strings.Split(strings.TrimRight(w.v.Render(time.Now(), cols), "\n"), "\n")
	if rows > 1 && len(lines) > rows-1 {
		more := len(lines) - (rows - 2)
		lines = append(lines[:rows-2], fmt.Sprintf("… %d more lines (enlarge the terminal)", more))
	}
	var b bytes.Buffer
	if !w.drawn {
		b.WriteString("\x1b[?25l\x1b[2J") // hide the cursor, clear the screen
		w.hidCursor = true
	}
	b.WriteString("\x1b[H")
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\x1b[K\n")
	}
	b.WriteString("\x1b[J")
	_, _ = w.out.Write(b.Bytes())
	w.drawn, w.dirty, w.lastDraw = true, false, time.Now()
}

func (w *watcher) size() (cols, rows int) {
	if w.o.size == nil {
		return 0, 0
	}
	return w.o.size()
}

func (w *watcher) restoreCursor() {
	if w.hidCursor {
		_, _ = io.WriteString(w.out, "\x1b[?25h")
		w.hidCursor = false
	}
}

// jsonLine is an event as one line of compact JSON. Characters a terminal could act on that
// JSON leaves unescaped (DEL, C1 controls, bidi overrides; they can only occur inside strings)
// are escaped, which keeps the JSON equal. Data that is not JSON is dropped.
func jsonLine(data []byte) ([]byte, bool) {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return nil, false
	}
	out := make([]byte, 0, b.Len()+1)
	for s := b.Bytes(); len(s) > 0; {
		r, n := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && n == 1: // invalid UTF-8 (inside a string)
			out = append(out, `\ufffd`...)
		case watchview.UnsafeRune(r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, s[:n]...)
		}
		s = s[n:]
	}
	return append(out, '\n'), true
}
