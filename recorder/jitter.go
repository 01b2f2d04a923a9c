package recorder

import (
	"time"

	"github.com/pion/rtp"
)

// jitterBuffer reorders one track's packets by extended sequence number and releases only
// complete frames. It waits up to latency for a missing packet (long enough for NACK
// retransmissions to arrive), then declares it lost. Duplicates (e.g. RTX copies) are dropped.
// Padding-only packets keep the sequence continuous but carry no media.
type jitterBuffer struct {
	latency time.Duration
	// perPacketFrames: every packet is a frame (audio). Otherwise a frame is the packets sharing
	// one RTP timestamp, ending with the marker bit.
	perPacketFrames bool
	// frameStart reports whether a packet begins a frame (codec-specific); nil = unknown.
	frameStart func(*rtp.Packet) bool

	pkts     map[uint64]bufPacket
	next     uint64 // next extended sequence number to release
	highest  uint64
	started  bool
	released bool
	unwrap   seqUnwrapper
	// brokenTS is the timestamp of a frame known to be incomplete; its stray packets are dropped.
	brokenTS    uint32
	hasBrokenTS bool
	// frame holds the packets of the frame pop released last, reused by the next pop.
	frame []*rtp.Packet
	// While the frame at scanStart waits for its missing packets, frameEnd resumes at scanEnd
	// instead of rescanning it on every new packet: scanStart..scanEnd-1 are buffered and do not
	// end the frame. That holds while scanHead, the frame's first packet, is still the one at
	// scanStart: pop deletes nothing after it without deleting it first.
	scanStart, scanEnd uint64
	scanHead           *rtp.Packet

	stats jitterStats
}

type bufPacket struct {
	p       *rtp.Packet
	arrival time.Time
}

// jitterStats counts what happened to packets.
type jitterStats struct {
	Received   uint64 // packets accepted into the buffer
	Duplicates uint64 // dropped as already buffered or released
	Late       uint64 // arrived after their slot was declared lost
	Lost       uint64 // never arrived within the latency
	Recovered  uint64 // filled a hole after later packets had arrived (NACK/RTX or reordering)
	Padding    uint64 // padding-only packets
	Dropped    uint64 // media packets of incomplete frames that were discarded
}

// released is one frame leaving the buffer.
type releasedFrame struct {
	pkts    []*rtp.Packet
	arrival time.Time // arrival of the frame's first packet
	// lossBefore: packets were lost (or a broken frame discarded) since the previous frame.
	lossBefore bool
}

func newJitterBuffer(latency time.Duration, perPacketFrames bool, frameStart func(*rtp.Packet) bool) *jitterBuffer {
	return &jitterBuffer{latency: latency, perPacketFrames: perPacketFrames, frameStart: frameStart, pkts: map[uint64]bufPacket{}}
}

// reset forgets every buffered packet (SSRC change); statistics are kept.
func (j *jitterBuffer) reset() {
	j.pkts = map[uint64]bufPacket{}
	j.started, j.released, j.hasBrokenTS = false, false, false
	j.scanHead = nil
	j.unwrap = seqUnwrapper{}
}

func (j *jitterBuffer) push(p *rtp.Packet, arrival time.Time) {
	ext := j.unwrap.unwrap(p.SequenceNumber)
	if !j.started {
		j.started, j.next, j.highest = true, ext, ext
	}
	if ext < j.next {
		if !j.released {
			// Reordering before anything was released: start earlier.
			j.next = ext
		} else {
			if len(p.Payload) > 0 {
				j.stats.Late++
			}
			return
		}
	}
	if _, dup := j.pkts[ext]; dup {
		j.stats.Duplicates++
		return
	}
	if ext > j.highest {
		j.highest = ext
	} else if ext < j.highest {
		j.stats.Recovered++
	}
	if len(p.Payload) == 0 {
		j.stats.Padding++
	} else {
		j.stats.Received++
	}
	j.pkts[ext] = bufPacket{p: p, arrival: arrival}
}

// pending reports whether packets are held back (waiting for a hole or the rest of a frame).
func (j *jitterBuffer) pending() bool { return len(j.pkts) > 0 }

// pop releases the next complete frame, or ok=false when it must wait. With flush set (end of
// track) it does not wait: what is complete is released, the rest counted as lost. The frame's
// pkts slice is the buffer's own: it is valid until the next pop.
func (j *jitterBuffer) pop(now time.Time, flush bool) (f releasedFrame, ok bool) {
	clear(j.frame) // the previous frame's packets are the caller's no longer: do not keep them alive
	j.frame = j.frame[:0]
	loss := false
	for len(j.pkts) > 0 {
		head, present := j.pkts[j.next]
		if !present {
			// A hole at next: wait for it until the first packet after it is latency old.
			first, firstArrival := j.firstAfter(j.next)
			if !flush && now.Sub(firstArrival) < j.latency {
				return releasedFrame{}, false
			}
			j.stats.Lost += first - j.next
			j.next = first
			loss = true
			continue
		}
		if len(head.p.Payload) == 0 { // padding
			delete(j.pkts, j.next)
			j.next++
			continue
		}
		if j.hasBrokenTS && head.p.Timestamp == j.brokenTS {
			j.stats.Dropped++
			delete(j.pkts, j.next)
			j.next++
			loss = true
			continue
		}
		if j.perPacketFrames {
			delete(j.pkts, j.next)
			j.next++
			j.released = true
			j.frame = append(j.frame, head.p)
			return releasedFrame{pkts: j.frame, arrival: head.arrival, lossBefore: loss}, true
		}
		if (loss || !j.released) && j.frameStart != nil && !j.frameStart(head.p) {
			// The frame's first packets were lost (or the track began mid-frame): everything of
			// this timestamp is unusable.
			j.brokenTS, j.hasBrokenTS = head.p.Timestamp, true
			continue
		}
		end, complete := j.frameEnd(j.next, head.p)
		if !complete {
			if !flush && now.Sub(head.arrival) < j.latency {
				return releasedFrame{}, false
			}
			// Give up on this frame: drop its packets and remember its timestamp.
			j.brokenTS, j.hasBrokenTS = head.p.Timestamp, true
			loss = true
			continue
		}
		for e := j.next; e <= end; e++ {
			if bp := j.pkts[e]; len(bp.p.Payload) > 0 {
				j.frame = append(j.frame, bp.p)
			}
			delete(j.pkts, e)
		}
		j.next = end + 1
		j.released = true
		return releasedFrame{pkts: j.frame, arrival: head.arrival, lossBefore: loss}, true
	}
	return releasedFrame{}, false
}

// frameEnd finds the last packet of the frame whose first packet, head, is at start: contiguous
// packets with head's timestamp up to the marker. A contiguous packet with a new timestamp also
// ends the frame (a sender that sets no marker). complete=false when a packet is missing.
func (j *jitterBuffer) frameEnd(start uint64, head *rtp.Packet) (uint64, bool) {
	ts := head.Timestamp
	e := start
	if j.scanHead == head && j.scanStart == start {
		e = j.scanEnd
	}
	for ; ; e++ {
		bp, ok := j.pkts[e]
		if !ok {
			j.scanStart, j.scanEnd, j.scanHead = start, e, head
			return 0, false
		}
		if len(bp.p.Payload) == 0 {
			// Padding inside or right after a frame: the frame is complete at the last media packet.
			if e > start {
				return e - 1, true
			}
			continue
		}
		if bp.p.Timestamp != ts {
			return e - 1, true
		}
		if bp.p.Marker {
			return e, true
		}
	}
}

// firstAfter returns the smallest buffered sequence number above seq and its arrival time.
// pop asks on every packet while a hole is waited for: holes are short, so it looks at the next
// sequence numbers first and scans the whole buffer only for a hole wider than the buffer.
func (j *jitterBuffer) firstAfter(seq uint64) (uint64, time.Time) {
	for e := seq + 1; e <= seq+uint64(len(j.pkts)); e++ {
		if bp, ok := j.pkts[e]; ok {
			return e, bp.arrival
		}
	}
	var best uint64
	var at time.Time
	found := false
	for e, bp := range j.pkts {
		if e > seq && (!found || e < best) {
			best, at, found = e, bp.arrival, true
		}
	}
	return best, at
}

// unwrapper extends an n-bit RTP counter (16-bit sequence numbers, 32-bit timestamps) to 64
// bits across wraps, choosing the candidate closest to the newest value seen (so packets
// reordered across a wrap land on the right side of it).
type unwrapper struct {
	last    uint64
	started bool
}

func (u *unwrapper) unwrap(v uint64, bits uint) uint64 {
	span := uint64(1) << bits
	if !u.started {
		u.started = true
		u.last = span + v // room below for reordered values
		return u.last
	}
	cycle := u.last &^ (span - 1)
	best := cycle | v
	for _, c := range []uint64{cycle - span, cycle + span} {
		if cand := c | v; absDiff(cand, u.last) < absDiff(best, u.last) {
			best = cand
		}
	}
	if best > u.last {
		u.last = best
	}
	return best
}

// seqUnwrapper extends 16-bit sequence numbers.
type seqUnwrapper struct{ u unwrapper }

func (s *seqUnwrapper) unwrap(seq uint16) uint64 { return s.u.unwrap(uint64(seq), 16) }

// tsUnwrapper extends 32-bit timestamps.
type tsUnwrapper struct{ u unwrapper }

func (t *tsUnwrapper) unwrap(ts uint32) uint64 { return t.u.unwrap(uint64(ts), 32) }

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
