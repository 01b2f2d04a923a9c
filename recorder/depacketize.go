package recorder

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pion/rtp"
)

// Errors returned by depacketizers.
var (
	// ErrUnsupportedCodec is returned for a MIME type the recorder cannot depacketize or store.
	ErrUnsupportedCodec = errors.New("recorder: unsupported codec")
	// ErrNoMedia is returned for a frame whose packets carry no media: padding only, or (H.264)
	// parameter sets only, which the depacketizer keeps for the next IDR. Skip it; it is not loss.
	ErrNoMedia = errors.New("recorder: frame carries no media")
	// ErrMalformedFrame is returned when the packets do not form one whole frame: a descriptor or
	// aggregation header that does not parse, a frame that does not start at its beginning or
	// ends in the middle of a fragment, or packets with different timestamps (a lost marker).
	// The caller should drop the frame and wait for a keyframe.
	ErrMalformedFrame = errors.New("recorder: malformed frame")
)

// Frame is one depacketized video frame (for AV1 a temporal unit) or one Opus packet.
type Frame struct {
	// Data is the frame in the form its container takes: VP8 and VP9 frames (a VP9 picture with
	// several spatial layers becomes a superframe), an AV1 temporal unit in low-overhead format
	// (temporal delimiter first, every OBU with obu_has_size_field), H.264 Annex-B with 4-byte
	// start codes, or one Opus packet. It never aliases the packets' buffers.
	Data []byte
	// Keyframe reports a frame a decoder can start from, judged from the bitstream: VP8 key_frame
	// bit, VP9 uncompressed header, AV1 sequence header plus KEY_FRAME frame header, H.264 IDR with
	// SPS and PPS. Always true for Opus.
	Keyframe bool
	// Width and Height are the size this frame signals (VP8/VP9 keyframe header, VP9 scalability
	// structure, AV1 sequence header, H.264 SPS), 0 if it signals none.
	Width, Height int
}

// Depacketizer turns the RTP packets of one complete frame into a Frame.
type Depacketizer interface {
	// Depacketize takes the packets of one frame in sequence order with no gaps, the last one
	// carrying the marker bit. Padding-only packets (empty payload) are ignored. A Depacketizer
	// may keep state between frames (H.264 parameter sets, the AV1 sequence header), so use one
	// per track and do not call it concurrently.
	Depacketize(pkts []*rtp.Packet) (Frame, error)
}

// NewDepacketizer returns a Depacketizer for a MIME type, matched case-insensitively (pion's
// constants are "video/VP8", "video/VP9", "video/AV1", "video/H264", "audio/opus").
func NewDepacketizer(mimeType string) (Depacketizer, error) {
	switch strings.ToLower(mimeType) {
	case "video/vp8":
		return &vp8Depacketizer{}, nil
	case "video/vp9":
		return &vp9Depacketizer{}, nil
	case "video/av1":
		return &av1Depacketizer{}, nil
	case "video/h264":
		return &h264Depacketizer{}, nil
	case "audio/opus":
		return opusDepacketizer{}, nil
	}
	return nil, fmt.Errorf("new depacketizer %q: %w", mimeType, ErrUnsupportedCodec)
}

var (
	_ Depacketizer = (*vp8Depacketizer)(nil)
	_ Depacketizer = (*vp9Depacketizer)(nil)
	_ Depacketizer = (*av1Depacketizer)(nil)
	_ Depacketizer = (*h264Depacketizer)(nil)
	_ Depacketizer = opusDepacketizer{}
)

// opusDepacketizer returns the single payload: an Opus RTP packet is one Opus packet, which is
// the unit the Ogg writer stores, so packets must never be concatenated.
type opusDepacketizer struct{}

func (opusDepacketizer) Depacketize(pkts []*rtp.Packet) (Frame, error) {
	media, err := mediaPackets("opus", pkts)
	if err != nil {
		return Frame{}, err
	}
	if len(media) != 1 {
		return Frame{}, fmt.Errorf("depacketize opus: %w: %d packets, an opus frame is one", ErrMalformedFrame, len(media))
	}
	return Frame{Data: append([]byte(nil), media[0].Payload...), Keyframe: true}, nil
}

// mediaPackets drops padding-only packets (nil or empty payload) and checks that the rest share
// one timestamp. It returns ErrNoMedia if nothing is left. Without padding it returns pkts itself
// (the jitter buffer releases none, so the recorder's frames are not copied).
func mediaPackets(codec string, pkts []*rtp.Packet) ([]*rtp.Packet, error) {
	media := pkts
	if slices.ContainsFunc(pkts, isPadding) {
		media = slices.DeleteFunc(slices.Clone(pkts), isPadding)
	}
	if len(media) == 0 {
		return nil, fmt.Errorf("depacketize %s: %w", codec, ErrNoMedia)
	}
	for _, p := range media[1:] {
		if p.Timestamp != media[0].Timestamp {
			return nil, fmt.Errorf("depacketize %s: %w: timestamps %d and %d in one frame",
				codec, ErrMalformedFrame, media[0].Timestamp, p.Timestamp)
		}
	}
	return media, nil
}

func isPadding(p *rtp.Packet) bool { return p == nil || len(p.Payload) == 0 }

// bitReader reads big-endian bit fields. Reading past the end sets a sticky error and yields
// zeros, so parsers check err once at the end.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

var errBitsExhausted = errors.New("bitstream ends early")

func (r *bitReader) u(n int) uint64 {
	var v uint64
	for range n {
		if r.pos >= len(r.b)*8 {
			r.err = errBitsExhausted
			return 0
		}
		v = v<<1 | uint64(r.b[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

func (r *bitReader) flag() bool { return r.u(1) == 1 }

// ue reads an unsigned exp-Golomb code (H.264 §9.1).
func (r *bitReader) ue() uint64 {
	zeros := 0
	for r.u(1) == 0 {
		if r.err != nil || zeros == 31 {
			if r.err == nil {
				r.err = errors.New("exp-golomb code too long")
			}
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.u(zeros)
}

// se reads a signed exp-Golomb code.
func (r *bitReader) se() int64 {
	k := r.ue()
	if k&1 == 1 {
		return int64(k+1) / 2
	}
	return -int64(k / 2)
}

// uvlc reads an AV1 variable-length unsigned code (AV1 §4.10.3).
func (r *bitReader) uvlc() uint64 {
	zeros := 0
	for r.u(1) == 0 {
		if r.err != nil {
			return 0
		}
		zeros++
	}
	if zeros >= 32 {
		return 1<<32 - 1
	}
	return r.u(zeros) + 1<<zeros - 1
}
