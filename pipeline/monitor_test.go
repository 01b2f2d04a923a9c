package pipeline_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/publisher"
	"github.com/roomtape/roomtape/recorder"
	"github.com/roomtape/roomtape/report"
)

// wire sits nearest the network on a publisher and plays the part of the path: it can hold
// back a kind of media (the sender stops sending), drop every Nth first transmission of video
// packets (retransmissions pass), and delay audio packets by a random time. It records what
// went out so that tests compare the monitor with what the publisher really produced.
type wire struct {
	dropEvery   int           // video: drop every Nth first transmission (0 = none)
	maxDelay    time.Duration // audio: random delay before sending
	pauseAudio  atomic.Bool
	pauseVideo  atomic.Bool
	rng         *rand.Rand
	mu          sync.Mutex
	sent        int
	dropped     map[uint64]bool
	audio       sendStats
	video       sendStats
	audioLastTr float64
}

// sendStats is what one kind of media put on the wire.
type sendStats struct {
	packets     int
	bytes       int
	first, last time.Time
	jitter      float64 // RFC 3550 estimator over the send times, in clock units
	lastTransit float64
	have        bool
}

func (s *sendStats) add(payload int, ts uint32, at time.Time, rate float64) {
	if s.packets == 0 {
		s.first = at
	}
	s.packets++
	s.bytes += payload
	s.last = at
	tr := float64(at.UnixNano())/1e9*rate - float64(ts)
	if s.have {
		s.jitter += (math.Abs(tr-s.lastTransit) - s.jitter) / 16
	}
	s.lastTransit, s.have = tr, true
}

func (s *sendStats) bitrate() float64 {
	return float64(s.bytes) * 8 / s.last.Sub(s.first).Seconds()
}

func newWire() *wire {
	return &wire{dropped: map[uint64]bool{}, rng: rand.New(rand.NewPCG(7, 11))}
}

func (w *wire) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &wireInterceptor{w: w}, nil
}

type wireInterceptor struct {
	interceptor.NoOp
	w *wire
}

func (l *wireInterceptor) BindLocalStream(info *interceptor.StreamInfo, next interceptor.RTPWriter) interceptor.RTPWriter {
	w := l.w
	audio := strings.HasPrefix(strings.ToLower(info.MimeType), "audio/")
	rate := float64(info.ClockRate)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		size := h.MarshalSize() + len(payload)
		if h.PayloadType != info.PayloadType || len(payload) == 0 {
			return next.Write(h, payload, a)
		}
		if audio && w.pauseAudio.Load() || !audio && w.pauseVideo.Load() {
			return size, nil
		}
		if audio && w.maxDelay > 0 {
			w.mu.Lock()
			d := time.Duration(w.rng.Int64N(int64(w.maxDelay)))
			w.mu.Unlock()
			time.Sleep(d)
		}
		w.mu.Lock()
		if !audio && w.dropEvery > 0 {
			key := uint64(h.SSRC)<<16 | uint64(h.SequenceNumber)
			w.sent++
			if w.sent%w.dropEvery == 0 && !w.dropped[key] {
				w.dropped[key] = true
				w.mu.Unlock()
				return size, nil
			}
			if w.dropped[key] {
				w.mu.Unlock()
				return next.Write(h, payload, a) // a retransmission: not counted again
			}
		}
		if audio {
			w.audio.add(len(payload), h.Timestamp, time.Now(), rate)
		} else {
			w.video.add(len(payload), h.Timestamp, time.Now(), rate)
		}
		w.mu.Unlock()
		return next.Write(h, payload, a)
	})
}

// monitorRun records one Go publisher (camera + mic) through pub's wire and returns the manifest
// and the monitor's samples and alerts.
type monitorRun struct {
	manifest *recorder.Manifest
	samples  []monitor.Sample
	alerts   []recorder.Alert
	dir      string
}

func runMonitored(t *testing.T, w *wire, nack bool, mode string, th monitor.Thresholds, dur time.Duration, during func(ctx context.Context)) monitorRun {
	t.Helper()
	dir := fixtures.Dir(t)
	url := startServer(t)
	pubTr, err := bot.NewTransport(testenv.LoopbackNetwork(), nil, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pubTr.Close() })
	botNet := testenv.LoopbackNetwork()
	botNet.DisableNACK = !nack
	botTr, err := bot.NewTransport(botNet, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = botTr.Close() })
	startPublisher(t, url, "alice", pubTr, publisher.Stream{Role: "camera",
		Audio: filepath.Join(dir, fixtures.Audio), Video: filepath.Join(dir, fixtures.Camera)})
	cc, err := pipeline.DemoProfile(url).ClientConfig("~roomtape-recorder", nil, "room")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		run = monitorRun{dir: filepath.Join(t.TempDir(), "mon")}
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if during != nil {
		go during(ctx)
	}
	m, err := pipeline.Record(ctx, pipeline.RecordSpec{
		Bot:         bot.Config{Channel: "room", Signalling: cc},
		Recorder:    recorder.Options{Dir: filepath.Dir(run.dir), ID: "mon", JitterLatency: 500 * time.Millisecond},
		MaxDuration: dur, Mode: mode,
		Monitor:  monitor.Config{Interval: time.Second, Thresholds: th},
		OnSample: func(s monitor.Sample) { mu.Lock(); run.samples = append(run.samples, s); mu.Unlock() },
		OnAlert:  func(a recorder.Alert) { mu.Lock(); run.alerts = append(run.alerts, a); mu.Unlock() },
	}, botTr)
	if err != nil {
		t.Fatal(err)
	}
	run.manifest = m
	return run
}

func (r monitorRun) quality(t *testing.T, kind string) *recorder.Quality {
	t.Helper()
	for _, p := range r.manifest.Participants {
		for _, tr := range p.Tracks {
			if tr.Kind == kind && tr.Quality != nil {
				return tr.Quality
			}
		}
	}
	t.Fatalf("no %s track with a quality summary in the manifest", kind)
	return nil
}

// Loss measured by the monitor is within 1 percentage point of the loss injected on the wire:
// without NACK all of it stays lost; with NACK it is seen before recovery and then recovered.
func TestMonitorLossMatchesInjected(t *testing.T) {
	testenv.RequireTools(t)
	for _, nack := range []bool{false, true} {
		w := newWire()
		w.dropEvery = 20 // 5 %
		run := runMonitored(t, w, nack, pipeline.ModeMonitor, monitor.Thresholds{}, 6*time.Second, nil)
		q := run.quality(t, "video")
		w.mu.Lock()
		injected := float64(len(w.dropped)) / float64(w.video.packets+len(w.dropped)) * 100
		w.mu.Unlock()
		t.Logf("nack=%v: injected %.2f%%, monitor before recovery %.2f%%, after %.2f%% (%d packets, %d recovered)",
			nack, injected, q.LossBeforeRecoveryPct, q.LossPct, q.Packets, q.Recovered)
		if math.Abs(q.LossBeforeRecoveryPct-injected) > 1 {
			t.Errorf("nack=%v: loss before recovery %.2f%%, injected %.2f%%", nack, q.LossBeforeRecoveryPct, injected)
		}
		want := injected
		if nack {
			want = 0
		}
		if math.Abs(q.LossPct-want) > 1 {
			t.Errorf("nack=%v: loss after recovery %.2f%%, want %.2f%% ± 1", nack, q.LossPct, want)
		}
		if len(run.manifest.Files()) != 0 {
			t.Errorf("monitor mode wrote %d media files", len(run.manifest.Files()))
		}
	}
}

// Jitter and bit rate reported by the monitor are within 10 % of what the publisher produced
// (its own send times and payload bytes, measured on its side of the wire).
func TestMonitorJitterAndBitrate(t *testing.T) {
	testenv.RequireTools(t)
	w := newWire()
	w.maxDelay = 60 * time.Millisecond
	run := runMonitored(t, w, true, pipeline.ModeBoth, monitor.Thresholds{}, 8*time.Second, nil)
	audio, video := run.quality(t, "audio"), run.quality(t, "video")
	var lastAudio *monitor.TrackStats
	for i := range run.samples {
		for j := range run.samples[i].Tracks {
			if s := &run.samples[i].Tracks[j]; s.Kind == "audio" {
				lastAudio = s
			}
		}
	}
	if lastAudio == nil {
		t.Fatal("no audio track in the samples")
	}
	w.mu.Lock()
	sentJitter := w.audio.jitter / 48 // ms
	audioRate, videoRate := w.audio.bitrate(), w.video.bitrate()
	w.mu.Unlock()
	t.Logf("jitter: sent %.2f ms, monitor %.2f ms (mean over intervals %.2f); bitrate audio sent %.0f monitor %.0f, video sent %.0f monitor %.0f",
		sentJitter, lastAudio.JitterMs, audio.JitterMeanMs, audioRate, audio.BitrateMeanBps, videoRate, video.BitrateMeanBps)
	if sentJitter < 5 {
		t.Fatalf("the wire produced only %.2f ms of jitter", sentJitter)
	}
	if rel(lastAudio.JitterMs, sentJitter) > 0.10 {
		t.Errorf("jitter %.2f ms, publisher produced %.2f ms", lastAudio.JitterMs, sentJitter)
	}
	if rel(audio.BitrateMeanBps, audioRate) > 0.10 {
		t.Errorf("audio bitrate %.0f, publisher produced %.0f", audio.BitrateMeanBps, audioRate)
	}
	if rel(video.BitrateMeanBps, videoRate) > 0.10 {
		t.Errorf("video bitrate %.0f, publisher produced %.0f", video.BitrateMeanBps, videoRate)
	}
	if video.Width != 320 || video.Height != 240 || video.FPSMean < 25 || video.FPSMean > 32 || video.Keyframes < 5 {
		t.Errorf("video summary: %dx%d %.1f fps %d keyframes", video.Width, video.Height, video.FPSMean, video.Keyframes)
	}
	testenv.Probe(t, filepath.Join(run.dir, run.manifest.Files()[0].File.Path))
}

// A publisher whose audio stops for 10 s raises a silence alert that clears when it resumes; a
// video that stops for 4 s raises a freeze alert.
func TestMonitorSilenceAndFreezeAlerts(t *testing.T) {
	testenv.RequireTools(t)
	w := newWire()
	th := monitor.Thresholds{SilentAfter: 3 * time.Second, FrozenAfter: 2 * time.Second}
	during := func(ctx context.Context) {
		steps := []struct {
			at   time.Duration
			what func()
		}{
			{3 * time.Second, func() { w.pauseAudio.Store(true) }},
			{5 * time.Second, func() { w.pauseVideo.Store(true) }},
			{9 * time.Second, func() { w.pauseVideo.Store(false) }},
			{13 * time.Second, func() { w.pauseAudio.Store(false) }},
		}
		start := time.Now()
		for _, s := range steps {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(s.at))):
				s.what()
			}
		}
	}
	run := runMonitored(t, w, true, pipeline.ModeBoth, th, 17*time.Second, during)
	find := func(code, state string) *recorder.Alert {
		for i := range run.alerts {
			if a := &run.alerts[i]; a.Code == code && a.State == state {
				return a
			}
		}
		return nil
	}
	for _, a := range run.alerts {
		t.Logf("%6.1fs %s %s %s", float64(a.OffsetMs)/1000, a.State, a.Code, a.Message)
	}
	raised, cleared := find(recorder.AlertSilent, recorder.AlertRaised), find(recorder.AlertSilent, recorder.AlertCleared)
	switch {
	case raised == nil || cleared == nil:
		t.Fatal("want a silent alert raised and cleared")
	case cleared.Value < 9 || cleared.Value > 12:
		t.Errorf("silence lasted %.1f s by the alert, the audio stopped for 10 s", cleared.Value)
	}
	frozen, thawed := find(recorder.AlertFrozen, recorder.AlertRaised), find(recorder.AlertFrozen, recorder.AlertCleared)
	if frozen == nil || thawed == nil || frozen.Track != "camera" {
		t.Fatalf("want a frozen alert on the camera raised and cleared, got %+v / %+v", frozen, thawed)
	}
	if len(run.manifest.Alerts) != len(run.alerts) {
		t.Errorf("manifest has %d alerts, %d were reported", len(run.manifest.Alerts), len(run.alerts))
	}
	if q := run.quality(t, "video"); q.Freezes < 1 || q.FrozenMs < 3500 {
		t.Errorf("video summary: %d freezes, %d ms frozen", q.Freezes, q.FrozenMs)
	}
	// stats.jsonl holds the samples the job reported, and report.html was rendered from it.
	f, err := os.Open(filepath.Join(run.dir, recorder.StatsName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, err := report.ReadSamples(f)
	if err != nil || len(lines) != len(run.samples) || len(lines) < 15 {
		t.Errorf("stats.jsonl: %d samples (%v), %d reported", len(lines), err, len(run.samples))
	}
	html, err := os.ReadFile(filepath.Join(run.dir, recorder.ReportName))
	if err != nil || !strings.Contains(string(html), `id="timeline"`) || !strings.Contains(string(html), `data-code="silent"`) {
		t.Errorf("report.html (%v) lacks the timeline or the silent alert", err)
	}
}

func rel(got, want float64) float64 { return math.Abs(got-want) / want }
