package recorder

import (
	"bytes"
	"testing"
)

// testBitWriter builds bitstreams for the parser tests.
type testBitWriter struct {
	b []byte
	n int // bits written
}

func (w *testBitWriter) u(bits int, v uint64) *testBitWriter {
	for i := bits - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (7 - w.n%8)
		w.n++
	}
	return w
}

func (w *testBitWriter) ue(v uint64) *testBitWriter {
	v++
	bits := 0
	for x := v; x > 1; x >>= 1 {
		bits++
	}
	return w.u(bits, 0).u(bits+1, v)
}

func (w *testBitWriter) se(v int64) *testBitWriter {
	if v > 0 {
		return w.ue(uint64(2*v - 1))
	}
	return w.ue(uint64(-2 * v))
}

// trailing adds rbsp_trailing_bits.
func (w *testBitWriter) trailing() []byte {
	w.u(1, 1)
	for w.n%8 != 0 {
		w.u(1, 0)
	}
	return w.b
}

// h264Escape inserts emulation prevention bytes.
func h264Escape(rbsp []byte) []byte {
	var out []byte
	zeros := 0
	for _, v := range rbsp {
		if zeros >= 2 && v <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, v)
		if v == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

func TestBitReaderCodes(t *testing.T) {
	w := &testBitWriter{}
	ues := []uint64{0, 1, 2, 3, 7, 255, 1<<20 + 5}
	ses := []int64{0, 1, -1, 2, -2, 1000, -1000}
	for _, v := range ues {
		w.ue(v)
	}
	for _, v := range ses {
		w.se(v)
	}
	// AV1 uvlc is the same code as ue.
	w.ue(41)
	r := &bitReader{b: w.trailing()}
	for _, v := range ues {
		if got := r.ue(); got != v {
			t.Errorf("ue: %d, want %d", got, v)
		}
	}
	for _, v := range ses {
		if got := r.se(); got != v {
			t.Errorf("se: %d, want %d", got, v)
		}
	}
	if got := r.uvlc(); got != 41 {
		t.Errorf("uvlc: %d", got)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.u(64)
	if r.err == nil {
		t.Error("reading past the end set no error")
	}
	if r := (&bitReader{b: make([]byte, 8)}); r.ue() != 0 || r.err == nil {
		t.Error("64 zero bits read as an exp-Golomb code")
	}
}

// h264TestSPS builds a High-profile SPS for 320x240 (cropped from 320x256 when crop is set),
// with scaling lists and picture order count type 1, the branches x264 does not exercise.
func h264TestSPS(crop bool) []byte {
	w := &testBitWriter{}
	w.u(8, 100).u(8, 0).u(8, 30).ue(0) // profile_idc, flags, level_idc, sps id
	w.ue(1).ue(0).ue(0).u(1, 0)        // 4:2:0, 8-bit luma and chroma, no bypass
	w.u(1, 1)                          // seq_scaling_matrix_present_flag
	for i := range 8 {
		switch i {
		case 0: // a 4x4 list with explicit deltas
			w.u(1, 1)
			for j := range 16 {
				w.se(int64(j%3 - 1))
			}
		case 6: // an 8x8 list that ends early: delta -8 makes nextScale 0
			w.u(1, 1).se(-8)
		default:
			w.u(1, 0)
		}
	}
	w.ue(0)                            // log2_max_frame_num_minus4
	w.ue(1).u(1, 0).se(-3).se(5).ue(2) // poc type 1, offsets, 2 ref frames in the cycle
	w.se(7).se(-7)
	w.ue(2).u(1, 0) // max_num_ref_frames, gaps
	if crop {
		w.ue(19).ue(15) // 320x256
	} else {
		w.ue(19).ue(14) // 320x240
	}
	w.u(1, 1).u(1, 1) // frame_mbs_only, direct_8x8
	if crop {
		w.u(1, 1).ue(0).ue(0).ue(0).ue(8) // crop 8 units of 2 rows from the bottom
	} else {
		w.u(1, 0)
	}
	w.u(1, 0) // vui_parameters_present_flag
	return append([]byte{0x67}, h264Escape(w.trailing())...)
}

func TestH264SPSSize(t *testing.T) {
	for _, crop := range []bool{false, true} {
		sps := h264TestSPS(crop)
		w, h, err := h264SPSSize(sps)
		if err != nil || w != 320 || h != 240 {
			t.Errorf("crop %v: %dx%d, %v; want 320x240", crop, w, h, err)
		}
	}
	if _, _, err := h264SPSSize([]byte{0x67, 100, 0, 30}); err == nil {
		t.Error("truncated SPS parsed")
	}
	rbsp := []byte{0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0}
	escaped := h264Escape(rbsp)
	if !bytes.Equal(escaped, []byte{0, 0, 3, 0, 1, 0, 0, 3, 2, 0, 0, 3, 3, 0, 0, 4, 0, 0}) {
		t.Errorf("escape: % x", escaped)
	}
	if got := h264RBSP(escaped); !bytes.Equal(got, rbsp) {
		t.Errorf("h264RBSP: % x, want % x", got, rbsp)
	}
}

func TestAV1SequenceHeader(t *testing.T) {
	// Timing info with a decoder model and two operating points, each with decoder model
	// parameters and an initial display delay: every optional branch before the frame size.
	w := &testBitWriter{}
	w.u(3, 0).u(1, 0).u(1, 0)          // profile, still_picture, reduced_still_picture_header
	w.u(1, 1).u(32, 1001).u(32, 30000) // timing_info_present, display tick, time scale
	w.u(1, 1).ue(0)                    // equal_picture_interval, num_ticks_per_picture_minus_1 (uvlc)
	w.u(1, 1)                          // decoder_model_info_present_flag
	w.u(5, 9).u(32, 90000).u(5, 4).u(5, 4)
	w.u(1, 1)     // initial_display_delay_present_flag
	w.u(5, 1)     // two operating points
	for range 2 { // idc, level 8 (> 7 so a tier bit), decoder model (10-bit delays), display delay
		w.u(12, 0x103).u(5, 8).u(1, 0).u(1, 1).u(10, 500).u(10, 300).u(1, 0).u(1, 1).u(4, 3)
	}
	w.u(4, 10).u(4, 10).u(11, 1279).u(11, 719) // frame size bits and max size
	seq, err := av1ParseSequenceHeader(w.trailing())
	if err != nil || seq.width != 1280 || seq.height != 720 || seq.reducedStill {
		t.Errorf("%+v, %v", seq, err)
	}

	still := (&testBitWriter{}).u(3, 0).u(1, 1).u(1, 1).u(5, 1).u(4, 7).u(4, 7).u(8, 63).u(8, 47).trailing()
	if seq, err := av1ParseSequenceHeader(still); err != nil || seq.width != 64 || seq.height != 48 || !seq.reducedStill {
		t.Errorf("reduced still picture: %+v, %v", seq, err)
	}
	if !av1IsKeyFrame([]byte{0}, true) || av1IsKeyFrame([]byte{0x80}, false) || av1IsKeyFrame([]byte{0x20}, false) || !av1IsKeyFrame([]byte{0x10}, false) {
		t.Error("av1IsKeyFrame")
	}
	if _, err := av1ParseSequenceHeader([]byte{0x00}); err == nil {
		t.Error("truncated sequence header parsed")
	}
}

func TestLEB128(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 1<<21 + 3, 1<<32 - 1} {
		b := appendLEB128(nil, v)
		got, n, err := readLEB128(append(b, 0xEE))
		if err != nil || got != v || n != len(b) {
			t.Errorf("%d: %d, %d, %v", v, got, n, err)
		}
	}
	for _, b := range [][]byte{nil, {0x80}, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, {0x80, 0x80, 0x80, 0x80, 0x10}} {
		if _, _, err := readLEB128(b); err == nil {
			t.Errorf("% x accepted", b)
		}
	}
}

func TestVP9Superframe(t *testing.T) {
	frames := [][]byte{bytes.Repeat([]byte{1}, 300), {2, 2}, bytes.Repeat([]byte{3}, 70000)}
	sf, err := vp9Superframe(frames)
	if err != nil {
		t.Fatal(err)
	}
	if sf[len(sf)-1] != 0xC0|2<<3|2 {
		t.Errorf("marker %#x, want 3 frames of 3-byte sizes", sf[len(sf)-1])
	}
	back, err := vp9SplitSuperframe(sf)
	if err != nil || len(back) != 3 {
		t.Fatalf("%d frames, %v", len(back), err)
	}
	for i := range frames {
		if !bytes.Equal(back[i], frames[i]) {
			t.Errorf("frame %d differs", i)
		}
	}
	if _, err := vp9Superframe(make([][]byte, 9)); err == nil {
		t.Error("9 frames accepted")
	}
	plain := []byte{0x82, 0x49, 0x83, 0xC1} // ends in a marker-like byte with no index
	if got, err := vp9SplitSuperframe(plain); err != nil || len(got) != 1 || !bytes.Equal(got[0], plain) {
		t.Errorf("plain frame: %v, %v", got, err)
	}
}
