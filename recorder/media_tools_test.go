package recorder_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// mediaTool runs ffmpeg and ffprobe for a test. A missing tool fails the test: these checks are
// the point of the test, so skipping would pass without testing anything.
type mediaTool struct {
	t               *testing.T
	ffmpeg, ffprobe string
}

func newMediaTool(t *testing.T) *mediaTool {
	t.Helper()
	m := &mediaTool{t: t}
	for _, tool := range []struct {
		name string
		dst  *string
	}{{"ffmpeg", &m.ffmpeg}, {"ffprobe", &m.ffprobe}} {
		p, err := exec.LookPath(tool.name)
		if err != nil {
			t.Fatalf("%s is required to check recordings and was not found (%v): apt-get install -y ffmpeg", tool.name, err)
		}
		*tool.dst = p
	}
	return m
}

func (m *mediaTool) run(name string, args ...string) (stdout, stderr []byte, err error) {
	m.t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}

// requireEncoder fails the test if ffmpeg lacks an encoder.
func (m *mediaTool) requireEncoder(name string) {
	m.t.Helper()
	out, _, err := m.run(m.ffmpeg, "-hide_banner", "-encoders")
	if err != nil {
		m.t.Fatalf("ffmpeg -encoders: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == name {
			return
		}
	}
	m.t.Fatalf("ffmpeg has no %s encoder, which this test needs to make its sample (Debian's ffmpeg has it)", name)
}

// generate runs ffmpeg with args (output last) and fails on any error output.
func (m *mediaTool) generate(args ...string) {
	m.t.Helper()
	_, stderr, err := m.run(m.ffmpeg, append([]string{"-v", "error", "-y"}, args...)...)
	if err != nil || len(stderr) > 0 {
		m.t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
}

// requireCleanDecode decodes the whole file; ffmpeg must print nothing at -v error.
func (m *mediaTool) requireCleanDecode(file string, extra ...string) {
	m.t.Helper()
	args := append(append([]string{"-v", "error"}, extra...), "-i", file, "-f", "null", "-")
	_, stderr, err := m.run(m.ffmpeg, args...)
	if err != nil || len(bytes.TrimSpace(stderr)) > 0 {
		m.t.Fatalf("ffmpeg decode of %s is not clean: %v\n%s", filepath.Base(file), err, stderr)
	}
}

type probePacket struct {
	PTS     float64
	HasPTS  bool
	Key     bool
	Size    int
	RawPTS  string
	RawDur  string
	RawFlag string
}

// packets lists the first stream's packets as ffprobe demuxes them.
func (m *mediaTool) packets(file string, extra ...string) []probePacket {
	m.t.Helper()
	args := append(append([]string{"-v", "error"}, extra...),
		"-select_streams", "0", "-show_entries", "packet=pts,pts_time,duration,flags,size", "-of", "json", file)
	out, stderr, err := m.run(m.ffprobe, args...)
	if err != nil {
		m.t.Fatalf("ffprobe packets of %s: %v\n%s", filepath.Base(file), err, stderr)
	}
	var doc struct {
		Packets []struct {
			PTS      json.Number `json:"pts"`
			PTSTime  string      `json:"pts_time"`
			Duration json.Number `json:"duration"`
			Flags    string      `json:"flags"`
			Size     string      `json:"size"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		m.t.Fatalf("ffprobe json: %v\n%s", err, out)
	}
	pkts := make([]probePacket, len(doc.Packets))
	for i, p := range doc.Packets {
		pkts[i].RawPTS, pkts[i].RawDur, pkts[i].RawFlag = p.PTS.String(), p.Duration.String(), p.Flags
		pkts[i].Key = strings.HasPrefix(p.Flags, "K")
		pkts[i].Size, _ = strconv.Atoi(p.Size)
		if v, err := strconv.ParseFloat(p.PTSTime, 64); err == nil {
			pkts[i].PTS, pkts[i].HasPTS = v, true
		}
	}
	return pkts
}

// stream returns ffprobe's view of the first stream.
func (m *mediaTool) stream(file string) (codec string, width, height int, tags map[string]string) {
	m.t.Helper()
	out, stderr, err := m.run(m.ffprobe, "-v", "error", "-select_streams", "0",
		"-show_entries", "stream=codec_name,width,height:stream_tags", "-of", "json", file)
	if err != nil {
		m.t.Fatalf("ffprobe stream of %s: %v\n%s", filepath.Base(file), err, stderr)
	}
	var doc struct {
		Streams []struct {
			Codec  string            `json:"codec_name"`
			Width  int               `json:"width"`
			Height int               `json:"height"`
			Tags   map[string]string `json:"tags"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &doc); err != nil || len(doc.Streams) == 0 {
		m.t.Fatalf("ffprobe stream json: %v\n%s", err, out)
	}
	s := doc.Streams[0]
	return s.Codec, s.Width, s.Height, s.Tags
}

// formatDuration is ffprobe's format duration in seconds (meaningful for Ogg, not for IVF).
func (m *mediaTool) formatDuration(file string) float64 {
	m.t.Helper()
	out, stderr, err := m.run(m.ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file)
	if err != nil {
		m.t.Fatalf("ffprobe duration of %s: %v\n%s", filepath.Base(file), err, stderr)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		m.t.Fatalf("ffprobe duration %q: %v", out, err)
	}
	return d
}

// decodedFrames counts the frames ffmpeg decodes (video frames or audio packets), tolerating
// errors: used on deliberately truncated files.
func (m *mediaTool) decodedFrames(file string) int {
	m.t.Helper()
	out, stderr, err := m.run(m.ffprobe, "-v", "error", "-count_frames", "-select_streams", "0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file)
	if err != nil {
		m.t.Fatalf("ffprobe -count_frames %s: %v\n%s", filepath.Base(file), err, stderr)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(out)), ",")))
	if err != nil {
		m.t.Fatalf("ffprobe nb_read_frames %q: %v", out, err)
	}
	return n
}

// pcm decodes a file to interleaved 16-bit stereo samples at 48 kHz.
func (m *mediaTool) pcm(file string) []int16 {
	m.t.Helper()
	out, stderr, err := m.run(m.ffmpeg, "-v", "error", "-i", file, "-f", "s16le", "-ac", "2", "-ar", "48000", "-")
	if err != nil || len(stderr) > 0 {
		m.t.Fatalf("ffmpeg pcm of %s: %v\n%s", filepath.Base(file), err, stderr)
	}
	s := make([]int16, len(out)/2)
	if err := binary.Read(bytes.NewReader(out), binary.LittleEndian, s); err != nil {
		m.t.Fatal(err)
	}
	return s
}

// rms of interleaved stereo samples between two times in seconds.
func rms(s []int16, from, to float64) float64 {
	a, b := int(from*48000)*2, int(to*48000)*2
	b = min(b, len(s))
	if a >= b {
		return math.NaN()
	}
	var sum float64
	for _, v := range s[a:b] {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(b-a))
}

type ivfFrame struct {
	data []byte
	pts  uint64 // in the file's time base
}

// readIVF reads an IVF file with pion's reader. Its frame Timestamp is pts*den/num, an odd unit:
// the raw PTS is Timestamp*num/den.
func readIVF(t testing.TB, file string) (*ivfreader.IVFFileHeader, []ivfFrame) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatalf("read ivf %s: %v", file, err)
	}
	var frames []ivfFrame
	for {
		data, fh, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read ivf %s frame %d: %v", file, len(frames), err)
		}
		pts := fh.Timestamp * uint64(hdr.TimebaseNumerator) / uint64(hdr.TimebaseDenominator)
		frames = append(frames, ivfFrame{data: data, pts: pts})
	}
	return hdr, frames
}

// readOpusPackets reads an Ogg Opus file with one packet per page (the fixtures are made so),
// returning the packets and their pages' granule positions.
func readOpusPackets(t testing.TB, file string) (*oggreader.OggHeader, [][]byte, []uint64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, head, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatalf("read ogg %s: %v", file, err)
	}
	var pkts [][]byte
	var granules []uint64
	for {
		payload, ph, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read ogg %s page: %v", file, err)
		}
		if bytes.HasPrefix(payload, []byte("OpusTags")) || len(payload) == 0 {
			continue
		}
		pkts = append(pkts, payload)
		granules = append(granules, ph.GranulePosition)
	}
	return head, pkts, granules
}

// packetizeFrame splits a frame into RTP packets with a pion payloader (MTU 1200) and gives
// them the frame's timestamp; the last one carries the marker.
func packetizeFrame(p rtp.Packetizer, frame []byte, ts uint32) []*rtp.Packet {
	pkts := p.Packetize(frame, 0)
	for _, pkt := range pkts {
		pkt.Timestamp = ts
		// Round-trip through the wire format, as the recorder receives them.
		raw, err := pkt.Marshal()
		if err != nil {
			panic(err)
		}
		var back rtp.Packet
		if err := back.Unmarshal(raw); err != nil {
			panic(err)
		}
		*pkt = back
	}
	return pkts
}

// paddingPacket is a padding-only packet as browsers send for bandwidth probing.
func paddingPacket(ts uint32) *rtp.Packet {
	raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PaddingSize: 200, Timestamp: ts}}).Marshal()
	if err != nil {
		panic(err)
	}
	var p rtp.Packet
	if err := p.Unmarshal(raw); err != nil {
		panic(err)
	}
	return &p
}

// lastIndex returns the offset of the last occurrence of sep.
func lastIndex(b []byte, sep string) int { return bytes.LastIndex(b, []byte(sep)) }

// writeFile writes b to a new file in dir.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
