package watchview

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

// Column widths of the participant and track tables (in runes).
const (
	PeerWidth  = 20        // longer peer ids are cut with an ellipsis
	trackWidth = PeerWidth // "  " + kind/role
	codecWidth = 8
	msgWidth   = 60
)

// Render is the full view for a terminal: a header, the participant table with each
// participant's tracks indented under it, the active alerts and the last alert raises and
// clears. Lines longer than width runes are cut (width <= 0: no limit). It holds no escape
// sequences; the caller positions the cursor.
func (v *View) Render(now time.Time, width int) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		if width > 0 && utf8.RuneCountInString(s) > width {
			s = string([]rune(s)[:width])
		}
		b.WriteString(strings.TrimRight(s, " "))
		b.WriteByte('\n')
	}
	line("%s", v.HeaderLine())
	stats := "no stats yet"
	if !v.StatsAt.IsZero() {
		stats = "stats " + fmtDur(now.Sub(v.StatsAt)) + " ago"
	}
	line("elapsed %s · health %s · %d present · %d tracks · %d alerts · %s", fmtDur(v.Elapsed(now)),
		healthText(v.Health), v.PresentCount(), v.TrackCount(), len(v.Active), stats)
	if v.Warnings > 0 {
		line("warnings %d, last: %s", v.Warnings, Truncate(v.LastWarning, msgWidth+20))
	}
	if v.Reason != "" && v.Status != pipeline.StateRecording {
		line("reason: %s", Truncate(v.Reason, msgWidth+20))
	}
	line("")
	line("%s %-20s %-8s %-8s %s", pad("PEER", PeerWidth), "PRESENCE", "HEALTH", "SPEAKING", "ALERTS")
	line("  %s %s %6s %15s %8s %5s %-10s %-16s %8s %s", pad("TRACK", trackWidth-2), pad("CODEC", codecWidth),
		"KBPS", "LOSS% (PRE)", "JITTER", "FPS", "RES", "LEVEL / SPEECH", "LAST PKT", "FROZEN")
	peers := v.SortedPeers()
	if len(peers) == 0 {
		line("(no participants)")
	}
	for _, p := range peers {
		alerts := "-"
		if len(p.Alerts) > 0 {
			alerts = Truncate(strings.Join(p.Alerts, ","), 40)
		}
		line("%s %-20s %-8s %-8s %s", pad(p.ID, PeerWidth), Truncate(presence(p), 20), dash(Truncate(p.Health, 8)),
			yesNo(p.Speaking && p.Present), alerts)
		for _, t := range p.Tracks {
			line("  %s", trackRow(t))
		}
	}
	line("")
	if len(v.Active) == 0 {
		line("ACTIVE ALERTS: none")
	} else {
		line("ACTIVE ALERTS (%d)", len(v.Active))
		for _, a := range v.Active {
			line("  %-6s %-17s %s %s", alertAge(a, now), Truncate(a.Code, 17), alertSubject(a), Truncate(a.Message, msgWidth))
		}
	}
	if len(v.History) > 0 {
		line("RECENT ALERTS")
		for i := len(v.History) - 1; i >= 0; i-- {
			a := v.History[i]
			line("  %s %-7s %-17s %s %s", v.clock(a.At), Truncate(a.State, 7), Truncate(a.Code, 17), alertSubject(a),
				Truncate(a.Message, msgWidth))
		}
	}
	return b.String()
}

// HeaderLine is the job, its channel and its status in one line.
func (v *View) HeaderLine() string {
	return fmt.Sprintf("job %s · channel %s · %s", Truncate(v.JobID, 64), dash(Truncate(v.Channel, 40)), v.statusText())
}

// trackRow is one track line (without indentation) of the terminal view.
func trackRow(t Track) string {
	name := pad(trackName(t), trackWidth-2)
	codec := pad(codecName(t.Codec), codecWidth)
	s := t.Stats
	if s == nil {
		return fmt.Sprintf("%s %s %6s %15s %8s %5s %-10s %-16s %8s", name, codec, "-", "-", "-", "-", "-", "-", "(no stats yet)")
	}
	fps, res, level, frozen := "-", "-", "-", ""
	if s.Kind == "video" {
		fps = fmt.Sprintf("%.1f", s.FPS)
		if s.Width > 0 && s.Height > 0 {
			res = fmt.Sprintf("%dx%d", s.Width, s.Height)
		}
		if s.Frozen {
			frozen = "FROZEN"
		}
	}
	if s.Kind == "audio" {
		level = levelText(s)
	}
	return fmt.Sprintf("%s %s %6.0f %15s %8s %5s %-10s %-16s %8s %s", name, codec, s.BitrateBps/1000,
		lossText(s), fmt.Sprintf("%.1fms", s.JitterMs), fps, res, level, fmtMs(s.SinceLastPacketMs), frozen)
}

// RenderBlock is the compact text block printed per stats sample when stdout is not a
// terminal: a summary line stamped with the sample's time, a line per participant with its
// tracks under it, and a line per active alert.
func (v *View) RenderBlock(now time.Time) string {
	var b strings.Builder
	at := v.StatsAt
	if at.IsZero() {
		at = now
	}
	fmt.Fprintf(&b, "%s %s %s elapsed %s health %s · %d present · %d tracks · %d alerts\n", v.clock(at),
		Truncate(v.JobID, 64), v.statusText(), fmtDur(v.Elapsed(now)), healthText(v.Health), v.PresentCount(),
		v.TrackCount(), len(v.Active))
	for _, p := range v.SortedPeers() {
		fmt.Fprintf(&b, "  %s %s health %s", Truncate(p.ID, PeerWidth), Truncate(presence(p), 20), dash(Truncate(p.Health, 8)))
		if p.Speaking && p.Present {
			b.WriteString(" speaking")
		}
		if len(p.Alerts) > 0 {
			fmt.Fprintf(&b, " alerts %s", Truncate(strings.Join(p.Alerts, ","), 40))
		}
		b.WriteByte('\n')
		for _, t := range p.Tracks {
			fmt.Fprintf(&b, "    %s %s", trackName(t), codecName(t.Codec))
			if s := t.Stats; s != nil {
				fmt.Fprintf(&b, " %.0fkbps loss %s jitter %.1fms", s.BitrateBps/1000, lossText(s), s.JitterMs)
				if s.Kind == "video" {
					fmt.Fprintf(&b, " %.1ffps", s.FPS)
					if s.Width > 0 && s.Height > 0 {
						fmt.Fprintf(&b, " %dx%d", s.Width, s.Height)
					}
				}
				if s.Kind == "audio" {
					fmt.Fprintf(&b, " level %s", levelText(s))
				}
				fmt.Fprintf(&b, " last %s", fmtMs(s.SinceLastPacketMs))
				if s.Frozen {
					b.WriteString(" FROZEN")
				}
			} else {
				b.WriteString(" (no stats yet)")
			}
			b.WriteByte('\n')
		}
	}
	for _, a := range v.Active {
		fmt.Fprintf(&b, "  alert %s %s for %s: %s\n", Truncate(a.Code, 17), alertSubjectShort(a),
			alertAge(a, now), Truncate(a.Message, msgWidth))
	}
	return b.String()
}

// EventLine describes a notable event in one line (stamped with its time) for the text output
// between stats blocks; "" for stats events and events not worth a line. Call it after Apply.
func (v *View) EventLine(ev pipeline.Event) string {
	peer := Truncate(ev.Peer, PeerWidth)
	var s string
	switch ev.Type {
	case pipeline.EventQueued:
		s = "queued"
	case pipeline.EventStarted:
		s = fmt.Sprintf("recording on %s (attempt %d)", Truncate(ev.Worker, 40), ev.Attempt)
	case pipeline.EventParticipantJoined:
		s = peer + " joined"
	case pipeline.EventParticipantLeft:
		s = peer + " left"
	case pipeline.EventTrackStarted, pipeline.EventTrackEnded:
		if ev.Track == nil {
			return ""
		}
		t := eventTrack(ev.Track)
		if ev.Type == pipeline.EventTrackStarted {
			s = fmt.Sprintf("%s: %s track started (%s)", peer, trackName(t), codecName(t.Codec))
		} else {
			s = fmt.Sprintf("%s: %s track ended (%s)", peer, trackName(t), Truncate(ev.Reason, msgWidth))
		}
	case pipeline.EventWarning:
		s = fmt.Sprintf("warning %s: %s", Truncate(ev.Warning, 20), Truncate(ev.Reason, msgWidth))
	case pipeline.EventStopping:
		s = "stop requested"
	case pipeline.EventAlert:
		if ev.Alert == nil {
			return ""
		}
		a := *ev.Alert
		s = fmt.Sprintf("alert %s %s %s: %s", Truncate(a.State, 7), Truncate(a.Code, 17), alertSubjectShort(a),
			Truncate(a.Message, msgWidth))
	case pipeline.EventFinished:
		s = "finished: " + dash(Truncate(ev.Reason, msgWidth))
	case pipeline.EventFailed:
		s = "failed: " + dash(Truncate(ev.Reason, msgWidth))
	default:
		return ""
	}
	return v.clock(ev.Time) + " " + s
}

// WriteSummary writes the short summary printed when the job has ended.
func (v *View) WriteSummary(w io.Writer) {
	verb := "finished"
	if v.Status == pipeline.StateFailed {
		verb = "failed"
	}
	fmt.Fprintf(w, "job %s %s after %s: %s\n", Truncate(v.JobID, 64), verb, fmtDur(v.Elapsed(v.EndedAt)),
		dash(Truncate(v.Reason, msgWidth+20)))
	participants, files := len(v.Peers), -1
	if m := v.Manifest; m != nil {
		participants, files = len(m.Participants), len(m.Files())
	}
	fmt.Fprintf(w, "  participants %d", participants)
	if files >= 0 {
		fmt.Fprintf(w, " · files %d", files)
	}
	fmt.Fprintf(w, " · alerts raised %d, active at the end %d · warnings %d\n", v.Raised, len(v.Active), v.Warnings)
	if v.ManifestPath != "" {
		fmt.Fprintf(w, "  manifest: %s\n", Sanitize(v.ManifestPath))
	}
}

func (v *View) statusText() string {
	s := dash(Truncate(v.Status, 12))
	if v.Worker != "" && (v.Status == pipeline.StateStarting || v.Status == pipeline.StateRecording ||
		v.Status == pipeline.StateFinishing || v.Status == StatusStopping) {
		s += fmt.Sprintf(" on %s (attempt %d)", Truncate(v.Worker, 40), v.Attempt)
	}
	return s
}

func (v *View) clock(t time.Time) string {
	if t.IsZero() {
		return "--:--:--"
	}
	loc := v.Loc
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format("15:04:05")
}

func presence(p *Peer) string {
	s := "absent"
	switch {
	case p.Present:
		s = "present"
	case p.Left:
		s = "left"
	}
	if p.State != "" && !p.Left {
		s += " " + p.State
	}
	return s
}

func trackName(t Track) string {
	kind := dash(t.Kind)
	if t.Role != "" {
		return Truncate(kind+"/"+t.Role, trackWidth-2)
	}
	if t.Key != "" && t.Key != t.Kind {
		return Truncate(kind+" "+t.Key, trackWidth-2)
	}
	return Truncate(kind, trackWidth-2)
}

// codecName drops the media type of a MIME type: video/VP8 → VP8.
func codecName(c string) string {
	if i := strings.IndexByte(c, '/'); i >= 0 {
		c = c[i+1:]
	}
	return dash(Truncate(c, codecWidth))
}

func lossText(s *monitor.TrackStats) string {
	return fmt.Sprintf("%.1f (%.1f)", s.LossPct, s.LossBeforeRecoveryPct)
}

func levelText(s *monitor.TrackStats) string {
	level := "-"
	if s.Level != nil {
		level = fmt.Sprintf("%.0fdBov", *s.Level)
	}
	return fmt.Sprintf("%s / %.0f%%", level, s.SpeechPct)
}

// alertAge is how long an active alert has been raised (since it began, when known).
func alertAge(a recorder.Alert, now time.Time) string {
	since := a.Since
	if since.IsZero() {
		since = a.At
	}
	return fmtDur(now.Sub(since))
}

func alertSubject(a recorder.Alert) string {
	s := pad(a.Peer, PeerWidth)
	if a.Track != "" {
		s += " " + pad(a.Track, 12)
	} else {
		s += " " + pad(a.Kind, 12)
	}
	return s
}

// alertSubjectShort is peer/track (or peer/kind) for one-line output.
func alertSubjectShort(a recorder.Alert) string {
	s := dash(Truncate(a.Peer, PeerWidth))
	switch {
	case a.Track != "":
		s += "/" + Truncate(a.Track, 20)
	case a.Kind != "":
		s += "/" + Truncate(a.Kind, 20)
	}
	return s
}

func healthText(h string) string {
	switch h {
	case "":
		return "-"
	case "ok":
		return "ok"
	}
	return strings.ToUpper(Truncate(h, 12))
}

// pad truncates (with Truncate) and pads with spaces to exactly n runes.
func pad(s string, n int) string {
	s = Truncate(s, n)
	if c := utf8.RuneCountInString(s); c < n {
		s += strings.Repeat(" ", n-c)
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fmtDur is a duration rounded down to seconds (1h2m3s, 45s); under a second, 0s.
func fmtDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Truncate(time.Second).String()
}

// fmtMs is a millisecond count: 20ms, 1.5s, 2m3s.
func fmtMs(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", ms)
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmtDur(d)
}
