package e2e_test

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/browsertest"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

// speechCycle is the fake microphone's loop: speechOn of voice-like sound, then silence.
const (
	speechOn    = 3 * time.Second
	speechCycle = 6 * time.Second
)

// writeSpeechWAV writes a 48 kHz mono WAV of one cycle: "syllables" (a 140 Hz voice with
// harmonics, switched on and off 4 times a second so noise suppression does not take it for
// stationary noise) at about -10 dBFS, then digital silence. Chromium loops the file.
func writeSpeechWAV(t *testing.T) string {
	t.Helper()
	const rate = 48000
	n := int(speechCycle.Seconds() * rate)
	pcm := make([]byte, 44+2*n)
	copy(pcm, "RIFF")
	binary.LittleEndian.PutUint32(pcm[4:], uint32(36+2*n))
	copy(pcm[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(pcm[16:], 16)
	binary.LittleEndian.PutUint16(pcm[20:], 1) // PCM
	binary.LittleEndian.PutUint16(pcm[22:], 1) // mono
	binary.LittleEndian.PutUint32(pcm[24:], rate)
	binary.LittleEndian.PutUint32(pcm[28:], rate*2)
	binary.LittleEndian.PutUint16(pcm[32:], 2)
	binary.LittleEndian.PutUint16(pcm[34:], 16)
	copy(pcm[36:], "data")
	binary.LittleEndian.PutUint32(pcm[40:], uint32(2*n))
	on := int(speechOn.Seconds() * rate)
	for i := range n {
		v := 0.0
		if i < on {
			tt := float64(i) / rate
			syllable := 0.6 + 0.4*math.Sin(2*math.Pi*4*tt) // 4 syllables a second, never fully off
			for h := 1; h <= 6; h++ {
				v += math.Sin(2*math.Pi*140*float64(h)*tt) / float64(h)
			}
			v *= 0.2 * syllable
		}
		binary.LittleEndian.PutUint16(pcm[44+2*i:], uint16(int16(v*32767)))
	}
	path := filepath.Join(t.TempDir(), "speech.wav")
	if err := os.WriteFile(path, pcm, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A browser running the SDK sends RFC 6464 audio levels, and the monitor tells speech from
// silence with them: a fake microphone that alternates 3 s of voice and 3 s of silence gives
// speaking and silent intervals, high and low levels, and silent alerts raised and cleared.
func TestBrowserAudioLevelSpeechDetection(t *testing.T) {
	testenv.RequireTools(t)
	sig := startSignal(t)
	b := browsertest.Launch(t, browsertest.WithFakeAudioFile(writeSpeechWAV(t)))
	var (
		mu      sync.Mutex
		samples []monitor.Sample
		alerts  []recorder.Alert
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *recorder.Manifest, 1)
	go func() {
		m, err := pipeline.Record(ctx, pipeline.RecordSpec{
			Bot:      bot.Config{Channel: channel, Signalling: botSignalling(sig.URL())},
			Recorder: recorder.Options{Dir: t.TempDir(), ID: recordingID},
			Mode:     pipeline.ModeMonitor,
			Monitor:  monitor.Config{Interval: time.Second, Thresholds: monitor.Thresholds{SilentAfter: 2 * time.Second}},
			OnSample: func(s monitor.Sample) { mu.Lock(); samples = append(samples, s); mu.Unlock() },
			OnAlert:  func(a recorder.Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() },
		}, testenv.Transport(t))
		if err != nil {
			t.Errorf("record: %v", err)
		}
		done <- m
	}()
	defer cancel()

	page := b.NewPage(t)
	joinAs(t, page, sig.URL(), "speaker")
	page.AddCamera(t, nil)
	// Three speech cycles once audio flows.
	deadline := time.Now().Add(60 * time.Second)
	flowing := time.Time{}
	for time.Now().Before(deadline) {
		mu.Lock()
		for _, s := range samples {
			for _, tr := range s.Tracks {
				if tr.Kind == "audio" && tr.Packets > 0 && flowing.IsZero() {
					flowing = time.Now()
				}
			}
		}
		mu.Unlock()
		if !flowing.IsZero() && time.Since(flowing) > 3*speechCycle {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if flowing.IsZero() {
		t.Fatal("no audio from the browser within 60 s")
	}
	cancel()
	m := <-done
	if m == nil {
		t.Fatal("the recording returned no manifest")
	}

	mu.Lock()
	defer mu.Unlock()
	var speaking, silent, withLevel, total int
	var loud, quiet float64 = -127, 0
	for _, s := range samples {
		for _, tr := range s.Tracks {
			if tr.Kind != "audio" || tr.PacketRate == 0 {
				continue
			}
			total++
			if tr.Level == nil {
				continue
			}
			withLevel++
			if tr.Speaking {
				speaking++
				loud = max(loud, *tr.Level)
			} else {
				silent++
				quiet = min(quiet, *tr.Level)
			}
			t.Logf("%5.1fs level %6.1f dBov speech %5.1f%% speaking %v", float64(s.OffsetMs)/1000, *tr.Level, tr.SpeechPct, tr.Speaking)
		}
	}
	if total < 10 || withLevel < total-1 {
		t.Fatalf("%d of %d audio intervals carried audio levels: the browser's RFC 6464 extension did not arrive", withLevel, total)
	}
	// One interval in six straddles each edge, so each side gets at least a quarter.
	if speaking < total/4 || silent < total/4 {
		t.Errorf("speaking in %d and silent in %d of %d intervals; the microphone speaks half of the time", speaking, silent, total)
	}
	if loud < -40 || quiet > -60 {
		t.Errorf("loudest speaking interval %.1f dBov, quietest silent interval %.1f dBov", loud, quiet)
	}
	var raised, cleared int
	for _, a := range alerts {
		if a.Code == recorder.AlertSilent && a.Peer == "speaker" {
			if a.State == recorder.AlertRaised {
				raised++
			} else {
				cleared++
			}
		}
	}
	if raised < 2 || cleared < 2 {
		t.Errorf("silent alerts: %d raised, %d cleared over 3 cycles of 3 s silence (threshold 2 s)", raised, cleared)
	}
	var q *recorder.Quality
	if tr := track(m, "speaker", "camera", "audio"); tr != nil {
		q = tr.Quality
	}
	if q == nil || !q.AudioLevel || q.SpeechPct < 25 || q.SpeechPct > 75 {
		t.Errorf("manifest audio quality %+v: want audio levels and about half speech", q)
	}
}
