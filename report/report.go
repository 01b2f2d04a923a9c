package report

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/recorder"
)

// FileName is the report's file name inside a recording folder.
const FileName = recorder.ReportName

// Render writes the report of m (and of samples, the decoded stats.jsonl; nil or empty for a
// record-only recording) as one self-contained HTML document. The output depends only on its
// input: the same manifest and samples give the same bytes.
func Render(w io.Writer, m *recorder.Manifest, samples []monitor.Sample) error {
	return render(w, m, samples, nil)
}

// WriteFile writes dir/report.html for the recording in dir: it reads dir/manifest.json and,
// when the manifest names a stats file (Manifest.Stats) that exists, the samples in it. A
// missing stats file is not an error (a record-only job has none); the report then says so.
// The report is written to report.html.part and renamed, so that readers never see half a file.
// A stats path that leaves dir, or an unreadable stats file, is an error; garbled lines in it are
// not (the report notes them).
func WriteFile(dir string) error {
	m, err := recorder.ReadManifest(filepath.Join(dir, recorder.ManifestName))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer root.Close()

	var (
		samples []monitor.Sample
		st      = &statsInfo{name: m.Stats}
	)
	if m.Stats != "" {
		// Through the root: a manifest naming "../x" cannot make the report read outside dir.
		f, err := root.Open(filepath.FromSlash(m.Stats))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			st.missing = true
		case err != nil:
			return fmt.Errorf("report: open stats: %w", err)
		default:
			l, err := ReadSampleLog(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("report: %s: %w", m.Stats, err)
			}
			samples, st.log = l.Samples, l
		}
	}

	const part = FileName + ".part"
	f, err := root.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	err = render(f, m, samples, st)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(part, FileName)
	}
	if err != nil {
		_ = root.Remove(part)
		return fmt.Errorf("report: write %s: %w", filepath.Join(dir, FileName), err)
	}
	return nil
}

// statsInfo is what WriteFile knows about the stats file beyond its samples.
type statsInfo struct {
	name    string
	missing bool
	log     *SampleLog
}

func render(w io.Writer, m *recorder.Manifest, samples []monitor.Sample, st *statsInfo) error {
	if m == nil {
		return errors.New("report: nil manifest")
	}
	p := build(m, samples, st)
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := pageTemplate.Execute(bw, p); err != nil {
		return fmt.Errorf("report: render: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Model: participants and logical tracks of the manifest, plus those only the stats know.

// trackRef names a logical track: a participant's track key and kind (a key such as "camera" has
// an audio and a video track).
type trackRef struct{ peer, key, kind string }

type peerModel struct {
	peer     string
	p        *recorder.Participant // nil: known from the stats or alerts only
	tracks   []*trackModel
	sessions []*recorder.Session
}

type trackModel struct {
	ref   trackRef
	t     *recorder.Track // nil: known from the stats only
	role  string
	codec string
	color string
	files []*recorder.File

	// From the samples: per sample that has the track, its (combined) values.
	stats []trackSample
}

type trackSample struct {
	i          int // index in the sorted samples
	at         int64
	interval   int64
	bitrateBps float64
	lossPct    float64
	lossBRPct  float64
	level      *float64
}

type model struct {
	m       *recorder.Manifest
	samples []monitor.Sample // sorted by offset
	peers   []*peerModel
	tracks  []*trackModel // every track, in display order
	endMs   int64         // the timeline's extent
}

func newModel(m *recorder.Manifest, in []monitor.Sample) *model {
	md := &model{m: m}
	md.samples = slices.Clone(in)
	slices.SortStableFunc(md.samples, func(a, b monitor.Sample) int { return cmp.Compare(a.OffsetMs, b.OffsetMs) })

	byPeer := map[string]*peerModel{}
	byTrack := map[trackRef]*trackModel{}
	peer := func(id string) *peerModel {
		if pm := byPeer[id]; pm != nil {
			return pm
		}
		pm := &peerModel{peer: id}
		byPeer[id] = pm
		md.peers = append(md.peers, pm)
		return pm
	}
	addTrack := func(pm *peerModel, ref trackRef) *trackModel {
		if tm := byTrack[ref]; tm != nil {
			return tm
		}
		tm := &trackModel{ref: ref}
		byTrack[ref] = tm
		pm.tracks = append(pm.tracks, tm)
		return tm
	}
	for _, p := range m.Participants {
		if p == nil {
			continue
		}
		pm := peer(p.PeerID)
		if pm.p == nil {
			pm.p = p
		}
		for _, s := range p.Sessions {
			if s != nil {
				pm.sessions = append(pm.sessions, s)
			}
		}
		for _, t := range p.Tracks {
			if t == nil {
				continue
			}
			tm := addTrack(pm, trackRef{p.PeerID, t.Key, t.Kind})
			if tm.t == nil {
				tm.t, tm.role, tm.codec = t, t.Role, t.Codec
			}
			for _, f := range t.Files {
				if f != nil {
					tm.files = append(tm.files, f)
				}
			}
		}
	}
	for i, s := range md.samples {
		for _, ts := range s.Tracks {
			ref := trackRef{ts.Peer, ts.Track, ts.Kind}
			tm := addTrack(peer(ts.Peer), ref)
			if tm.role == "" {
				tm.role = ts.Role
			}
			if tm.codec == "" {
				tm.codec = ts.Codec
			}
			v := trackSample{i: i, at: s.OffsetMs, interval: s.IntervalMs, bitrateBps: ts.BitrateBps,
				lossPct: ts.LossPct, lossBRPct: ts.LossBeforeRecoveryPct, level: ts.Level}
			// Two entries of one logical track in one sample (an old session still winding down
			// next to its reconnect): bitrates add up, the loss and the level are the worst/loudest.
			if n := len(tm.stats); n > 0 && tm.stats[n-1].i == i {
				prev := &tm.stats[n-1]
				prev.bitrateBps += v.bitrateBps
				prev.lossPct = max(prev.lossPct, v.lossPct)
				prev.lossBRPct = max(prev.lossBRPct, v.lossBRPct)
				if v.level != nil && (prev.level == nil || *v.level > *prev.level) {
					prev.level = v.level
				}
				continue
			}
			tm.stats = append(tm.stats, v)
		}
		for _, ps := range s.Peers {
			peer(ps.Peer)
		}
	}
	for _, a := range m.Alerts {
		if a.Peer != "" {
			peer(a.Peer)
		}
	}
	for _, pm := range md.peers {
		slices.SortStableFunc(pm.sessions, func(a, b *recorder.Session) int { return cmp.Compare(a.StartOffset, b.StartOffset) })
		for _, tm := range pm.tracks {
			slices.SortStableFunc(tm.files, func(a, b *recorder.File) int { return cmp.Compare(a.StartOffsetMs, b.StartOffsetMs) })
			tm.color = palette[len(md.tracks)%len(palette)]
			md.tracks = append(md.tracks, tm)
		}
	}
	md.endMs = md.extent()
	return md
}

// extent is the end of the timeline in ms: the recording's end or the last thing that happened.
func (md *model) extent() int64 {
	m := md.m
	end := int64(0)
	if m.EndedAt != nil && !m.StartedAt.IsZero() {
		end = max(end, m.EndedAt.Sub(m.StartedAt).Milliseconds())
	}
	for _, a := range m.Attempts {
		if a.EndedAt != nil && !m.StartedAt.IsZero() {
			end = max(end, a.EndedAt.Sub(m.StartedAt).Milliseconds())
		}
	}
	for _, pm := range md.peers {
		for _, s := range pm.sessions {
			end = max(end, s.StartOffset)
		}
		for _, tm := range pm.tracks {
			for _, f := range tm.files {
				end = max(end, f.StartOffsetMs+f.DurationMs)
			}
		}
	}
	if n := len(md.samples); n > 0 {
		end = max(end, md.samples[n-1].OffsetMs)
	}
	for _, a := range m.Alerts {
		end = max(end, a.OffsetMs)
	}
	return max(end, 1000)
}

// medianInterval is the typical sample interval in ms (0 without samples).
func (md *model) medianInterval() int64 {
	var iv []int64
	for _, s := range md.samples {
		if s.IntervalMs > 0 {
			iv = append(iv, s.IntervalMs)
		}
	}
	if len(iv) == 0 {
		for i := 1; i < len(md.samples); i++ {
			if d := md.samples[i].OffsetMs - md.samples[i-1].OffsetMs; d > 0 {
				iv = append(iv, d)
			}
		}
	}
	if len(iv) == 0 {
		return 0
	}
	slices.Sort(iv)
	return iv[len(iv)/2]
}

// continues tells whether b follows a directly in the track's stats: the samples in between (if
// any) all lack the track, or the clock jumped (samples stopped, e.g. a crash and a new attempt),
// and the line or span breaks.
func continues(a, b trackSample) bool {
	if b.i != a.i+1 {
		return false
	}
	iv := b.interval
	if iv <= 0 {
		iv = a.interval
	}
	return iv <= 0 || b.at-a.at <= iv*5/2
}

// ---------------------------------------------------------------------------------------------
// Formatting.

// palette holds ten well-separated hues, one per logical track (cycled), the same in the
// timeline's lane swatches, the plots and the quality table.
var palette = []string{
	"#2563eb", "#e67e22", "#059669", "#d6336c", "#7c3aed",
	"#0891b2", "#b45309", "#4d7c0f", "#be123c", "#475569",
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// fmtDur formats ms as "1 h 02 min 03 s", "2 min 05 s" or "4.2 s".
func fmtDur(ms int64) string {
	if ms < 0 {
		return "−" + fmtDur(-ms)
	}
	if ms < 60_000 {
		return trimZero(fmt.Sprintf("%.1f", float64(ms)/1000)) + " s"
	}
	s := ms / 1000
	h, mi, se := s/3600, s/60%60, s%60
	if h > 0 {
		return fmt.Sprintf("%d h %02d min %02d s", h, mi, se)
	}
	return fmt.Sprintf("%d min %02d s", mi, se)
}

// fmtSec formats ms as seconds with one decimal: "12.5 s".
func fmtSec(ms int64) string { return fmt.Sprintf("%.1f s", float64(ms)/1000) }

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// fmtNum formats v with at most prec decimals, without trailing zeros.
func fmtNum(v float64, prec int) string {
	return trimZero(fmt.Sprintf("%.*f", prec, v))
}

// fmtCount groups thousands: 1234567 → "1 234 567".
func fmtCount(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmtNum(float64(n)/(1<<30), 2) + " GiB"
	case n >= 1<<20:
		return fmtNum(float64(n)/(1<<20), 1) + " MiB"
	case n >= 1<<10:
		return fmtNum(float64(n)/(1<<10), 1) + " KiB"
	}
	return fmt.Sprintf("%d B", n)
}

func fmtKbps(bps float64) string { return fmtNum(bps/1000, 1) + " kbps" }

// shortCodec drops the media type: "video/VP8" → "VP8".
func shortCodec(c string) string {
	if i := strings.IndexByte(c, '/'); i >= 0 {
		return c[i+1:]
	}
	return c
}

// ellipsis shortens s to n runes.
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// displayName is the participant's name from its metadata ("name" or "displayName"), if any.
func displayName(meta json.RawMessage) string {
	if len(meta) == 0 {
		return ""
	}
	var v map[string]any
	if json.Unmarshal(meta, &v) != nil {
		return ""
	}
	for _, k := range []string{"name", "displayName", "display_name"} {
		if s, ok := v[k].(string); ok && strings.TrimSpace(s) != "" {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

// compactJSON renders metadata on one line, at most n runes.
func compactJSON(raw json.RawMessage, n int) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return ellipsis(string(raw), n)
	}
	return ellipsis(b.String(), n)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
