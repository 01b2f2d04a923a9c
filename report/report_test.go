package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"

	"github.com/roomtape/roomtape/internal/browsertest"
	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/recorder"
)

// The fixture (testdata/standup) is a 5-minute call with two attempts (the first worker stopped
// at 140 s), three participants and six logical tracks: alice (camera audio+video, loss gap and
// loss alert), bob (camera audio+video over three sessions with a reconnect at 205 s, a screen
// share with a loss gap and a frozen alert never cleared) and a participant whose peer id and
// name are hostile markup (a mic without audio levels or quality summary, who left). stats.jsonl
// holds one sample every 5 s of both attempts.
const (
	fixtureDir  = "testdata/standup"
	hostilePeer = "<script>alert(1)</script>/../x"
)

func loadFixture(t testing.TB) (*recorder.Manifest, []monitor.Sample) {
	t.Helper()
	m, err := recorder.ReadManifest(filepath.Join(fixtureDir, recorder.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(fixtureDir, m.Stats))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := ReadSampleLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if l.SkippedCount != 0 || l.TruncatedTail || len(l.Samples) < 50 {
		t.Fatalf("fixture stats: %d samples, %d skipped, truncated %v", len(l.Samples), l.SkippedCount, l.TruncatedTail)
	}
	return m, l.Samples
}

// cloneManifest deep-copies m through JSON, so that a test can change it.
func cloneManifest(t testing.TB, m *recorder.Manifest) *recorder.Manifest {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var c recorder.Manifest
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func renderString(t testing.TB, m *recorder.Manifest, samples []monitor.Sample) string {
	t.Helper()
	var b strings.Builder
	if err := Render(&b, m, samples); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------------
// DOM helpers over golang.org/x/net/html.

func parseHTML(t testing.TB, doc string) *html.Node {
	t.Helper()
	n, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	return slices.Contains(strings.Fields(v), class)
}

// findAll returns the element nodes under root (root included) that match.
func findAll(root *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for n := range root.Descendants() {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
	}
	if root.Type == html.ElementNode && match(root) {
		out = append([]*html.Node{root}, out...)
	}
	return out
}

func byClass(class string) func(*html.Node) bool {
	return func(n *html.Node) bool { return hasClass(n, class) }
}

func byID(root *html.Node, id string) *html.Node {
	found := findAll(root, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id })
	if len(found) == 0 {
		return nil
	}
	return found[0]
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------------

// The report loads nothing from anywhere, escapes hostile manifest strings and is deterministic.
func TestRenderSelfContainedAndEscaped(t *testing.T) {
	m, samples := loadFixture(t)
	// More hostile input on top of the fixture's peer id and name.
	m.Channel = `acme"><svg onload=alert(3)>`
	m.RecordingID = `rec-<b>1</b>`
	m.Participants[0].Tracks[0].Files[0].Gaps[0].Cause = `loss" onmouseover="alert(4)`
	m.Participants[0].Metadata = json.RawMessage(`{"name":"</title><script>alert(5)</script>","x":"<style>*{}</style>"}`)
	m.Alerts[0].Message = `<img src="http://evil.example/x.png">`
	m.Attempts[0].Reason = `<a href="http://evil.example/">click</a>`

	out := renderString(t, m, samples)
	if again := renderString(t, m, samples); again != out {
		t.Fatal("two renders of the same input differ")
	}
	for _, bad := range []string{"zgotmplz", `src="http`, `href="http`, `<link`, `<script`, `<img`, `<svg onload`, `url(http`, `@import`, `<b>1</b>`} {
		if strings.Contains(strings.ToLower(out), bad) {
			i := strings.Index(strings.ToLower(out), bad)
			t.Errorf("output contains %q: …%s…", bad, out[max(i-80, 0):min(i+80, len(out))])
		}
	}
	if !strings.Contains(out, "&lt;script&gt;alert(1)&lt;/script&gt;/../x") {
		t.Error("the hostile peer id is not shown escaped")
	}

	doc := parseHTML(t, out)
	for _, n := range findAll(doc, func(*html.Node) bool { return true }) {
		switch n.Data {
		case "script", "link", "img", "iframe", "object", "embed", "base", "form", "b", "a", "image", "use", "foreignObject":
			t.Errorf("unexpected <%s> element", n.Data)
		}
		for _, a := range n.Attr {
			k, v := strings.ToLower(a.Key), strings.ToLower(strings.TrimSpace(a.Val))
			if strings.HasPrefix(k, "on") {
				t.Errorf("<%s> has event handler %s=%q", n.Data, a.Key, a.Val)
			}
			if (k == "src" || k == "href" || k == "xlink:href" || k == "action") && !strings.HasPrefix(v, "#") {
				t.Errorf("<%s %s=%q> refers outside the document", n.Data, a.Key, a.Val)
			}
			if strings.Contains(v, "url(") && !strings.Contains(v, "url(#") {
				t.Errorf("<%s %s=%q> loads a URL", n.Data, a.Key, a.Val)
			}
		}
	}
	// Only one <style>, and its url()s are in-document references.
	styles := findAll(doc, func(n *html.Node) bool { return n.Data == "style" })
	if len(styles) != 1 {
		t.Fatalf("%d <style> elements", len(styles))
	}
	if css := textOf(styles[0]); strings.Count(css, "url(") != strings.Count(css, "url(#") {
		t.Error("the stylesheet loads a URL")
	}
	csp := findAll(doc, func(n *html.Node) bool {
		v, _ := attr(n, "http-equiv")
		return n.Data == "meta" && v == "Content-Security-Policy"
	})
	if len(csp) != 1 {
		t.Error("no Content-Security-Policy meta")
	} else if v, _ := attr(csp[0], "content"); !strings.Contains(v, "default-src 'none'") {
		t.Errorf("CSP %q", v)
	}

	// The hostile strings arrive intact as text and attribute values.
	var hostile *html.Node
	for _, p := range findAll(doc, byClass("participant")) {
		if v, _ := attr(p, "data-peer"); v == hostilePeer {
			hostile = p
		}
	}
	if hostile == nil {
		t.Fatal("no .participant with the hostile peer id as data-peer")
	}
	if !strings.Contains(textOf(hostile), "<img src=x onerror=alert(2)>") {
		t.Errorf("the hostile name is not shown as text: %q", textOf(hostile))
	}
	if got := textOf(byID(doc, "channel")); got != m.Channel {
		t.Errorf("channel %q, want %q", got, m.Channel)
	}
	if got := textOf(byID(doc, "recording-id")); got != m.RecordingID {
		t.Errorf("recording id %q", got)
	}
	gaps := findAll(doc, func(n *html.Node) bool {
		v, _ := attr(n, "data-cause")
		return hasClass(n, "gap") && v == `loss" onmouseover="alert(4)`
	})
	if len(gaps) != 1 {
		t.Errorf("%d gaps carry the hostile cause as data-cause", len(gaps))
	}
}

// Odd and minimal manifests render without panicking, and what they have is shown.
func TestRenderEdgeCases(t *testing.T) {
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		m       *recorder.Manifest
		samples []monitor.Sample
		want    map[string]int // selector (class or #id) → count
	}{
		{"empty manifest", &recorder.Manifest{}, nil, map[string]int{"#timeline": 1, "participant": 0, "#no-samples": 1}},
		{"nil entries and odd values", &recorder.Manifest{Version: 1, StartedAt: start, Status: "weird",
			Participants: []*recorder.Participant{nil, {PeerID: "p", Metadata: json.RawMessage(`[1,2`),
				Sessions: []*recorder.Session{nil, {ID: "s", StartOffset: -5000}},
				Tracks: []*recorder.Track{nil, {Key: "k", Kind: "audio", Files: []*recorder.File{nil,
					{Path: "p/k.ogg", StartOffsetMs: 0, DurationMs: 0, Gaps: []recorder.Gap{{StartMs: 10, LengthMs: -3, Cause: ""}, {StartMs: 0, LengthMs: 5, Cause: "cosmic_ray"}}}}}}}},
			Alerts: []recorder.Alert{
				{Code: "no_media", State: recorder.AlertRaised, OffsetMs: 500},                     // no peer: the recording row
				{Code: "loss", State: recorder.AlertCleared, Peer: "p", Track: "k", OffsetMs: 800}, // a clear without raise
				{Code: "silent", State: recorder.AlertRaised, Peer: "ghost", OffsetMs: 900},        // a peer nobody else knows
			}},
			[]monitor.Sample{{OffsetMs: 1000}, {OffsetMs: 1000, Tracks: []monitor.TrackStats{{Peer: "p", Track: "k", Kind: "audio"}}}},
			map[string]int{"participant": 2, "lane": 1, "file": 1, "gap": 2, "alert": 3, "recording-alerts": 1, "series": 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := parseHTML(t, renderString(t, tc.m, tc.samples))
			for sel, n := range tc.want {
				var got int
				if id, ok := strings.CutPrefix(sel, "#"); ok {
					if byID(doc, id) != nil {
						got = 1
					}
				} else {
					got = len(findAll(doc, byClass(sel)))
				}
				if got != n {
					t.Errorf("%s: %d, want %d", sel, got, n)
				}
			}
		})
	}
	if err := Render(io.Discard, nil, nil); err == nil {
		t.Error("a nil manifest renders")
	}
}

// expected is what a report must show, counted from its input.
type expected struct {
	participants, lanes, files, partial, gaps, sessions, reconnects int
	spanLanes                                                       int // lanes without files that show spans from the stats
	statsTracks, levelTracks                                        int
	alerts, openAlerts                                              int
}

func countExpected(m *recorder.Manifest, samples []monitor.Sample) expected {
	var e expected
	peers, lanes := map[string]bool{}, map[trackRef]bool{}
	withFiles := map[trackRef]bool{}
	for _, p := range m.Participants {
		peers[p.PeerID] = true
		e.sessions += len(p.Sessions)
		e.reconnects += max(len(p.Sessions)-1, 0)
		for _, t := range p.Tracks {
			ref := trackRef{p.PeerID, t.Key, t.Kind}
			lanes[ref] = true
			withFiles[ref] = len(t.Files) > 0
			for _, f := range t.Files {
				e.files++
				if f.Partial {
					e.partial++
				}
				e.gaps += len(f.Gaps)
			}
		}
	}
	stats, levels := map[trackRef]bool{}, map[trackRef]bool{}
	for _, s := range samples {
		for _, ps := range s.Peers {
			peers[ps.Peer] = true
		}
		for _, ts := range s.Tracks {
			ref := trackRef{ts.Peer, ts.Track, ts.Kind}
			peers[ts.Peer], lanes[ref], stats[ref] = true, true, true
			if ts.Kind == "audio" && ts.Level != nil {
				levels[ref] = true
			}
		}
	}
	for ref := range stats {
		if !withFiles[ref] {
			e.spanLanes++
		}
	}
	for i, a := range m.Alerts {
		if a.Peer != "" {
			peers[a.Peer] = true
		}
		if a.State != recorder.AlertRaised {
			continue
		}
		e.alerts++
		if !slices.ContainsFunc(m.Alerts[i+1:], func(c recorder.Alert) bool {
			return c.State == recorder.AlertCleared && c.Code == a.Code && c.Peer == a.Peer && c.Track == a.Track && c.Kind == a.Kind
		}) {
			e.openAlerts++
		}
	}
	e.participants, e.lanes = len(peers), len(lanes)
	e.statsTracks, e.levelTracks = len(stats), len(levels)
	return e
}

// variant is one kind of recording made from the fixture.
type variant struct {
	name    string
	m       *recorder.Manifest
	samples []monitor.Sample
}

// variants are the fixture as recorded (record + monitor), record-only (no stats, no quality,
// no alerts), monitor-only (no files) and with a participant only the stats know.
func variants(t testing.TB) []variant {
	m, samples := loadFixture(t)
	full := countExpected(m, samples)
	if full.gaps == 0 || full.partial == 0 || full.reconnects == 0 || full.openAlerts == 0 || full.levelTracks == 0 ||
		full.levelTracks == full.statsTracks || full.spanLanes != 0 {
		t.Fatalf("the fixture lost its variety: %+v", full)
	}

	recordOnly := cloneManifest(t, m)
	recordOnly.Mode, recordOnly.Stats, recordOnly.Alerts = "record", "", nil
	for _, p := range recordOnly.Participants {
		for _, tr := range p.Tracks {
			tr.Quality = nil
		}
	}

	monitorOnly := cloneManifest(t, m)
	monitorOnly.Mode = "monitor"
	for _, p := range monitorOnly.Participants {
		for _, tr := range p.Tracks {
			tr.Files = nil
		}
	}

	// A participant and track the manifest does not know (yet): the stats add them.
	extra := slices.Clone(samples)
	for i := range extra[:10] {
		s := extra[i]
		s.Tracks = append(slices.Clone(s.Tracks), monitor.TrackStats{Peer: "carol", Track: "camera", Kind: "video", Codec: "video/VP8", BitrateBps: 500_000})
		extra[i] = s
	}
	return []variant{
		{"record+monitor", m, samples},
		{"record-only", recordOnly, nil},
		{"monitor-only", monitorOnly, samples},
		{"stats-only participant", m, extra},
	}
}

// The DOM of record+monitor, record-only and monitor-only reports.
func TestRenderModes(t *testing.T) {
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			want := countExpected(v.m, v.samples)
			doc := parseHTML(t, renderString(t, v.m, v.samples))
			tl := byID(doc, "timeline")
			if tl == nil {
				t.Fatal("no #timeline")
			}
			count := func(root *html.Node, class string) int { return len(findAll(root, byClass(class))) }
			spanLanes := 0
			for _, l := range findAll(tl, byClass("lane")) {
				if count(l, "span") > 0 {
					spanLanes++
				}
			}
			checks := []struct {
				what      string
				got, want int
			}{
				{".participant", count(tl, "participant"), want.participants},
				{".lane", count(tl, "lane"), want.lanes},
				{".file", count(tl, "file"), want.files},
				{".file.partial", count(tl, "partial"), want.partial},
				{".gap", count(tl, "gap"), want.gaps},
				{".session", count(tl, "session"), want.sessions},
				{".session.reconnect", count(tl, "reconnect"), want.reconnects},
				{"lanes with .span", spanLanes, want.spanLanes},
				{".alert", count(tl, "alert"), want.alerts},
				{".alert.open", count(tl, "open"), want.openAlerts},
				{"#alerts .alert-row", count(doc, "alert-row"), want.alerts},
				{"#quality .quality-row", count(doc, "quality-row"), want.lanes},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
				}
			}
			// Every lane sits in its participant's group and names its track.
			for _, p := range findAll(tl, byClass("participant")) {
				peer, _ := attr(p, "data-peer")
				for _, l := range findAll(p, byClass("lane")) {
					if lp, _ := attr(l, "data-peer"); lp != peer {
						t.Errorf("lane of %q in the group of %q", lp, peer)
					}
					if k, _ := attr(l, "data-track"); k == "" {
						t.Error("lane without data-track")
					}
				}
			}

			plots := map[string]int{"plot-bitrate": want.statsTracks, "plot-loss": 2 * want.statsTracks, "plot-level": want.levelTracks}
			for id, n := range plots {
				p := byID(doc, id)
				if len(v.samples) == 0 {
					if p != nil {
						t.Errorf("#%s without samples", id)
					}
					continue
				}
				if p == nil {
					t.Errorf("no #%s", id)
					continue
				}
				series := findAll(p, byClass("series"))
				if len(series) != n {
					t.Errorf("#%s: %d series, want %d", id, len(series), n)
				}
				for _, s := range series {
					if d, _ := attr(s, "d"); !strings.HasPrefix(d, "M") {
						t.Errorf("#%s series with path %q", id, d)
					}
				}
			}
			if (len(v.samples) == 0) != (byID(doc, "no-samples") != nil) {
				t.Error("#no-samples note shown wrongly")
			}
		})
	}
}

func TestReadSamples(t *testing.T) {
	line := func(off int64) string {
		b, _ := json.Marshal(monitor.Sample{OffsetMs: off, IntervalMs: 5000, Health: "ok",
			Tracks: []monitor.TrackStats{{Peer: "a", Track: "camera", Kind: "audio", BitrateBps: 32000}}})
		return string(b)
	}
	good1, good2, good3 := line(5000), line(10000), line(15000)
	tests := []struct {
		name      string
		in        string
		offsets   []int64
		skipped   []int
		truncated bool
	}{
		{"empty", "", nil, nil, false},
		{"clean", good1 + "\n" + good2 + "\n", []int64{5000, 10000}, nil, false},
		{"no final newline", good1 + "\n" + good2, []int64{5000, 10000}, nil, false},
		{"blank lines and CRLF", "\n" + good1 + "\r\n\r\n" + good2 + "\r\n", []int64{5000, 10000}, nil, false},
		{"truncated last line", good1 + "\n" + good2 + "\n" + good3[:len(good3)/2], []int64{5000, 10000}, nil, true},
		{"garbled last line with newline", good1 + "\n" + "\x00\x00\x00\n", []int64{5000}, nil, true},
		{"garbage in the middle", good1 + "\n{not json}\n" + good2 + "\n" + good3 + "\n", []int64{5000, 10000, 15000}, []int{2}, false},
		{"middle and tail", good1 + "\nnull\n" + good2 + "\n[1,2]\n" + good3 + "\n" + good3[:20], []int64{5000, 10000, 15000}, []int{2, 4}, true},
		{"only a torn line", good1[:30], nil, nil, true},
		{"torn line continued by the next attempt", good1 + "\n" + good2[:40] + good3 + "\n", []int64{5000, 15000}, []int{2}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			samples, err := ReadSamples(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			l, err := ReadSampleLog(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, s := range samples {
				got = append(got, s.OffsetMs)
			}
			if !slices.Equal(got, tc.offsets) {
				t.Errorf("offsets %v, want %v", got, tc.offsets)
			}
			if len(l.Samples) != len(samples) {
				t.Errorf("ReadSampleLog: %d samples, ReadSamples %d", len(l.Samples), len(samples))
			}
			if !slices.Equal(l.Skipped, tc.skipped) || l.SkippedCount != len(tc.skipped) {
				t.Errorf("skipped lines %v (%d), want %v", l.Skipped, l.SkippedCount, tc.skipped)
			}
			if l.TruncatedTail != tc.truncated {
				t.Errorf("truncated tail %v, want %v", l.TruncatedTail, tc.truncated)
			}
		})
	}

	// A read error is returned with what was read before it.
	r := ioErrReader{data: []byte(good1 + "\n" + good2 + "\n")}
	samples, err := ReadSamples(&r)
	if err == nil || len(samples) != 2 {
		t.Errorf("read error: %d samples, err %v", len(samples), err)
	}
}

type ioErrReader struct{ data []byte }

func (r *ioErrReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, fmt.Errorf("disk on fire")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func validPoints(pts []point) int {
	n := 0
	for _, p := range pts {
		if !p.isBreak() {
			n++
		}
	}
	return n
}

func TestDownsample(t *testing.T) {
	// 4 hours at one sample per second: a slow wave, two one-sample spikes and one dip, a hole.
	const n = 4 * 3600
	var long []point
	for i := range n {
		v := 500 + 100*math.Sin(float64(i)/300)
		switch i {
		case 1234:
			v = 5000
		case 9876:
			v = 4000
		case 7777:
			v = -300
		}
		if i >= 5000 && i < 5400 { // the track was gone for 400 s
			if i == 5000 {
				long = append(long, brk(int64(i)*1000))
			}
			continue
		}
		long = append(long, point{T: int64(i) * 1000, V: v})
	}
	small := []point{{0, 1}, {1000, 2}, brk(2000), brk(2000), {3000, 3}, brk(4000)}

	tests := []struct {
		name      string
		in        []point
		max       int
		wantMax   []float64 // values that must survive
		wantBreak bool
		same      int // >0: the output has exactly this many valid points
	}{
		{"long series", long, MaxPlotPoints, []float64{5000, 4000, -300}, true, 0},
		{"tight cap", long, 10, []float64{5000, -300}, true, 0},
		{"small series kept", small, MaxPlotPoints, []float64{1, 2, 3}, true, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := downsample(tc.in, tc.max)
			if got := validPoints(out); got > tc.max {
				t.Errorf("%d points, cap %d", got, tc.max)
			} else if tc.same > 0 && got != tc.same {
				t.Errorf("%d points, want %d", got, tc.same)
			}
			for i := 1; i < len(out); i++ {
				if out[i].T < out[i-1].T {
					t.Fatalf("points out of order at %d: %v then %v", i, out[i-1], out[i])
				}
				if out[i].isBreak() && out[i-1].isBreak() {
					t.Errorf("two breaks in a row at %d", i)
				}
			}
			if len(out) > 0 && (out[0].isBreak() || out[len(out)-1].isBreak()) {
				t.Error("leading or trailing break")
			}
			for _, v := range tc.wantMax {
				if !slices.ContainsFunc(out, func(p point) bool { return p.V == v }) {
					t.Errorf("value %v was lost", v)
				}
			}
			if hasBreak := slices.ContainsFunc(out, point.isBreak); hasBreak != tc.wantBreak {
				t.Errorf("break kept: %v, want %v", hasBreak, tc.wantBreak)
			}
		})
	}

	// Through Render: hours of stats of 20 tracks stay within the cap per line and a few MB.
	m := &recorder.Manifest{Version: 1, RecordingID: "long", Status: recorder.StatusFinished,
		StartedAt: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	var samples []monitor.Sample
	level := -30.0
	for i := 1; i <= 3*3600/5; i++ { // 3 h at 5 s
		s := monitor.Sample{OffsetMs: int64(i) * 5000, IntervalMs: 5000}
		for k := range 20 {
			kind := []string{"audio", "video"}[k%2]
			ts := monitor.TrackStats{Peer: fmt.Sprintf("peer-%02d", k/2), Track: "camera", Kind: kind, BitrateBps: float64(30000 + i%97*100)}
			if i == 1000 {
				ts.BitrateBps = 9e6 // a spike
			}
			if kind == "audio" {
				ts.Level = &level
			}
			s.Tracks = append(s.Tracks, ts)
		}
		samples = append(samples, s)
	}
	out := renderString(t, m, samples)
	doc := parseHTML(t, out)
	series := findAll(doc, byClass("series"))
	if len(series) != 20+40+10 {
		t.Errorf("%d series, want 70", len(series))
	}
	for _, s := range series {
		d, _ := attr(s, "d")
		if pts := strings.Count(d, "L") + strings.Count(d, "M"); pts > MaxPlotPoints {
			t.Errorf("a line with %d points", pts)
		}
	}
	if !strings.Contains(out, "max 9000 kbps") {
		t.Error("the bitrate spike was lost")
	}
	t.Logf("%d samples × 20 tracks → %d KiB of HTML", len(samples), len(out)>>10)
	if len(out) > 4<<20 {
		t.Errorf("report of %d bytes", len(out))
	}
}

// copyFixture copies the fixture folder into a temporary recording folder.
func copyFixture(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{recorder.ManifestName, "stats.jsonl"} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		note    string // a note the report must carry
		series  bool
		wantErr bool
	}{
		{"with stats", func(*testing.T, string) {}, "", true, false},
		{"stats missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "stats.jsonl")) }, "is missing", false, false},
		{"crash mid-line", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "stats.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(`{"at":"2026-03-02T10:05:05Z","offsetMs":305000,"tra`)
			f.Close()
		}, "was incomplete", true, false},
		{"garbled line in the middle", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "stats.jsonl")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(string(b), "\n")
			lines[3] = "{\"at\":\"2026-03-02T10:00:20Z\",\x00\x00 disk error\n"
			if err := os.WriteFile(p, []byte(strings.Join(lines, "")), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "1 line of stats.jsonl could not be decoded and were skipped (the first is line 4)", true, false},
		{"stats outside the folder", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *recorder.Manifest) { m.Stats = "../stats.jsonl" })
		}, "", false, true},
		{"no manifest", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, recorder.ManifestName)) }, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t)
			tc.prepare(t, dir)
			err := WriteFile(dir)
			if _, serr := os.Stat(filepath.Join(dir, FileName+".part")); serr == nil {
				t.Error("report.html.part left behind")
			}
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, FileName))
			if err != nil {
				t.Fatal(err)
			}
			out := string(b)
			if tc.note != "" && !strings.Contains(out, tc.note) {
				t.Errorf("no note %q", tc.note)
			}
			if got := strings.Contains(out, `class="series`); got != tc.series {
				t.Errorf("plots with series: %v, want %v", got, tc.series)
			}
		})
	}
}

func editManifest(t testing.TB, dir string, edit func(*recorder.Manifest)) {
	t.Helper()
	p := filepath.Join(dir, recorder.ManifestName)
	m, err := recorder.ReadManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------------------------
// Browser

// launchChromium starts headless Chromium (browsertest.ChromiumPath; like every browser test of
// the project, a missing Chromium fails the test) and returns a tab's context. The browser runs
// in its own process group, which cleanup kills after closing it.
func launchChromium(t *testing.T) context.Context {
	t.Helper()
	exe := browsertest.ChromiumPath()
	if fi, err := os.Stat(exe); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("Chromium not found at %s (install it with `apt-get install -y chromium` or set %s to a Chromium binary): %v",
			exe, browsertest.EnvChromium, err)
	}
	tmp, err := os.MkdirTemp("", "roomtape-report-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(tmp, "profile")),
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(tmp, "config"), "XDG_CACHE_HOME="+filepath.Join(tmp, "cache")),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		}),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	var pid int
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser process
		if pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL) // children left in its process group
		}
		for i := 0; i < 50; i++ { // a dying child may still write to the profile
			if os.RemoveAll(tmp) == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	timer := time.AfterFunc(60*time.Second, cancelBrowser)
	err = chromedp.Do(bctx)
	timer.Stop()
	if err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	if c := chromedp.FromContext(bctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		pid = c.Browser.Process().Pid
	}
	return bctx
}

// domCounts is what the browser sees of a report.
type domCounts struct {
	Participants   int      `json:"participants"`
	Lanes          int      `json:"lanes"`
	Files          int      `json:"files"`
	Partial        int      `json:"partial"`
	Gaps           int      `json:"gaps"`
	GapCauses      []string `json:"gapCauses"`
	SpanLanes      int      `json:"spanLanes"`
	Alerts         int      `json:"alerts"`
	OpenAlerts     int      `json:"openAlerts"`
	Reconnects     int      `json:"reconnects"`
	BitrateSeries  int      `json:"bitrateSeries"`
	LossSeries     int      `json:"lossSeries"`
	LevelSeries    int      `json:"levelSeries"`
	HostilePeer    bool     `json:"hostilePeer"`
	Scripts        int      `json:"scripts"`
	Resources      int      `json:"resources"`
	TimelineWidth  float64  `json:"timelineWidth"`
	TimelineHeight float64  `json:"timelineHeight"`
	BarsInAxis     bool     `json:"barsInAxis"`
	LabelsOverflow []string `json:"labelsOverflow"`
	ScrollsX       bool     `json:"scrollsX"`
	Height         int      `json:"height"`
}

const domScript = `(() => {
  const q = (s) => document.querySelectorAll(s);
  const tl = document.querySelector('#timeline');
  const box = tl.getBoundingClientRect();
  // Every bar (file or span) has a size and lies on the time axis.
  const ax = document.querySelector('#timeline .axis line.edge').getBoundingClientRect();
  const barsInAxis = [...q('#timeline .file, #timeline .span')].every(f => {
    const r = f.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.left >= ax.left - 0.5 && r.right <= ax.right + 0.5;
  });
  // Participant and lane labels stay in the label column, left of the time axis.
  const labelsOverflow = [...q('#timeline .lane-label, #timeline .peer-label')]
    .filter(l => l.getBoundingClientRect().right > ax.left + 1).map(l => l.textContent);
  return {
    participants: q('#timeline .participant').length,
    lanes: q('#timeline .participant .lane').length,
    files: q('#timeline .lane .file').length,
    partial: q('#timeline .file.partial').length,
    gaps: q('#timeline .gap').length,
    gapCauses: [...new Set([...q('#timeline .gap')].map(g => g.dataset.cause))].sort(),
    spanLanes: [...q('#timeline .lane')].filter(l => l.querySelector('.span')).length,
    alerts: q('#timeline .alert').length,
    openAlerts: q('#timeline .alert.open').length,
    reconnects: q('#timeline .session.reconnect').length,
    bitrateSeries: q('#plot-bitrate .series').length,
    lossSeries: q('#plot-loss .series').length,
    levelSeries: q('#plot-level .series').length,
    hostilePeer: [...q('.participant')].some(p => p.dataset.peer === ` + "`" + hostilePeer + "`" + `),
    scripts: q('script').length,
    resources: performance.getEntriesByType('resource').length,
    timelineWidth: box.width, timelineHeight: box.height,
    barsInAxis, labelsOverflow,
    scrollsX: [...q('.scroll')].some(s => s.scrollWidth > s.clientWidth + 1),
    height: Math.ceil(document.documentElement.scrollHeight),
  };
})()`

// Each variant's report opened in headless Chromium: the DOM has what the manifest and stats
// say, nothing is loaded from anywhere, the charts fit the page, and a full-page screenshot is
// kept per variant as a test artifact (go test -artifacts -run Browser ./report/).
func TestReportInBrowser(t *testing.T) {
	vs := variants(t)
	root := t.TempDir()
	for i, v := range vs {
		dir := filepath.Join(root, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Through WriteFile, as a worker does at the end of a job.
		b, _ := json.Marshal(v.m)
		if err := os.WriteFile(filepath.Join(dir, recorder.ManifestName), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if v.m.Stats != "" {
			var lines bytes.Buffer
			for _, s := range v.samples {
				l, _ := json.Marshal(s)
				lines.Write(append(l, '\n'))
			}
			if err := os.WriteFile(filepath.Join(dir, v.m.Stats), lines.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := WriteFile(dir); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(root))) // 127.0.0.1
	defer srv.Close()

	bctx := launchChromium(t)
	for i, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			want := countExpected(v.m, v.samples)
			ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(fmt.Sprintf("%s/%d/%s", srv.URL, i, FileName))); err != nil {
				t.Fatalf("open the report: %v", err)
			}
			got, err := chromedp.Run(ctx, chromedp.Evaluate[domCounts](domScript))
			if err != nil {
				t.Fatalf("inspect the DOM: %v", err)
			}
			checks := []struct {
				what      string
				got, want int
			}{
				{".participant", got.Participants, want.participants},
				{".participant .lane", got.Lanes, want.lanes},
				{".file", got.Files, want.files},
				{".file.partial", got.Partial, want.partial},
				{".gap", got.Gaps, want.gaps},
				{"lanes with .span", got.SpanLanes, want.spanLanes},
				{".alert", got.Alerts, want.alerts},
				{".alert.open", got.OpenAlerts, want.openAlerts},
				{".session.reconnect", got.Reconnects, want.reconnects},
				{"#plot-bitrate .series", got.BitrateSeries, want.statsTracks},
				{"#plot-loss .series", got.LossSeries, 2 * want.statsTracks},
				{"#plot-level .series", got.LevelSeries, want.levelTracks},
				{"<script>", got.Scripts, 0},
				{"resources loaded", got.Resources, 0},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
				}
			}
			if want.files > 0 && (!slices.Contains(got.GapCauses, "loss") || !slices.Contains(got.GapCauses, "silence")) {
				t.Errorf("gap causes %v", got.GapCauses)
			}
			if !got.HostilePeer {
				t.Error("the hostile peer id is not a participant's data-peer")
			}
			if !got.BarsInAxis {
				t.Error("a file or span bar is empty or off the time axis")
			}
			if len(got.LabelsOverflow) > 0 {
				t.Errorf("labels run into the time axis: %q", got.LabelsOverflow)
			}
			if got.ScrollsX {
				t.Error("a chart or table does not fit a 1280 px window")
			}
			if got.TimelineWidth < 1000 || got.TimelineHeight < 200 {
				t.Errorf("timeline %vx%v", got.TimelineWidth, got.TimelineHeight)
			}

			// Full page: grow the viewport to the document, then capture it.
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, int64(min(got.Height, 16000)))); err != nil {
				t.Fatal(err)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("screenshot: %v", err)
			}
			if !bytes.HasPrefix(png, []byte("\x89PNG")) {
				t.Fatal("the screenshot is not a PNG")
			}
			shot := filepath.Join(t.ArtifactDir(), "report.png")
			if err := os.WriteFile(shot, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot (%d KiB, 1280x%d): %s", len(png)>>10, got.Height, shot)
		})
	}
}
