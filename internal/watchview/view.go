// Package watchview is the state and rendering of `roomtape watch`: it folds one job's events
// (pipeline.Event: stats samples, alerts, participants and tracks coming and going) into a view
// and renders it as plain text. It does no I/O of its own; the command owns NATS and the terminal.
//
// Every string that comes from the outside (peer ids, codecs, reasons, alert messages) goes
// through Sanitize before it is rendered, so a hostile peer id cannot move the cursor or
// retitle the terminal.
package watchview

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

// HistoryLen is how many alert raises and clears the view keeps.
const HistoryLen = 5

// StatusStopping is the status shown after a stopping event (not a stored job state).
const StatusStopping = "stopping"

// View is what is known about one job, from its state record and its events.
type View struct {
	JobID   string
	Channel string
	Status  string // a pipeline job state, or StatusStopping
	Worker  string
	Attempt int
	Reason  string // why it failed, stopped or finished
	Labels  map[string]string

	SubmittedAt time.Time
	StartedAt   time.Time // first attempt's start (elapsed counts from here)
	EndedAt     time.Time

	Health      string    // of the last stats sample, updated by alerts in between; "" = unknown
	StatsAt     time.Time // end of the last stats interval (zero: no stats yet)
	IntervalMs  int64
	Warnings    int
	LastWarning string

	Peers   map[string]*Peer
	Active  []recorder.Alert // active alerts, in the order raised
	History []recorder.Alert // last HistoryLen raises and clears, oldest first
	Raised  int              // alert raises seen

	Manifest     *recorder.Manifest // of the finished event, when it carried one
	ManifestPath string

	// Loc is the time zone of rendered clock times (nil: time.Local).
	Loc *time.Location

	final bool
}

// Peer is one participant of the current attempt.
type Peer struct {
	ID       string
	Present  bool // in the channel's presence
	Left     bool // a participant_left event was the last word
	State    string
	Health   string // "" until the first stats sample that names it
	Speaking bool
	Alerts   []string // codes of its active alerts
	Tracks   []Track
}

// Track is one live track of a participant.
type Track struct {
	ID    string // WebRTC track id (TrackStats.TrackID, EventTrack.ID)
	Key   string // logical track key (from stats)
	Kind  string
	Role  string
	Codec string
	// Stats is the track's last stats interval; nil for a track started since the last sample.
	Stats *monitor.TrackStats
}

// New starts a view from the job's state record.
func New(st pipeline.JobState) *View {
	v := &View{
		JobID: st.ID, Channel: st.Channel, Status: st.State, Worker: st.Worker, Attempt: st.Attempt,
		Reason: st.Reason, Labels: st.Labels, SubmittedAt: st.SubmittedAt, Manifest: nil,
		ManifestPath: st.Manifest, Peers: map[string]*Peer{},
	}
	if st.StartedAt != nil {
		v.StartedAt = *st.StartedAt
	}
	if st.EndedAt != nil {
		v.EndedAt = *st.EndedAt
	}
	if st.StopRequested && !st.Terminal() {
		v.Status = StatusStopping
	}
	return v
}

// Final reports whether a finished or failed event was applied.
func (v *View) Final() bool { return v.final }

// Apply folds one event into the view and reports whether it changed anything shown.
// Events of other jobs and unknown types are ignored.
func (v *View) Apply(ev pipeline.Event) bool {
	if ev.JobID != "" && v.JobID != "" && ev.JobID != v.JobID {
		return false
	}
	switch ev.Type {
	case pipeline.EventQueued:
		if v.Status == "" {
			v.Status = pipeline.StateQueued
		}
	case pipeline.EventStarted:
		// A new attempt is a new session in the channel: its participants and alerts start over.
		v.Status, v.Worker, v.Attempt = pipeline.StateRecording, ev.Worker, ev.Attempt
		if v.StartedAt.IsZero() {
			v.StartedAt = ev.Time
		}
		v.Peers, v.Active, v.Health, v.StatsAt = map[string]*Peer{}, nil, "", time.Time{}
	case pipeline.EventParticipantJoined:
		if ev.Peer == "" {
			return false
		}
		p := v.peer(ev.Peer)
		p.Present, p.Left = true, false
	case pipeline.EventParticipantLeft:
		if ev.Peer == "" {
			return false
		}
		p := v.peer(ev.Peer)
		p.Present, p.Left, p.Speaking, p.Tracks = false, true, false, nil
	case pipeline.EventTrackStarted:
		if ev.Track == nil {
			return false
		}
		p := v.peer(ev.Peer)
		t := eventTrack(ev.Track)
		if i := p.track(ev.Track.ID); i >= 0 {
			p.Tracks[i] = t
		} else {
			p.Tracks = append(p.Tracks, t)
		}
	case pipeline.EventTrackEnded:
		if ev.Track == nil {
			return false
		}
		p, ok := v.Peers[ev.Peer]
		if !ok {
			return false
		}
		i := p.track(ev.Track.ID)
		if i < 0 {
			return false
		}
		p.Tracks = slices.Delete(p.Tracks, i, i+1)
	case pipeline.EventWarning:
		v.Warnings++
		v.LastWarning = ev.Warning
		if ev.Reason != "" {
			v.LastWarning += ": " + ev.Reason
		}
		if ev.Warning == pipeline.WarnHandedOff || ev.Warning == pipeline.WarnRetrying {
			v.Status = pipeline.StateQueued
		}
	case pipeline.EventStopping:
		if !v.final {
			v.Status = StatusStopping
		}
	case pipeline.EventStats:
		if ev.Stats == nil {
			return false
		}
		v.applySample(*ev.Stats)
	case pipeline.EventAlert:
		if ev.Alert == nil {
			return false
		}
		v.applyAlert(*ev.Alert)
	case pipeline.EventFinished, pipeline.EventFailed:
		v.final = true
		v.Status = pipeline.StateDone
		if ev.Type == pipeline.EventFailed {
			v.Status = pipeline.StateFailed
		}
		v.Reason, v.EndedAt = ev.Reason, ev.Time
		if ev.Manifest != nil {
			v.Manifest = ev.Manifest
		}
		if ev.ManifestPath != "" {
			v.ManifestPath = ev.ManifestPath
		}
		for _, p := range v.Peers {
			p.Speaking = false
		}
	default:
		return false
	}
	return true
}

// applySample replaces the tracks, peer health and active alerts with the sample's.
func (v *View) applySample(s monitor.Sample) {
	v.StatsAt, v.IntervalMs, v.Health = s.At, s.IntervalMs, s.Health
	for _, p := range v.Peers {
		p.Tracks = nil
	}
	for _, ps := range s.Peers {
		p := v.peer(ps.Peer)
		p.Present, p.State, p.Health, p.Speaking = ps.Present, ps.State, ps.Health, ps.Speaking
		p.Alerts = slices.Clone(ps.Alerts)
		if ps.Present {
			p.Left = false
		}
	}
	for i := range s.Tracks {
		ts := s.Tracks[i]
		p := v.peer(ts.Peer)
		p.Tracks = append(p.Tracks, Track{ID: ts.TrackID, Key: ts.Track, Kind: ts.Kind, Role: ts.Role, Codec: ts.Codec, Stats: &ts})
	}
	for _, p := range v.Peers {
		sort.SliceStable(p.Tracks, func(a, b int) bool { return trackLess(p.Tracks[a], p.Tracks[b]) })
	}
	v.Active = slices.Clone(s.Alerts)
}

// applyAlert adds or removes an active alert and records it in the history.
func (v *View) applyAlert(a recorder.Alert) {
	i := slices.IndexFunc(v.Active, func(b recorder.Alert) bool { return sameAlert(a, b) })
	switch a.State {
	case recorder.AlertRaised:
		v.Raised++
		if i >= 0 {
			v.Active[i] = a
		} else {
			v.Active = append(v.Active, a)
		}
	case recorder.AlertCleared:
		if i >= 0 {
			v.Active = slices.Delete(v.Active, i, i+1)
		}
	default:
		return
	}
	v.History = append(v.History, a)
	if len(v.History) > HistoryLen {
		v.History = slices.Delete(v.History, 0, len(v.History)-HistoryLen)
	}
	if a.Peer != "" {
		p := v.peer(a.Peer)
		p.Alerts = nil
		for _, b := range v.Active {
			if b.Peer == a.Peer && !slices.Contains(p.Alerts, b.Code) {
				p.Alerts = append(p.Alerts, b.Code)
			}
		}
		p.Health = healthOf(len(p.Alerts))
	}
	v.Health = healthOf(len(v.Active))
}

func healthOf(alerts int) string {
	if alerts > 0 {
		return "warning"
	}
	return "ok"
}

func sameAlert(a, b recorder.Alert) bool {
	return a.Code == b.Code && a.Peer == b.Peer && a.Track == b.Track
}

func trackLess(a, b Track) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind // audio before video
	}
	if a.Role != b.Role {
		return a.Role < b.Role
	}
	return a.ID < b.ID
}

func (v *View) peer(id string) *Peer {
	p, ok := v.Peers[id]
	if !ok {
		p = &Peer{ID: id}
		v.Peers[id] = p
	}
	return p
}

// eventTrack is the track a track_started or track_ended event names (no stats).
func eventTrack(t *pipeline.EventTrack) Track {
	return Track{ID: t.ID, Kind: t.Kind, Role: t.Role, Codec: t.Codec}
}

func (p *Peer) track(id string) int {
	return slices.IndexFunc(p.Tracks, func(t Track) bool { return t.ID == id })
}

// SortedPeers lists the participants: present ones first, then by id.
func (v *View) SortedPeers() []*Peer {
	out := make([]*Peer, 0, len(v.Peers))
	for _, p := range v.Peers {
		out = append(out, p)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Present != out[b].Present {
			return out[a].Present
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// TrackCount is the number of live tracks.
func (v *View) TrackCount() int {
	n := 0
	for _, p := range v.Peers {
		n += len(p.Tracks)
	}
	return n
}

// PresentCount is the number of participants in the channel's presence.
func (v *View) PresentCount() int {
	n := 0
	for _, p := range v.Peers {
		if p.Present {
			n++
		}
	}
	return n
}

// Elapsed is how long the job has been recording (until it ended), or queued before it started.
func (v *View) Elapsed(now time.Time) time.Duration {
	from := v.StartedAt
	if from.IsZero() {
		from = v.SubmittedAt
	}
	if from.IsZero() {
		return 0
	}
	to := now
	if !v.EndedAt.IsZero() && (v.final || v.Status == pipeline.StateDone || v.Status == pipeline.StateFailed) {
		to = v.EndedAt
	}
	if to.Before(from) {
		return 0
	}
	return to.Sub(from)
}

// Sanitize makes an outside string safe to print on a terminal: invalid UTF-8 becomes U+FFFD,
// tabs and newlines become spaces, and every other control character (C0, DEL, C1 — ESC and
// CSI among them) and bidirectional override is dropped.
func Sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && (UnsafeRune(r) || r == 0xfffd) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	s = strings.ToValidUTF8(s, "\ufffd")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case r < 0x20 || UnsafeRune(r):
			return -1
		}
		return r
	}, s)
}

// UnsafeRune reports the characters besides C0 controls that a terminal could act on: DEL, C1
// controls and the bidirectional formatting characters.
func UnsafeRune(r rune) bool {
	return r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0x061c || r == 0x200e || r == 0x200f ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// Truncate sanitizes s and shortens it to at most n runes, ending in an ellipsis when cut.
func Truncate(s string, n int) string {
	s = Sanitize(s)
	if n <= 0 {
		return ""
	}
	if len(s) <= n { // bytes ≥ runes
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
