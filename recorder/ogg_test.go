package recorder_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/recorder"
)

// opusRoundTrip sends the fixture's packets through RTP and the Opus depacketizer into an
// OggWriter on w, granules from the packets' own durations. It returns the packets written.
func opusRoundTrip(t *testing.T, w io.Writer, opts recorder.OggOptions) (*recorder.OggWriter, [][]byte) {
	t.Helper()
	_, pkts, _ := readOpusPackets(t, filepath.Join(fixtures.Dir(t), fixtures.Audio))
	ow, err := recorder.NewOggWriter(w, opts)
	if err != nil {
		t.Fatal(err)
	}
	d, err := recorder.NewDepacketizer("audio/opus")
	if err != nil {
		t.Fatal(err)
	}
	p := rtp.NewPacketizer(1200, 111, 1, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	var granule uint64
	for i, pkt := range pkts {
		rtpPkts := packetizeFrame(p, pkt, uint32(i*960))
		if i%10 == 0 { // padding-only packets must be ignored
			rtpPkts = append([]*rtp.Packet{paddingPacket(uint32(i * 960))}, rtpPkts...)
		}
		f, err := d.Depacketize(rtpPkts)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(f.Data, pkt) || !f.Keyframe {
			t.Fatalf("packet %d: depacketized %d bytes (key %v), want the %d-byte payload", i, len(f.Data), f.Keyframe, len(pkt))
		}
		n, err := recorder.OpusSamples(f.Data)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		granule += uint64(n)
		if err := ow.WritePacket(f.Data, granule); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	return ow, pkts
}

func TestOggWriterRoundTripFixture(t *testing.T) {
	mt := newMediaTool(t)
	dir := t.TempDir()
	orig := filepath.Join(fixtures.Dir(t), fixtures.Audio)
	out := filepath.Join(dir, "out.ogg")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	ow, pkts := opusRoundTrip(t, f, recorder.OggOptions{
		Serial:   0x1234,
		Comments: []string{"ROOMTAPE_PEER=alice", "ROOMTAPE_START=2026-11-30T14:00:00Z"},
	})
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ow.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	mt.requireCleanDecode(out)
	want, got := mt.packets(orig), mt.packets(out)
	if len(got) != len(pkts) || len(got) != len(want) {
		t.Fatalf("%d packets, fixture has %d (%d written)", len(got), len(want), len(pkts))
	}
	// The fixture trims its last packet to 312 samples through the granule of its EOS page; we
	// write whole packets and end with an empty EOS page, so the last duration differs.
	for i := range want {
		if got[i].RawPTS != want[i].RawPTS || (got[i].RawDur != want[i].RawDur && i < len(want)-1) || got[i].Size != want[i].Size {
			t.Fatalf("packet %d: pts %s dur %s size %d, fixture pts %s dur %s size %d", i,
				got[i].RawPTS, got[i].RawDur, got[i].Size, want[i].RawPTS, want[i].RawDur, want[i].Size)
		}
	}
	if d, w := mt.formatDuration(out), mt.formatDuration(orig)+float64(960-312)/48000; math.Abs(d-w) > 0.0005 {
		t.Errorf("duration %.4f s, want the fixture's untrimmed %.4f s", d, w)
	}
	codec, _, _, tags := mt.stream(out)
	if codec != "opus" || tags["ROOMTAPE_PEER"] != "alice" || tags["ROOMTAPE_START"] != "2026-11-30T14:00:00Z" {
		t.Errorf("codec %q tags %v", codec, tags)
	}
	checkOggStructure(t, out, 0x1234, uint16(recorder.DefaultOpusPreSkip))
}

// checkOggStructure verifies CRCs (pion's reader), page sequence, flags and granules.
func checkOggStructure(t *testing.T, file string, serial uint32, preSkip uint16) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r, head, err := oggreader.NewWith(bytes.NewReader(b)) // verifies checksums
	if err != nil {
		t.Fatal(err)
	}
	if head.PreSkip != preSkip || head.Channels != 2 || head.SampleRate != 48000 {
		t.Errorf("OpusHead %+v", head)
	}
	pages := 1
	for {
		if _, _, err := r.ParseNextPage(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
	}
	var lastGranule uint64
	for i, pg := range rawOggPages(t, b) {
		switch {
		case pg.serial != serial:
			t.Fatalf("page %d serial %#x", i, pg.serial)
		case pg.seq != uint32(i):
			t.Fatalf("page %d has sequence %d", i, pg.seq)
		case i == 0 && pg.flags != 0x02:
			t.Fatalf("first page flags %#x, want BOS", pg.flags)
		case i == pages-1 && (pg.flags != 0x04 || pg.segments != 0 || pg.granule != math.MaxUint64):
			t.Fatalf("last page flags %#x, %d segments, granule %d: want an empty EOS page with granule -1", pg.flags, pg.segments, pg.granule)
		case i > 0 && i < pages-1 && pg.flags != 0:
			t.Fatalf("page %d flags %#x", i, pg.flags)
		case i >= 2 && i < pages-1 && pg.granule <= lastGranule:
			t.Fatalf("page %d granule %d after %d", i, pg.granule, lastGranule)
		}
		if i >= 2 && i < pages-1 {
			lastGranule = pg.granule
		}
		if i == pages-1 && len(b) != pg.end {
			t.Fatalf("%d bytes after the EOS page", len(b)-pg.end)
		}
	}
}

type rawPage struct {
	flags    byte
	granule  uint64
	serial   uint32
	seq      uint32
	segments int
	lacing   []byte
	body     []byte
	start    int
	end      int
}

func rawOggPages(t *testing.T, b []byte) []rawPage {
	t.Helper()
	var pages []rawPage
	for off := 0; off < len(b); {
		if len(b)-off < 27 || string(b[off:off+4]) != "OggS" {
			t.Fatalf("no page at %d", off)
		}
		h := b[off:]
		p := rawPage{flags: h[5], granule: binary.LittleEndian.Uint64(h[6:]), serial: binary.LittleEndian.Uint32(h[14:]),
			seq: binary.LittleEndian.Uint32(h[18:]), segments: int(h[26]), start: off}
		p.lacing = h[27 : 27+p.segments]
		size := 0
		for _, l := range p.lacing {
			size += int(l)
		}
		p.body = h[27+p.segments : 27+p.segments+size]
		p.end = off + 27 + p.segments + size
		pages = append(pages, p)
		off = p.end
	}
	return pages
}

// TestOggWriterGapFill: 1 s of audio, a gap filled with OpusSilence through the granule, 1 s
// more. The file must last 2 s + gap, decode clean, and be silent inside the gap.
func TestOggWriterGapFill(t *testing.T) {
	mt := newMediaTool(t)
	_, src, _ := readOpusPackets(t, filepath.Join(fixtures.Dir(t), fixtures.Audio))
	for _, tc := range []struct {
		name string
		gap  time.Duration
	}{
		{"2s", 2 * time.Second},
		{"1.0575s", 1057500 * time.Microsecond}, // 52 x 20 ms + 10 + 5 + 2.5 ms
		{"30ms", 30 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "gap.ogg")
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			ow, err := recorder.NewOggWriter(f, recorder.OggOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var granule uint64
			writeOpus(t, ow, &granule, src[:50])
			writeOpus(t, ow, &granule, recorder.OpusSilence(tc.gap))
			if got := time.Duration(granule-50*960) * time.Second / 48000; got != tc.gap {
				t.Fatalf("silence covers %v, want %v", got, tc.gap)
			}
			writeOpus(t, ow, &granule, src[50:100])
			if err := ow.Close(); err != nil {
				t.Fatal(err)
			}

			mt.requireCleanDecode(out)
			want := 2 + tc.gap.Seconds()
			if d := mt.formatDuration(out); math.Abs(d-want) > 0.020 {
				t.Errorf("duration %.4f s, want %.4f s ±20 ms", d, want)
			}
			pcm := mt.pcm(out)
			if got, want := float64(len(pcm))/2/48000, want-float64(recorder.DefaultOpusPreSkip)/48000; math.Abs(got-want) > 0.001 {
				t.Errorf("decoded %.4f s of audio, want %.4f s", got, want)
			}
			if loud := rms(pcm, 0.2, 0.9); loud < 1000 {
				t.Fatalf("audio before the gap has rms %.0f: the silence check below would mean nothing", loud)
			}
			// Skip 25 ms after the audio stops: the last real frame's overlap decays there.
			if tc.gap >= time.Second {
				if quiet := rms(pcm, 1.025, 1+tc.gap.Seconds()-0.01); quiet > 1 {
					t.Errorf("gap rms %.2f, want silence", quiet)
				}
			}
			if loud := rms(pcm, 1+tc.gap.Seconds()+0.1, 1+tc.gap.Seconds()+0.9); loud < 1000 {
				t.Errorf("audio after the gap has rms %.0f", loud)
			}
		})
	}
}

// writeOpus writes pkts to ow, advancing *granule by each packet's duration.
func writeOpus(t *testing.T, ow *recorder.OggWriter, granule *uint64, pkts [][]byte) {
	t.Helper()
	for _, p := range pkts {
		n, err := recorder.OpusSamples(p)
		if err != nil {
			t.Fatal(err)
		}
		*granule += uint64(n)
		if err := ow.WritePacket(p, *granule); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpusSilenceDecodesToZero: a stream of nothing but silence packets of every size decodes,
// without errors, to digital silence.
func TestOpusSilenceDecodesToZero(t *testing.T) {
	mt := newMediaTool(t)
	for _, channels := range []uint8{1, 2} {
		out := filepath.Join(t.TempDir(), "silence.ogg")
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		ow, err := recorder.NewOggWriter(f, recorder.OggOptions{Channels: channels})
		if err != nil {
			t.Fatal(err)
		}
		var granule uint64
		for _, d := range []time.Duration{500 * time.Millisecond, 37500 * time.Microsecond, 2500 * time.Microsecond, 5 * time.Millisecond} {
			writeOpus(t, ow, &granule, recorder.OpusSilence(d))
		}
		if err := ow.Close(); err != nil {
			t.Fatal(err)
		}
		mt.requireCleanDecode(out)
		pcm := mt.pcm(out)
		if want := int(granule-recorder.DefaultOpusPreSkip) * 2; len(pcm) != want {
			t.Errorf("%d channels: %d samples, want %d", channels, len(pcm), want)
		}
		for i, v := range pcm {
			if v != 0 {
				t.Fatalf("%d channels: sample %d is %d, want 0", channels, i, v)
			}
		}
	}
}

func TestOpusSilence(t *testing.T) {
	for _, tc := range []struct {
		d       time.Duration
		samples int
		packets int
	}{
		{0, 0, 0},
		{-time.Second, 0, 0},
		{time.Millisecond, 0, 0},          // rounds down to nothing
		{1250 * time.Microsecond, 120, 1}, // rounds half up to 2.5 ms
		{20 * time.Millisecond, 960, 1},
		{57500 * time.Microsecond, 2760, 5},
		{2 * time.Second, 96000, 100},
		{2*time.Second + 7*time.Millisecond, 96000 + 360, 102}, // 7 ms → 7.5 ms = 5 + 2.5
	} {
		pkts := recorder.OpusSilence(tc.d)
		total := 0
		for _, p := range pkts {
			n, err := recorder.OpusSamples(p)
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
		if total != tc.samples || len(pkts) != tc.packets {
			t.Errorf("OpusSilence(%v): %d packets, %d samples; want %d, %d", tc.d, len(pkts), total, tc.packets, tc.samples)
		}
	}
	a, b := recorder.OpusSilence(20*time.Millisecond), recorder.OpusSilence(20*time.Millisecond)
	a[0][0] = 0
	if b[0][0] != 0xF8 {
		t.Error("OpusSilence shares its slices between calls")
	}
}

func TestOpusSamples(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkt  []byte
		want int
		err  bool
	}{
		{"empty", nil, 0, true},
		{"silk 10ms", []byte{0 << 3}, 480, false},
		{"silk 60ms", []byte{3 << 3}, 2880, false},
		{"hybrid 20ms", []byte{13 << 3}, 960, false},
		{"celt 2.5ms", []byte{16 << 3}, 120, false},
		{"celt 20ms stereo", []byte{31<<3 | 4}, 960, false},
		{"two frames code 1", []byte{31<<3 | 1}, 1920, false},
		{"two frames code 2", []byte{31<<3 | 2, 1, 0}, 1920, false},
		{"code 3 six frames", []byte{31<<3 | 3, 6}, 5760, false},
		{"code 3 without count", []byte{31<<3 | 3}, 0, true},
		{"code 3 zero frames", []byte{31<<3 | 3, 0}, 0, true},
		{"code 3 over 120 ms", []byte{31<<3 | 3, 7}, 0, true},
	} {
		got, err := recorder.OpusSamples(tc.pkt)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: %d, %v; want %d (error %v)", tc.name, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, recorder.ErrBadOpusPacket) {
			t.Errorf("%s: error %v is not ErrBadOpusPacket", tc.name, err)
		}
	}
}

// TestOggWriterTruncated: a file cut inside its last page (a crash mid-write) still demuxes and
// decodes every packet before the cut.
func TestOggWriterTruncated(t *testing.T) {
	mt := newMediaTool(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	ow, pkts := opusRoundTrip(t, &buf, recorder.OggOptions{})
	crashed := append([]byte(nil), buf.Bytes()...) // as the file stands before Close
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	closed := buf.Bytes()

	for _, tc := range []struct {
		name string
		data []byte
		want int
	}{
		{"crash inside the last audio page", cutInLastPage(crashed), len(pkts) - 1},
		{"cut inside the EOS page", cutInLastPage(closed), len(pkts)},
		{"crash at a page boundary", crashed, len(pkts)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, dir, "cut.ogg", tc.data)
			if n := len(mt.packets(file)); n != tc.want {
				t.Errorf("%d packets demuxed, want %d", n, tc.want)
			}
			if n := mt.decodedFrames(file); n != tc.want {
				t.Errorf("%d packets decoded, want %d", n, tc.want)
			}
		})
	}
}

func cutInLastPage(b []byte) []byte {
	last := lastIndex(b, "OggS")
	return b[:last+(len(b)-last)/2]
}

// TestOggWriterLargePacket: a packet over one page's 65025 bytes spans pages with continuation
// flags and granule -1 on all but its last page.
func TestOggWriterLargePacket(t *testing.T) {
	var buf bytes.Buffer
	ow, err := recorder.NewOggWriter(&buf, recorder.OggOptions{Channels: 1, Serial: 7})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xAB}, 255*255+10)
	exact := bytes.Repeat([]byte{0xCD}, 255*2) // needs a terminating 0 lacing value
	if err := ow.WritePacket(big, 960); err != nil {
		t.Fatal(err)
	}
	if err := ow.WritePacket(exact, 1920); err != nil {
		t.Fatal(err)
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := oggreader.NewWith(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	pages := rawOggPages(t, buf.Bytes())
	if len(pages) != 6 {
		t.Fatalf("%d pages, want head, tags, 2 for the big packet, 1, EOS", len(pages))
	}
	p2, p3, p4 := pages[2], pages[3], pages[4]
	if p2.flags != 0 || p2.granule != math.MaxUint64 || p2.segments != 255 {
		t.Errorf("first page of big packet: flags %#x granule %d segments %d", p2.flags, p2.granule, p2.segments)
	}
	if p3.flags != 0x01 || p3.granule != 960 || !bytes.Equal(p3.lacing, []byte{10}) {
		t.Errorf("second page of big packet: flags %#x granule %d lacing %v", p3.flags, p3.granule, p3.lacing)
	}
	if got := append(append([]byte(nil), p2.body...), p3.body...); !bytes.Equal(got, big) {
		t.Error("big packet does not reassemble")
	}
	if !bytes.Equal(p4.lacing, []byte{255, 255, 0}) || !bytes.Equal(p4.body, exact) || p4.granule != 1920 {
		t.Errorf("510-byte packet: lacing %v granule %d", p4.lacing, p4.granule)
	}
}

func TestOggWriterErrors(t *testing.T) {
	if _, err := recorder.NewOggWriter(io.Discard, recorder.OggOptions{Channels: 3}); err == nil {
		t.Error("3 channels accepted")
	}
	if _, err := recorder.NewOggWriter(io.Discard, recorder.OggOptions{Comments: []string{"no equals sign"}}); err == nil {
		t.Error("comment without = accepted")
	}
	if _, err := recorder.NewOggWriter(nil, recorder.OggOptions{}); err == nil {
		t.Error("nil writer accepted")
	}

	ow, err := recorder.NewOggWriter(io.Discard, recorder.OggOptions{})
	if err != nil {
		t.Fatal(err)
	}
	silence := recorder.OpusSilence(20 * time.Millisecond)[0]
	if err := ow.WritePacket(nil, 960); !errors.Is(err, recorder.ErrEmptyMedia) {
		t.Errorf("empty packet: %v", err)
	}
	if err := ow.WritePacket(silence, 960); err != nil {
		t.Fatal(err)
	}
	if err := ow.WritePacket(silence, 960); !errors.Is(err, recorder.ErrTimestampOrder) {
		t.Errorf("repeated granule: %v", err)
	}
	if err := ow.WritePacket(silence, 100); !errors.Is(err, recorder.ErrTimestampOrder) {
		t.Errorf("granule going back: %v", err)
	}
	if ow.Granule() != 960 {
		t.Errorf("Granule() = %d", ow.Granule())
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ow.WritePacket(silence, 1920); !errors.Is(err, recorder.ErrWriterClosed) {
		t.Errorf("write after close: %v", err)
	}
}

// TestOggWriterReleasesOnFailure: when writing fails, Close still flushes and closes the
// output, and reports all the errors.
func TestOggWriterReleasesOnFailure(t *testing.T) {
	w := &faultyWriter{failAfter: 2} // the two header pages get through
	ow, err := recorder.NewOggWriter(w, recorder.OggOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ow.WritePacket([]byte{0xF8, 0xFF, 0xFE}, 960); !errors.Is(err, errDiskFull) {
		t.Fatalf("write: %v", err)
	}
	if err := ow.WritePacket([]byte{0xF8, 0xFF, 0xFE}, 1920); !errors.Is(err, errDiskFull) {
		t.Fatalf("write after a failure must keep failing: %v", err)
	}
	err = ow.Close()
	if !errors.Is(err, errDiskFull) || !errors.Is(err, errCloseFailed) || !errors.Is(err, errFlushFailed) {
		t.Errorf("Close = %v, want the write, flush and close errors joined", err)
	}
	if w.closes != 1 || w.flushes != 1 {
		t.Errorf("closed %d, flushed %d times; want 1, 1", w.closes, w.flushes)
	}
	if err := ow.Close(); err != nil || w.closes != 1 {
		t.Errorf("second Close = %v, closes %d", err, w.closes)
	}

	// Header write failure: the constructor reports it and leaves the writer to the caller.
	if _, err := recorder.NewOggWriter(&faultyWriter{}, recorder.OggOptions{}); !errors.Is(err, errDiskFull) {
		t.Errorf("NewOggWriter on a failing writer: %v", err)
	}
}

var (
	errDiskFull    = errors.New("disk full")
	errFlushFailed = errors.New("flush failed")
	errCloseFailed = errors.New("close failed")
)

// faultyWriter accepts failAfter writes, then fails; Flush and Close fail too and are counted.
type faultyWriter struct {
	failAfter       int
	writes          int
	flushes, closes int
	buf             bytes.Buffer
}

func (w *faultyWriter) Write(b []byte) (int, error) {
	if w.writes >= w.failAfter {
		return 0, errDiskFull
	}
	w.writes++
	return w.buf.Write(b)
}

func (w *faultyWriter) Flush() error { w.flushes++; return errFlushFailed }
func (w *faultyWriter) Close() error { w.closes++; return errCloseFailed }
