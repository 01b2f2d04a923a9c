package report

import (
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"slices"

	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/recorder"
)

//go:embed template.html
var templateText string

// pageTemplate is the whole document. html/template escapes every value by context, so manifest
// strings (peer ids, metadata, channel, causes, messages) can never become markup.
var pageTemplate = template.Must(template.New("report").Parse(templateText))

type page struct {
	RecordingID string
	Channel     string
	Status      string
	StatusClass string
	Mode        string
	Started     string
	Ended       string
	Duration    string
	Attempts    []attemptRow
	Summary     []kv
	Notes       []string

	Timeline   timelineView
	Legend     []legendEntry // what the timeline shows, explained
	HasSamples bool
	Plots      []plotView

	Quality      []qualityRow
	Alerts       []alertRow
	Files        []fileRow
	Participants []participantRow
}

type kv struct{ Label, Value string }

type legendEntry struct{ Class, Text string }

type attemptRow struct {
	N                                      int
	Worker, Started, Ended, Status, Reason string
}

type qualityRow struct {
	Peer, Track, Kind, Color string
	Has                      bool
	Active, Packets          string
	Bitrate, Loss, LossBR    string
	LossClass                string
	Jitter                   string
	Details                  string
}

type alertRow struct {
	Code, Peer, Track, Kind string
	Raised, Cleared         string
	Duration                string
	Open                    bool
	Value                   string
	Message                 string
	ClearMessage            string
}

type fileRow struct {
	Peer, Track, Kind, Path string
	Start, Duration         string
	Packets, Bytes, Lost    string
	Gaps                    int
	Partial                 bool
	End                     string
}

type participantRow struct {
	Peer, Name, Metadata string
	Sessions, Tracks     int
	StatsOnly            bool
}

func build(m *recorder.Manifest, samples []monitor.Sample, st *statsInfo) *page {
	md := newModel(m, samples)
	p := &page{
		RecordingID: m.RecordingID, Channel: m.Channel, Status: m.Status, StatusClass: statusClass(m.Status),
		Mode: m.Mode, Started: fmtTime(m.StartedAt), Ended: "—",
	}
	if p.Mode == "" {
		p.Mode = "—"
	}
	if p.Status == "" {
		p.Status = "unknown"
	}
	if m.EndedAt != nil {
		p.Ended = fmtTime(*m.EndedAt)
		p.Duration = fmtDur(m.EndedAt.Sub(m.StartedAt).Milliseconds())
	} else {
		p.Duration = "≥ " + fmtDur(md.endMs) + " (no end recorded)"
	}
	for _, a := range m.Attempts {
		r := attemptRow{N: a.N, Worker: a.Worker, Started: fmtTime(a.StartedAt), Ended: "—", Status: a.Status, Reason: a.Reason}
		if a.EndedAt != nil {
			r.Ended = fmtTime(*a.EndedAt)
		}
		p.Attempts = append(p.Attempts, r)
	}

	// Summary figures.
	nFiles, nPartial, nGaps := 0, 0, 0
	var gapMs int64
	for _, tm := range md.tracks {
		for _, f := range tm.files {
			nFiles++
			if f.Partial {
				nPartial++
			}
			nGaps += len(f.Gaps)
			for _, g := range f.Gaps {
				gapMs += g.LengthMs
			}
		}
	}
	spans := pairAlerts(m.Alerts, md.endMs)
	filesText := fmt.Sprint(nFiles)
	if nPartial > 0 {
		filesText += fmt.Sprintf(" (%d partial)", nPartial)
	}
	gapsText := fmt.Sprint(nGaps)
	if nGaps > 0 {
		gapsText += " (" + fmtDur(gapMs) + ")"
	}
	p.Summary = []kv{
		{"Participants", fmt.Sprint(len(md.peers))},
		{"Tracks", fmt.Sprint(len(md.tracks))},
		{"Files", filesText},
		{"Gaps", gapsText},
		{"Alerts", fmt.Sprint(len(spans))},
	}
	if iv := md.medianInterval(); len(md.samples) > 0 {
		p.Summary = append(p.Summary, kv{"Stats samples", fmt.Sprintf("%d every %s", len(md.samples), fmtDur(iv))})
	} else {
		p.Summary = append(p.Summary, kv{"Stats samples", "none"})
	}

	// Notes on the data.
	if st != nil && st.missing {
		p.Notes = append(p.Notes, fmt.Sprintf("The stats file %s named by the manifest is missing; the plots are empty.", st.name))
	}
	if st != nil && st.log != nil {
		if st.log.SkippedCount > 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("%s of %s could not be decoded and were skipped (the first is line %d).",
				plural(st.log.SkippedCount, "line", "lines"), st.name, st.log.Skipped[0]))
		}
		if st.log.TruncatedTail {
			p.Notes = append(p.Notes, fmt.Sprintf("The last line of %s was incomplete (the writer stopped mid-line) and was skipped.", st.name))
		}
	}
	if len(md.samples) == 0 && (st == nil || !st.missing) {
		if m.Stats == "" {
			p.Notes = append(p.Notes, "No quality stats were collected for this recording (record-only): the timeline shows the files only.")
		} else {
			p.Notes = append(p.Notes, "The stats file holds no samples.")
		}
	}
	if nFiles == 0 && len(md.tracks) > 0 && len(md.samples) > 0 {
		p.Notes = append(p.Notes, "No media files were written (monitor-only): the timeline shows when each track was active according to the stats.")
	}
	if m.Status == recorder.StatusRecording {
		p.Notes = append(p.Notes, "The recording was still running when this report was written.")
	}

	p.Timeline = md.timeline()
	p.Legend = timelineLegend(&p.Timeline)
	p.HasSamples = len(md.samples) > 0
	p.Plots = md.plots()

	for _, tm := range md.tracks {
		p.Quality = append(p.Quality, qualityRowOf(tm))
		for _, f := range tm.files {
			r := fileRow{Peer: tm.ref.peer, Track: tm.ref.key, Kind: tm.ref.kind, Path: f.Path,
				Start: fmtSec(f.StartOffsetMs), Duration: fmtDur(f.DurationMs), Packets: fmtCount(f.Packets),
				Bytes: fmtBytes(f.Bytes), Lost: fmtCount(f.Lost), Gaps: len(f.Gaps), Partial: f.Partial, End: f.EndReason}
			p.Files = append(p.Files, r)
		}
	}
	slices.SortStableFunc(spans, func(a, b alertSpan) int {
		return cmp.Or(cmp.Compare(a.startMs, b.startMs), cmp.Compare(a.order, b.order))
	})
	for _, a := range spans {
		r := alertRow{Code: a.raise.Code, Peer: a.raise.Peer, Track: a.raise.Track, Kind: a.raise.Kind,
			Raised: fmtSec(a.startMs), Cleared: "—", Duration: a.durationText(), Open: a.clear == nil,
			Value: alertValue(a.raise), Message: a.raise.Message}
		if a.clear != nil {
			r.Cleared = fmtSec(a.endMs)
			if a.clear.Message != a.raise.Message {
				r.ClearMessage = a.clear.Message
			}
		}
		p.Alerts = append(p.Alerts, r)
	}
	for _, pm := range md.peers {
		r := participantRow{Peer: pm.peer, Sessions: len(pm.sessions), Tracks: len(pm.tracks), StatsOnly: pm.p == nil}
		if pm.p != nil {
			r.Name, r.Metadata = displayName(pm.p.Metadata), compactJSON(pm.p.Metadata, 300)
		}
		p.Participants = append(p.Participants, r)
	}
	return p
}

func statusClass(s string) string {
	switch s {
	case recorder.StatusFinished:
		return "ok"
	case recorder.StatusRecording:
		return "live"
	case recorder.StatusFailed:
		return "bad"
	case recorder.StatusInterrupted:
		return "warn"
	}
	return "other"
}

func qualityRowOf(tm *trackModel) qualityRow {
	r := qualityRow{Peer: tm.ref.peer, Track: tm.ref.key, Kind: tm.ref.kind, Color: tm.color}
	q := (*recorder.Quality)(nil)
	if tm.t != nil {
		q = tm.t.Quality
	}
	if q == nil {
		return r
	}
	r.Has = true
	r.Active = fmtDur(q.ActiveMs)
	r.Packets = fmtCount(q.Packets)
	r.Bitrate = fmtKbps(q.BitrateMeanBps) + " / " + fmtKbps(q.BitrateMaxBps)
	r.Loss = fmtNum(q.LossPct, 2) + " %"
	r.LossBR = fmtNum(q.LossBeforeRecoveryPct, 2) + " %"
	switch {
	case q.LossPct >= 5:
		r.LossClass = "bad"
	case q.LossPct >= 1:
		r.LossClass = "warn"
	}
	r.Jitter = fmtNum(q.JitterMeanMs, 1) + " / " + fmtNum(q.JitterMaxMs, 1) + " ms"
	switch tm.ref.kind {
	case "video":
		d := fmt.Sprintf("%s fps", fmtNum(q.FPSMean, 1))
		if q.MaxWidth > 0 {
			d += fmt.Sprintf(" · up to %d×%d", q.MaxWidth, q.MaxHeight)
		}
		d += " · " + plural(int(q.Keyframes), "keyframe", "keyframes")
		if q.KeyframeIntervalMeanMs > 0 {
			d += fmt.Sprintf(" (every %s)", fmtDur(int64(q.KeyframeIntervalMeanMs)))
		}
		d += " · " + plural(q.Freezes, "freeze", "freezes")
		if q.FrozenMs > 0 {
			d += " (" + fmtDur(q.FrozenMs) + ")"
		}
		r.Details = d
	case "audio":
		if q.AudioLevel {
			r.Details = fmt.Sprintf("speech %s %% at %s dBov · silent %s", fmtNum(q.SpeechPct, 1), fmtNum(q.LevelMeanDBov, 1), fmtDur(q.SilentMs))
		} else {
			r.Details = "no audio levels sent · silent " + fmtDur(q.SilentMs)
		}
	}
	return r
}

// timelineLegend lists the kinds of marks the timeline holds.
func timelineLegend(tv *timelineView) []legendEntry {
	has := map[string]bool{}
	var otherCauses []string
	for _, g := range tv.Groups {
		if len(g.Sessions) > 0 {
			has["session"] = true
		}
		if len(g.Alerts) > 0 {
			has["alert"] = true
		}
		for _, l := range g.Lanes {
			for _, f := range l.Files {
				has[l.Kind] = true
				if f.Partial {
					has["partial"] = true
				}
			}
			has["span"] = has["span"] || len(l.Spans) > 0
			has["kfwait"] = has["kfwait"] || len(l.Waits) > 0
			has["alert"] = has["alert"] || len(l.Alerts) > 0
			for _, gp := range l.Gaps {
				if gapCauseText(gp.Cause) == gp.Cause && !slices.Contains(otherCauses, gp.Cause) {
					otherCauses = append(otherCauses, gp.Cause)
				}
				has["gap-"+gp.Cause] = true
			}
		}
	}
	has["alert"] = has["alert"] || len(tv.Global) > 0
	var out []legendEntry
	add := func(key, class, text string) {
		if has[key] {
			out = append(out, legendEntry{class, text})
		}
	}
	add("audio", "audio", "audio file")
	add("video", "video", "video file")
	add("partial", "partial", "partial file (not closed cleanly)")
	add("span", "span", "active according to the stats (no file)")
	for _, g := range gapCauses {
		add("gap-"+g.Cause, "gap-"+g.Cause, "gap: "+g.Text)
	}
	slices.Sort(otherCauses)
	for _, c := range otherCauses {
		out = append(out, legendEntry{"gap-other", "gap: " + c})
	}
	add("kfwait", "kfwait", "waiting for a keyframe")
	add("alert", "alert", "alert, raised → cleared (hatched: never cleared)")
	if has["session"] {
		out = append(out, legendEntry{"session", "session start, ↻ reconnect"})
	}
	if len(tv.Attempts) > 0 {
		out = append(out, legendEntry{"attempt", "new attempt (another worker took over)"})
	}
	return out
}
