package mediabench

import "testing"

func TestSeqCounterLossWrapAndReorder(t *testing.T) {
	tests := []struct {
		name     string
		seqs     []uint16
		wantLost uint64
	}{
		{"in order", []uint16{10, 11, 12, 13}, 0},
		{"gap", []uint16{10, 11, 14, 15}, 2},
		{"wrap", []uint16{65534, 65535, 0, 1}, 0},
		{"gap across the wrap", []uint16{65534, 1, 2}, 2},
		{"reordered, then filled", []uint16{10, 12, 11, 13}, 0},
		{"reordered before the first", []uint16{10, 11, 9, 12}, 0},
		{"a duplicate offsets a loss (counts, not sets)", []uint16{10, 10, 12}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c seqCounter
			for _, s := range tc.seqs {
				c.observe(s, 100)
			}
			if got := c.lost(); got != tc.wantLost {
				t.Errorf("lost %d, want %d", got, tc.wantLost)
			}
			if c.packets.Load() != uint64(len(tc.seqs)) || c.bytes.Load() != uint64(100*len(tc.seqs)) {
				t.Errorf("packets %d bytes %d", c.packets.Load(), c.bytes.Load())
			}
		})
	}
}

func TestTallyKeepsEndedTracks(t *testing.T) {
	ta := newTally()
	a, b := ta.start("p1"), ta.start("p2")
	a.observe(1, 10)
	a.observe(3, 10)
	b.observe(7, 20)
	if s := ta.snapshot(); s.Peers != 2 || s.Tracks != 2 || s.Packets != 3 || s.Lost != 1 || s.Bytes != 40 {
		t.Fatalf("snapshot %+v", s)
	}
	ta.end(a)
	ta.end(a) // idempotent
	if s := ta.snapshot(); s.Peers != 1 || s.Tracks != 1 || s.Packets != 3 || s.Lost != 1 {
		t.Fatalf("after end %+v", s)
	}
	ta.start("p3") // no packet yet: not receiving
	if s := ta.snapshot(); s.Tracks != 1 {
		t.Fatalf("a track without packets counts as receiving: %+v", s)
	}
}
