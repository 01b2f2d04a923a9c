package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/browsertest"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

const recordingID = "rec"

// recording is a pipeline.Record run in the background until stop.
type recording struct {
	out    string
	cancel context.CancelFunc
	done   chan recordResult
	logs   *logBuffer
}

type recordResult struct {
	m   *recorder.Manifest
	err error
}

// startRecording records the test channel into a temporary folder with the recorder bot,
// connected to url, until stop is called.
func startRecording(t *testing.T, url string) *recording {
	t.Helper()
	testenv.RequireTools(t)
	tr := testenv.Transport(t)
	r := &recording{out: t.TempDir(), done: make(chan recordResult, 1), logs: newLogBuffer(t, "recorder")}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		m, err := pipeline.Record(ctx, pipeline.RecordSpec{
			Bot:      bot.Config{Channel: channel, Signalling: botSignalling(url), Announce: true},
			Recorder: recorder.Options{Dir: r.out, ID: recordingID},
			Logger:   r.logs.Logger(),
		}, tr)
		r.done <- recordResult{m, err}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("recording did not stop within 30s")
		}
		keepOnFailure(t, r.dir())
	})
	return r
}

// keepOnFailure copies a failed test's recording folder under $ROOMTAPE_E2E_KEEP, if set.
func keepOnFailure(t *testing.T, dir string) {
	root := os.Getenv("ROOMTAPE_E2E_KEEP")
	if root == "" || !t.Failed() {
		return
	}
	dst := filepath.Join(root, t.Name()+"-"+time.Now().Format("150405.000"))
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Logf("keeping %s: %v", dir, err)
		return
	}
	t.Logf("recording kept in %s", dst)
}

// dir is the recording folder.
func (r *recording) dir() string { return filepath.Join(r.out, recordingID) }

// waitManifest polls manifest.json (rewritten atomically at least once a second while something
// changes) until cond holds, and returns that manifest.
func (r *recording) waitManifest(t *testing.T, what string, timeout time.Duration, cond func(*recorder.Manifest) bool) *recorder.Manifest {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var m *recorder.Manifest
	var err error
	for {
		m, err = recorder.ReadManifest(filepath.Join(r.dir(), recorder.ManifestName))
		if err == nil && cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case res := <-r.done:
			r.done <- res
			t.Fatalf("recording ended (%v) while waiting for %s", res.err, what)
		case <-time.After(250 * time.Millisecond):
		}
	}
	t.Fatalf("recorder: timed out after %v waiting for %s (manifest error %v)\n%s", timeout, what, err, describeManifest(m))
	return nil
}

// stop ends the recording and returns the final manifest.
func (r *recording) stop(t *testing.T) *recorder.Manifest {
	t.Helper()
	r.cancel()
	var res recordResult
	select {
	case res = <-r.done:
		r.done <- res
	case <-time.After(30 * time.Second):
		t.Fatal("recording did not stop within 30s")
	}
	if res.err != nil {
		t.Fatalf("pipeline.Record: %v", res.err)
	}
	if res.m.Status != recorder.StatusFinished || res.m.EndedAt == nil {
		t.Fatalf("recording status %s (ended %v), want finished", res.m.Status, res.m.EndedAt)
	}
	t.Logf("recording:\n%s", describeManifest(res.m))
	return res.m
}

func describeManifest(m *recorder.Manifest) string {
	if m == nil {
		return "  (no manifest)"
	}
	var b strings.Builder
	for _, f := range m.Files() {
		fmt.Fprintf(&b, "  %s %s/%s track %s: %s offset %dms duration %dms frames %d lost %d gaps %d partial %v end %q\n",
			f.Participant.PeerID, f.Track.Key, f.Track.Kind, f.File.TrackID, f.File.Path, f.File.StartOffsetMs, f.File.DurationMs,
			f.File.Frames, f.File.Lost, len(f.File.Gaps), f.File.Partial, f.File.EndReason)
	}
	return b.String()
}

// track returns peer's logical track with this role and kind.
func track(m *recorder.Manifest, peer, role, kind string) *recorder.Track {
	for _, p := range m.Participants {
		if p.PeerID != peer {
			continue
		}
		for _, t := range p.Tracks {
			if t.Role == role && t.Kind == kind {
				return t
			}
		}
	}
	return nil
}

// files returns the files of peer's logical track with this role and kind.
func files(m *recorder.Manifest, peer, role, kind string) []*recorder.File {
	if t := track(m, peer, role, kind); t != nil {
		return t.Files
	}
	return nil
}

// hasMedia reports whether segment seg (1-based) of every (role, kind) of peer holds at least min
// of media.
func hasMedia(m *recorder.Manifest, peer string, seg int, min time.Duration, roleKinds ...string) bool {
	for _, rk := range roleKinds {
		role, kind, _ := strings.Cut(rk, "/")
		fs := files(m, peer, role, kind)
		if len(fs) < seg || time.Duration(fs[seg-1].DurationMs)*time.Millisecond < min {
			return false
		}
	}
	return true
}

// checkFile decodes one file of the manifest and compares it with the manifest: clean decode,
// every written video frame decodable, duration as the manifest says, renamed from .part.
func checkFile(t *testing.T, dir string, ref recorder.FileRef) testenv.Probed {
	t.Helper()
	f := ref.File
	if f.Partial || strings.HasSuffix(f.Path, ".part") {
		t.Errorf("%s is partial after a clean stop", f.Path)
	}
	p := testenv.Probe(t, filepath.Join(dir, f.Path))
	want := time.Duration(f.DurationMs) * time.Millisecond
	// Audio durations are exact (48 kHz granules). A video file's duration ends with its last
	// frame's duration, which both sides estimate: the manifest from the last frame interval,
	// ffprobe from the average frame rate; Chromium's capture times jitter under load, so allow
	// two frame intervals of its 20 fps camera.
	tolerance := 20 * time.Millisecond
	if ref.Track.Kind == "video" {
		tolerance = 100 * time.Millisecond
	}
	if d := p.End - want; d > tolerance || d < -tolerance {
		t.Errorf("%s: ffprobe says %v, the manifest %v (tolerance %v)", f.Path, p.End, want, tolerance)
	}
	if ref.Track.Kind == "video" && uint64(p.Frames) != f.Frames {
		t.Errorf("%s: ffmpeg decoded %d frames, the recorder wrote %d", f.Path, p.Frames, f.Frames)
	}
	return p
}

// checkWindow checks that a file that ran until the recording stopped covers the time from its
// start offset to the end of the recording.
func checkWindow(t *testing.T, m *recorder.Manifest, f *recorder.File, got time.Duration) {
	t.Helper()
	span := m.EndedAt.Sub(m.StartedAt) - time.Duration(f.StartOffsetMs)*time.Millisecond
	if got < span-1500*time.Millisecond || got > span+100*time.Millisecond {
		t.Errorf("%s lasts %v, but its track was recorded for %v (from %dms to the end)", f.Path, got, span, f.StartOffsetMs)
	}
}

// logAVOffsets logs where the audio and video files of one camera segment start. They do not
// start at the same instant: Chromium captures the first video frame it sends about 60 ms after
// the first audio packet it sends (measured on the sender's clock, see TestRecordBrowserAVSync),
// so equal start offsets would be wrong. TestRecordBrowserAVSync checks that the offsets line
// audio and video up as the browser captured them.
func logAVOffsets(t *testing.T, audio, video *recorder.File) {
	t.Helper()
	t.Logf("camera segment %d: audio starts at %dms, video at %dms", audio.Segment, audio.StartOffsetMs, video.StartOffsetMs)
}

// A browser with camera and microphone is recorded; a screen share is added mid-call. Every file
// decodes cleanly, lasts from its start offset to the end of the recording, and the screen share
// has its own file with role screen, starting when it was added.
func TestRecordBrowserCameraAndScreen(t *testing.T) {
	srv := startSignal(t)
	b := browsertest.Launch(t)
	alice, aliceID, cam := joinWithCamera(t, b, srv.URL(), "alice")

	rec := startRecording(t, srv.URL())
	waitConnectedAfter(t, alice, botSub, -1)
	rec.waitManifest(t, "3 s of camera audio and video", connectTimeout, func(m *recorder.Manifest) bool {
		return hasMedia(m, aliceID, 1, 3*time.Second, "camera/audio", "camera/video")
	})
	addAt := time.Now()
	screen := alice.AddScreen(t, map[string]any{"role": "screen"})
	rec.waitManifest(t, "3 s of screen share", connectTimeout, func(m *recorder.Manifest) bool {
		return hasMedia(m, aliceID, 1, 3*time.Second, "screen/video")
	})
	m := rec.stop(t)

	if len(m.Participants) != 1 || m.Participants[0].PeerID != aliceID || len(m.Participants[0].Sessions) != 1 {
		t.Fatalf("participants %+v, want alice with one session", m.Participants)
	}
	ids := map[string]string{} // role/kind -> browser track id
	for _, s := range []browsertest.LocalStream{cam, screen} {
		for _, tr := range s.Tracks {
			ids[s.Role+"/"+tr.Kind] = tr.ID
		}
	}
	if n := len(m.Files()); n != len(ids) {
		t.Errorf("%d files, want %d (%v)", n, len(ids), ids)
	}
	for rk, id := range ids {
		role, kind, _ := strings.Cut(rk, "/")
		tr := track(m, aliceID, role, kind)
		if tr == nil || len(tr.Files) != 1 {
			t.Errorf("no single file for %s: %+v", rk, tr)
			continue
		}
		if tr.TrackID != id || tr.Files[0].TrackID != id {
			t.Errorf("%s: track id %s, want the browser's %s", rk, tr.TrackID, id)
		}
		if !strings.Contains(tr.Files[0].Path, role+"-"+kind) {
			t.Errorf("%s: file %s is not named after its role", rk, tr.Files[0].Path)
		}
	}
	for _, ref := range m.Files() {
		p := checkFile(t, rec.dir(), ref)
		checkWindow(t, m, ref.File, p.End)
	}
	audio, video := files(m, aliceID, "camera", "audio"), files(m, aliceID, "camera", "video")
	if len(audio) == 1 && len(video) == 1 {
		logAVOffsets(t, audio[0], video[0])
	}
	if sf := files(m, aliceID, "screen", "video"); len(sf) == 1 {
		added := addAt.Sub(m.StartedAt)
		off := time.Duration(sf[0].StartOffsetMs) * time.Millisecond
		if off < added-100*time.Millisecond || off > added+10*time.Second {
			t.Errorf("screen file starts at %v, the share was added at %v", off, added)
		}
	}
	checkPageHealthy(t, alice)
}

// A browser's WebSocket is cut for ~2 s mid-recording: the SDK rebuilds its RTCPeerConnection, so
// every camera track gets a second segment. Both segments decode without a single corrupt frame
// (ffmpeg prints nothing and decodes every frame the recorder wrote), and the second starts after
// the first ends, less than 3 s later.
func TestRecordBrowserReconnect(t *testing.T) {
	srv := startSignal(t)
	px := startProxy(t, srv.Addr())
	b := browsertest.Launch(t)
	alice, aliceID, _ := joinWithCamera(t, b, px.URL(), "alice")

	rec := startRecording(t, srv.URL())
	waitConnectedAfter(t, alice, botSub, -1)
	rec.waitManifest(t, "2 s of camera audio and video", connectTimeout, func(m *recorder.Manifest) bool {
		return hasMedia(m, aliceID, 1, 2*time.Second, "camera/audio", "camera/video")
	})
	mark, _, _ := cutBrowserSocket(t, alice, px, 2*time.Second)
	waitConnectedAfter(t, alice, botSub, mark)
	rec.waitManifest(t, "2 s of a second camera segment", reconnectWait, func(m *recorder.Manifest) bool {
		return hasMedia(m, aliceID, 2, 2*time.Second, "camera/audio", "camera/video")
	})
	m := rec.stop(t)

	if len(m.Participants) != 1 || len(m.Participants[0].Sessions) != 2 {
		t.Fatalf("participants %+v, want alice with two sessions", m.Participants)
	}
	for _, kind := range []string{"audio", "video"} {
		fs := files(m, aliceID, "camera", kind)
		if len(fs) != 2 {
			t.Errorf("camera %s: %d files, want 2", kind, len(fs))
			continue
		}
		if fs[0].Session == fs[1].Session || fs[1].Segment != fs[0].Segment+1 {
			t.Errorf("camera %s: segments %d (session %s) and %d (session %s)", kind, fs[0].Segment, fs[0].Session, fs[1].Segment, fs[1].Session)
		}
		end1 := fs[0].StartOffsetMs + fs[0].DurationMs
		if fs[1].StartOffsetMs < end1-100 {
			t.Errorf("camera %s: segment 2 starts at %dms, before segment 1 ends (%dms)", kind, fs[1].StartOffsetMs, end1)
		}
		if gap := time.Duration(fs[1].StartOffsetMs-end1) * time.Millisecond; gap > 3*time.Second {
			t.Errorf("camera %s: %v between the segments, want < 3s", kind, gap)
		}
		if r := bot.EndReason(fs[0].EndReason); r != bot.EndConnectionLost && r != bot.EndSessionReplaced {
			t.Errorf("camera %s: segment 1 ended %q, want %q or %q", kind, r, bot.EndConnectionLost, bot.EndSessionReplaced)
		}
	}
	for _, ref := range m.Files() {
		p := checkFile(t, rec.dir(), ref)
		if ref.File.Segment == 2 {
			checkWindow(t, m, ref.File, p.End)
		}
	}
	audio, video := files(m, aliceID, "camera", "audio"), files(m, aliceID, "camera", "video")
	for i := 0; i < len(audio) && i < len(video); i++ {
		logAVOffsets(t, audio[i], video[i])
	}
	checkPageHealthy(t, alice)
}

// rtpTap wraps the recorder's consumer and keeps, per track kind, what the test needs to know the
// sender's capture clock: the RTP timestamp and arrival of the packet that starts the file (the
// first audio packet, the first VP8 keyframe) and the first RTCP sender report (NTP <-> RTP).
type rtpTap struct {
	inner   bot.Consumer
	mu      sync.Mutex
	byKind  map[string]*tapped
	changed chan struct{}
}

type tapped struct {
	info    bot.TrackInfo
	started bool      // the first frame the recorder writes has been seen
	firstTS uint32    // its RTP timestamp
	firstAt time.Time // its arrival
	srNTP   uint64
	srRTP   uint32
	haveSR  bool
}

func (c *rtpTap) TrackStarted(info bot.TrackInfo, ctrl bot.TrackControl) bot.TrackSink {
	sink := c.inner.TrackStarted(info, ctrl)
	tp := &tapped{info: info}
	c.mu.Lock()
	if _, dup := c.byKind[info.Kind]; !dup {
		c.byKind[info.Kind] = tp
	}
	c.mu.Unlock()
	return &tapSink{c: c, t: tp, inner: sink}
}

type tapSink struct {
	c     *rtpTap
	t     *tapped
	inner bot.TrackSink
}

func (s *tapSink) WriteRTP(p *rtp.Packet, at time.Time) {
	s.c.mu.Lock()
	if !s.t.started {
		start := s.t.info.Kind == "audio"
		if !start {
			var vp8 codecs.VP8Packet // the first frame of a video file is a keyframe
			if _, err := vp8.Unmarshal(p.Payload); err == nil && vp8.S == 1 && vp8.PID == 0 && len(vp8.Payload) > 0 && vp8.Payload[0]&1 == 0 {
				start = true
			}
		}
		if start {
			s.t.started, s.t.firstTS, s.t.firstAt = true, p.Timestamp, at
		}
	}
	s.c.mu.Unlock()
	s.c.notify()
	if s.inner != nil {
		s.inner.WriteRTP(p, at)
	}
}

func (s *tapSink) WriteRTCP(pkts []rtcp.Packet, at time.Time) {
	s.c.mu.Lock()
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == s.t.info.SSRC && !s.t.haveSR {
			s.t.haveSR, s.t.srNTP, s.t.srRTP = true, sr.NTPTime, sr.RTPTime
		}
	}
	s.c.mu.Unlock()
	s.c.notify()
	if s.inner != nil {
		s.inner.WriteRTCP(pkts, at)
	}
}

func (s *tapSink) Reconnected() {
	if s.inner != nil {
		s.inner.Reconnected()
	}
}

func (s *tapSink) End(r bot.EndReason) {
	if s.inner != nil {
		s.inner.End(r)
	}
}

func (c *rtpTap) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// captureTime is the sender's NTP time (seconds) at which the file's first frame was captured.
func (tp *tapped) captureTime() float64 {
	ntp := float64(tp.srNTP>>32) + float64(tp.srNTP&0xffffffff)/(1<<32)
	return ntp - float64(int32(tp.srRTP-tp.firstTS))/float64(tp.info.ClockRate)
}

// The recording's timeline lines up a browser's audio and video as the browser captured them.
// pipeline.Record does not expose the RTP stream, so this test assembles the same parts (the
// recorder is the bot's consumer, its events the bot's events) with a tap in between that learns
// the sender's capture clock from RTCP sender reports. Pass: the difference between the video
// and audio start offsets in the manifest equals the difference between the capture times of the
// files' first frames within 50 ms, and each start offset is the arrival of its first frame.
func TestRecordBrowserAVSync(t *testing.T) {
	testenv.RequireTools(t)
	srv := startSignal(t)
	b := browsertest.Launch(t)
	alice, _, _ := joinWithCamera(t, b, srv.URL(), "alice")

	logs := newLogBuffer(t, "recorder")
	out := t.TempDir()
	rec, err := recorder.Open(recorder.Options{Dir: out, ID: recordingID, Channel: channel, Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	tap := &rtpTap{inner: rec, byKind: map[string]*tapped{}, changed: make(chan struct{}, 1)}
	bt, err := bot.New(bot.Config{Channel: channel, Signalling: botSignalling(srv.URL()), Logger: logs.Logger()},
		testenv.Transport(t), tap, rec.Events())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bt.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bot.Run: %v", err)
		}
	}
	t.Cleanup(func() {
		stop()
		_, _ = rec.Close(recorder.StatusFailed, "test ended")
		keepOnFailure(t, filepath.Join(out, recordingID))
	})

	waitConnectedAfter(t, alice, botSub, -1)
	deadline := time.After(connectTimeout)
	for {
		tap.mu.Lock()
		a, v := tap.byKind["audio"], tap.byKind["video"]
		ready := a != nil && v != nil && a.started && v.started && a.haveSR && v.haveSR
		tap.mu.Unlock()
		if ready {
			break
		}
		select {
		case <-tap.changed:
		case <-deadline:
			t.Fatalf("no first frame and sender report for both tracks within %v", connectTimeout)
		}
	}
	stop()
	m, err := rec.Close(recorder.StatusFinished, "stopped")
	if err != nil {
		t.Fatalf("closing the recording: %v", err)
	}
	t.Logf("recording:\n%s", describeManifest(m))

	tap.mu.Lock()
	a, v := *tap.byKind["audio"], *tap.byKind["video"]
	tap.mu.Unlock()
	if v.info.MimeType != "video/vp8" {
		t.Fatalf("video codec %s; this test finds keyframes in VP8 only", v.info.MimeType)
	}
	af, vf := files(m, "alice", "camera", "audio"), files(m, "alice", "camera", "video")
	if len(af) != 1 || len(vf) != 1 {
		t.Fatalf("camera files: %d audio, %d video, want one each", len(af), len(vf))
	}
	for _, ref := range m.Files() {
		checkFile(t, filepath.Join(out, recordingID), ref)
	}
	manifestDiff := time.Duration(vf[0].StartOffsetMs-af[0].StartOffsetMs) * time.Millisecond
	captureDiff := time.Duration((v.captureTime() - a.captureTime()) * float64(time.Second))
	t.Logf("video starts %v after audio in the manifest; the browser captured them %v apart", manifestDiff, captureDiff.Round(100*time.Microsecond))
	if d := manifestDiff - captureDiff; d > 50*time.Millisecond || d < -50*time.Millisecond {
		t.Errorf("audio and video are %v out of sync on the recording's timeline, want within 50ms", d)
	}
	for _, c := range []struct {
		f  *recorder.File
		tp tapped
	}{{af[0], a}, {vf[0], v}} {
		arrived := c.tp.firstAt.Sub(m.StartedAt)
		off := time.Duration(c.f.StartOffsetMs) * time.Millisecond
		if d := off - arrived; d > 50*time.Millisecond || d < -50*time.Millisecond {
			t.Errorf("%s starts at %v, but its first frame arrived at %v", c.f.Path, off, arrived)
		}
	}
	checkPageHealthy(t, alice)
}
