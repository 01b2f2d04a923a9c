package pipeline_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/roomtape/roomtape/internal/browsertest"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

// A job records a real browser: headless Chromium running the unmodified @metered-ca/realtime
// SDK with its fake camera and microphone (publishable key of the demo app). The job finishes
// with a manifest naming the browser's peer, and both files decode cleanly.
func TestJobRecordsChromium(t *testing.T) {
	needFFmpeg(t)
	e := newJobEnv(t, 5*time.Second)
	b := browsertest.Launch(t)
	page := b.NewPage(t)
	page.AddCamera(t, map[string]any{"role": "camera"})
	peer := page.Join(t, browsertest.JoinOptions{URL: e.url, APIKey: "pk_live_demo", Channel: "browser-room"})
	e.startWorker(e.workerConfig("w-browser", 1))

	j := job("browser-1", "browser-room", 5*time.Second)
	log := e.follow(j.ID)
	e.submit(j)
	kf := log.waitType(t, 45*time.Second, pipeline.EventFirstKeyframe)
	fin := log.waitType(t, 45*time.Second, pipeline.EventFinished)
	t.Logf("first keyframe %d ms after submission", kf.ElapsedMs)
	m := fin.Manifest
	if m == nil || m.Status != recorder.StatusFinished || len(m.Participants) != 1 || m.Participants[0].PeerID != peer {
		t.Fatalf("manifest %+v (browser peer %s)", m, peer)
	}
	kinds := map[string]bool{}
	for _, ref := range m.Files() {
		path := filepath.Join(filepath.Dir(fin.ManifestPath), ref.File.Path)
		decodesCleanly(t, path)
		if _, last := decodedFrames(t, path); last < 2*time.Second {
			t.Errorf("%s holds %s", ref.File.Path, last)
		}
		kinds[ref.Track.Kind+"/"+ref.Track.Role] = true
	}
	if !kinds["audio/camera"] || !kinds["video/camera"] {
		t.Errorf("files for %v", kinds)
	}
}
