package recorder

import (
	"errors"
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs/av1/obu"
)

// av1TemporalDelimiter is a temporal delimiter OBU with obu_has_size_field set and size 0.
var av1TemporalDelimiter = []byte{byte(obu.OBUTemporalDelimiter)<<3 | 0x02, 0}

// av1Depacketizer turns the packets of one temporal unit (AV1 RTP spec, aomediacodec.github.io/
// av1-rtp-spec) into the low-overhead bitstream IVF and decoders take: a temporal delimiter, then
// every OBU with obu_has_size_field set. It parses the aggregation headers itself rather than
// use codecs.AV1Depacketizer, which rejects a packet whose W-counted last element is a dropped
// temporal delimiter or tile list, and whose LEB128 reader accepts more than 8 bytes.
//
// A temporal unit is a keyframe when its first frame header is a KEY_FRAME (shown or not: a
// hidden forward key frame is a valid start) and a sequence header goes with it. If the sender sent the sequence header earlier, the last one seen is put
// in front of the keyframe.
type av1Depacketizer struct {
	seq av1SequenceHeader // last sequence header seen; seq.obu is nil before the first
}

type av1SequenceHeader struct {
	obu           []byte // the whole OBU, with size field
	reducedStill  bool   // reduced_still_picture_header
	width, height int    // max_frame_{width,height}_minus_1 + 1
}

func (d *av1Depacketizer) Depacketize(pkts []*rtp.Packet) (Frame, error) {
	media, err := mediaPackets("av1", pkts)
	if err != nil {
		return Frame{}, err
	}
	elems, err := av1Elements(media)
	if err != nil {
		return Frame{}, fmt.Errorf("depacketize av1: %w: %w", ErrMalformedFrame, err)
	}
	var (
		out      = append(make([]byte, 0, 64), av1TemporalDelimiter...)
		f        Frame
		hasSeq   bool
		seenHdr  bool // a frame header has been looked at
		keyFrame bool
		obus     int
	)
	for i, e := range elems {
		typ, ext, body, err := av1ParseOBU(e)
		if err != nil {
			return Frame{}, fmt.Errorf("depacketize av1: %w: OBU %d: %w", ErrMalformedFrame, i, err)
		}
		switch typ {
		case obu.OBUTemporalDelimiter, obu.OBUTileList, obu.OBUPadding:
			continue // the RTP spec says to drop them; we write our own delimiter
		}
		start := len(out)
		out = av1AppendOBU(out, typ, ext, body)
		obus++
		switch typ {
		case obu.OBUSequenceHeader:
			seq, err := av1ParseSequenceHeader(body)
			if err != nil {
				return Frame{}, fmt.Errorf("depacketize av1: %w: sequence header: %w", ErrMalformedFrame, err)
			}
			seq.obu = append([]byte(nil), out[start:]...)
			d.seq, hasSeq = seq, true
			f.Width, f.Height = seq.width, seq.height
		case obu.OBUFrameHeader, obu.OBUFrame:
			if !seenHdr && d.seq.obu != nil {
				seenHdr = true
				keyFrame = av1IsKeyFrame(body, d.seq.reducedStill)
			}
		}
	}
	if obus == 0 {
		return Frame{}, fmt.Errorf("depacketize av1: %w: no OBUs but delimiters and padding", ErrNoMedia)
	}
	if keyFrame && !hasSeq {
		// Put the remembered sequence header in front, after the temporal delimiter.
		td := len(av1TemporalDelimiter)
		withSeq := make([]byte, 0, len(out)+len(d.seq.obu))
		withSeq = append(withSeq, out[:td]...)
		withSeq = append(withSeq, d.seq.obu...)
		out = append(withSeq, out[td:]...)
		f.Width, f.Height = d.seq.width, d.seq.height
	}
	f.Data, f.Keyframe = out, keyFrame
	return f, nil
}

// av1Elements reassembles the OBU elements of a temporal unit from its packets: each packet is
// an aggregation header |Z|Y|W W|N|-|-|-| and elements, each behind a LEB128 length except the
// last when W > 0. Z says the first element continues the previous packet's last one, Y that the
// last element continues in the next packet.
func av1Elements(media []*rtp.Packet) ([][]byte, error) {
	var (
		elems [][]byte
		frag  []byte // an OBU split across packets, being assembled
		open  bool
	)
	for i, p := range media {
		b := p.Payload
		z, y, w := b[0]&0x80 != 0, b[0]&0x40 != 0, int(b[0]>>4&3)
		switch {
		case z && !open:
			return nil, fmt.Errorf("packet %d continues an OBU that did not begin (Z=1)", i)
		case !z && open:
			return nil, fmt.Errorf("packet %d drops the OBU fragment begun before it (Z=0)", i)
		}
		for n, off := 0, 1; off < len(b); n++ {
			var size int
			if w > 0 && n == w-1 {
				size = len(b) - off
			} else {
				v, l, err := readLEB128(b[off:])
				if err != nil {
					return nil, fmt.Errorf("packet %d element %d: %w", i, n, err)
				}
				off += l
				if v > uint64(len(b)-off) {
					return nil, fmt.Errorf("packet %d element %d: %d bytes, %d left", i, n, v, len(b)-off)
				}
				size = int(v)
			}
			e := b[off : off+size]
			off += size
			first, last := n == 0, off == len(b)
			if first && z {
				frag = append(frag, e...)
				if last && y {
					continue // the OBU goes on in the next packet
				}
				elems = append(elems, frag)
				frag, open = nil, false
				continue
			}
			if last && y {
				frag, open = append([]byte(nil), e...), true
				continue
			}
			if len(e) > 0 {
				elems = append(elems, e)
			}
		}
	}
	if open {
		return nil, errors.New("the last packet leaves an OBU unfinished (Y=1)")
	}
	return elems, nil
}

// av1ParseOBU splits an OBU element into its type, extension byte (-1 if none) and payload,
// dropping any obu_size field it carries (the element length is authoritative).
func av1ParseOBU(e []byte) (typ obu.Type, ext int, body []byte, err error) {
	if len(e) == 0 {
		return 0, 0, nil, errors.New("empty OBU")
	}
	h := e[0]
	if h&0x80 != 0 {
		return 0, 0, nil, errors.New("forbidden bit set")
	}
	typ, ext, body = obu.Type(h>>3&0x0F), -1, e[1:]
	if h&0x04 != 0 {
		if len(body) == 0 {
			return 0, 0, nil, errors.New("missing extension header")
		}
		ext, body = int(body[0]), body[1:]
	}
	if h&0x02 != 0 {
		v, l, err := readLEB128(body)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("obu_size: %w", err)
		}
		if v > uint64(len(body)-l) {
			return 0, 0, nil, fmt.Errorf("obu_size %d overruns %d bytes", v, len(body)-l)
		}
		body = body[l : l+int(v)]
	}
	return typ, ext, body, nil
}

// av1AppendOBU appends an OBU with obu_has_size_field set.
func av1AppendOBU(out []byte, typ obu.Type, ext int, body []byte) []byte {
	h := byte(typ)<<3 | 0x02
	if ext >= 0 {
		out = append(out, h|0x04, byte(ext))
	} else {
		out = append(out, h)
	}
	out = appendLEB128(out, uint64(len(body)))
	return append(out, body...)
}

// av1ParseSequenceHeader reads sequence_header_obu() (AV1 §5.5) as far as max_frame_height.
func av1ParseSequenceHeader(b []byte) (av1SequenceHeader, error) {
	r := &bitReader{b: b}
	var s av1SequenceHeader
	r.u(3) // seq_profile
	r.u(1) // still_picture
	s.reducedStill = r.flag()
	if s.reducedStill {
		r.u(5) // seq_level_idx[0]
	} else {
		decoderModel := false
		bufferDelayLen := 0
		if r.flag() { // timing_info_present_flag
			r.u(32)       // num_units_in_display_tick
			r.u(32)       // time_scale
			if r.flag() { // equal_picture_interval
				r.uvlc() // num_ticks_per_picture_minus_1
			}
			decoderModel = r.flag()
			if decoderModel {
				bufferDelayLen = int(r.u(5)) + 1
				r.u(32) // num_units_in_decoding_tick
				r.u(5)  // buffer_removal_time_length_minus_1
				r.u(5)  // frame_presentation_time_length_minus_1
			}
		}
		initialDisplayDelay := r.flag()
		ops := int(r.u(5)) + 1
		for range ops {
			r.u(12)         // operating_point_idc
			if r.u(5) > 7 { // seq_level_idx
				r.u(1) // seq_tier
			}
			if decoderModel && r.flag() {
				r.u(bufferDelayLen) // decoder_buffer_delay
				r.u(bufferDelayLen) // encoder_buffer_delay
				r.u(1)              // low_delay_mode_flag
			}
			if initialDisplayDelay && r.flag() {
				r.u(4) // initial_display_delay_minus_1
			}
		}
	}
	wBits := int(r.u(4)) + 1
	hBits := int(r.u(4)) + 1
	s.width = int(r.u(wBits)) + 1
	s.height = int(r.u(hBits)) + 1
	if r.err != nil {
		return av1SequenceHeader{}, r.err
	}
	return s, nil
}

// av1IsKeyFrame reads the start of uncompressed_header() (AV1 §5.9.2): a reduced still picture
// header means a key frame; otherwise show_existing_frame must be 0 and frame_type KEY_FRAME (0).
// A shown existing key frame is not counted: it cannot start a stream without its references.
func av1IsKeyFrame(b []byte, reducedStill bool) bool {
	if reducedStill {
		return len(b) > 0
	}
	r := &bitReader{b: b}
	showExisting := r.flag()
	frameType := r.u(2)
	return r.err == nil && !showExisting && frameType == 0
}

// readLEB128 reads an AV1 leb128() (§4.10.5): at most 8 bytes, value below 2^32.
func readLEB128(b []byte) (v uint64, n int, err error) {
	for i := 0; i < 8; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("leb128 ends early")
		}
		v |= uint64(b[i]&0x7F) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, 0, fmt.Errorf("leb128 value %d too large", v)
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("leb128 longer than 8 bytes")
}

func appendLEB128(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
