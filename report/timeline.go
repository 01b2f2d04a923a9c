package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/roomtape/roomtape/recorder"
)

// Geometry shared by the timeline and the plots: the time axis runs from x0 to x1 in both, so
// the plots line up under the timeline.
const (
	chartW   = 1080  // fits the page's cards without scrolling
	x0       = 262.0 // left of the time axis; the label column is to its left
	x1       = chartW - 20.0
	axisH    = 34.0 // time axis labels above the first row
	headerH  = 26.0 // a participant's own row (name, sessions, participant alerts)
	laneH    = 26.0 // one logical track
	groupGap = 8.0
	// Inside a lane (template.html): bars at y 4–17, gaps at 3–18, the alert band at 19–23.
	alertY = 19.0
)

// scale maps ms on the recording timeline to x.
type scale struct{ endMs int64 }

func (s scale) x(ms int64) float64 {
	if ms < 0 {
		ms = 0
	}
	return x0 + (x1-x0)*float64(ms)/float64(s.endMs)
}

// px is the width of ms in pixels.
func (s scale) px(ms int64) float64 { return (x1 - x0) * float64(ms) / float64(s.endMs) }

// f1 formats a coordinate.
func f1(v float64) string { return fmtNum(math.Round(v*10)/10, 1) }

type tick struct {
	X     string
	Label string
}

// timeTicks are the axis ticks in seconds: the smallest round step giving at most 12 ticks.
func timeTicks(s scale) []tick {
	steps := []int64{1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400}
	sec := float64(s.endMs) / 1000
	step := steps[len(steps)-1]
	for _, st := range steps {
		if sec/float64(st) <= 11 {
			step = st
			break
		}
	}
	var out []tick
	for t := int64(0); t*1000 <= s.endMs; t += step {
		out = append(out, tick{X: f1(s.x(t * 1000)), Label: fmt.Sprintf("%d s", t)})
	}
	return out
}

type timelineView struct {
	W, H     int
	X0, X1   string
	AxisY    string // baseline of the tick labels
	GridY0   string
	GridY1   string
	Ticks    []tick
	Attempts []markView // attempt starts after the first
	Global   []alertShape
	GlobalY  string // the row of alerts without a participant (none: "")
	Groups   []groupView
}

type markView struct {
	X     string
	Label string
	Title string
}

type groupView struct {
	Peer     string
	Name     string // shortened display name from the metadata ("" without)
	Label    string // shortened peer id
	Title    string
	Y        string
	H        string
	Shade    bool
	Sessions []sessionShape
	Alerts   []alertShape
	Lanes    []laneView
}

type sessionShape struct {
	ID        string
	X         string
	Reconnect bool
	Label     string
	Title     string
	LineY1    string // the dashed line through the participant's lanes
}

type laneView struct {
	Peer, Track, Kind string
	Label             string
	Title             string
	Color             string
	Y                 string
	Files             []fileShape
	Spans             []spanShape
	Gaps              []gapShape
	Waits             []spanShape // keyframe waits
	Alerts            []alertShape
	Empty             string // "no media" note when there is nothing to draw
}

type fileShape struct {
	X, W    string
	Partial bool
	Path    string
	Label   string // segment number, when the bar is wide enough
	LabelX  string
	Title   string
}

type spanShape struct {
	X, W  string
	Title string
}

type gapShape struct {
	X, W  string
	Cause string
	Count int
	Title string
}

type alertShape struct {
	Code   string
	State  string // "cleared" or "open" (never cleared)
	X, W   string
	Y      string
	Title  string
	Marker string // a small triangle at the raise
}

// alertSpan is one alert raised and cleared (or still active at the end).
type alertSpan struct {
	raise   recorder.Alert
	clear   *recorder.Alert
	startMs int64
	endMs   int64
	order   int
}

// pairAlerts pairs raises with clears of the same code, peer, track and kind.
func pairAlerts(alerts []recorder.Alert, endMs int64) []alertSpan {
	type key struct{ code, peer, track, kind string }
	open := map[key]int{}
	var out []alertSpan
	for i, a := range alerts {
		k := key{a.Code, a.Peer, a.Track, a.Kind}
		switch a.State {
		case recorder.AlertCleared:
			if j, ok := open[k]; ok {
				c := alerts[i]
				out[j].clear, out[j].endMs = &c, a.OffsetMs
				delete(open, k)
				continue
			}
			// A clear without its raise (the raise predates this manifest): a point.
			out = append(out, alertSpan{raise: a, clear: &alerts[i], startMs: a.OffsetMs, endMs: a.OffsetMs, order: i})
		default:
			if _, ok := open[k]; ok {
				continue // raised again while active: keep the first raise
			}
			open[k] = len(out)
			out = append(out, alertSpan{raise: a, startMs: a.OffsetMs, endMs: endMs, order: i})
		}
	}
	return out
}

func (a alertSpan) durationText() string {
	if a.clear == nil {
		return "still active at the end"
	}
	return fmtDur(a.endMs - a.startMs)
}

func alertValue(a recorder.Alert) string {
	unit := " s"
	if a.Code == recorder.AlertLoss {
		unit = " %"
	}
	return fmtNum(a.Value, 1) + unit + " / " + fmtNum(a.Threshold, 1) + unit
}

func (a alertSpan) shape(s scale, y float64) alertShape {
	x := s.x(a.startMs)
	w := max(s.px(a.endMs-a.startMs), 2)
	st := "cleared"
	if a.clear == nil {
		st = "open"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Alert %s", a.raise.Code)
	if a.raise.Track != "" {
		fmt.Fprintf(&b, " on %s", a.raise.Track)
		if a.raise.Kind != "" {
			fmt.Fprintf(&b, " (%s)", a.raise.Kind)
		}
	}
	fmt.Fprintf(&b, "\nraised at %s", fmtSec(a.startMs))
	if a.clear != nil {
		fmt.Fprintf(&b, ", cleared at %s (%s)", fmtSec(a.endMs), fmtDur(a.endMs-a.startMs))
	} else {
		b.WriteString(", never cleared")
	}
	fmt.Fprintf(&b, "\nvalue %s", alertValue(a.raise))
	if a.raise.Message != "" {
		fmt.Fprintf(&b, "\n%s", a.raise.Message)
	}
	return alertShape{
		Code: a.raise.Code, State: st, X: f1(x), W: f1(w), Y: f1(y), Title: b.String(),
		Marker: fmt.Sprintf("M%s %sl4 -6h-8z", f1(x), f1(y)),
	}
}

func (md *model) timeline() timelineView {
	s := scale{md.endMs}
	m := md.m
	tv := timelineView{W: chartW, X0: f1(x0), X1: f1(x1), AxisY: f1(axisH - 14), GridY0: f1(axisH - 8), Ticks: timeTicks(s)}

	spans := pairAlerts(m.Alerts, md.endMs)
	placed := make([]bool, len(spans))
	y := axisH

	// Alerts of no participant get a row of their own.
	var global []alertShape
	for i, a := range spans {
		if a.raise.Peer == "" {
			global = append(global, a.shape(s, y+alertY-4))
			placed[i] = true
		}
	}
	if len(global) > 0 {
		tv.Global, tv.GlobalY = global, f1(y)
		y += laneH
	}

	if !m.StartedAt.IsZero() {
		for _, a := range m.Attempts {
			if a.N <= 1 || a.StartedAt.IsZero() {
				continue
			}
			ms := a.StartedAt.Sub(m.StartedAt).Milliseconds()
			title := fmt.Sprintf("Attempt %d started at %s", a.N, fmtSec(ms))
			if a.Worker != "" {
				title += " on worker " + a.Worker
			}
			tv.Attempts = append(tv.Attempts, markView{X: f1(s.x(ms)), Label: fmt.Sprintf("attempt %d", a.N), Title: title})
		}
	}

	for gi, pm := range md.peers {
		g := groupView{Peer: pm.peer, Shade: gi%2 == 0, Y: f1(y)}
		name := ""
		if pm.p != nil {
			name = displayName(pm.p.Metadata)
		}
		// The label column holds about 32 characters: the name (bold), then the peer id.
		g.Label = ellipsis(pm.peer, 32)
		g.Title = "Participant " + pm.peer
		if name != "" {
			g.Name = ellipsis(name, 14)
			g.Label = ellipsis(pm.peer, max(32-len([]rune(g.Name))-2, 8))
			g.Title += " (" + name + ")"
		}
		g.Title += "\n" + plural(len(pm.tracks), "track", "tracks") + ", " + plural(len(pm.sessions), "session", "sessions")
		if pm.p == nil {
			g.Title += " (not in the manifest: from the stats or alerts)"
		}
		h := headerH + laneH*float64(len(pm.tracks))

		// Participant alerts: those without a track, or naming a track the peer does not have.
		for i, a := range spans {
			if placed[i] || a.raise.Peer != pm.peer {
				continue
			}
			if a.raise.Track != "" && slices.ContainsFunc(pm.tracks, func(tm *trackModel) bool { return alertOnTrack(a.raise, tm) }) {
				continue
			}
			g.Alerts = append(g.Alerts, a.shape(s, alertY))
			placed[i] = true
		}

		for si, se := range pm.sessions {
			ss := sessionShape{ID: se.ID, X: f1(s.x(se.StartOffset)), LineY1: f1(h)}
			what := "session"
			if si > 0 {
				ss.Reconnect = true
				what = "reconnect"
				if se.Attempt != pm.sessions[si-1].Attempt {
					what = "new attempt"
				}
				ss.Label = "↻"
			}
			ss.Title = fmt.Sprintf("%s at %s\nsession %s · attempt %d · connection %d", capitalize(what), fmtSec(se.StartOffset), se.ID, se.Attempt, se.Connection)
			g.Sessions = append(g.Sessions, ss)
		}

		for li, tm := range pm.tracks {
			lv := md.lane(tm, s, headerH+laneH*float64(li))
			for i, a := range spans {
				if !placed[i] && a.raise.Peer == pm.peer && alertOnTrack(a.raise, tm) {
					lv.Alerts = append(lv.Alerts, a.shape(s, alertY))
				}
			}
			g.Lanes = append(g.Lanes, lv)
		}
		for i, a := range spans {
			if a.raise.Peer == pm.peer {
				placed[i] = true
			}
		}
		g.H = f1(h)
		tv.Groups = append(tv.Groups, g)
		y += h + groupGap
	}
	tv.GridY1 = f1(y)
	if len(tv.Attempts) > 0 {
		y += 16 // their labels go under the last group
	}
	tv.H = int(math.Ceil(y)) + 6
	return tv
}

// alertOnTrack tells whether a names tm (an alert without a kind names every kind of its key).
func alertOnTrack(a recorder.Alert, tm *trackModel) bool {
	return a.Track != "" && a.Track == tm.ref.key && (a.Kind == "" || a.Kind == tm.ref.kind)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func trackLabel(tm *trackModel) string {
	l := tm.ref.key
	if tm.role != "" && tm.role != tm.ref.key {
		l += " (" + tm.role + ")"
	}
	l = ellipsis(l, 20) + " · " + tm.ref.kind
	if c := shortCodec(tm.codec); c != "" {
		l += " · " + c
	}
	return l
}

func (md *model) lane(tm *trackModel, s scale, y float64) laneView {
	lv := laneView{Peer: tm.ref.peer, Track: tm.ref.key, Kind: tm.ref.kind, Color: tm.color, Y: f1(y),
		Label: ellipsis(trackLabel(tm), 36)}
	var tb strings.Builder
	fmt.Fprintf(&tb, "%s / %s\nkind %s", tm.ref.peer, tm.ref.key, tm.ref.kind)
	if tm.role != "" {
		fmt.Fprintf(&tb, " · role %s", tm.role)
	}
	if tm.codec != "" {
		fmt.Fprintf(&tb, " · codec %s", tm.codec)
	}
	if tm.t != nil && tm.t.StreamID != "" {
		fmt.Fprintf(&tb, "\nstream %s · track %s", tm.t.StreamID, tm.t.TrackID)
	}
	if tm.t == nil {
		tb.WriteString("\n(not in the manifest: known from the stats)")
	}
	lv.Title = tb.String()

	for _, f := range tm.files {
		x, w := s.x(f.StartOffsetMs), max(s.px(f.DurationMs), 1.5)
		fs := fileShape{X: f1(x), W: f1(w), Partial: f.Partial, Path: f.Path, Title: fileTitle(f)}
		if w >= 26 {
			fs.Label, fs.LabelX = fmt.Sprintf("#%d", f.Segment), f1(x+5)
		}
		lv.Files = append(lv.Files, fs)
		lv.Gaps = append(lv.Gaps, gapShapes(f, s)...)
		for _, kw := range f.KeyframeWaits {
			if kw.WaitMs <= 0 {
				continue
			}
			lv.Waits = append(lv.Waits, spanShape{X: f1(s.x(f.StartOffsetMs + kw.AtMs)), W: f1(max(s.px(kw.WaitMs), 1)),
				Title: fmt.Sprintf("Waiting for a keyframe: %s at %s", fmtDur(kw.WaitMs), fmtSec(f.StartOffsetMs+kw.AtMs))})
		}
	}
	if len(tm.files) == 0 {
		// No media files (monitor-only, or nothing was written): the track's active spans from the
		// stats, each from the start of the first interval that has it to the end of the last.
		for i := 0; i < len(tm.stats); {
			j := i
			for j+1 < len(tm.stats) && continues(tm.stats[j], tm.stats[j+1]) {
				j++
			}
			start := max(tm.stats[i].at-tm.stats[i].interval, 0)
			end := tm.stats[j].at
			lv.Spans = append(lv.Spans, spanShape{X: f1(s.x(start)), W: f1(max(s.px(end-start), 1.5)),
				Title: fmt.Sprintf("Active (from the stats) %s – %s (%s), %s", fmtSec(start), fmtSec(end), fmtDur(end-start), plural(j-i+1, "sample", "samples"))})
			i = j + 1
		}
		if len(lv.Spans) == 0 {
			lv.Empty = "no media"
		}
	}
	return lv
}

func fileTitle(f *recorder.File) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nsegment %d · attempt %d · %s – %s (%s)", f.Path, f.Segment, f.Attempt,
		fmtSec(f.StartOffsetMs), fmtSec(f.StartOffsetMs+f.DurationMs), fmtDur(f.DurationMs))
	fmt.Fprintf(&b, "\n%s packets, %s, %s lost, %s recovered", fmtCount(f.Packets), fmtBytes(f.Bytes), fmtCount(f.Lost), fmtCount(f.Recovered))
	if f.Width > 0 {
		fmt.Fprintf(&b, "\n%d×%d, %s frames", f.Width, f.Height, fmtCount(f.Frames))
	}
	if len(f.Gaps) > 0 {
		fmt.Fprintf(&b, "\n%s", plural(len(f.Gaps), "gap", "gaps"))
	}
	if f.Partial {
		b.WriteString("\npartial: not closed cleanly")
	}
	if f.EndReason != "" {
		fmt.Fprintf(&b, "\nended: %s", f.EndReason)
	}
	return b.String()
}

// gapShapes draws the gaps of f. Gaps of one cause that would touch on screen (less than a
// pixel apart) are merged into one mark that counts them, so hours of DTX silence stay a few
// hundred elements.
func gapShapes(f *recorder.File, s scale) []gapShape {
	gaps := slices.Clone(f.Gaps)
	slices.SortStableFunc(gaps, func(a, b recorder.Gap) int {
		return cmp.Or(cmp.Compare(a.StartMs, b.StartMs), strings.Compare(a.Cause, b.Cause))
	})
	type run struct {
		cause      string
		start, end int64
		total      int64
		n          int
	}
	var runs []*run
	last := map[string]*run{}
	for _, g := range gaps {
		start := f.StartOffsetMs + g.StartMs
		end := start + max(g.LengthMs, 0)
		if r := last[g.Cause]; r != nil && s.px(start-r.end) < 1 {
			r.end, r.total, r.n = max(r.end, end), r.total+g.LengthMs, r.n+1
			continue
		}
		r := &run{cause: g.Cause, start: start, end: end, total: g.LengthMs, n: 1}
		last[g.Cause] = r
		runs = append(runs, r)
	}
	out := make([]gapShape, 0, len(runs))
	for _, r := range runs {
		cause := r.cause
		if cause == "" {
			cause = "unknown"
		}
		title := fmt.Sprintf("Gap: %s, %s at %s", gapCauseText(cause), fmtDur(r.total), fmtSec(r.start))
		if r.n > 1 {
			title = fmt.Sprintf("%d gaps: %s, %s in total between %s and %s", r.n, gapCauseText(cause), fmtDur(r.total), fmtSec(r.start), fmtSec(r.end))
		}
		out = append(out, gapShape{X: f1(s.x(r.start)), W: f1(max(s.px(r.end-r.start), 2)), Cause: cause, Count: r.n, Title: title})
	}
	return out
}

// gapCauses describes the gap causes of recorder.Gap, in legend order.
var gapCauses = []struct{ Cause, Text string }{
	{"silence", "silence (DTX or mute)"},
	{"loss", "packet loss"},
	{"reconnect", "reconnect"},
	{"ssrc_change", "SSRC change"},
	{"timestamp_jump", "timestamp jump"},
}

func gapCauseText(c string) string {
	for _, g := range gapCauses {
		if g.Cause == c {
			return g.Text
		}
	}
	return c
}
