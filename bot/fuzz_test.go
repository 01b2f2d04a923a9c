package bot

import (
	"encoding/json"
	"testing"
)

// The parsers of everything a remote peer sends never panic, and what they accept is well-formed.
func FuzzParseSignals(f *testing.F) {
	for _, s := range []string{
		`{"type":"rtc-ice","candidate":null}`,
		`{"type":"rtc-ice","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"ab"}}`,
		`{"type":"rtc-description","description":{"type":"offer","sdp":"v=0\r\n"}}`,
		`{"__meteredTrackMeta":{"trackId":"t","metadata":{"role":"camera"}}}`,
		`{"__meteredTrackMeta":{"trackId":"t"}}`,
		"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB:CD\r\na=ice-ufrag:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
		`[1,2]`, `null`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if sig, ok := parseSignal(json.RawMessage(data)); ok {
			if sig.Description == nil && !sig.HasCandidate {
				t.Fatalf("accepted signal with neither description nor candidate: %q", data)
			}
			if d := sig.Description; d != nil && d.Type != "offer" && d.Type != "answer" {
				t.Fatalf("accepted description type %q", d.Type)
			}
		}
		if m, err := parseTrackMeta(json.RawMessage(data)); err == nil {
			if m.TrackID == "" || (m.Metadata != nil && (len(m.Metadata) > maxTrackMetaBytes || m.Metadata[0] != '{')) {
				t.Fatalf("accepted bad track metadata %+v from %q", m, data)
			}
		}
		if info, err := parseOffer(string(data)); err == nil {
			if info.Fingerprint == "" || len(info.Ufrags) == 0 {
				t.Fatalf("accepted offer without identity: %+v", info)
			}
		}
	})
}

func TestIceServersFromWelcome(t *testing.T) {
	for _, tc := range []struct {
		meta string
		ok   bool
		n    int
	}{
		{`{"iceServers":[{"urls":"stun:stun.example.net:3478"}]}`, true, 1},
		{`{"iceServers":[{"urls":["turn:t.example.net"],"username":"u","credential":"c"}]}`, true, 1},
		{`{"iceServers":[]}`, true, 0},
		{`{"iceServers":[{"urls":"http://x"}]}`, false, 0},
		{`{"iceServers":[{"urls":[]}]}`, false, 0},
		{`{"other":1}`, false, 0},
		{``, false, 0},
	} {
		got, ok := iceServersFromWelcome(json.RawMessage(tc.meta))
		if ok != tc.ok || len(got) != tc.n {
			t.Errorf("%s: ok=%v n=%d, want ok=%v n=%d", tc.meta, ok, len(got), tc.ok, tc.n)
		}
	}
}
