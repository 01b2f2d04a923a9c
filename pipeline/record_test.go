package pipeline_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/publisher"
	"github.com/roomtape/roomtape/recorder"
	"github.com/roomtape/roomtape/signalling"
)

func startServer(t *testing.T) string { return testenv.SignalServer(t, signalling.ServerConfig{}) }

func transport(t *testing.T) *bot.Transport { return testenv.Transport(t) }

func startPublisher(t *testing.T, url, sub string, tr *bot.Transport, streams ...publisher.Stream) (*publisher.Publisher, func()) {
	t.Helper()
	cc, err := pipeline.DemoProfile(url).ClientConfig(sub, map[string]any{"name": sub}, "room")
	if err != nil {
		t.Fatal(err)
	}
	p, err := publisher.New(publisher.Config{Channel: "room", Loop: true, Streams: streams, Signalling: cc}, tr.API())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return p, stop
}

func record(t *testing.T, ctx context.Context, url string, tr *bot.Transport, out string, maxDur time.Duration) (*recorder.Manifest, error) {
	cc, err := pipeline.DemoProfile(url).ClientConfig("~roomtape-recorder", map[string]any{"roomtape": "recorder"}, "room")
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Record(ctx, pipeline.RecordSpec{
		Bot:         bot.Config{Channel: "room", Signalling: cc, Announce: true},
		Recorder:    recorder.Options{Dir: out, ID: "rec", CaptureMessages: true},
		MaxDuration: maxDur,
	}, tr)
}

// A publisher with camera + mic, a screen share added after 2 s, recorded for 6 s: every file
// decodes cleanly, durations match the time each track was present, the screen share has its own
// file with role screen, and no file is partial.
func TestRecordPublisherWithScreenShare(t *testing.T) {
	testenv.RequireTools(t)
	url := startServer(t)
	tr := transport(t)
	dir := fixtures.Dir(t)
	out := t.TempDir()
	pub, _ := startPublisher(t, url, "alice", tr, publisher.Stream{Role: "camera",
		Audio: filepath.Join(dir, fixtures.Audio), Video: filepath.Join(dir, fixtures.Camera)})
	go func() {
		time.Sleep(2 * time.Second)
		if _, err := pub.AddStream(publisher.Stream{Role: "screen", Video: filepath.Join(dir, fixtures.Screen)}); err != nil {
			t.Error(err)
		}
	}()
	m, err := record(t, context.Background(), url, tr, out, 6*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != recorder.StatusFinished || len(m.Participants) != 1 {
		t.Fatalf("status %s, %d participants", m.Status, len(m.Participants))
	}
	roles := map[string]bool{}
	for _, ref := range m.Files() {
		f := ref.File
		if f.Partial || strings.HasSuffix(f.Path, ".part") {
			t.Errorf("%s is partial after a clean stop", f.Path)
		}
		got := testenv.Probe(t, filepath.Join(out, "rec", f.Path)).End
		want := time.Duration(f.DurationMs) * time.Millisecond
		if d := got - want; d > 40*time.Millisecond || d < -40*time.Millisecond {
			t.Errorf("%s: ffprobe says %s, manifest %s", f.Path, got, want)
		}
		// The file must cover the time from its start offset to the end of the recording.
		span := m.EndedAt.Sub(m.StartedAt) - time.Duration(f.StartOffsetMs)*time.Millisecond
		if got < span-1500*time.Millisecond || got > span+100*time.Millisecond {
			t.Errorf("%s lasts %s, but was present for %s", f.Path, got, span)
		}
		roles[ref.Track.Role+"/"+ref.Track.Kind] = true
	}
	for _, want := range []string{"camera/audio", "camera/video", "screen/video"} {
		if !roles[want] {
			t.Errorf("no file for %s (have %v)", want, roles)
		}
	}
}

// The same participant reconnects with a new PeerConnection: the recording continues with a
// second segment of each track, both decodable, the second starting after the first.
func TestRecordReconnectStartsNewSegment(t *testing.T) {
	testenv.RequireTools(t)
	url := startServer(t)
	tr := transport(t)
	dir := fixtures.Dir(t)
	out := t.TempDir()
	cam := publisher.Stream{Role: "camera", Audio: filepath.Join(dir, fixtures.Audio), Video: filepath.Join(dir, fixtures.Camera)}
	_, stopFirst := startPublisher(t, url, "alice", tr, cam)
	go func() {
		time.Sleep(3 * time.Second)
		stopFirst()
		startPublisher(t, url, "alice", tr, cam)
	}()
	m, err := record(t, context.Background(), url, tr, out, 8*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Participants) != 1 || len(m.Participants[0].Sessions) != 2 {
		t.Fatalf("want one participant with two sessions, got %+v", m.Participants)
	}
	for _, tr := range m.Participants[0].Tracks {
		if len(tr.Files) != 2 {
			t.Errorf("track %s/%s has %d files, want 2", tr.Key, tr.Kind, len(tr.Files))
			continue
		}
		if tr.Files[1].StartOffsetMs < tr.Files[0].StartOffsetMs+tr.Files[0].DurationMs-100 {
			t.Errorf("segment 2 starts at %d ms, before segment 1 ends (%d+%d)", tr.Files[1].StartOffsetMs,
				tr.Files[0].StartOffsetMs, tr.Files[0].DurationMs)
		}
		for _, f := range tr.Files {
			testenv.Probe(t, filepath.Join(out, "rec", f.Path))
		}
	}
}
