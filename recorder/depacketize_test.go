package recorder_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/recorder"
)

type ivfCase struct {
	name      string
	mime      string
	source    func(t *testing.T, mt *mediaTool) string // path of an IVF to packetize
	payloader func() rtp.Payloader
	width     int
	height    int
}

func fixture(name string) func(*testing.T, *mediaTool) string {
	return func(t *testing.T, _ *mediaTool) string { return filepath.Join(fixtures.Dir(t), name) }
}

// av1Sample encodes one second of AV1 with libaom. lag > 0 lets the encoder hide frames
// (alt-refs shown later with show_existing_frame), a harder stream than a browser's.
func av1Sample(usage string, lag string) func(*testing.T, *mediaTool) string {
	return func(t *testing.T, mt *mediaTool) string {
		mt.requireEncoder("libaom-av1")
		out := filepath.Join(t.TempDir(), "av1.ivf")
		mt.generate("-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-t", "1",
			"-c:v", "libaom-av1", "-usage", usage, "-cpu-used", "8", "-lag-in-frames", lag, "-g", "15",
			"-f", "ivf", out)
		return out
	}
}

var ivfCases = []ivfCase{
	{"vp8 camera", "video/VP8", fixture(fixtures.Camera), func() rtp.Payloader { return &codecs.VP8Payloader{EnablePictureID: true} }, 320, 240},
	{"vp8 screen", "video/vp8", fixture(fixtures.Screen), func() rtp.Payloader { return &codecs.VP8Payloader{} }, 320, 240},
	{"vp9 camera", "video/VP9", fixture(fixtures.CameraVP9), func() rtp.Payloader { return &codecs.VP9Payloader{} }, 320, 240},
	{"vp9 flexible", "video/VP9", fixture(fixtures.CameraVP9), func() rtp.Payloader { return &codecs.VP9Payloader{FlexibleMode: true} }, 320, 240},
	{"av1 realtime", "video/AV1", av1Sample("realtime", "0"), func() rtp.Payloader { return &codecs.AV1Payloader{} }, 160, 120},
	{"av1 hidden frames", "video/AV1", av1Sample("good", "8"), func() rtp.Payloader { return &codecs.AV1Payloader{} }, 160, 120},
}

// TestDepacketizeIVFRoundTrip packetizes every frame of a sample into RTP with pion's
// payloaders (MTU 1200, a padding-only packet mixed in now and then), depacketizes it, writes
// IVF, and checks the result with ffmpeg: clean decode, same frames, PTS and keyframes.
func TestDepacketizeIVFRoundTrip(t *testing.T) {
	mt := newMediaTool(t)
	for _, tc := range ivfCases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.source(t, mt)
			out := filepath.Join(t.TempDir(), "out.ivf")
			frames := ivfRoundTrip(t, mt, tc, src, out)

			mt.requireCleanDecode(out)
			want, got := mt.packets(src), mt.packets(out)
			if len(got) != len(want) || len(got) != len(frames) {
				t.Fatalf("%d packets out, %d in the source, %d frames written", len(got), len(want), len(frames))
			}
			for i := range want {
				if math.Abs(got[i].PTS-want[i].PTS) > 1e-4 || got[i].Key != want[i].Key {
					t.Fatalf("packet %d: pts %.5f key %v; source %.5f key %v", i, got[i].PTS, got[i].Key, want[i].PTS, want[i].Key)
				}
			}
			if n, w := mt.decodedFrames(out), mt.decodedFrames(src); n != w {
				t.Errorf("decoded %d frames, source %d", n, w)
			}
			h := fileHeader(t, out)
			if int(h.width) != tc.width || int(h.height) != tc.height || h.frames != uint32(len(frames)) || h.rate != 90000 || h.scale != 1 {
				t.Errorf("header %+v", h)
			}
			if _, w, hh, _ := mt.stream(out); w != tc.width || hh != tc.height {
				t.Errorf("ffprobe size %dx%d", w, hh)
			}
		})
	}
}

// ivfRoundTrip writes src's frames through RTP and the depacketizer to out and returns them.
func ivfRoundTrip(t *testing.T, mt *mediaTool, tc ivfCase, src, out string) []ivfFrame {
	t.Helper()
	hdr, frames := readIVF(t, src)
	keys := mt.packets(src)
	if len(keys) != len(frames) {
		t.Fatalf("ffprobe sees %d packets, pion's reader %d frames", len(keys), len(frames))
	}
	d, err := recorder.NewDepacketizer(tc.mime)
	if err != nil {
		t.Fatal(err)
	}
	fourcc, err := recorder.IVFFourCC(tc.mime)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	w, err := recorder.NewIVFWriter(f, fourcc, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	inspect := recorder.NewFrameStart(tc.mime)
	p := rtp.NewPacketizer(1200, 96, 1, tc.payloader(), rtp.NewRandomSequencer(), 90000)
	base := uint32(0xFFFF0000) // the RTP timestamp wraps during the test
	fragmented := 0
	for i, fr := range frames {
		pts := fr.pts * 90000 * uint64(hdr.TimebaseNumerator) / uint64(hdr.TimebaseDenominator)
		ts := base + uint32(pts)
		pkts := packetizeFrame(p, fr.data, ts)
		if len(pkts) > 1 {
			fragmented++
		}
		if i%7 == 3 {
			pkts = append(pkts[:1], append([]*rtp.Packet{paddingPacket(ts)}, pkts[1:]...)...)
		}
		// The monitor's one-packet view agrees with the bitstream.
		if start, key, w, h := inspect(pkts[0]); !start || key != keys[i].Key || key && w != 0 && (w != tc.width || h != tc.height) {
			t.Fatalf("frame %d: FrameStart says start %v key %v %dx%d; ffprobe key %v", i, start, key, w, h, keys[i].Key)
		} else if i == 0 && w == 0 {
			t.Fatalf("first keyframe: FrameStart found no size")
		}
		for _, q := range pkts[1:] {
			if start, _, _, _ := inspect(q); start && len(q.Payload) > 0 {
				t.Fatalf("frame %d: a continuation packet looks like a frame start", i)
			}
		}
		frame, err := d.Depacketize(pkts)
		if err != nil {
			t.Fatalf("frame %d (%d packets): %v", i, len(pkts), err)
		}
		if !bytes.Equal(frame.Data, fr.data) {
			t.Fatalf("frame %d: %d bytes out, %d in", i, len(frame.Data), len(fr.data))
		}
		if frame.Keyframe != keys[i].Key {
			t.Fatalf("frame %d: keyframe %v, ffprobe says %v", i, frame.Keyframe, keys[i].Key)
		}
		if frame.Keyframe && (frame.Width != tc.width || frame.Height != tc.height) {
			t.Fatalf("keyframe %d: %dx%d", i, frame.Width, frame.Height)
		}
		if i == 0 {
			if !frame.Keyframe {
				t.Fatal("the sample does not start with a keyframe")
			}
			w.SetSize(uint16(frame.Width), uint16(frame.Height))
		}
		if err := w.WriteFrame(frame.Data, pts); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i%30 == 29 {
			if err := w.PatchHeader(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if fragmented == 0 {
		t.Fatal("no frame needed more than one packet: the test does not exercise reassembly")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return frames
}

// TestIVFWriterTruncated: an IVF cut inside its last frame (a crash mid-write) still demuxes and
// decodes every frame before the cut.
func TestIVFWriterTruncated(t *testing.T) {
	mt := newMediaTool(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "whole.ivf")
	frames := ivfRoundTrip(t, mt, ivfCases[0], filepath.Join(fixtures.Dir(t), fixtures.Camera), out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	last := len(b) - 12 - len(frames[len(frames)-1].data)
	for _, tc := range []struct {
		name string
		cut  int
		want int
	}{
		// ffmpeg hands the decoder a cut frame as it is, and VP8 decodes what it can of it.
		{"inside the last frame", last + 12 + len(frames[len(frames)-1].data)/2, len(frames) - 1},
		{"inside the last frame header", last + 5, len(frames) - 1},
		{"whole", len(b), len(frames)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, dir, "cut.ivf", b[:tc.cut])
			// Every frame before the cut; the cut one may come out too.
			if n := len(mt.packets(file)); n < tc.want || n > len(frames) {
				t.Errorf("%d packets demuxed, want %d (or %d with the cut one)", n, tc.want, len(frames))
			}
			if n := mt.decodedFrames(file); n < tc.want || n > len(frames) {
				t.Errorf("%d frames decoded, want %d (or %d with the cut one)", n, tc.want, len(frames))
			}
		})
	}
}

// TestDepacketizeAV1MatchesPion: for well-formed input our AV1 reassembly agrees with pion's
// AV1Depacketizer, plus the temporal delimiter pion drops.
func TestDepacketizeAV1MatchesPion(t *testing.T) {
	mt := newMediaTool(t)
	_, frames := readIVF(t, av1Sample("good", "8")(t, mt))
	d, err := recorder.NewDepacketizer("video/av1")
	if err != nil {
		t.Fatal(err)
	}
	p := rtp.NewPacketizer(300, 96, 1, &codecs.AV1Payloader{}, rtp.NewRandomSequencer(), 90000)
	for i, fr := range frames {
		pkts := packetizeFrame(p, fr.data, uint32(i))
		var pion codecs.AV1Depacketizer
		var want []byte
		for _, pkt := range pkts {
			b, err := pion.Unmarshal(pkt.Payload)
			if err != nil {
				t.Fatalf("frame %d: pion: %v", i, err)
			}
			want = append(want, b...)
		}
		got, err := d.Depacketize(pkts)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got.Data, append([]byte{0x12, 0x00}, want...)) {
			t.Fatalf("frame %d: ours %x, pion %x", i, got.Data, want)
		}
	}
}

type h264Case struct {
	name          string
	profile       string
	width, height int
	pixFmt        string
	x264          string // extra -x264-params
	// apart sends SPS and PPS as a frame of their own before the IDR, as some senders do.
	apart bool
}

// TestDepacketizeH264RoundTrip encodes H.264 with x264 (an AUD before each access unit so the
// test can split them), packetizes with pion (STAP-A for SPS+PPS, FU-A for large NAL units),
// depacketizes and writes Annex-B, then checks it with ffmpeg. The cases exercise the SPS parser:
// 322x242 needs cropping (in 4:2:0 and 4:4:4 crop units), tff=1 clears frame_mbs_only_flag.
func TestDepacketizeH264RoundTrip(t *testing.T) {
	mt := newMediaTool(t)
	mt.requireEncoder("libx264")
	for _, tc := range []h264Case{
		{"baseline", "baseline", 320, 240, "yuv420p", "", false},
		{"parameter sets apart", "baseline", 320, 240, "yuv420p", "", true},
		{"high cropped", "high", 322, 242, "yuv420p", "", false},
		{"high 4:4:4 cropped", "high444", 322, 242, "yuv444p", "", false},
		{"interlaced", "high", 320, 240, "yuv420p", ":tff=1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src.h264")
			mt.generate("-f", "lavfi", "-i", "testsrc=size="+strconv.Itoa(tc.width)+"x"+strconv.Itoa(tc.height)+":rate=30", "-t", "2",
				"-c:v", "libx264", "-tune", "zerolatency", "-profile:v", tc.profile, "-pix_fmt", tc.pixFmt,
				"-g", "30", "-x264-params", "aud=1"+tc.x264, "-f", "h264", src)
			raw, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			var aus [][][]byte
			for _, n := range recorder.SplitAnnexB(raw) {
				if n[0]&0x1F == 9 { // access unit delimiter
					aus = append(aus, nil)
					continue
				}
				aus[len(aus)-1] = append(aus[len(aus)-1], n)
			}
			keys := mt.packets(src)
			if len(keys) != len(aus) {
				t.Fatalf("ffprobe sees %d access units, the AUDs %d", len(keys), len(aus))
			}

			d, err := recorder.NewDepacketizer("video/H264")
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.h264")
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			w, err := recorder.NewAnnexBWriter(f)
			if err != nil {
				t.Fatal(err)
			}
			p := rtp.NewPacketizer(1200, 102, 1, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
			var stapA, fuA bool
			for i, au := range aus {
				var annexB, params []byte
				for _, n := range au {
					if tc.apart && (n[0]&0x1F == 7 || n[0]&0x1F == 8) {
						params = append(append(params, 0, 0, 0, 1), n...)
						continue
					}
					annexB = append(append(annexB, 0, 0, 0, 1), n...)
				}
				if len(params) > 0 {
					// pion's payloader holds SPS and PPS back for a STAP-A with the next NAL
					// unit, so send them on their own, one single-NAL packet each.
					var alone []*rtp.Packet
					for _, n := range recorder.SplitAnnexB(params) {
						alone = append(alone, &rtp.Packet{Header: rtp.Header{Timestamp: uint32(i*3000 - 1)}, Payload: n})
					}
					alone[len(alone)-1].Marker = true
					if _, err := d.Depacketize(alone); !errors.Is(err, recorder.ErrNoMedia) {
						t.Fatalf("access unit %d: parameter sets alone: %v, want ErrNoMedia", i, err)
					}
				}
				pkts := packetizeFrame(p, annexB, uint32(i*3000))
				for _, pkt := range pkts {
					stapA = stapA || pkt.Payload[0]&0x1F == 24
					fuA = fuA || pkt.Payload[0]&0x1F == 28
				}
				if i%5 == 1 {
					pkts = append([]*rtp.Packet{paddingPacket(uint32(i * 3000))}, pkts...)
				}
				frame, err := d.Depacketize(pkts)
				if err != nil {
					t.Fatalf("access unit %d: %v", i, err)
				}
				if frame.Keyframe != keys[i].Key {
					t.Fatalf("access unit %d: keyframe %v, ffprobe says %v", i, frame.Keyframe, keys[i].Key)
				}
				if frame.Keyframe && (frame.Width != tc.width || frame.Height != tc.height) {
					t.Fatalf("access unit %d: %dx%d from the SPS", i, frame.Width, frame.Height)
				}
				nals := recorder.SplitAnnexB(frame.Data)
				if len(nals) != len(au) {
					t.Fatalf("access unit %d: %d NAL units, sent %d", i, len(nals), len(au))
				}
				for j := range au {
					if !bytes.Equal(nals[j], au[j]) {
						t.Fatalf("access unit %d NAL %d differs", i, j)
					}
				}
				if err := w.WriteAccessUnit(nals); err != nil {
					t.Fatal(err)
				}
			}
			if (!stapA && !tc.apart) || !fuA {
				t.Fatalf("STAP-A seen %v, FU-A seen %v: the test must exercise both", stapA, fuA)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			mt.requireCleanDecode(out)
			got := mt.packets(out)
			if len(got) != len(keys) {
				t.Fatalf("%d access units out, %d in", len(got), len(keys))
			}
			for i := range got {
				if got[i].Key != keys[i].Key {
					t.Fatalf("access unit %d: key %v, source %v", i, got[i].Key, keys[i].Key)
				}
			}
			if n, w := mt.decodedFrames(out), mt.decodedFrames(src); n != w {
				t.Errorf("decoded %d frames, source %d", n, w)
			}
			if _, w, h, _ := mt.stream(out); w != tc.width || h != tc.height {
				t.Errorf("ffprobe size %dx%d", w, h)
			}
		})
	}
}

// TestDepacketizeH264ParameterSets: SPS and PPS sent on their own (a frame with no slice) are
// kept and put in front of the next IDR; an IDR with no parameter sets ever seen is no keyframe.
func TestDepacketizeH264ParameterSets(t *testing.T) {
	// x264 baseline 320x240 (with an emulation prevention byte or two).
	sps := []byte{0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
		0x10, 0x00, 0x00, 0x03, 0x03, 0xC8, 0xF1, 0x42, 0xA4, 0x80}
	pps := []byte{0x68, 0xCB, 0x83, 0xCB, 0x20}
	idr := []byte{0x65, 0x88, 0x84, 0x00, 0x33}
	slice := []byte{0x41, 0x9A, 0x02}
	pkt := func(ts uint32, payload []byte, marker bool) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{Timestamp: ts, Marker: marker}, Payload: payload}
	}
	stap := func(nals ...[]byte) []byte {
		b := []byte{24}
		for _, n := range nals {
			b = append(b, byte(len(n)>>8), byte(len(n)))
			b = append(b, n...)
		}
		return b
	}

	d, err := recorder.NewDepacketizer("video/h264")
	if err != nil {
		t.Fatal(err)
	}
	f, err := d.Depacketize([]*rtp.Packet{pkt(1, idr, true)})
	if err != nil || f.Keyframe {
		t.Fatalf("IDR before any SPS/PPS: keyframe %v, %v", f.Keyframe, err)
	}
	if _, err := d.Depacketize([]*rtp.Packet{pkt(2, stap(sps, pps), true)}); !errors.Is(err, recorder.ErrNoMedia) {
		t.Fatalf("parameter sets alone: %v, want ErrNoMedia", err)
	}
	f, err = d.Depacketize([]*rtp.Packet{pkt(3, slice, true)})
	if err != nil || f.Keyframe || !bytes.Equal(f.Data, append([]byte{0, 0, 0, 1}, slice...)) {
		t.Fatalf("P slice: %+v, %v", f, err)
	}
	f, err = d.Depacketize([]*rtp.Packet{pkt(4, idr[:2], false), pkt(4, []byte{0x7C, 0x85, 0xAA}, false), pkt(4, []byte{0x7C, 0x45, 0xBB}, true)})
	if err != nil || !f.Keyframe {
		t.Fatalf("IDR: %+v, %v", f, err)
	}
	want := bytes.Join([][]byte{nil, sps, pps, idr[:2], {0x65, 0xAA, 0xBB}}, []byte{0, 0, 0, 1})
	if !bytes.Equal(f.Data, want) {
		t.Fatalf("IDR with remembered parameter sets:\n got %x\nwant %x", f.Data, want)
	}
	if f.Width != 320 || f.Height != 240 {
		t.Errorf("size from the remembered SPS: %dx%d, want 320x240", f.Width, f.Height)
	}

	// An IDR with its SPS but not its PPS: the remembered PPS goes after the SPS, after an AUD.
	aud := []byte{0x09, 0xF0}
	f, err = d.Depacketize([]*rtp.Packet{pkt(5, stap(aud, sps), false), pkt(5, idr, true)})
	if err != nil || !f.Keyframe {
		t.Fatalf("IDR with SPS only: %+v, %v", f, err)
	}
	if want := bytes.Join([][]byte{nil, aud, sps, pps, idr}, []byte{0, 0, 0, 1}); !bytes.Equal(f.Data, want) {
		t.Fatalf("IDR with SPS only:\n got %x\nwant %x", f.Data, want)
	}
}

// TestDepacketizeVP9Superframe: the libvpx fixture holds superframes (a hidden alt-ref frame
// plus a shown frame). Sent as two frames of one picture, B..E each (as spatial layers are), they
// must come out as the same superframe, byte for byte, and the file must decode cleanly.
func TestDepacketizeVP9Superframe(t *testing.T) {
	mt := newMediaTool(t)
	_, frames := readIVF(t, filepath.Join(fixtures.Dir(t), fixtures.CameraVP9))
	d, err := recorder.NewDepacketizer("video/vp9")
	if err != nil {
		t.Fatal(err)
	}
	pay := &codecs.VP9Payloader{}
	out := filepath.Join(t.TempDir(), "super.ivf")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	w, err := recorder.NewIVFWriter(f, "VP90", 320, 240)
	if err != nil {
		t.Fatal(err)
	}
	supers := 0
	for i, fr := range frames {
		layers := splitSuperframe(fr.data)
		if len(layers) > 1 {
			supers++
		}
		var pkts []*rtp.Packet
		for _, l := range layers {
			for _, b := range pay.Payload(1188, l) {
				pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Timestamp: uint32(fr.pts)}, Payload: b})
			}
		}
		pkts[len(pkts)-1].Marker = true
		got, err := d.Depacketize(pkts)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got.Data, fr.data) {
			t.Fatalf("frame %d (%d layers): %d bytes, want %d; index % x", i, len(layers), len(got.Data), len(fr.data), got.Data[max(0, len(got.Data)-8):])
		}
		if err := w.WriteFrame(got.Data, fr.pts*3000); err != nil {
			t.Fatal(err)
		}
	}
	if supers == 0 {
		t.Fatal("the fixture has no superframes any more: this test needs one")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mt.requireCleanDecode(out)
	if n := mt.decodedFrames(out); n != len(frames) {
		t.Errorf("decoded %d frames, want %d", n, len(frames))
	}
}

// splitSuperframe returns the frames of a VP9 superframe (VP9 spec Annex B), or b alone.
func splitSuperframe(b []byte) [][]byte {
	m := b[len(b)-1]
	n, mag := int(m&7)+1, int(m>>3&3)+1
	idx := 2 + n*mag
	if m&0xE0 != 0xC0 || len(b) < idx || b[len(b)-idx] != m {
		return [][]byte{b}
	}
	var out [][]byte
	data, sizes := b, b[len(b)-idx+1:]
	for i := range n {
		size := 0
		for j := mag - 1; j >= 0; j-- {
			size = size<<8 | int(sizes[i*mag+j])
		}
		out = append(out, data[:size])
		data = data[size:]
	}
	return out
}

// TestDepacketizeRejects lists frames the depacketizers must refuse, with the error to expect.
func TestDepacketizeRejects(t *testing.T) {
	type pk struct {
		payload []byte
		ts      uint32
	}
	for _, tc := range []struct {
		name string
		mime string
		pkts []pk
		want error
	}{
		{"padding only", "video/vp8", []pk{{nil, 0}, {nil, 0}}, recorder.ErrNoMedia},
		{"no packets", "video/vp9", nil, recorder.ErrNoMedia},
		{"opus padding", "audio/opus", []pk{{nil, 0}}, recorder.ErrNoMedia},
		{"opus two packets", "audio/opus", []pk{{[]byte{0xF8, 0xFF, 0xFE}, 0}, {[]byte{0xF8, 0xFF, 0xFE}, 0}}, recorder.ErrMalformedFrame},
		{"two timestamps (lost marker)", "video/vp8", []pk{{[]byte{0x10, 0x00, 1}, 0}, {[]byte{0x10, 0x01, 1}, 3000}}, recorder.ErrMalformedFrame},
		{"vp8 starts mid-frame", "video/vp8", []pk{{[]byte{0x00, 0x01, 0x02}, 0}}, recorder.ErrMalformedFrame},
		{"vp8 starts at partition 1", "video/vp8", []pk{{[]byte{0x11, 0x01, 0x02}, 0}}, recorder.ErrMalformedFrame},
		{"vp8 short descriptor", "video/vp8", []pk{{[]byte{0x90}, 0}}, recorder.ErrMalformedFrame},
		{"vp8 descriptor only", "video/vp8", []pk{{[]byte{0x10}, 0}}, recorder.ErrNoMedia},
		{"vp9 no B bit", "video/vp9", []pk{{[]byte{0x04, 0x82, 0x49}, 0}}, recorder.ErrMalformedFrame},
		{"vp9 B twice", "video/vp9", []pk{{[]byte{0x08, 1}, 0}, {[]byte{0x0C, 2}, 0}}, recorder.ErrMalformedFrame},
		{"vp9 bad superframe", "video/vp9", []pk{{[]byte{0x0C, 1, 2, 3, 0xC0, 0x7F, 0xC0}, 0}}, recorder.ErrMalformedFrame},
		{"av1 starts mid-OBU", "video/av1", []pk{{[]byte{0x90, 0x32, 0x00}, 0}}, recorder.ErrMalformedFrame},
		{"av1 ends mid-OBU", "video/av1", []pk{{[]byte{0x50, 0x32, 0x00}, 0}}, recorder.ErrMalformedFrame},
		{"av1 Z without Y before", "video/av1", []pk{{[]byte{0x10, 0x32, 0x00}, 0}, {[]byte{0x90, 0x32}, 0}}, recorder.ErrMalformedFrame},
		{"av1 element overruns", "video/av1", []pk{{[]byte{0x00, 0x05, 0x32}, 0}}, recorder.ErrMalformedFrame},
		{"av1 forbidden bit", "video/av1", []pk{{[]byte{0x10, 0xB2, 0x00}, 0}}, recorder.ErrMalformedFrame},
		{"av1 bad leb128", "video/av1", []pk{{[]byte{0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 0}}, recorder.ErrMalformedFrame},
		{"av1 delimiter only", "video/av1", []pk{{[]byte{0x10, 0x10}, 0}}, recorder.ErrNoMedia},
		{"h264 FU-A without start", "video/h264", []pk{{[]byte{0x7C, 0x05, 1}, 0}}, recorder.ErrMalformedFrame},
		{"h264 FU-A without end", "video/h264", []pk{{[]byte{0x7C, 0x85, 1}, 0}}, recorder.ErrMalformedFrame},
		{"h264 FU-A interrupted", "video/h264", []pk{{[]byte{0x7C, 0x85, 1}, 0}, {[]byte{0x41, 1}, 0}}, recorder.ErrMalformedFrame},
		{"h264 STAP-A overrun", "video/h264", []pk{{[]byte{0x18, 0x00, 0x09, 0x41}, 0}}, recorder.ErrMalformedFrame},
		{"h264 FU-B", "video/h264", []pk{{[]byte{0x1D, 0x85, 0, 0, 1}, 0}}, recorder.ErrMalformedFrame},
		{"h264 SEI only", "video/h264", []pk{{[]byte{0x06, 0x05, 0x01, 0x00, 0x80}, 0}}, recorder.ErrNoMedia},
		{"h264 reserved type only", "video/h264", []pk{{[]byte{0x1E, 1, 2}, 0}}, recorder.ErrNoMedia},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := recorder.NewDepacketizer(tc.mime)
			if err != nil {
				t.Fatal(err)
			}
			var pkts []*rtp.Packet
			for i, p := range tc.pkts {
				pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Timestamp: p.ts, Marker: i == len(tc.pkts)-1}, Payload: p.payload})
			}
			f, err := d.Depacketize(pkts)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %+v, %v; want %v", f, err, tc.want)
			}
		})
	}
	if _, err := recorder.NewDepacketizer("video/H265"); !errors.Is(err, recorder.ErrUnsupportedCodec) {
		t.Errorf("H265: %v", err)
	}
}

// TestDepacketizeAV1SequenceHeaderRemembered: a key frame whose temporal unit lacks the sequence
// header gets the last one seen; before any, a key frame is not a keyframe.
func TestDepacketizeAV1SequenceHeaderRemembered(t *testing.T) {
	mt := newMediaTool(t)
	_, frames := readIVF(t, av1Sample("realtime", "0")(t, mt))
	key := frames[0].data
	// Split the first temporal unit into its OBUs (all with size fields): TD, sequence header, frame.
	var obus [][]byte
	for off := 0; off < len(key); {
		size, n := int(key[off+1]), 1 // sizes here fit in... check below
		if key[off+1]&0x80 != 0 {
			size = int(key[off+1]&0x7F) | int(key[off+2])<<7
			n = 2
		}
		obus = append(obus, key[off:off+1+n+size])
		off += 1 + n + size
	}
	if len(obus) < 3 || obus[0][0]>>3 != 2 || obus[1][0]>>3 != 1 {
		t.Fatalf("unexpected first temporal unit: %d OBUs", len(obus))
	}
	withoutSeq := append(append([]byte(nil), obus[0]...), bytes.Join(obus[2:], nil)...)
	p := rtp.NewPacketizer(1200, 96, 1, &codecs.AV1Payloader{}, rtp.NewRandomSequencer(), 90000)

	d, err := recorder.NewDepacketizer("video/av1")
	if err != nil {
		t.Fatal(err)
	}
	f, err := d.Depacketize(packetizeFrame(p, withoutSeq, 0))
	if err != nil || f.Keyframe {
		t.Fatalf("key frame before any sequence header: keyframe %v, %v", f.Keyframe, err)
	}
	if f, err = d.Depacketize(packetizeFrame(p, key, 3000)); err != nil || !f.Keyframe {
		t.Fatalf("full key temporal unit: keyframe %v, %v", f.Keyframe, err)
	}
	f, err = d.Depacketize(packetizeFrame(p, withoutSeq, 6000))
	if err != nil || !f.Keyframe || !bytes.Equal(f.Data, key) || f.Width != 160 || f.Height != 120 {
		t.Fatalf("key frame after a sequence header: keyframe %v %dx%d equal %v, %v", f.Keyframe, f.Width, f.Height, bytes.Equal(f.Data, key), err)
	}
}
