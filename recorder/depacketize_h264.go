package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pion/rtp"
)

// H.264 NAL unit types (ITU-T H.264 Table 7-1, RFC 6184 Table 1).
const (
	h264NALSlice = 1
	h264NALIDR   = 5
	h264NALSPS   = 7
	h264NALPPS   = 8
	h264NALAUD   = 9
	h264NALSTAPA = 24
	h264NALFUA   = 28
)

// h264Depacketizer handles RFC 6184 packetization mode 0 and 1 (single NAL, STAP-A, FU-A), the
// modes WebRTC uses; STAP-B, MTAP and FU-B are rejected, reserved types ignored as the RFC says.
// It parses the payloads itself rather than use codecs.H264Packet, which keeps a half-built FU-A
// across frames and never checks the FU start bit (a frame beginning mid-NAL would pass), and
// emits an empty NAL unit for a zero-length STAP-A entry.
//
// The access unit comes out as Annex-B. An IDR is a keyframe only when SPS and PPS go with it:
// those the sender put in an earlier packet (or a frame of their own) are remembered and put in
// front of the next IDR that lacks them.
type h264Depacketizer struct {
	sps, pps []byte // last seen
}

func (d *h264Depacketizer) Depacketize(pkts []*rtp.Packet) (Frame, error) {
	media, err := mediaPackets("h264", pkts)
	if err != nil {
		return Frame{}, err
	}
	nals, err := h264NALs(media)
	if err != nil {
		return Frame{}, fmt.Errorf("depacketize h264: %w: %w", ErrMalformedFrame, err)
	}
	var f Frame
	var idr, vcl, hasSPS, hasPPS bool
	for _, n := range nals {
		switch n[0] & 0x1F {
		case h264NALSPS:
			d.sps, hasSPS = n, true
			if w, h, err := h264SPSSize(n); err == nil {
				f.Width, f.Height = w, h
			}
		case h264NALPPS:
			d.pps, hasPPS = n, true
		case h264NALIDR:
			idr, vcl = true, true
		case h264NALSlice, 2, 3, 4: // non-IDR slice and data partitions
			vcl = true
		}
	}
	if !vcl {
		return Frame{}, fmt.Errorf("depacketize h264: %w: no slice", ErrNoMedia)
	}
	f.Keyframe = idr && d.sps != nil && d.pps != nil
	if f.Keyframe && (!hasSPS || !hasPPS) {
		nals = h264WithParameterSets(nals, d.sps, d.pps)
		if !hasSPS {
			if w, h, err := h264SPSSize(d.sps); err == nil {
				f.Width, f.Height = w, h
			}
		}
	}
	size := 0
	for _, n := range nals {
		size += len(annexBStartCode) + len(n)
	}
	f.Data = make([]byte, 0, size)
	for _, n := range nals {
		f.Data = append(f.Data, annexBStartCode...)
		f.Data = append(f.Data, n...)
	}
	return f, nil
}

// h264WithParameterSets puts the access unit's SPS and PPS, or the remembered ones where it has
// none, in front of everything but a leading access unit delimiter: a decoder starting at this
// IDR must see the SPS before the PPS that refers to it, and both before the first slice.
func h264WithParameterSets(nals [][]byte, sps, pps []byte) [][]byte {
	var spss, ppss, rest [][]byte
	for _, n := range nals {
		switch n[0] & 0x1F {
		case h264NALSPS:
			spss = append(spss, n)
		case h264NALPPS:
			ppss = append(ppss, n)
		default:
			rest = append(rest, n)
		}
	}
	if len(spss) == 0 {
		spss = [][]byte{sps}
	}
	if len(ppss) == 0 {
		ppss = [][]byte{pps}
	}
	out := make([][]byte, 0, len(nals)+2)
	if len(rest) > 0 && rest[0][0]&0x1F == h264NALAUD {
		out, rest = append(out, rest[0]), rest[1:]
	}
	out = append(append(append(out, spss...), ppss...), rest...)
	return out
}

// h264NALs returns the NAL units of an access unit, each a fresh copy.
func h264NALs(media []*rtp.Packet) ([][]byte, error) {
	var (
		nals [][]byte
		fu   []byte // FU-A being assembled, NAL header first
	)
	for i, p := range media {
		b := p.Payload
		typ := b[0] & 0x1F
		if fu != nil && typ != h264NALFUA {
			return nil, fmt.Errorf("packet %d (type %d) interrupts a fragmented NAL unit", i, typ)
		}
		switch {
		case typ >= 1 && typ <= 23:
			nals = append(nals, append([]byte(nil), b...))
		case typ == h264NALSTAPA:
			for off := 1; off < len(b); {
				if len(b)-off < 2 {
					return nil, fmt.Errorf("packet %d: STAP-A entry size cut short", i)
				}
				size := int(binary.BigEndian.Uint16(b[off:]))
				off += 2
				if size > len(b)-off {
					return nil, fmt.Errorf("packet %d: STAP-A entry of %d bytes, %d left", i, size, len(b)-off)
				}
				if size > 0 {
					nals = append(nals, append([]byte(nil), b[off:off+size]...))
				}
				off += size
			}
		case typ == h264NALFUA:
			if len(b) < 2 {
				return nil, fmt.Errorf("packet %d: FU-A without FU header", i)
			}
			start, end := b[1]&0x80 != 0, b[1]&0x40 != 0
			switch {
			case start && fu != nil:
				return nil, fmt.Errorf("packet %d: FU-A starts before the previous one ended", i)
			case !start && fu == nil:
				return nil, fmt.Errorf("packet %d: FU-A continues a NAL unit that never started", i)
			case start:
				fu = []byte{b[0]&0xE0 | b[1]&0x1F}
			}
			fu = append(fu, b[2:]...)
			if end {
				nals = append(nals, fu)
				fu = nil
			}
		case typ == 0 || typ >= 30:
			// Reserved or undefined: RFC 6184 §5.2 says to ignore them.
		default:
			return nil, fmt.Errorf("packet %d: NAL type %d (STAP-B, MTAP or FU-B) needs packetization-mode 2", i, typ)
		}
	}
	if fu != nil {
		return nil, errors.New("the frame ends inside a fragmented NAL unit")
	}
	return nals, nil
}

// h264SPSSize returns the cropped picture size from a sequence parameter set NAL unit
// (ITU-T H.264 §7.3.2.1.1).
func h264SPSSize(nal []byte) (width, height int, err error) {
	if len(nal) < 4 {
		return 0, 0, errors.New("sps too short")
	}
	r := &bitReader{b: h264RBSP(nal[1:])}
	profile := r.u(8)
	r.u(8) // constraint flags and reserved bits
	r.u(8) // level_idc
	r.ue() // seq_parameter_set_id
	chromaFormat := uint64(1)
	separateColourPlane := false
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chromaFormat = r.ue()
		if chromaFormat == 3 {
			separateColourPlane = r.flag()
		}
		r.ue()        // bit_depth_luma_minus8
		r.ue()        // bit_depth_chroma_minus8
		r.u(1)        // qpprime_y_zero_transform_bypass_flag
		if r.flag() { // seq_scaling_matrix_present_flag
			lists := 8
			if chromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if r.flag() { // seq_scaling_list_present_flag
					size := 16
					if i >= 6 {
						size = 64
					}
					h264SkipScalingList(r, size)
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.u(1) // delta_pic_order_always_zero_flag
		r.se() // offset_for_non_ref_pic
		r.se() // offset_for_top_to_bottom_field
		cycle := r.ue()
		if cycle > 255 {
			return 0, 0, fmt.Errorf("sps: %d ref frames in poc cycle", cycle)
		}
		for range cycle {
			r.se() // offset_for_ref_frame
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	widthMBs := r.ue() + 1
	heightMapUnits := r.ue() + 1
	frameMBsOnly := r.flag()
	if !frameMBsOnly {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	var cropL, cropR, cropT, cropB uint64
	if r.flag() { // frame_cropping_flag
		cropL, cropR, cropT, cropB = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err != nil {
		return 0, 0, fmt.Errorf("sps: %w", r.err)
	}
	fieldFactor := uint64(2)
	if frameMBsOnly {
		fieldFactor = 1
	}
	// Crop units (§7.4.2.1.1, Table 6-1): chroma subsampling times the field factor.
	cropX, cropY := uint64(1), fieldFactor
	if !separateColourPlane {
		switch chromaFormat {
		case 1:
			cropX, cropY = 2, 2*fieldFactor
		case 2:
			cropX, cropY = 2, fieldFactor
		}
	}
	w := widthMBs * 16
	h := heightMapUnits * 16 * fieldFactor
	if cropX*(cropL+cropR) >= w || cropY*(cropT+cropB) >= h || w > 1<<16 || h > 1<<16 {
		return 0, 0, fmt.Errorf("sps: implausible size %dx%d cropped by %d,%d,%d,%d", w, h, cropL, cropR, cropT, cropB)
	}
	return int(w - cropX*(cropL+cropR)), int(h - cropY*(cropT+cropB)), nil
}

func h264SkipScalingList(r *bitReader, size int) {
	last, next := int64(8), int64(8)
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
		if r.err != nil {
			return
		}
	}
}

// h264RBSP removes emulation prevention bytes (the 03 in 00 00 03).
func h264RBSP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, v := range b {
		if zeros >= 2 && v == 3 {
			zeros = 0
			continue
		}
		if v == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, v)
	}
	return out
}
