package watchview

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newView() *View {
	started := t0
	v := New(pipeline.JobState{ID: "job-1", Channel: "room-a", State: pipeline.StateRecording, Worker: "w1", Attempt: 1,
		SubmittedAt: t0.Add(-time.Second), StartedAt: &started})
	v.Loc = time.UTC
	return v
}

func ev(typ string, at time.Duration, mod ...func(*pipeline.Event)) pipeline.Event {
	e := pipeline.Event{Version: 1, Type: typ, JobID: "job-1", Time: t0.Add(at)}
	for _, m := range mod {
		m(&e)
	}
	return e
}

func peerEv(typ, peer string, at time.Duration) pipeline.Event {
	return ev(typ, at, func(e *pipeline.Event) { e.Peer = peer })
}

func trackEv(typ, peer, id, kind, role string, at time.Duration) pipeline.Event {
	return ev(typ, at, func(e *pipeline.Event) {
		e.Peer = peer
		e.Track = &pipeline.EventTrack{ID: id, Kind: kind, Role: role, Codec: map[string]string{"audio": "audio/opus", "video": "video/VP8"}[kind]}
	})
}

func level(v float64) *float64 { return &v }

// sample: alice with a microphone and a frozen camera, bob present without media, one loss alert.
func sample(at time.Duration) monitor.Sample {
	return monitor.Sample{
		At: t0.Add(at), IntervalMs: 5000, Health: "warning",
		Peers: []monitor.PeerStats{
			{Peer: "alice", Present: true, State: "connected", Health: "warning", Tracks: 2, Speaking: true, Alerts: []string{"loss"}},
			{Peer: "bob", Present: true, State: "connected", Health: "ok"},
		},
		Tracks: []monitor.TrackStats{
			{Peer: "alice", Track: "camera", TrackID: "v1", Kind: "video", Role: "camera", Codec: "VP8", BitrateBps: 812_000,
				LossPct: 1.25, LossBeforeRecoveryPct: 3, JitterMs: 8, FPS: 29.97, Width: 1280, Height: 720,
				SinceLastPacketMs: 1500, Frozen: true},
			{Peer: "alice", Track: "mic", TrackID: "a1", Kind: "audio", Role: "mic", Codec: "opus", BitrateBps: 32_400,
				JitterMs: 3.14, Level: level(-30), SpeechPct: 80, Speaking: true, SinceLastPacketMs: 20},
		},
		Alerts: []recorder.Alert{lossAlert(recorder.AlertRaised, at)},
	}
}

func lossAlert(state string, at time.Duration) recorder.Alert {
	return recorder.Alert{Code: recorder.AlertLoss, State: state, Peer: "alice", Track: "camera", Kind: "video",
		At: t0.Add(at), Since: t0.Add(at - 10*time.Second), Value: 6.2, Threshold: 5, Message: "loss 6.2% over 10s"}
}

func alertEv(a recorder.Alert) pipeline.Event {
	return pipeline.Event{Version: 1, Type: pipeline.EventAlert, JobID: "job-1", Time: a.At, Peer: a.Peer, Alert: &a}
}

func statsEv(s monitor.Sample) pipeline.Event {
	return pipeline.Event{Version: 1, Type: pipeline.EventStats, JobID: "job-1", Time: s.At, Stats: &s}
}

func trackIDs(p *Peer) []string {
	var ids []string
	for _, t := range p.Tracks {
		ids = append(ids, t.ID)
	}
	return ids
}

func TestWatchViewApply(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []pipeline.Event
		check  func(t *testing.T, v *View)
	}{
		{"join and leave", []pipeline.Event{
			peerEv(pipeline.EventParticipantJoined, "alice", time.Second),
			trackEv(pipeline.EventTrackStarted, "alice", "a1", "audio", "mic", 2*time.Second),
			peerEv(pipeline.EventParticipantJoined, "bob", 3*time.Second),
			peerEv(pipeline.EventParticipantLeft, "alice", 4*time.Second),
		}, func(t *testing.T, v *View) {
			a, b := v.Peers["alice"], v.Peers["bob"]
			if a.Present || !a.Left || len(a.Tracks) != 0 || !b.Present || b.Left {
				t.Errorf("alice %+v bob %+v", a, b)
			}
			if v.PresentCount() != 1 || v.TrackCount() != 0 {
				t.Errorf("present %d tracks %d", v.PresentCount(), v.TrackCount())
			}
			if ps := v.SortedPeers(); ps[0].ID != "bob" || ps[1].ID != "alice" {
				t.Errorf("order: %s %s (present first)", ps[0].ID, ps[1].ID)
			}
		}},
		{"rejoin", []pipeline.Event{
			peerEv(pipeline.EventParticipantJoined, "alice", time.Second),
			peerEv(pipeline.EventParticipantLeft, "alice", 2*time.Second),
			peerEv(pipeline.EventParticipantJoined, "alice", 3*time.Second),
		}, func(t *testing.T, v *View) {
			if a := v.Peers["alice"]; !a.Present || a.Left {
				t.Errorf("alice %+v", a)
			}
		}},
		{"tracks start and end between samples", []pipeline.Event{
			trackEv(pipeline.EventTrackStarted, "alice", "a1", "audio", "mic", time.Second),
			trackEv(pipeline.EventTrackStarted, "alice", "v1", "video", "camera", time.Second),
			trackEv(pipeline.EventTrackStarted, "alice", "v1", "video", "camera", time.Second), // repeated: replaced
			trackEv(pipeline.EventTrackEnded, "alice", "a1", "audio", "mic", 2*time.Second),
		}, func(t *testing.T, v *View) {
			if ids := trackIDs(v.Peers["alice"]); !slices.Equal(ids, []string{"v1"}) {
				t.Errorf("tracks %v", ids)
			}
			if tr := v.Peers["alice"].Tracks[0]; tr.Codec != "video/VP8" || tr.Stats != nil {
				t.Errorf("track %+v", tr)
			}
		}},
		{"stats sample replaces tracks", []pipeline.Event{
			trackEv(pipeline.EventTrackStarted, "alice", "old", "audio", "mic", time.Second),
			trackEv(pipeline.EventTrackStarted, "carol", "c1", "audio", "mic", time.Second),
			statsEv(sample(5 * time.Second)),
		}, func(t *testing.T, v *View) {
			if ids := trackIDs(v.Peers["alice"]); !slices.Equal(ids, []string{"a1", "v1"}) {
				t.Errorf("alice tracks %v, want the sample's (audio first)", ids)
			}
			if len(v.Peers["carol"].Tracks) != 0 {
				t.Errorf("carol kept tracks the sample does not have: %v", trackIDs(v.Peers["carol"]))
			}
			a := v.Peers["alice"]
			if !a.Present || a.State != "connected" || a.Health != "warning" || !a.Speaking || !slices.Equal(a.Alerts, []string{"loss"}) {
				t.Errorf("alice %+v", a)
			}
			if tr := a.Tracks[1]; tr.Stats == nil || tr.Stats.Width != 1280 || tr.Key != "camera" {
				t.Errorf("camera %+v", tr)
			}
			if v.Health != "warning" || len(v.Active) != 1 || !v.StatsAt.Equal(t0.Add(5*time.Second)) || v.TrackCount() != 2 {
				t.Errorf("health %q active %d statsAt %v tracks %d", v.Health, len(v.Active), v.StatsAt, v.TrackCount())
			}
		}},
		{"second sample replaces the first", []pipeline.Event{
			statsEv(sample(5 * time.Second)),
			statsEv(monitor.Sample{At: t0.Add(10 * time.Second), Health: "ok",
				Peers:  []monitor.PeerStats{{Peer: "alice", Present: true, Health: "ok"}},
				Tracks: []monitor.TrackStats{{Peer: "alice", Track: "mic", TrackID: "a2", Kind: "audio"}}}),
		}, func(t *testing.T, v *View) {
			if ids := trackIDs(v.Peers["alice"]); !slices.Equal(ids, []string{"a2"}) {
				t.Errorf("tracks %v", ids)
			}
			if v.Health != "ok" || len(v.Active) != 0 || len(v.Peers["alice"].Alerts) != 0 {
				t.Errorf("health %q active %v", v.Health, v.Active)
			}
		}},
		{"alert raise and clear", []pipeline.Event{
			alertEv(lossAlert(recorder.AlertRaised, 5*time.Second)),
			alertEv(lossAlert(recorder.AlertRaised, 6*time.Second)), // same alert again: still one
			alertEv(recorder.Alert{Code: recorder.AlertSilent, State: recorder.AlertRaised, Peer: "bob", At: t0.Add(7 * time.Second)}),
		}, func(t *testing.T, v *View) {
			if len(v.Active) != 2 || v.Health != "warning" || v.Raised != 3 || len(v.History) != 3 {
				t.Fatalf("active %d health %q raised %d history %d", len(v.Active), v.Health, v.Raised, len(v.History))
			}
			if a := v.Peers["alice"]; !slices.Equal(a.Alerts, []string{"loss"}) || a.Health != "warning" {
				t.Errorf("alice %+v", a)
			}
			v.Apply(alertEv(lossAlert(recorder.AlertCleared, 20*time.Second)))
			if len(v.Active) != 1 || v.Active[0].Code != recorder.AlertSilent || v.Health != "warning" {
				t.Errorf("after clearing loss: %+v", v.Active)
			}
			if a := v.Peers["alice"]; len(a.Alerts) != 0 || a.Health != "ok" {
				t.Errorf("alice %+v", a)
			}
			v.Apply(alertEv(recorder.Alert{Code: recorder.AlertSilent, State: recorder.AlertCleared, Peer: "bob", At: t0.Add(21 * time.Second)}))
			if len(v.Active) != 0 || v.Health != "ok" {
				t.Errorf("after clearing all: %+v %q", v.Active, v.Health)
			}
			if len(v.History) != HistoryLen || v.History[HistoryLen-1].State != recorder.AlertCleared ||
				v.History[HistoryLen-1].Code != recorder.AlertSilent {
				t.Errorf("history %+v", v.History)
			}
		}},
		{"clear of an unknown alert", []pipeline.Event{
			alertEv(lossAlert(recorder.AlertCleared, 5*time.Second)),
		}, func(t *testing.T, v *View) {
			if len(v.Active) != 0 || v.Health != "ok" || len(v.History) != 1 {
				t.Errorf("active %v health %q history %d", v.Active, v.Health, len(v.History))
			}
		}},
		{"new attempt starts over", []pipeline.Event{
			statsEv(sample(5 * time.Second)),
			ev(pipeline.EventWarning, 6*time.Second, func(e *pipeline.Event) { e.Warning, e.Reason = pipeline.WarnHandedOff, "draining" }),
			ev(pipeline.EventStarted, 8*time.Second, func(e *pipeline.Event) { e.Worker, e.Attempt = "w2", 2 }),
		}, func(t *testing.T, v *View) {
			if len(v.Peers) != 0 || len(v.Active) != 0 || v.Worker != "w2" || v.Attempt != 2 || v.Status != pipeline.StateRecording {
				t.Errorf("%+v", v)
			}
			if !v.StartedAt.Equal(t0) || v.Warnings != 1 || !strings.Contains(v.LastWarning, "draining") {
				t.Errorf("started %v (first attempt's), warnings %d %q", v.StartedAt, v.Warnings, v.LastWarning)
			}
		}},
		{"stopping then finished", []pipeline.Event{
			ev(pipeline.EventStopping, 10*time.Second),
			ev(pipeline.EventFinished, 12*time.Second, func(e *pipeline.Event) { e.Reason, e.ManifestPath = "stopped", "/rec/job-1/manifest.json" }),
		}, func(t *testing.T, v *View) {
			if !v.Final() || v.Status != pipeline.StateDone || v.Reason != "stopped" || v.Elapsed(t0.Add(time.Hour)) != 12*time.Second {
				t.Errorf("final %v status %q reason %q elapsed %s", v.Final(), v.Status, v.Reason, v.Elapsed(t0.Add(time.Hour)))
			}
		}},
		{"failed", []pipeline.Event{
			ev(pipeline.EventFailed, 3*time.Second, func(e *pipeline.Event) { e.Reason = "channel forbidden" }),
		}, func(t *testing.T, v *View) {
			if !v.Final() || v.Status != pipeline.StateFailed {
				t.Errorf("final %v status %q", v.Final(), v.Status)
			}
		}},
		{"ignored", []pipeline.Event{
			{Type: pipeline.EventStats, JobID: "job-1"},                              // no body
			{Type: pipeline.EventAlert, JobID: "job-1"},                              // no body
			{Type: pipeline.EventParticipantJoined, JobID: "job-2", Peer: "mallory"}, // another job
			{Type: "something_new", JobID: "job-1", Peer: "x"},
		}, func(t *testing.T, v *View) {
			if len(v.Peers) != 0 || v.Health != "" || !v.StatsAt.IsZero() {
				t.Errorf("%+v", v)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newView()
			for _, e := range tc.events {
				v.Apply(e)
			}
			tc.check(t, v)
		})
	}
}

func TestWatchViewSanitizeTruncate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"\x1b]0;pwned\x07evil\x1b[2J", "]0;pwnedevil[2J"},
		{"csi\u009b31mred", "csi31mred"},
		{"del\x7f nul\x00", "del nul"},
		{"tab\tnew\nline\r", "tab new line "},
		{"bidi\u202egnp.exe", "bidignp.exe"},
		{"bad\xffutf8", "bad\ufffdutf8"},
		{"ünïcødé 👋", "ünïcødé 👋"},
	} {
		if got := Sanitize(tc.in); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 20, "short"},
		{"exactly-twenty-chars", 20, "exactly-twenty-chars"},
		{"a-very-long-peer-id-that-goes-on", 20, "a-very-long-peer-id…"},
		{"ééééééééééééééééééééééé", 5, "éééé…"},
		{"\x1b[31mred\x1b[0m-and-more-text-here", 10, "[31mred[0…"},
	} {
		got := Truncate(tc.in, tc.n)
		if got != tc.want || utf8.RuneCountInString(got) > tc.n {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// fullView is a job with two participants, stats, an active alert and a cleared one.
func fullView() *View {
	v := newView()
	v.Apply(peerEv(pipeline.EventParticipantJoined, "alice", time.Second))
	v.Apply(peerEv(pipeline.EventParticipantJoined, "bob", time.Second))
	v.Apply(statsEv(sample(5 * time.Second)))
	v.Apply(alertEv(recorder.Alert{Code: recorder.AlertSilent, State: recorder.AlertRaised, Peer: "bob", Kind: "audio",
		At: t0.Add(6 * time.Second), Since: t0.Add(-24 * time.Second), Message: "no speech for 30s"}))
	v.Apply(alertEv(recorder.Alert{Code: recorder.AlertSilent, State: recorder.AlertCleared, Peer: "bob", Kind: "audio",
		At: t0.Add(7 * time.Second), Message: "speech again"}))
	v.Apply(trackEv(pipeline.EventTrackStarted, "bob", "b1", "audio", "mic", 8*time.Second))
	return v
}

// wantContains reports every one of wants that out (named what) lacks.
func wantContains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, out)
		}
	}
}

func TestWatchViewRender(t *testing.T) {
	v := fullView()
	out := v.Render(t0.Add(9*time.Second), 0)
	wantContains(t, "view", out,
		"job job-1 · channel room-a · recording on w1 (attempt 1)",
		"elapsed 9s · health WARNING · 2 present · 3 tracks · 1 alerts · stats 4s ago",
		// columns
		"PEER", "PRESENCE", "HEALTH", "SPEAKING", "ALERTS",
		"TRACK", "CODEC", "KBPS", "LOSS% (PRE)", "JITTER", "FPS", "RES", "LEVEL / SPEECH", "LAST PKT", "FROZEN",
		// alice and her tracks, indented
		"alice                present connected    warning  yes      loss",
		"\n  audio/mic          opus         32",
		"0.0 (0.0)", "3.1ms", "-30dBov / 80%", "20ms",
		"\n  video/camera       VP8         812",
		"1.2 (3.0)", "8.0ms", " 30.0 ", "1280x720", "1.5s", "FROZEN",
		// bob's track started after the sample
		"bob                  present connected    ok       no       -",
		"\n  audio/mic          opus          -",
		"(no stats yet)",
		"ACTIVE ALERTS (1)",
		"  14s    loss              alice                camera       loss 6.2% over 10s",
		"RECENT ALERTS",
		"12:00:07 cleared silent            bob                  audio        speech again",
		"12:00:06 raised  silent",
	)
	// The most recent alert change comes first.
	if strings.Index(out, "12:00:07 cleared") > strings.Index(out, "12:00:06 raised") {
		t.Errorf("history not newest first:\n%s", out)
	}
	narrow := v.Render(t0.Add(9*time.Second), 40)
	for _, l := range strings.Split(narrow, "\n") {
		if utf8.RuneCountInString(l) > 40 {
			t.Errorf("line longer than 40: %q", l)
		}
	}

	wantContains(t, "empty view", newView().Render(t0, 0), "no stats yet", "(no participants)", "ACTIVE ALERTS: none", "health -")
}

func TestWatchViewRenderBlockAndLines(t *testing.T) {
	v := fullView()
	wantContains(t, "block", v.RenderBlock(t0.Add(9*time.Second)),
		"12:00:05 job-1 recording on w1 (attempt 1) elapsed 9s health WARNING · 2 present · 3 tracks · 1 alerts\n",
		"\n  alice present connected health warning speaking alerts loss\n",
		"\n    audio/mic opus 32kbps loss 0.0 (0.0) jitter 3.1ms level -30dBov / 80% last 20ms\n",
		"\n    video/camera VP8 812kbps loss 1.2 (3.0) jitter 8.0ms 30.0fps 1280x720 last 1.5s FROZEN\n",
		"\n  bob present connected health ok\n    audio/mic opus (no stats yet)\n",
		"\n  alert loss alice/camera for 14s: loss 6.2% over 10s\n",
	)
	for _, tc := range []struct {
		ev   pipeline.Event
		want string
	}{
		{peerEv(pipeline.EventParticipantJoined, "carol", time.Second), "12:00:01 carol joined"},
		{peerEv(pipeline.EventParticipantLeft, "carol", 2*time.Second), "12:00:02 carol left"},
		{trackEv(pipeline.EventTrackStarted, "carol", "c1", "video", "screen", 3*time.Second), "12:00:03 carol: video/screen track started (VP8)"},
		{alertEv(lossAlert(recorder.AlertRaised, 4*time.Second)), "12:00:04 alert raised loss alice/camera: loss 6.2% over 10s"},
		{ev(pipeline.EventFinished, 5*time.Second, func(e *pipeline.Event) { e.Reason = "max duration" }), "12:00:05 finished: max duration"},
		{statsEv(sample(5 * time.Second)), ""},
	} {
		if got := v.EventLine(tc.ev); got != tc.want {
			t.Errorf("EventLine(%s) = %q, want %q", tc.ev.Type, got, tc.want)
		}
	}

	v.Apply(ev(pipeline.EventFinished, 30*time.Second, func(e *pipeline.Event) {
		e.Reason, e.ManifestPath = "stopped", "/rec/job-1/manifest.json"
	}))
	var sum bytes.Buffer
	v.WriteSummary(&sum)
	wantContains(t, "summary", sum.String(), "job job-1 finished after 30s: stopped", "participants 2",
		"alerts raised 1, active at the end 1", "manifest: /rec/job-1/manifest.json")
}

// A hostile peer id, codec, alert message or reason never puts a control character (ESC, BEL,
// CSI) on the terminal, and a long id is cut to the column.
func TestWatchViewHostileNames(t *testing.T) {
	evil := "\x1b]0;owned\x07\x1b[2J\u009b6n\u202eevil-peer-with-a-very-long-name-indeed"
	v := newView()
	v.Apply(peerEv(pipeline.EventParticipantJoined, evil, time.Second))
	tr := trackEv(pipeline.EventTrackStarted, evil, "t\x1b[1m", "video\x1b[5m", "cam\r", time.Second)
	tr.Track.Codec = "video/\x1b[31mVP8"
	v.Apply(tr)
	v.Apply(alertEv(recorder.Alert{Code: "loss\x1b", State: recorder.AlertRaised, Peer: evil, Track: "\x1b[H",
		At: t0, Message: "bad\x1b[2Jthing\x07"}))
	v.Apply(ev(pipeline.EventWarning, 2*time.Second, func(e *pipeline.Event) { e.Warning, e.Reason = "w\x1b", "r\x1bc" }))
	v.Apply(ev(pipeline.EventFailed, 3*time.Second, func(e *pipeline.Event) { e.Reason = "\x1b[31mboom" }))
	var sum bytes.Buffer
	v.WriteSummary(&sum)
	outs := []string{v.Render(t0, 0), v.RenderBlock(t0), sum.String(), v.EventLine(tr),
		v.EventLine(peerEv(pipeline.EventParticipantLeft, evil, 0))}
	for _, out := range outs {
		for _, r := range out {
			if r != '\n' && (r < 0x20 || UnsafeRune(r)) {
				t.Errorf("control character %U in output:\n%q", r, out)
				break
			}
		}
	}
	if !strings.Contains(outs[0], "]0;owned[2J6nevil-p…") {
		t.Errorf("peer id not shown cut to %d runes:\n%s", PeerWidth, outs[0])
	}
}
