package recorder_test

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/recorder"
)

// timed is one packet with the time it "arrived".
type timed struct {
	p  *rtp.Packet
	at time.Time
}

// stream describes a synthetic RTP stream built from a fixture.
type streamShape struct {
	seq0  uint16
	ts0   uint32
	ssrc  uint32
	start time.Time
}

// opusStream turns the fixture's Opus packets into RTP with arrival times that follow the media
// clock (20 ms apart).
func opusStream(t *testing.T, s streamShape) []timed {
	t.Helper()
	_, pkts, _ := readOpusPackets(t, filepath.Join(fixtures.Dir(t), fixtures.Audio))
	out := make([]timed, 0, len(pkts))
	for i, payload := range pkts {
		out = append(out, timed{
			p:  &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: s.seq0 + uint16(i), Timestamp: s.ts0 + uint32(i*960), SSRC: s.ssrc}, Payload: payload},
			at: s.start.Add(time.Duration(i) * 20 * time.Millisecond),
		})
	}
	return out
}

// vp8Stream packetizes the camera fixture (30 fps, keyframe every second).
func vp8Stream(t *testing.T, s streamShape) []timed {
	t.Helper()
	_, frames := readIVF(t, filepath.Join(fixtures.Dir(t), fixtures.Camera))
	pz := rtp.NewPacketizer(1200, 96, s.ssrc, &codecs.VP8Payloader{}, rtp.NewFixedSequencer(s.seq0), 90000)
	var out []timed
	for i, f := range frames {
		ts := s.ts0 + uint32(i*3000)
		for _, p := range packetizeFrame(pz, f.data, ts) {
			out = append(out, timed{p: p, at: s.start.Add(time.Duration(i) * time.Second / 30)})
		}
	}
	return out
}

// record feeds packets to one track of a fresh recording and returns its single file.
func record(t *testing.T, kind, mime string, pkts []timed) (*recorder.Manifest, *recorder.File, string) {
	t.Helper()
	dir := t.TempDir()
	// A generous latency: packets are fed faster than real time, and a loaded machine must not
	// turn feeding delays into "loss" (what is incomplete at the end is flushed anyway).
	rec, err := recorder.Open(recorder.Options{Dir: dir, ID: "r", Channel: "room", JitterLatency: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ssrc := uint32(0)
	if len(pkts) > 0 {
		ssrc = pkts[0].p.SSRC
	}
	sink := rec.TrackStarted(bot.TrackInfo{PeerID: "alice", SessionID: "1", Connection: 1, StreamID: "s", TrackID: "t",
		Kind: kind, MimeType: mime, ClockRate: map[string]uint32{"audio": 48000, "video": 90000}[kind], Channels: 2,
		SSRC: ssrc, StartedAt: time.Now()}, nil)
	if sink == nil {
		t.Fatal("recording refused the track")
	}
	for _, p := range pkts {
		sink.WriteRTP(p.p, p.at)
	}
	sink.End(bot.EndBotStopped)
	m, err := rec.Close(recorder.StatusFinished, "")
	if err != nil {
		t.Fatal(err)
	}
	files := m.Files()
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}
	return m, files[0].File, filepath.Join(dir, "r", files[0].File.Path)
}

func without(in []timed, drop func(i int) bool) []timed {
	var out []timed
	for i, p := range in {
		if !drop(i) {
			out = append(out, p)
		}
	}
	return out
}

func TestRecordOpusTimeline(t *testing.T) {
	mt := newMediaTool(t)
	var clean []timed // rebuilt per case so that arrival times are "now" when fed
	n := len(opusStream(t, streamShape{start: time.Now()}))
	for _, tc := range []struct {
		name    string
		pkts    func() []timed
		want    float64 // seconds of media from first to last packet end
		gaps    int     // at least this many gaps recorded
		cause   string
		minLost uint64
	}{
		{"clean", func() []timed { return clean }, float64(n) * 0.02, 0, "", 0},
		{"reordered and duplicated", func() []timed {
			out := append([]timed(nil), clean...)
			for i := 10; i+1 < len(out); i += 7 {
				out[i], out[i+1] = out[i+1], out[i]
			}
			for i := 20; i < len(out); i += 10 {
				out = append(out[:i+1], out[i:]...) // duplicate packet i (an RTX copy)
			}
			return out
		}, float64(n) * 0.02, 0, "", 0},
		{"5% loss", func() []timed { return without(clean, func(i int) bool { return i%20 == 7 && i < n-5 }) }, float64(n) * 0.02, 1, "loss", 10},
		{"20% loss", func() []timed { return without(clean, func(i int) bool { return i%5 == 3 && i < n-5 }) }, float64(n) * 0.02, 1, "loss", 50},
		{"DTX pause of 400 ms", func() []timed {
			// The sender stops for 20 frames but keeps sequence numbers contiguous (DTX).
			out := without(clean, func(i int) bool { return i >= 100 && i < 120 })
			for i := 100; i < len(out); i++ {
				p := *out[i].p
				p.SequenceNumber -= 20
				out[i].p = &p
			}
			return out
		}, float64(n) * 0.02, 1, "silence", 0},
		{"5 s mute", func() []timed {
			out := append([]timed(nil), clean...)
			for i := 150; i < len(out); i++ {
				p := *out[i].p
				p.Timestamp += 5 * 48000
				out[i] = timed{p: &p, at: out[i].at.Add(5 * time.Second)}
			}
			return out
		}, float64(n)*0.02 + 5, 1, "silence", 0},
		{"SSRC change mid-stream", func() []timed {
			out := append([]timed(nil), clean...)
			for i := 150; i < len(out); i++ {
				p := *out[i].p
				p.SSRC, p.SequenceNumber, p.Timestamp = 77, 30000+uint16(i), 900000+uint32(i*960)
				out[i].p = &p
			}
			return out
		}, float64(n) * 0.02, 0, "", 0},
		{"32-bit timestamp and sequence wrap", func() []timed {
			return opusStream(t, streamShape{seq0: 65500, ts0: math.MaxUint32 - 48000*2, ssrc: 9, start: time.Now()})
		}, float64(n) * 0.02, 0, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clean = opusStream(t, streamShape{seq0: 1000, ts0: 5000, ssrc: 42, start: time.Now()})
			_, f, path := record(t, "audio", "audio/opus", tc.pkts())
			mt.requireCleanDecode(path)
			got := mt.formatDuration(path)
			if math.Abs(got-tc.want) > 0.02 {
				t.Errorf("duration %.3fs, want %.3fs ±20 ms (manifest %d ms, gaps %+v)", got, tc.want, f.DurationMs, f.Gaps)
			}
			if len(f.Gaps) < tc.gaps {
				t.Errorf("gaps %+v, want at least %d", f.Gaps, tc.gaps)
			}
			if tc.cause != "" && len(f.Gaps) > 0 && f.Gaps[0].Cause != tc.cause {
				t.Errorf("gap cause %q, want %q", f.Gaps[0].Cause, tc.cause)
			}
			if f.Lost < tc.minLost {
				t.Errorf("lost %d, want at least %d", f.Lost, tc.minLost)
			}
			if f.Partial || f.EndReason != string(bot.EndBotStopped) {
				t.Errorf("partial %v, end reason %q", f.Partial, f.EndReason)
			}
		})
	}
}

func TestRecordVP8(t *testing.T) {
	mt := newMediaTool(t)
	// Arrival times must be "now" when the packets are fed, as they are for a live track.
	cleanAt := func(start time.Time) []timed {
		return vp8Stream(t, streamShape{seq0: 100, ts0: 1234, ssrc: 5, start: start})
	}
	for _, tc := range []struct {
		name    string
		pkts    func(start time.Time) []timed
		minDur  float64
		frames  int // exact frame count when > 0
		waits   bool
		minLost uint64
	}{
		{"clean", cleanAt, 5.9, 180, false, 0},
		{"reordered and duplicated", func(start time.Time) []timed {
			var out []timed
			for i, p := range cleanAt(start) {
				out = append(out, p)
				if i%9 == 0 {
					out = append(out, p) // RTX duplicate
				}
			}
			for i := 5; i+1 < len(out); i += 11 {
				out[i], out[i+1] = out[i+1], out[i]
			}
			return out
		}, 5.9, 180, false, 0},
		{"5% loss waits for keyframes", func(start time.Time) []timed {
			clean := cleanAt(start)
			return without(clean, func(i int) bool { return i%20 == 11 && i < len(clean)-40 })
		}, 5.0, 0, true, 5},
		{"sequence wrap", func(start time.Time) []timed {
			return vp8Stream(t, streamShape{seq0: 65400, ts0: math.MaxUint32 - 90000, ssrc: 5, start: start})
		}, 5.9, 180, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, f, path := record(t, "video", "video/VP8", tc.pkts(time.Now()))
			mt.requireCleanDecode(path)
			pkts := mt.packets(path)
			if tc.frames > 0 && len(pkts) != tc.frames {
				t.Errorf("%d frames written, want %d", len(pkts), tc.frames)
			}
			if !pkts[0].Key {
				t.Error("first frame written is not a keyframe")
			}
			end := pkts[len(pkts)-1].PTS - pkts[0].PTS
			if end < tc.minDur-1.0/30 {
				t.Errorf("video spans %.3fs, want at least %.3fs", end, tc.minDur)
			}
			if tc.waits && len(f.KeyframeWaits) == 0 {
				t.Errorf("no keyframe waits recorded after loss (lost %d)", f.Lost)
			}
			if f.Lost < tc.minLost {
				t.Errorf("lost %d, want at least %d", f.Lost, tc.minLost)
			}
			if f.Width != 320 || f.Height != 240 {
				t.Errorf("size %dx%d, want 320x240", f.Width, f.Height)
			}
			if codec, w, h, _ := mt.stream(path); codec != "vp8" || w != 320 || h != 240 {
				t.Errorf("ffprobe: %s %dx%d", codec, w, h)
			}
		})
	}
}

// Padding-only packets (bandwidth probes) take sequence numbers but carry no media.
func TestRecordVP8PaddingOnlyPackets(t *testing.T) {
	mt := newMediaTool(t)
	clean := vp8Stream(t, streamShape{seq0: 10, ts0: 0, ssrc: 5, start: time.Now()})
	var out []timed
	shift := uint16(0)
	for i, p := range clean {
		q := *p.p
		q.SequenceNumber += shift
		out = append(out, timed{p: &q, at: p.at})
		if q.Marker && i%4 == 0 {
			pad := paddingPacket(q.Timestamp)
			pad.SequenceNumber, pad.SSRC = q.SequenceNumber+1, q.SSRC
			out = append(out, timed{p: pad, at: p.at})
			shift++
		}
	}
	_, f, path := record(t, "video", "video/VP8", out)
	mt.requireCleanDecode(path)
	if n := len(mt.packets(path)); n != 180 {
		t.Errorf("%d frames, want 180", n)
	}
	if f.Lost != 0 {
		t.Errorf("padding counted as loss: %d", f.Lost)
	}
}

func TestRecordRefusesUnknownCodec(t *testing.T) {
	rec, err := recorder.Open(recorder.Options{Dir: t.TempDir(), ID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close(recorder.StatusFinished, "")
	if sink := rec.TrackStarted(bot.TrackInfo{PeerID: "a", Kind: "video", MimeType: "video/H265"}, nil); sink != nil {
		t.Fatal("an unknown codec was accepted")
	}
}

func TestOpenRejectsHostileIDs(t *testing.T) {
	for _, id := range []string{"", "..", "../x", "a/b", "x\x00y", fmt.Sprintf("%0200d", 1)} {
		if _, err := recorder.Open(recorder.Options{Dir: t.TempDir(), ID: id}); err == nil {
			t.Errorf("Open accepted id %q", id)
		}
	}
}
