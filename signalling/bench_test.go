package signalling

import (
	"encoding/json"
	"fmt"
	"testing"
)

// Micro-benchmarks of the per-message hot paths. End-to-end numbers (a real server on loopback)
// are in ./loadtest (BenchmarkSendRoundTrip) and `roomtape bench signal`; see BENCHMARKS.md.

var benchSendFrame = []byte(`{"type":"send","to":"bench-1","requestId":"0b9e1c52-58f3-4d0e-9d55-0c7d1c2a6f10",` +
	`"data":{"type":"rtc-ice","candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host","sdpMid":"0"}}}`)

func BenchmarkDecodeRequest(b *testing.B) {
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"send", benchSendFrame},
		{"subscribe", []byte(`{"type":"subscribe","channel":"acme/room-7","requestId":"0b9e1c52-58f3-4d0e-9d55-0c7d1c2a6f10"}`)},
		{"ping", []byte(`{"type":"ping"}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.frame)))
			for b.Loop() {
				if _, err := DecodeRequest(bc.frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeDirect(b *testing.B) {
	req, err := DecodeRequest(benchSendFrame)
	if err != nil {
		b.Fatal(err)
	}
	meta := json.RawMessage(`{"displayName":"Alice","role":"host"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeDirect("u_alice_123", req.Data, meta)
	}
}

func BenchmarkEncodePresenceSnapshot(b *testing.B) {
	members := make([]PresenceEntry, 99)
	for i := range members {
		members[i] = PresenceEntry{PeerID: fmt.Sprintf("bench-%d", i), Metadata: json.RawMessage(`{"displayName":"x"}`)}
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = encodePresence("bench/fanout", members, nil, false)
	}
}
