package recorder

import (
	"encoding/binary"
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/rtp/codecs/vp9"
)

const vp9MaxSuperframe = 8

// vp9Depacketizer strips the VP9 payload descriptors (RFC 9628) with pion's codecs.VP9Packet.
// One RTP picture (the packets up to the marker) holds one frame per spatial layer, each from a
// B (beginning) to an E (end) packet; several are joined into a superframe (VP9 spec Annex B),
// the only way a decoder or IVF takes them. The keyframe flag comes from the uncompressed header
// of the first frame (profile, show_existing_frame, frame_type), not the descriptor's P bit,
// which senders set inconsistently (LiveKit #1973, mediasoup #1612).
type vp9Depacketizer struct {
	desc codecs.VP9Packet
}

func (d *vp9Depacketizer) Depacketize(pkts []*rtp.Packet) (Frame, error) {
	media, err := mediaPackets("vp9", pkts)
	if err != nil {
		return Frame{}, err
	}
	var (
		layers        [][]byte // complete layer frames
		cur           []byte
		open          bool
		width, height int // from the scalability structure
	)
	for i, p := range media {
		payload, err := d.desc.Unmarshal(p.Payload)
		if err != nil {
			return Frame{}, fmt.Errorf("depacketize vp9: %w: packet %d: %w", ErrMalformedFrame, i, err)
		}
		switch {
		case d.desc.B && open:
			return Frame{}, fmt.Errorf("depacketize vp9: %w: packet %d begins a frame before the last one ended", ErrMalformedFrame, i)
		case !d.desc.B && !open:
			return Frame{}, fmt.Errorf("depacketize vp9: %w: packet %d continues a frame that never began", ErrMalformedFrame, i)
		}
		if d.desc.V && d.desc.Y && len(d.desc.Width) > 0 {
			// The highest spatial layer is the decoded size.
			width, height = int(d.desc.Width[len(d.desc.Width)-1]), int(d.desc.Height[len(d.desc.Height)-1])
		}
		open = true
		cur = append(cur, payload...)
		if d.desc.E {
			if len(cur) > 0 {
				layers = append(layers, cur)
			}
			cur, open = nil, false
		}
	}
	// The E bit is mandatory, but the marker ends the picture anyway: accept a missing last E.
	if len(cur) > 0 {
		layers = append(layers, cur)
	}
	frames, err := vp9SplitAll(layers)
	if err != nil {
		return Frame{}, fmt.Errorf("depacketize vp9: %w: %w", ErrMalformedFrame, err)
	}
	if len(frames) == 0 {
		return Frame{}, fmt.Errorf("depacketize vp9: %w: descriptors only", ErrNoMedia)
	}
	f := Frame{Width: width, Height: height}
	if len(layers) == 1 {
		f.Data = layers[0] // already one frame or one superframe
	} else if f.Data, err = vp9Superframe(frames); err != nil {
		return Frame{}, fmt.Errorf("depacketize vp9: %w: %w", ErrMalformedFrame, err)
	}
	var h vp9.Header
	if h.Unmarshal(frames[0]) == nil && !h.ShowExistingFrame && !h.NonKeyFrame {
		f.Keyframe = true
		if f.Width == 0 {
			f.Width, f.Height = int(h.Width()), int(h.Height())
		}
	}
	return f, nil
}

// vp9SplitAll flattens superframes, so that a layer that is itself a superframe can be nested.
func vp9SplitAll(layers [][]byte) ([][]byte, error) {
	var frames [][]byte
	for _, l := range layers {
		fs, err := vp9SplitSuperframe(l)
		if err != nil {
			return nil, err
		}
		frames = append(frames, fs...)
	}
	return frames, nil
}

// vp9SplitSuperframe returns the frames of a superframe, or b itself if it has no superframe
// index. Zero-size entries are skipped.
func vp9SplitSuperframe(b []byte) ([][]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	marker := b[len(b)-1]
	if marker&0xE0 != 0xC0 {
		return [][]byte{b}, nil
	}
	n := int(marker&7) + 1
	mag := int(marker>>3&3) + 1
	idx := 2 + mag*n
	if len(b) < idx || b[len(b)-idx] != marker {
		return [][]byte{b}, nil // the last byte of a frame merely looks like a marker
	}
	data, sizes := b[:len(b)-idx], b[len(b)-idx+1:]
	var frames [][]byte
	for i := range n {
		size := 0
		for j := mag - 1; j >= 0; j-- {
			size = size<<8 | int(sizes[i*mag+j])
		}
		if size > len(data) {
			return nil, fmt.Errorf("superframe frame %d of %d bytes overruns %d", i, size, len(data))
		}
		if size > 0 {
			frames = append(frames, data[:size])
		}
		data = data[size:]
	}
	return frames, nil
}

// vp9Superframe joins frames and appends the superframe index: a marker byte 110mmfff (m: bytes
// per size - 1, f: frames - 1), the sizes little-endian, and the marker again.
func vp9Superframe(frames [][]byte) ([]byte, error) {
	if len(frames) > vp9MaxSuperframe {
		return nil, fmt.Errorf("%d frames in one picture, a superframe holds %d", len(frames), vp9MaxSuperframe)
	}
	total, largest := 0, 0
	for _, f := range frames {
		total += len(f)
		largest = max(largest, len(f))
	}
	mag := 1
	for largest >= 1<<(8*mag) {
		mag++
	}
	if mag > 4 {
		return nil, fmt.Errorf("frame of %d bytes too large for a superframe", largest)
	}
	marker := byte(0xC0 | (mag-1)<<3 | (len(frames) - 1))
	out := make([]byte, 0, total+2+mag*len(frames))
	for _, f := range frames {
		out = append(out, f...)
	}
	out = append(out, marker)
	var le [4]byte
	for _, f := range frames {
		binary.LittleEndian.PutUint32(le[:], uint32(len(f)))
		out = append(out, le[:mag]...)
	}
	return append(out, marker), nil
}
