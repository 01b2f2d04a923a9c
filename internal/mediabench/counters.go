package mediabench

import (
	"sync"
	"sync/atomic"
	"time"
)

// Counters is what a receiver child reports on each stdout line (JSON), and what the benchmark
// reads from a recorder's manifest: tracks receiving now and totals since the start.
type Counters struct {
	At      int64  `json:"at"`     // unix nanoseconds when taken
	Peers   int    `json:"peers"`  // distinct peers with a receiving track
	Tracks  int    `json:"tracks"` // tracks that received at least one packet and have not ended
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Lost counts sequence numbers never received (after the first packet of each track).
	Lost uint64 `json:"lost"`
	// Dropped counts packets received but not written (recorder: queue overflow, incomplete frames).
	Dropped uint64 `json:"dropped"`
	Final   bool   `json:"final,omitempty"`
}

// Time is when the counters were taken.
func (c Counters) Time() time.Time { return time.Unix(0, c.At) }

// seqCounter counts one track's packets and the sequence numbers it never saw. observe is called
// by the track's reader goroutine only; the atomics are read by the reporter.
type seqCounter struct {
	peer     string
	packets  atomic.Uint64
	bytes    atomic.Uint64
	expected atomic.Uint64

	started       bool
	base, highest uint64 // extended sequence numbers
}

func (c *seqCounter) observe(seq uint16, size int) {
	if !c.started {
		c.started = true
		c.highest = uint64(seq) + 1<<16 // room below for packets reordered before the first
		c.base = c.highest
	} else {
		ext := uint64(int64(c.highest) + int64(int16(seq-uint16(c.highest))))
		c.highest = max(c.highest, ext)
		c.base = min(c.base, ext)
	}
	c.expected.Store(c.highest - c.base + 1)
	c.bytes.Add(uint64(size))
	c.packets.Add(1) // last: a reporter that sees the packet also sees its expectation
}

func (c *seqCounter) lost() uint64 {
	p, e := c.packets.Load(), c.expected.Load()
	if e > p {
		return e - p
	}
	return 0
}

// tally aggregates the counters of every track of a receiver, ended ones included.
type tally struct {
	mu     sync.Mutex
	active map[*seqCounter]struct{}
	ended  Counters // totals of ended tracks
}

func newTally() *tally { return &tally{active: map[*seqCounter]struct{}{}} }

func (t *tally) start(peer string) *seqCounter {
	c := &seqCounter{peer: peer}
	t.mu.Lock()
	t.active[c] = struct{}{}
	t.mu.Unlock()
	return c
}

func (t *tally) end(c *seqCounter) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.active[c]; !ok {
		return
	}
	delete(t.active, c)
	t.ended.Packets += c.packets.Load()
	t.ended.Bytes += c.bytes.Load()
	t.ended.Lost += c.lost()
}

func (t *tally) snapshot() Counters {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.ended
	s.At = time.Now().UnixNano()
	peers := map[string]bool{}
	for c := range t.active {
		p := c.packets.Load()
		s.Packets += p
		s.Bytes += c.bytes.Load()
		s.Lost += c.lost()
		if p > 0 {
			s.Tracks++
			peers[c.peer] = true
		}
	}
	s.Peers = len(peers)
	return s
}
