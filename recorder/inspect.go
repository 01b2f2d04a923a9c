package recorder

import (
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/rtp/codecs/av1/obu"
	"github.com/pion/rtp/codecs/vp9"
)

// FrameStart tells, from one RTP packet alone, whether it begins a video frame and, when it does,
// whether that frame is a keyframe and which size it signals (0 when the first packet does not
// carry it). It reads payload descriptors and the first bytes of the bitstream only, so a monitor
// can follow keyframes and resolution without assembling or decoding frames.
type FrameStart func(p *rtp.Packet) (start, keyframe bool, width, height int)

// NewFrameStart returns the FrameStart check of a video MIME type, or nil for audio and codecs
// the recorder does not know.
func NewFrameStart(mimeType string) FrameStart {
	begins := frameStartFunc(mimeType)
	if begins == nil {
		return nil
	}
	var key func(payload []byte) (bool, int, int)
	switch strings.ToLower(mimeType) {
	case "video/vp8":
		key = vp8StartKeyframe
	case "video/vp9":
		key = vp9StartKeyframe
	case "video/av1":
		key = av1StartKeyframe
	case "video/h264":
		key = h264StartKeyframe
	default:
		return nil
	}
	return func(p *rtp.Packet) (bool, bool, int, int) {
		if !begins(p) {
			return false, false, 0, 0
		}
		k, w, h := key(p.Payload)
		return true, k, w, h
	}
}

func vp8StartKeyframe(payload []byte) (bool, int, int) {
	var d codecs.VP8Packet
	b, err := d.Unmarshal(payload)
	if err != nil {
		return false, 0, 0
	}
	return vp8Keyframe(b)
}

// vp9StartKeyframe: the base spatial layer's uncompressed header says key frame (the
// descriptor's P bit is not trusted: not every sender sets it); the size comes from the
// scalability structure browsers send with keyframes, or else from the frame header.
func vp9StartKeyframe(payload []byte) (bool, int, int) {
	var d codecs.VP9Packet
	b, err := d.Unmarshal(payload)
	if err != nil || d.SID != 0 {
		return false, 0, 0
	}
	var hdr vp9.Header
	if hdr.Unmarshal(b) != nil || hdr.NonKeyFrame || hdr.ShowExistingFrame {
		return false, 0, 0
	}
	if d.V && d.Y && len(d.Width) > 0 {
		return true, int(d.Width[len(d.Width)-1]), int(d.Height[len(d.Height)-1])
	}
	return true, int(hdr.Width()), int(hdr.Height())
}

// av1StartKeyframe: the aggregation header's N bit starts a coded video sequence (a keyframe);
// the size comes from a sequence header OBU in the same packet.
func av1StartKeyframe(payload []byte) (bool, int, int) {
	if len(payload) < 2 || payload[0]&0x08 == 0 {
		return false, 0, 0
	}
	w, h := 0, 0
	count := int(payload[0] >> 4 & 3)
	b := payload[1:]
	for i := 0; len(b) > 0; i++ {
		n := len(b)
		if count == 0 || i < count-1 {
			v, l, err := readLEB128(b)
			if err != nil || v > uint64(len(b)-l) {
				break
			}
			n, b = int(v), b[l:]
		}
		typ, _, body, err := av1ParseOBU(b[:n])
		if err == nil && typ == obu.OBUSequenceHeader {
			if seq, err := av1ParseSequenceHeader(body); err == nil {
				w, h = seq.width, seq.height
			}
			break
		}
		b = b[n:]
	}
	return true, w, h
}

// h264StartKeyframe: an IDR slice (or an SPS, which precedes one) in a single NAL unit, a
// STAP-A or the first fragment of an FU-A; the size comes from the SPS.
func h264StartKeyframe(payload []byte) (bool, int, int) {
	if len(payload) < 2 {
		return false, 0, 0
	}
	key, w, h := false, 0, 0
	nal := func(n []byte) {
		switch n[0] & 0x1F {
		case h264NALIDR:
			key = true
		case h264NALSPS:
			key = true
			if sw, sh, err := h264SPSSize(n); err == nil {
				w, h = sw, sh
			}
		}
	}
	switch t := payload[0] & 0x1F; t {
	case h264NALSTAPA:
		for b := payload[1:]; len(b) > 2; {
			size := int(b[0])<<8 | int(b[1])
			if size == 0 || size > len(b)-2 {
				break
			}
			nal(b[2 : 2+size])
			b = b[2+size:]
		}
	case h264NALFUA: // the original NAL type is in the FU header
		if payload[1]&0x80 != 0 && payload[1]&0x1F == h264NALIDR {
			key = true
		}
	default:
		nal(payload)
	}
	return key, w, h
}
