package recorder_test

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/recorder"
)

// Fuzz inputs encode the payloads of one frame's packets, each behind a 2-byte big-endian
// length (a length past the end takes the rest).
func fuzzEncode(pkts []*rtp.Packet) []byte {
	var b []byte
	for _, p := range pkts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.Payload)))
		b = append(b, p.Payload...)
	}
	return b
}

func fuzzDecode(data []byte) []*rtp.Packet {
	var pkts []*rtp.Packet
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Timestamp: 90000}, Payload: data[:n:n]})
		data = data[n:]
	}
	if len(pkts) > 0 {
		pkts[len(pkts)-1].Marker = true
	}
	return pkts
}

// fuzzDepacketize feeds arbitrary packets to a depacketizer, as one frame and then one frame per
// packet (so state such as remembered parameter sets is exercised). It must never panic, and a
// frame it accepts must hold data in the form its container expects.
func fuzzDepacketize(f *testing.F, mime string, seeds [][]*rtp.Packet) {
	for _, s := range seeds {
		f.Add(fuzzEncode(s))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0})
	f.Add([]byte{0, 1, 0xFF})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := recorder.NewDepacketizer(mime)
		if err != nil {
			t.Fatal(err)
		}
		pkts := fuzzDecode(data)
		check := func(fr recorder.Frame, err error) {
			if err != nil {
				return
			}
			if len(fr.Data) == 0 || fr.Width < 0 || fr.Height < 0 {
				t.Fatalf("accepted frame with %d bytes, %dx%d", len(fr.Data), fr.Width, fr.Height)
			}
			switch mime {
			case "video/av1":
				if !bytes.HasPrefix(fr.Data, []byte{0x12, 0x00}) {
					t.Fatalf("AV1 temporal unit without a temporal delimiter: % x", fr.Data[:min(8, len(fr.Data))])
				}
			case "video/h264":
				if !bytes.HasPrefix(fr.Data, []byte{0, 0, 0, 1}) {
					t.Fatalf("H.264 access unit without a start code: % x", fr.Data[:min(8, len(fr.Data))])
				}
			case "audio/opus":
				if !fr.Keyframe || len(pkts) == 0 {
					t.Fatal("opus frame not marked decodable")
				}
			}
			for _, p := range pkts { // the frame must not alias the packets
				if len(p.Payload) > 0 && len(fr.Data) > 0 && &p.Payload[0] == &fr.Data[0] {
					t.Fatal("frame data aliases a packet buffer")
				}
			}
		}
		check(d.Depacketize(pkts))
		for _, p := range pkts {
			check(d.Depacketize([]*rtp.Packet{p}))
		}
	})
}

// fuzzSeeds packetizes the first frames of an IVF file, cut to maxLen bytes if maxLen > 0: the
// fuzzer minimizes every new input for up to a minute, so small seeds fuzz much faster. A cut
// VP8 or VP9 frame still has its frame header, all the depacketizer reads.
func fuzzSeeds(f *testing.F, file string, payloader rtp.Payloader, maxLen int) [][]*rtp.Packet {
	f.Helper()
	_, frames := readIVF(f, file)
	p := rtp.NewPacketizer(200, 96, 1, payloader, rtp.NewRandomSequencer(), 90000)
	var seeds [][]*rtp.Packet
	for i, fr := range frames[:min(4, len(frames))] {
		data := fr.data
		if maxLen > 0 && len(data) > maxLen {
			data = data[:maxLen]
		}
		seeds = append(seeds, packetizeFrame(p, data, uint32(i)))
	}
	return seeds
}

func FuzzDepacketizeVP8(f *testing.F) {
	fuzzDepacketize(f, "video/vp8", fuzzSeeds(f, filepath.Join(fixtures.Dir(f), fixtures.Camera), &codecs.VP8Payloader{EnablePictureID: true}, 500))
}

func FuzzDepacketizeVP9(f *testing.F) {
	src := filepath.Join(fixtures.Dir(f), fixtures.CameraVP9)
	seeds := fuzzSeeds(f, src, &codecs.VP9Payloader{}, 500)
	seeds = append(seeds, fuzzSeeds(f, src, &codecs.VP9Payloader{FlexibleMode: true}, 500)...)
	fuzzDepacketize(f, "video/vp9", seeds)
}

func FuzzDepacketizeAV1(f *testing.F) {
	// testdata/av1/small.ivf: 6 frames of 64x64 libaom realtime output, 2 key temporal units.
	fuzzDepacketize(f, "video/av1", fuzzSeeds(f, filepath.Join("testdata", "av1", "small.ivf"), &codecs.AV1Payloader{}, 0))
}

func FuzzDepacketizeH264(f *testing.F) {
	sps := []byte{0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
		0x10, 0x00, 0x00, 0x03, 0x03, 0xC8, 0xF1, 0x42, 0xA4, 0x80}
	pps := []byte{0x68, 0xCB, 0x83, 0xCB, 0x20}
	idr := append([]byte{0x65}, bytes.Repeat([]byte{0x88, 0x84}, 150)...)
	var annexB []byte
	for _, n := range [][]byte{sps, pps, idr} {
		annexB = append(append(annexB, 0, 0, 0, 1), n...)
	}
	p := rtp.NewPacketizer(212, 102, 1, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	seeds := [][]*rtp.Packet{packetizeFrame(p, annexB, 0), {{Payload: []byte{0x41, 0x9A}}}}
	fuzzDepacketize(f, "video/h264", seeds)
}

func FuzzDepacketizeOpus(f *testing.F) {
	_, pkts, _ := readOpusPackets(f, filepath.Join(fixtures.Dir(f), fixtures.Audio))
	var seeds [][]*rtp.Packet
	for _, p := range pkts[:3] {
		seeds = append(seeds, []*rtp.Packet{{Payload: p}})
	}
	fuzzDepacketize(f, "audio/opus", seeds)
}
