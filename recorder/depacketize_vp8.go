package recorder

import (
	"encoding/binary"
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// vp8Depacketizer strips the RFC 7741 payload descriptors with pion's codecs.VP8Packet and joins
// the payloads. Keyframe and size come from the VP8 frame header (RFC 6386 §9.1), read only at
// the start of partition 0, which the first packet must carry (S=1, PID=0).
type vp8Depacketizer struct {
	desc codecs.VP8Packet
}

func (d *vp8Depacketizer) Depacketize(pkts []*rtp.Packet) (Frame, error) {
	media, err := mediaPackets("vp8", pkts)
	if err != nil {
		return Frame{}, err
	}
	size := 0
	for _, p := range media {
		size += len(p.Payload)
	}
	data := make([]byte, 0, size)
	for i, p := range media {
		payload, err := d.desc.Unmarshal(p.Payload)
		if err != nil {
			return Frame{}, fmt.Errorf("depacketize vp8: %w: packet %d: %w", ErrMalformedFrame, i, err)
		}
		if i == 0 && (d.desc.S != 1 || d.desc.PID != 0) {
			return Frame{}, fmt.Errorf("depacketize vp8: %w: first packet is not the start of partition 0 (S=%d PID=%d)",
				ErrMalformedFrame, d.desc.S, d.desc.PID)
		}
		data = append(data, payload...)
	}
	if len(data) == 0 {
		return Frame{}, fmt.Errorf("depacketize vp8: %w: descriptors only", ErrNoMedia)
	}
	f := Frame{Data: data}
	f.Keyframe, f.Width, f.Height = vp8Keyframe(data)
	return f, nil
}

// vp8Keyframe reads the frame tag (key_frame bit 0 is 0 on a keyframe) and, on a keyframe, the
// start code 9D 01 2A and the 14-bit width and height. A keyframe with a bad start code or a
// zero size is not reported as one.
func vp8Keyframe(b []byte) (key bool, width, height int) {
	if len(b) < 10 || b[0]&1 != 0 {
		return false, 0, 0
	}
	if b[3] != 0x9D || b[4] != 0x01 || b[5] != 0x2A {
		return false, 0, 0
	}
	width = int(binary.LittleEndian.Uint16(b[6:]) & 0x3FFF)
	height = int(binary.LittleEndian.Uint16(b[8:]) & 0x3FFF)
	if width == 0 || height == 0 {
		return false, 0, 0
	}
	return true, width, height
}
