package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/publisher"
	"github.com/roomtape/roomtape/recorder"
)

// With 5 % of video packets lost between publisher and bot, NACK recovery keeps at least 99 % of
// the video frames decodable; without NACK the keyframe gate drops much more (reported, not
// asserted beyond "worse").
func TestRecordWithFivePercentLoss(t *testing.T) {
	testenv.RequireTools(t)
	dir := fixtures.Dir(t)
	results := map[bool]float64{}
	for _, nack := range []bool{true, false} {
		url := startServer(t)
		loss := newWire() // drops every 20th video packet the first time it is sent (monitor_test.go)
		loss.dropEvery = 20
		pubTr, err := bot.NewTransport(testenv.LoopbackNetwork(), nil, loss)
		if err != nil {
			t.Fatal(err)
		}
		botNet := testenv.LoopbackNetwork()
		botNet.DisableNACK = !nack
		botTr, err := bot.NewTransport(botNet, nil)
		if err != nil {
			t.Fatal(err)
		}
		startPublisher(t, url, "alice", pubTr, publisher.Stream{Role: "camera", Video: filepath.Join(dir, fixtures.Camera)})
		out := t.TempDir()
		cc, err := pipeline.DemoProfile(url).ClientConfig("~roomtape-recorder", nil, "room")
		if err != nil {
			t.Fatal(err)
		}
		m, err := pipeline.Record(context.Background(), pipeline.RecordSpec{
			Bot:         bot.Config{Channel: "room", Signalling: cc},
			Recorder:    recorder.Options{Dir: out, ID: "loss", JitterLatency: 500 * time.Millisecond},
			MaxDuration: 8 * time.Second,
		}, botTr)
		if err != nil {
			t.Fatal(err)
		}
		files := m.Files()
		if len(files) != 1 {
			t.Fatalf("%d files", len(files))
		}
		f := files[0].File
		path := filepath.Join(out, "loss", f.Path)
		testenv.Probe(t, path) // every recorded frame decodes

		// The publisher sends 30 frames per second; every frame written is decodable (gated).
		expected := float64(f.DurationMs)/1000*30 + 1
		ratio := float64(f.Frames) / expected
		loss.mu.Lock()
		dropped := len(loss.dropped)
		loss.mu.Unlock()
		t.Logf("nack=%v: %d of ~%.0f frames decodable (%.1f%%), %d packets dropped on the wire, %d lost after recovery, %d keyframe waits",
			nack, f.Frames, expected, 100*ratio, dropped, f.Lost, len(f.KeyframeWaits))
		results[nack] = ratio
		_ = pubTr.Close()
		_ = botTr.Close()
	}
	if results[true] < 0.99 {
		t.Errorf("with NACK only %.1f%% of frames are decodable, want >= 99%%", 100*results[true])
	}
	if results[false] >= results[true] {
		t.Errorf("without NACK (%.1f%%) not worse than with NACK (%.1f%%): the loss was not injected", 100*results[false], 100*results[true])
	}
}
