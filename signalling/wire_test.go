package signalling

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// stdJSONString is encoding/json's encoding of s without HTML escaping (the server never needs
// <, > and & escaped; everything else must be byte-identical).
func stdJSONString(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatalf("encode %q: %v", s, err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		"", "plain", `quote " backslash \ slash /`, "\n\r\t", "\b\f", "\x00\x01\x1f\x7f",
		"<script>&amp;</script>", "é日本語🎉", "\u2028\u2029", "a\u2028b\u2029c",
		"\xff", "a\xffb", "\xc3", "\xc3\x28", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xef\xbf\xbd",
		"\x80\x80\x80", strings.Repeat("x", 1000) + "\xfe",
	}
	for b := 0; b < 256; b++ {
		cases = append(cases, string([]byte{byte(b)}), "a"+string([]byte{byte(b)})+"z")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.IntN(24))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		got := string(appendJSONString(nil, s))
		if want := stdJSONString(t, s); got != want {
			t.Errorf("appendJSONString(%q)\n got %s\nwant %s", s, got, want)
		}
	}
}

func TestAppendJSONStringAppends(t *testing.T) {
	if got := string(appendJSONString([]byte("x="), "a\"b")); got != `x="a\"b"` {
		t.Fatalf("got %s", got)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\xff", "\u2028", "\b\f\x00", "é\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		if want := stdJSONString(t, s); string(got) != want {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("output %s is not valid JSON: %v", got, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip %q -> %q", s, back)
		}
	})
}

func TestEncodersProduceExactShapes(t *testing.T) {
	exp := int64(1767225600)
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"ack", encodeAck("0b9e1c52"), `{"type":"ack","requestId":"0b9e1c52"}`},
		{"ack escapes", encodeAck(`a"b`), `{"type":"ack","requestId":"a\"b"}`},
		{"error full", encodeError(CodeChannelNotAuthorized, "channel outside allowed patterns", "r1"),
			`{"type":"error","code":"channel_not_authorized","message":"channel outside allowed patterns","requestId":"r1"}`},
		{"error no request id", encodeError(CodeOverMessageQuota, "period quota exhausted", ""),
			`{"type":"error","code":"over_message_quota","message":"period quota exhausted"}`},
		{"error code only", encodeError(CodeInternalError, "", ""), `{"type":"error","code":"internal_error"}`},
		{"message", encodeMessage("acme/room-7", "u_bob", json.RawMessage(`{"chat":"hi"}`), nil),
			`{"type":"message","channel":"acme/room-7","from":"u_bob","data":{"chat":"hi"}}`},
		{"message with metadata", encodeMessage("c", "u", json.RawMessage(`null`), json.RawMessage(`{"displayName":"Bob"}`)),
			`{"type":"message","channel":"c","from":"u","data":null,"fromMetadata":{"displayName":"Bob"}}`},
		{"direct", encodeDirect("u_bob", json.RawMessage(`{"type":"rtc-ice","candidate":null}`), nil),
			`{"type":"direct","from":"u_bob","data":{"type":"rtc-ice","candidate":null}}`},
		{"direct with metadata", encodeDirect("u", json.RawMessage(`0`), json.RawMessage(`{"a":1}`)),
			`{"type":"direct","from":"u","data":0,"fromMetadata":{"a":1}}`},
		{"presence empty", encodePresence("c", nil, nil, false), `{"type":"presence","channel":"c","joined":[],"left":[]}`},
		{"presence joined", encodePresence("acme/room-7",
			[]PresenceEntry{{PeerID: "u_bob", Metadata: json.RawMessage(`{"displayName":"Bob"}`)}, {PeerID: "3b6f"}}, nil, false),
			`{"type":"presence","channel":"acme/room-7","joined":[{"peerId":"u_bob","metadata":{"displayName":"Bob"}},{"peerId":"3b6f"}],"left":[]}`},
		{"presence left", encodePresence("c", nil, []PresenceEntry{{PeerID: "u_bob"}}, false),
			`{"type":"presence","channel":"c","joined":[],"left":[{"peerId":"u_bob"}]}`},
		{"going_away", encodeGoingAway(1000), `{"type":"going_away","retryAfterMs":1000}`},
		{"pong", framePong, `{"type":"pong"}`},
		{"welcome token", encodeWelcome(Welcome{PeerID: "u_alice", ExpiresAt: &exp, ServerTime: 1767222000, MaxMessageSize: 65536,
			Metadata: json.RawMessage(`{"iceServers":[]}`)}),
			`{"type":"welcome","peerId":"u_alice","expiresAt":1767225600,"serverTime":1767222000,"maxMessageSize":65536,"metadata":{"iceServers":[]}}`},
		{"welcome key", encodeWelcome(Welcome{PeerID: "3b6f", ServerTime: 1, MaxMessageSize: 65536}),
			`{"type":"welcome","peerId":"3b6f","expiresAt":null,"serverTime":1,"maxMessageSize":65536}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("\n got %s\nwant %s", tc.got, tc.want)
			}
			if err := frameShapeError(tc.got); err != nil {
				t.Fatalf("shape: %v", err)
			}
		})
	}
}

func TestEncodePresenceOmitLeftHook(t *testing.T) {
	got := encodePresence("c", nil, nil, true)
	if string(got) != `{"type":"presence","channel":"c","joined":[]}` {
		t.Fatalf("got %s", got)
	}
	if frameShapeError(got) == nil {
		t.Fatal("shape checker accepts a presence frame without left")
	}
}

func TestEncodersEscapeStrings(t *testing.T) {
	odd := "a\"b\\c\n\x01\u2028\xff"
	for _, frame := range [][]byte{
		encodeAck(odd), encodeError(odd, odd, odd), encodeMessage(odd, odd, json.RawMessage(`1`), nil),
		encodeDirect(odd, json.RawMessage(`1`), nil), encodePresence(odd, []PresenceEntry{{PeerID: odd}}, nil, false),
	} {
		if !json.Valid(frame) {
			t.Fatalf("invalid JSON: %q", frame)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Request
		code string // expected DecodeError code, "" = success
		rid  string // expected DecodeError.RequestID
	}{
		{"subscribe", `{"type":"subscribe","channel":"acme/room-7","requestId":"r","includeSenderMetadata":true}`,
			Request{Type: "subscribe", Channel: "acme/room-7", RequestID: "r", IncludeSenderMetadata: true}, "", ""},
		{"publish data object", `{"type":"publish","channel":"c","data":{"a": [1, 2]}}`,
			Request{Type: "publish", Channel: "c", Data: json.RawMessage(`{"a": [1, 2]}`)}, "", ""},
		{"data null is present", `{"type":"send","to":"u","data":null}`,
			Request{Type: "send", To: "u", Data: json.RawMessage(`null`)}, "", ""},
		{"data absent", `{"type":"send","to":"u"}`, Request{Type: "send", To: "u"}, "", ""},
		{"nulls are absent", `{"type":"ping","requestId":null,"channel":null,"to":null,"includeSenderMetadata":null}`,
			Request{Type: "ping"}, "", ""},
		{"unknown fields ignored", `{"type":"ping","x":{"y":[]}}`, Request{Type: "ping"}, "", ""},
		{"empty type decodes", `{"type":""}`, Request{}, "", ""},
		{"requestId 128", `{"type":"ping","requestId":"` + strings.Repeat("r", 128) + `"}`,
			Request{Type: "ping", RequestID: strings.Repeat("r", 128)}, "", ""},
		{"not json", `nope`, Request{}, CodeMalformedMessage, ""},
		{"array", `[]`, Request{}, CodeMalformedMessage, ""},
		{"null", `null`, Request{}, CodeMalformedMessage, ""},
		{"trailing garbage", `{"type":"ping"}x`, Request{}, CodeMalformedMessage, ""},
		{"no type", `{"requestId":"r"}`, Request{}, CodeMalformedMessage, "r"},
		{"type null", `{"type":null,"requestId":"r"}`, Request{}, CodeMalformedMessage, "r"},
		{"type number", `{"type":1}`, Request{}, CodeMalformedMessage, ""},
		{"requestId number", `{"type":"ping","requestId":1}`, Request{}, CodeMalformedMessage, ""},
		{"requestId 129", `{"type":"ping","requestId":"` + strings.Repeat("r", 129) + `"}`, Request{}, CodeMalformedMessage, ""},
		{"channel bool", `{"type":"subscribe","channel":true,"requestId":"r"}`, Request{}, CodeMalformedMessage, "r"},
		{"to object", `{"type":"send","to":{},"requestId":"r"}`, Request{}, CodeMalformedMessage, "r"},
		{"includeSenderMetadata string", `{"type":"subscribe","includeSenderMetadata":"true"}`, Request{}, CodeMalformedMessage, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tc.in))
			if tc.code != "" {
				var de *DecodeError
				if !errors.As(err, &de) || de.Code != tc.code || de.RequestID != tc.rid || got != nil {
					t.Fatalf("DecodeRequest(%s) = %+v, %v; want DecodeError %s with requestId %q", tc.in, got, err, tc.code, tc.rid)
				}
				if !strings.HasPrefix(de.Error(), tc.code+": ") {
					t.Fatalf("Error() = %q", de.Error())
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeRequest(%s): %v", tc.in, err)
			}
			if got.Type != tc.want.Type || got.RequestID != tc.want.RequestID || got.Channel != tc.want.Channel ||
				got.To != tc.want.To || got.IncludeSenderMetadata != tc.want.IncludeSenderMetadata ||
				string(got.Data) != string(tc.want.Data) || (got.Data == nil) != (tc.want.Data == nil) {
				t.Fatalf("DecodeRequest(%s) = %+v, want %+v", tc.in, *got, tc.want)
			}
		})
	}
}
