package recorder

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Verified is what Verify learned from a file.
type Verified struct {
	Packets  int           // Opus packets or video frames
	Duration time.Duration // media span
	Width    int           // IVF header
	Height   int
}

// Verify demuxes a recorded file completely without external tools: every Ogg page's CRC and
// every Opus packet's TOC, or every IVF frame header with increasing PTS and a first frame that
// is a keyframe (VP8/VP9). It catches truncated, corrupt or mistimed files; decoding the media is
// ffmpeg's job (tests and `roomtape demo` run it when installed).
func Verify(path string) (Verified, error) {
	name := strings.TrimSuffix(path, ".part")
	switch {
	case strings.HasSuffix(name, ".ogg"):
		return verifyOgg(path)
	case strings.HasSuffix(name, ".ivf"):
		return verifyIVF(path)
	case strings.HasSuffix(name, ".h264"):
		return verifyAnnexB(path)
	}
	return Verified{}, fmt.Errorf("verify %s: unknown file type", path)
}

func verifyOgg(path string) (Verified, error) {
	f, err := os.Open(path)
	if err != nil {
		return Verified{}, err
	}
	defer f.Close()
	r, err := oggreader.NewWithOptions(bufio.NewReader(f), oggreader.WithDoChecksum(true))
	if err != nil {
		return Verified{}, fmt.Errorf("verify %s: %w", path, err)
	}
	var v Verified
	var preSkip, granule uint64
	for {
		payload, hdr, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return v, fmt.Errorf("verify %s: page after %d packets: %w", path, v.Packets, err)
		}
		switch {
		case strings.HasPrefix(string(payload), "OpusHead"):
			if len(payload) >= 12 {
				preSkip = uint64(binary.LittleEndian.Uint16(payload[10:12]))
			}
			continue
		case strings.HasPrefix(string(payload), "OpusTags"), len(payload) == 0:
			continue
		}
		if _, err := OpusSamples(payload); err != nil {
			return v, fmt.Errorf("verify %s: packet %d: %w", path, v.Packets, err)
		}
		v.Packets++
		if hdr.GranulePosition != oggNoGranule {
			granule = hdr.GranulePosition
		}
	}
	if v.Packets == 0 {
		return v, fmt.Errorf("verify %s: no audio packets", path)
	}
	if granule > preSkip {
		v.Duration = time.Duration(granule-preSkip) * time.Second / OpusSampleRate
	}
	return v, nil
}

func verifyIVF(path string) (Verified, error) {
	f, err := os.Open(path)
	if err != nil {
		return Verified{}, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	hdr := make([]byte, ivfHeaderLen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return Verified{}, fmt.Errorf("verify %s: header: %w", path, err)
	}
	if string(hdr[:4]) != "DKIF" {
		return Verified{}, fmt.Errorf("verify %s: not an IVF file", path)
	}
	fourcc := string(hdr[8:12])
	rate, scale := binary.LittleEndian.Uint32(hdr[16:20]), binary.LittleEndian.Uint32(hdr[20:24])
	if rate == 0 || scale == 0 {
		return Verified{}, fmt.Errorf("verify %s: zero timebase", path)
	}
	v := Verified{Width: int(binary.LittleEndian.Uint16(hdr[12:14])), Height: int(binary.LittleEndian.Uint16(hdr[14:16]))}
	var first, last uint64
	fh := make([]byte, ivfFrameHeaderLen)
	for {
		if _, err := io.ReadFull(br, fh); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return v, fmt.Errorf("verify %s: frame %d header: %w", path, v.Packets, err)
		}
		size := binary.LittleEndian.Uint32(fh[:4])
		pts := binary.LittleEndian.Uint64(fh[4:])
		if size == 0 || size > 16<<20 {
			return v, fmt.Errorf("verify %s: frame %d has size %d", path, v.Packets, size)
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(br, frame); err != nil {
			return v, fmt.Errorf("verify %s: frame %d: %w", path, v.Packets, err)
		}
		if v.Packets == 0 {
			first = pts
			if !ivfKeyframe(fourcc, frame) {
				return v, fmt.Errorf("verify %s: the first frame is not a keyframe", path)
			}
		} else if pts <= last {
			return v, fmt.Errorf("verify %s: frame %d pts %d not after %d", path, v.Packets, pts, last)
		}
		last = pts
		v.Packets++
	}
	if v.Packets == 0 {
		return v, fmt.Errorf("verify %s: no frames", path)
	}
	v.Duration = time.Duration((last - first) * uint64(scale) * uint64(time.Second) / uint64(rate))
	return v, nil
}

// ivfKeyframe checks the keyframe flag of the first frame's bitstream header (VP8, VP9); AV1
// temporal units are accepted (their keyframe check needs the OBU parser of the depacketizer).
func ivfKeyframe(fourcc string, frame []byte) bool {
	switch fourcc {
	case "VP80":
		return len(frame) > 0 && frame[0]&0x01 == 0
	case "VP90":
		// frame_marker(2) profile(2, +1 reserved bit in profile 3) show_existing_frame frame_type
		if len(frame) == 0 || frame[0]>>6 != 2 {
			return false
		}
		profile := (frame[0]>>5)&1 | (frame[0]>>4)&1<<1
		next := 4 // MSB-first index of show_existing_frame, after marker (2) and profile (2) bits
		if profile == 3 {
			next++ // reserved zero bit
		}
		if frame[0]>>(7-next)&1 == 1 { // show_existing_frame
			return false
		}
		return frame[0]>>(7-next-1)&1 == 0 // frame_type 0 = KEY_FRAME
	}
	return len(frame) > 0
}

func verifyAnnexB(path string) (Verified, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Verified{}, err
	}
	nals := SplitAnnexB(b)
	if len(nals) == 0 {
		return Verified{}, fmt.Errorf("verify %s: no NAL units", path)
	}
	return Verified{Packets: len(nals)}, nil
}
