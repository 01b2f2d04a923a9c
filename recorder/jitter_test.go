package recorder

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// vp8pkt builds a VP8-shaped packet: start marks the first packet of a frame (S=1, PID 0).
func vp8pkt(seq uint16, ts uint32, start, marker bool) *rtp.Packet {
	desc := byte(0x00)
	if start {
		desc = 0x10
	}
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: []byte{desc, 0x01, 0x02}}
}

func collect(j *jitterBuffer, now time.Time, flush bool) []releasedFrame {
	var out []releasedFrame
	for {
		f, ok := j.pop(now, flush)
		if !ok {
			return out
		}
		f.pkts = slices.Clone(f.pkts) // the buffer reuses its slice on the next pop
		out = append(out, f)
	}
}

// frame timestamps of released frames.
func stamps(fs []releasedFrame) []uint32 {
	var out []uint32
	for _, f := range fs {
		out = append(out, f.pkts[0].Timestamp)
	}
	return out
}

func TestJitterBufferVideo(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type in struct {
		p  *rtp.Packet
		at time.Duration
	}
	// Three frames of two packets each, seq 10..15, ts 100, 200, 300.
	frame := func(seq uint16, ts uint32) []*rtp.Packet {
		return []*rtp.Packet{vp8pkt(seq, ts, true, false), vp8pkt(seq+1, ts, false, true)}
	}
	f1, f2, f3 := frame(10, 100), frame(12, 200), frame(14, 300)
	for _, tc := range []struct {
		name     string
		input    []in
		popAt    time.Duration
		flush    bool
		want     []uint32
		lost     uint64
		dups     uint64
		recov    uint64
		lossFlag []bool
	}{
		{name: "in order", input: []in{{f1[0], 0}, {f1[1], 0}, {f2[0], 0}, {f2[1], 0}}, want: []uint32{100, 200}, lossFlag: []bool{false, false}},
		{name: "reordered inside and across frames",
			input: []in{{f1[1], 0}, {f1[0], 0}, {f2[1], 0}, {f3[0], 0}, {f2[0], 0}, {f3[1], 0}},
			want:  []uint32{100, 200, 300}, recov: 2, lossFlag: []bool{false, false, false}},
		{name: "duplicates (RTX copies) dropped",
			input: []in{{f1[0], 0}, {f1[0], 0}, {f1[1], 0}, {f1[1], 0}}, want: []uint32{100}, dups: 2},
		{name: "missing tail waits within latency",
			input: []in{{f1[0], 0}, {f1[1], 0}, {f2[0], 0}}, popAt: 500 * time.Millisecond, want: []uint32{100}},
		{name: "lost middle frame is declared after latency",
			input: []in{{f1[0], 0}, {f1[1], 0}, {f3[0], 0}, {f3[1], 0}}, popAt: 1100 * time.Millisecond,
			want: []uint32{100, 300}, lost: 2, lossFlag: []bool{false, true}},
		{name: "frame missing its first packet is dropped whole",
			input: []in{{f1[0], 0}, {f1[1], 0}, {f2[1], 0}, {f3[0], 0}, {f3[1], 0}}, popAt: 1100 * time.Millisecond,
			want: []uint32{100, 300}, lost: 1, lossFlag: []bool{false, true}},
		{name: "padding-only packets keep continuity",
			input: []in{{f1[0], 0}, {f1[1], 0}, {&rtp.Packet{Header: rtp.Header{SequenceNumber: 12, Timestamp: 100}}, 0},
				{vp8pkt(13, 200, true, true), 0}}, want: []uint32{100, 200}},
		{name: "flush releases complete frames without waiting",
			input: []in{{f1[0], 0}, {f1[1], 0}, {f3[0], 0}, {f3[1], 0}}, flush: true, want: []uint32{100, 300}, lost: 2},
		{name: "track starting mid-frame skips the partial frame",
			input: []in{{f1[1], 0}, {f2[0], 0}, {f2[1], 0}}, popAt: 1100 * time.Millisecond, want: []uint32{200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJitterBuffer(time.Second, false, frameStartFunc("video/vp8"))
			for _, i := range tc.input {
				j.push(i.p, t0.Add(i.at))
			}
			got := collect(j, t0.Add(tc.popAt), tc.flush)
			if !equalU32(stamps(got), tc.want) {
				t.Fatalf("released %v, want %v", stamps(got), tc.want)
			}
			if j.stats.Lost != tc.lost || j.stats.Duplicates != tc.dups || j.stats.Recovered != tc.recov {
				t.Errorf("stats %+v, want lost %d dups %d recovered %d", j.stats, tc.lost, tc.dups, tc.recov)
			}
			for i, want := range tc.lossFlag {
				if got[i].lossBefore != want {
					t.Errorf("frame %d lossBefore = %v, want %v", i, got[i].lossBefore, want)
				}
			}
		})
	}
}

func TestJitterBufferSequenceWrap(t *testing.T) {
	j := newJitterBuffer(time.Second, true, nil)
	t0 := time.Unix(0, 0)
	var want []uint32
	for i := 0; i < 10; i++ {
		seq := uint16(65530 + i) // wraps after 65535
		j.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(i * 960)}, Payload: []byte{0xFC}}, t0)
		want = append(want, uint32(i*960))
	}
	if got := stamps(collect(j, t0, false)); !equalU32(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
	// A late packet from before the wrap is not re-released.
	j.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: 65531}, Payload: []byte{1}}, t0)
	if got := collect(j, t0, false); len(got) != 0 || j.stats.Late != 1 {
		t.Fatalf("late packet released (%d) or not counted (%d)", len(got), j.stats.Late)
	}
}

func TestUnwrappers(t *testing.T) {
	var s seqUnwrapper
	a := s.unwrap(65535)
	b := s.unwrap(0)
	c := s.unwrap(65534) // reordered across the wrap
	if b != a+1 || c != a-1 {
		t.Fatalf("seq unwrap: %d %d %d", a, b, c)
	}
	var ts tsUnwrapper
	x := ts.unwrap(0xFFFFFF00)
	y := ts.unwrap(0x00000100)
	if y-x != 0x200 {
		t.Fatalf("ts unwrap across 2^32: %d", y-x)
	}
}

func TestJitterBufferLoss(t *testing.T) {
	for _, lossPct := range []int{5, 20} {
		j := newJitterBuffer(200*time.Millisecond, true, nil)
		t0 := time.Unix(0, 0)
		sent, dropped := 1000, 0
		for i := 0; i < sent; i++ {
			if (i*7919)%100 < lossPct { // deterministic spread
				dropped++
				continue
			}
			j.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: uint32(i * 960)}, Payload: []byte{0xFC}}, t0.Add(time.Duration(i)*20*time.Millisecond))
		}
		got := collect(j, t0.Add(time.Hour), false)
		if len(got)+dropped != sent || int(j.stats.Lost) != dropped-countEdges(sent, lossPct) {
			t.Errorf("%d%% loss: released %d, lost %d, dropped %d", lossPct, len(got), j.stats.Lost, dropped)
		}
	}
}

// countEdges counts dropped packets before the first and after the last delivered one: the
// buffer cannot know about them, so they are never declared lost.
func countEdges(sent, lossPct int) int {
	n := 0
	for i := 0; i < sent && (i*7919)%100 < lossPct; i++ {
		n++
	}
	for i := sent - 1; i >= 0 && (i*7919)%100 < lossPct; i-- {
		n++
	}
	return n
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestJitterBufferFramePiecemeal: a frame whose packets arrive one at a time, out of order, with
// a pop after each (as the track's worker does) is released once, whole and in order; a reset in
// the middle of a frame forgets how far the frame was scanned.
func TestJitterBufferFramePiecemeal(t *testing.T) {
	t0 := time.Unix(0, 0)
	j := newJitterBuffer(time.Second, false, frameStartFunc("video/vp8"))
	var got []releasedFrame
	for _, seq := range []uint16{10, 11, 13, 12, 15, 14} {
		j.push(vp8pkt(seq, 100, seq == 10, seq == 15), t0)
		got = append(got, collect(j, t0, false)...)
	}
	if len(got) != 1 || len(got[0].pkts) != 6 {
		t.Fatalf("released %d frames (%v), want one of 6 packets", len(got), got)
	}
	for i, p := range got[0].pkts {
		if p.SequenceNumber != uint16(10+i) {
			t.Fatalf("packet %d has seq %d", i, p.SequenceNumber)
		}
	}

	j.push(vp8pkt(16, 200, true, false), t0)
	j.push(vp8pkt(17, 200, false, false), t0)
	if got := collect(j, t0, false); len(got) != 0 {
		t.Fatalf("incomplete frame released: %v", got)
	}
	j.reset() // SSRC change: the new stream happens to start at the same sequence number
	j.push(vp8pkt(16, 900, true, false), t0)
	j.push(vp8pkt(17, 900, false, true), t0)
	if got := stamps(collect(j, t0, false)); !equalU32(got, []uint32{900}) {
		t.Fatalf("after reset released %v, want [900]", got)
	}
}
