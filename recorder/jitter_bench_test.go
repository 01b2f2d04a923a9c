package recorder

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// BenchmarkJitterAudio measures the per-packet worker path of an audio track: push, pop and
// depacketize, packets in order.
func BenchmarkJitterAudio(b *testing.B) {
	j := newJitterBuffer(time.Second, true, nil)
	dep, _ := NewDepacketizer("audio/opus")
	t0 := time.Unix(0, 0)
	pkts := make([]*rtp.Packet, 256)
	for i := range pkts {
		pkts[i] = &rtp.Packet{Header: rtp.Header{Timestamp: uint32(i * 960)}, Payload: []byte{0xFC, 1, 2, 3}}
	}
	b.ReportAllocs()
	for i := range b.N {
		p := pkts[i%len(pkts)]
		p.SequenceNumber = uint16(i)
		j.push(p, t0)
		for {
			f, ok := j.pop(t0, false)
			if !ok {
				break
			}
			if _, err := dep.Depacketize(f.pkts); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkJitterHole measures pushes while a hole is waited for: every pop looks for the first
// packet after the hole, with latency's worth of packets buffered.
func BenchmarkJitterHole(b *testing.B) {
	const buffered = 400 // a second of a 4 Mbps video track
	t0 := time.Unix(0, 0)
	b.ReportAllocs()
	for range b.N {
		j := newJitterBuffer(time.Second, true, nil)
		for i := range buffered {
			if i == 1 {
				continue // the hole
			}
			j.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i)}, Payload: []byte{1}}, t0)
			for {
				if _, ok := j.pop(t0, false); !ok {
					break
				}
			}
		}
	}
}

// BenchmarkJitterKeyframe measures a large frame (a keyframe of 300 packets) arriving packet by
// packet, with a pop after each as the track's worker does.
func BenchmarkJitterKeyframe(b *testing.B) {
	const size = 300
	t0 := time.Unix(0, 0)
	pkts := make([]*rtp.Packet, size)
	j := newJitterBuffer(time.Second, false, frameStartFunc("video/vp8"))
	b.ReportAllocs()
	for i := range b.N {
		for k := range pkts {
			pkts[k] = vp8pkt(uint16(i*size+k), uint32(i*3000), k == 0, k == size-1)
		}
		released := 0
		for _, p := range pkts {
			j.push(p, t0)
			for {
				if _, ok := j.pop(t0, false); !ok {
					break
				}
				released++
			}
		}
		if released != 1 {
			b.Fatalf("released %d frames, want 1", released)
		}
	}
}
