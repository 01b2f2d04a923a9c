package monitor

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/recorder"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func audioInfo(peer string) bot.TrackInfo {
	return bot.TrackInfo{PeerID: peer, SessionID: "s1", TrackID: peer + "-mic", Kind: "audio",
		MimeType: "audio/opus", ClockRate: 48000, AudioLevelExtID: 1}
}

func videoInfo(peer string) bot.TrackInfo {
	return bot.TrackInfo{PeerID: peer, SessionID: "s1", TrackID: peer + "-cam", Kind: "video",
		MimeType: "video/vp8", ClockRate: 90000}
}

// opus builds an audio packet with an RFC 6464 level (0..127 = -dBov).
func opus(seq uint16, ts uint32, level uint8) *rtp.Packet {
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts, SSRC: 1},
		Payload: make([]byte, 80)}
	if level != 255 {
		_ = p.Header.SetExtension(1, []byte{level & 0x7F})
	}
	return p
}

// vp8 builds a one-packet VP8 frame; key frames carry a 640x480 keyframe header.
func vp8(seq uint16, ts uint32, key bool) *rtp.Packet {
	payload := []byte{0x10, 0x00, 0, 0, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01, 0, 0, 0}
	if !key {
		payload[1] = 0x01 // inter frame: P bit set (bit 0 of the frame tag)
	}
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 2, Marker: true},
		Payload: payload}
}

func newTestMonitor(th Thresholds) (*Monitor, *[]recorder.Alert) {
	var got []recorder.Alert
	m := New(Config{Interval: time.Second, Thresholds: th}, Outputs{Alert: func(a recorder.Alert) { got = append(got, a) }}, t0)
	m.clock = func() time.Time { return t0 }
	return m, &got
}

func TestLossAccounting(t *testing.T) {
	tests := []struct {
		name                                            string
		seqs                                            []uint16
		wantLostFirst, wantRecovered, wantDups, wantExp uint64
		wantLost                                        uint64 // after the recovery window
	}{
		{"in order", []uint16{1, 2, 3, 4}, 0, 0, 0, 4, 0},
		{"hole never filled", []uint16{1, 2, 5, 6}, 2, 0, 0, 6, 2},
		{"hole filled by retransmission", []uint16{1, 2, 4, 3, 5}, 1, 1, 0, 5, 0},
		{"duplicates", []uint16{1, 2, 2, 3, 3}, 0, 0, 2, 3, 0},
		{"wrap", []uint16{65534, 65535, 0, 2}, 1, 0, 0, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestMonitor(Thresholds{})
			tr := m.Track(audioInfo("a"), "mic").(*meter)
			for i, s := range tt.seqs {
				tr.WriteRTP(opus(s, uint32(i)*960, 30), t0.Add(time.Duration(i)*20*time.Millisecond))
			}
			st := tr.snapshot(t0.Add(5 * time.Second))
			if st.LostBeforeRecovery != tt.wantLostFirst || st.Recovered != tt.wantRecovered || st.Duplicates != tt.wantDups ||
				st.Expected != tt.wantExp || st.Lost != tt.wantLost {
				t.Errorf("got lostFirst %d recovered %d dups %d expected %d lost %d; want %d %d %d %d %d",
					st.LostBeforeRecovery, st.Recovered, st.Duplicates, st.Expected, st.Lost,
					tt.wantLostFirst, tt.wantRecovered, tt.wantDups, tt.wantExp, tt.wantLost)
			}
		})
	}
}

// A retransmission after the recovery window is late and the packet stays lost.
func TestLatePacketStaysLost(t *testing.T) {
	m, _ := newTestMonitor(Thresholds{})
	tr := m.Track(audioInfo("a"), "mic").(*meter)
	tr.WriteRTP(opus(1, 0, 30), t0)
	tr.WriteRTP(opus(3, 1920, 30), t0.Add(40*time.Millisecond))
	tr.snapshot(t0.Add(2 * time.Second)) // window passed: seq 2 is lost
	tr.WriteRTP(opus(2, 960, 30), t0.Add(2100*time.Millisecond))
	st := tr.snapshot(t0.Add(3 * time.Second))
	if st.Lost != 1 || st.Late != 1 || st.Recovered != 0 {
		t.Fatalf("lost %d late %d recovered %d, want 1 1 0", st.Lost, st.Late, st.Recovered)
	}
}

// Jitter follows RFC 3550: packets whose transit varies by a known amount give the estimator's
// value computed independently here.
func TestJitterRFC3550(t *testing.T) {
	m, _ := newTestMonitor(Thresholds{})
	tr := m.Track(audioInfo("a"), "mic").(*meter)
	rng := rand.New(rand.NewPCG(1, 2))
	var want, last float64
	for i := range 500 {
		delay := time.Duration(rng.IntN(30)) * time.Millisecond
		at := t0.Add(time.Duration(i)*20*time.Millisecond + delay)
		tr.WriteRTP(opus(uint16(i), uint32(i)*960, 30), at)
		transit := delay.Seconds() * 1000 // ms; the 20 ms schedule cancels out
		if i > 0 {
			want += (math.Abs(transit-last) - want) / 16
		}
		last = transit
	}
	st := tr.snapshot(t0.Add(11 * time.Second))
	if math.Abs(st.JitterMs-want) > 0.01 {
		t.Fatalf("jitter %.3f ms, want %.3f ms", st.JitterMs, want)
	}
}

func TestVideoFramesKeyframesAndFreeze(t *testing.T) {
	m, alerts := newTestMonitor(Thresholds{FrozenAfter: 2 * time.Second})
	tr := m.Track(videoInfo("v"), "camera").(*meter)
	at := t0
	seq := uint16(0)
	for i := range 30 { // 1 s at 30 fps
		tr.WriteRTP(vp8(seq, uint32(i)*3000, i == 0), at)
		seq++
		at = at.Add(33 * time.Millisecond)
	}
	st := tr.snapshot(t0.Add(time.Second))
	if st.Frames != 30 || st.Keyframes != 1 || st.Width != 640 || st.Height != 480 {
		t.Fatalf("frames %d keyframes %d size %dx%d", st.Frames, st.Keyframes, st.Width, st.Height)
	}
	if st.FPS < 29 || st.FPS > 31 {
		t.Fatalf("fps %.1f", st.FPS)
	}
	m.evaluate(t0.Add(2 * time.Second))
	if len(*alerts) != 0 {
		t.Fatalf("alerts while playing: %+v", *alerts)
	}
	// The video stops for 3 s: frozen is raised, then cleared by the next frame.
	m.evaluate(at.Add(2500 * time.Millisecond))
	if len(*alerts) != 1 || (*alerts)[0].Code != recorder.AlertFrozen || (*alerts)[0].State != recorder.AlertRaised {
		t.Fatalf("want frozen raised, got %+v", *alerts)
	}
	at = at.Add(3 * time.Second)
	tr.WriteRTP(vp8(seq, 40*3000, false), at)
	m.evaluate(at.Add(100 * time.Millisecond))
	if len(*alerts) != 2 || (*alerts)[1].State != recorder.AlertCleared {
		t.Fatalf("want frozen cleared, got %+v", *alerts)
	}
	st = tr.snapshot(at.Add(200 * time.Millisecond))
	if st.Freezes != 1 || st.FrozenMs < 2900 {
		t.Fatalf("freezes %d frozen %d ms", st.Freezes, st.FrozenMs)
	}
}

// A frame with a missing packet is not complete: the freeze goes on.
func TestIncompleteFrameIsNotAFrame(t *testing.T) {
	m, _ := newTestMonitor(Thresholds{})
	tr := m.Track(videoInfo("v"), "camera").(*meter)
	start := vp8(1, 3000, true)
	start.Marker = false
	tr.WriteRTP(start, t0)
	end := &rtp.Packet{Header: rtp.Header{SequenceNumber: 3, Timestamp: 3000, Marker: true, SSRC: 2}, Payload: []byte{0x00, 1, 2}}
	tr.WriteRTP(end, t0.Add(time.Millisecond)) // seq 2 is missing
	if st := tr.snapshot(t0.Add(time.Second)); st.Frames != 0 {
		t.Fatalf("frames %d, want 0", st.Frames)
	}
}

func TestSilenceAlertAndSpeech(t *testing.T) {
	m, alerts := newTestMonitor(Thresholds{SilentAfter: 3 * time.Second})
	m.Events().PeerJoined("alice", nil)
	tr := m.Track(audioInfo("alice"), "mic").(*meter)
	send := func(from, to time.Duration, level uint8) {
		for d := from; d < to; d += 20 * time.Millisecond {
			n := uint16(d / (20 * time.Millisecond))
			tr.WriteRTP(opus(n, uint32(n)*960, level), t0.Add(d))
		}
	}
	send(0, 2*time.Second, 20) // speech at -20 dBov
	st := tr.snapshot(t0.Add(2 * time.Second))
	if !st.Speaking || st.Level == nil || math.Abs(*st.Level+20) > 0.1 || st.SpeechPct != 100 {
		t.Fatalf("speech interval: speaking %v level %v speech %.0f%%", st.Speaking, st.Level, st.SpeechPct)
	}
	send(2*time.Second, 7*time.Second, 90) // -90 dBov: silence, packets keep coming
	m.evaluate(t0.Add(4 * time.Second))
	if len(*alerts) != 0 {
		t.Fatalf("raised too early: %+v", *alerts)
	}
	m.evaluate(t0.Add(5100 * time.Millisecond))
	if len(*alerts) != 1 || (*alerts)[0].Code != recorder.AlertSilent || (*alerts)[0].Peer != "alice" {
		t.Fatalf("want silent raised, got %+v", *alerts)
	}
	st = tr.snapshot(t0.Add(7 * time.Second))
	if st.Speaking || st.SpeechPct != 0 {
		t.Fatalf("silence interval: speaking %v speech %.0f%%", st.Speaking, st.SpeechPct)
	}
	send(7*time.Second, 8*time.Second, 25)
	m.evaluate(t0.Add(8 * time.Second))
	if len(*alerts) != 2 || (*alerts)[1].State != recorder.AlertCleared {
		t.Fatalf("want silent cleared, got %+v", *alerts)
	}
	q := tr.summary(t0.Add(8 * time.Second))
	if !q.AudioLevel || q.SpeechPct < 35 || q.SpeechPct > 40 { // 3 s of 8 s
		t.Fatalf("summary speech %.1f%%", q.SpeechPct)
	}
}

func TestLossAlert(t *testing.T) {
	m, alerts := newTestMonitor(Thresholds{LossPercent: 5, LossFor: 2 * time.Second})
	tr := m.Track(audioInfo("a"), "mic").(*meter)
	seq := uint16(0)
	for i := range 300 { // 6 s; from 2 s on every 5th packet is missing (20 %)
		at := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		if i < 100 || i%5 != 0 {
			tr.WriteRTP(opus(seq, uint32(seq)*960, 30), at)
		}
		seq++
		if i%25 == 0 {
			m.evaluate(at)
		}
	}
	if len(*alerts) != 1 || (*alerts)[0].Code != recorder.AlertLoss {
		t.Fatalf("want loss raised, got %+v", *alerts)
	}
	if a := m.alerts[alertKey{recorder.AlertLoss, "a", "mic"}]; a == nil || a.Value < 18 || a.Value > 22 {
		t.Fatalf("active loss alert %+v, want a value near 20 %%", a)
	}
}

func TestNoMediaAndLeftUnexpectedly(t *testing.T) {
	m, alerts := newTestMonitor(Thresholds{NoMediaAfter: 2 * time.Second, LeftAfter: time.Second})
	ev := m.Events()
	ev.PeerJoined("bob", nil)
	m.mu.Lock()
	m.peers["bob"].joinedAt = t0
	m.mu.Unlock()
	ev.PeerJoined("~roomtape-recorder-job2", json.RawMessage(`{"roomtape":"recorder"}`))
	m.evaluate(t0.Add(2500 * time.Millisecond))
	if len(*alerts) != 1 || (*alerts)[0].Code != recorder.AlertNoMedia || (*alerts)[0].Peer != "bob" {
		t.Fatalf("want no_media for bob only (another recorder sends nothing by design), got %+v", *alerts)
	}
	ev.ConnectionState("bob", "s1", "connected")
	ev.ConnectionState("bob", "s1", "failed")
	m.mu.Lock()
	m.peers["bob"].badSince = t0.Add(2 * time.Second)
	m.mu.Unlock()
	m.evaluate(t0.Add(3500 * time.Millisecond))
	var left bool
	for _, a := range *alerts {
		left = left || a.Code == recorder.AlertLeftUnexpectedly && a.State == recorder.AlertRaised
	}
	if !left {
		t.Fatalf("want left_unexpectedly, got %+v", *alerts)
	}
	ev.ConnectionState("bob", "s2", "connected") // re-attached
	ev.PeerLeft("bob")
	m.evaluate(t0.Add(4 * time.Second))
	if n := len(m.alerts); n != 0 {
		t.Fatalf("%d alerts still active after bob came back and left", n)
	}
}

func TestNoKeyframeAlert(t *testing.T) {
	m, alerts := newTestMonitor(Thresholds{NoKeyframeAfter: time.Second})
	tr := m.Track(videoInfo("v"), "camera").(*meter)
	tr.mu.Lock()
	tr.needKeySince = t0
	tr.mu.Unlock()
	for i := range 20 {
		tr.WriteRTP(vp8(uint16(i), uint32(i)*3000, false), t0.Add(time.Duration(i)*33*time.Millisecond))
	}
	m.evaluate(t0.Add(1200 * time.Millisecond))
	if len(*alerts) != 1 || (*alerts)[0].Code != recorder.AlertNoKeyframe {
		t.Fatalf("want no_keyframe, got %+v", *alerts)
	}
	tr.WriteRTP(vp8(20, 20*3000, true), t0.Add(1300*time.Millisecond))
	m.evaluate(t0.Add(1400 * time.Millisecond))
	if len(*alerts) != 2 || (*alerts)[1].State != recorder.AlertCleared {
		t.Fatalf("want no_keyframe cleared, got %+v", *alerts)
	}
}

func TestMerge(t *testing.T) {
	a := recorder.Quality{Packets: 100, Bytes: 10000, Expected: 100, Lost: 2, ActiveMs: 1000, JitterMeanMs: 10, JitterMaxMs: 20, Width: 640, Height: 480}
	b := recorder.Quality{Packets: 300, Bytes: 30000, Expected: 300, Lost: 2, ActiveMs: 3000, JitterMeanMs: 2, JitterMaxMs: 5}
	q := Merge(Merge(recorder.Quality{}, a), b)
	if q.Packets != 400 || q.Lost != 4 || q.LossPct != 1 || q.JitterMeanMs != 4 || q.JitterMaxMs != 20 || q.Width != 640 {
		t.Fatalf("merge: %+v", q)
	}
	if q.BitrateMeanBps != 80000 {
		t.Fatalf("bitrate %.0f", q.BitrateMeanBps)
	}
}

// The monitor must cost little per packet: no allocation on the hot path.
func TestWriteRTPDoesNotAllocate(t *testing.T) {
	m, _ := newTestMonitor(Thresholds{})
	tr := m.Track(audioInfo("a"), "mic").(*meter)
	p := opus(0, 0, 30)
	at := t0
	n := uint16(0)
	allocs := testing.AllocsPerRun(1000, func() {
		n++
		p.SequenceNumber, p.Timestamp = n, uint32(n)*960
		at = at.Add(20 * time.Millisecond)
		tr.WriteRTP(p, at)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per packet", allocs)
	}
}

// BenchmarkMeterWriteRTP is the monitor's cost per packet on the bot's reader goroutine.
func BenchmarkMeterWriteRTP(b *testing.B) {
	for _, kind := range []string{"audio", "video"} {
		b.Run(kind, func(b *testing.B) {
			m, _ := newTestMonitor(Thresholds{})
			info := audioInfo("a")
			p := opus(0, 0, 30)
			if kind == "video" {
				info = videoInfo("v")
				p = vp8(0, 0, false)
			}
			tr := m.Track(info, "k").(*meter)
			at := t0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.SequenceNumber, p.Timestamp = uint16(i), uint32(i)*960
				at = at.Add(20 * time.Millisecond)
				tr.WriteRTP(p, at)
			}
		})
	}
}

// A panic in an output (or a rule) is contained: the monitor keeps running and the next
// interval is reported.
func TestRunSurvivesPanickingOutput(t *testing.T) {
	samples := 0
	m := New(Config{Interval: 20 * time.Millisecond}, Outputs{Sample: func(Sample) {
		samples++
		if samples == 1 {
			panic("output bug")
		}
	}}, t0)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	m.Run(ctx)
	if samples < 2 {
		t.Fatalf("%d samples after a panic in the first", samples)
	}
}
