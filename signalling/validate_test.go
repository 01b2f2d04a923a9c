package signalling

import (
	"strings"
	"testing"
)

func TestValidateChannel(t *testing.T) {
	tests := []struct {
		name, channel, want string
	}{
		{"simple", "room", ""},
		{"with slashes", "acme/room-7/sub", ""},
		{"256 bytes", strings.Repeat("c", 256), ""},
		{"128 two-byte runes", strings.Repeat("é", 128), ""},
		{"85 three-byte runes + 1", strings.Repeat("日", 85) + "x", ""},
		{"emoji", "room-🎉", ""},
		{"space and punctuation", `a b!"#$%&'()*+,-./:;<=>?@[\]^_{|}~`, ""},
		{"U+00A0 is not C1", "a\u00a0b", ""},
		{"U+2028 is allowed", "a\u2028b", ""},
		{"reserved word without slash", "_metered", ""},
		{"reserved prefix later", "x/_system/y", ""},
		{"near-reserved", "_meteredx/y", ""},
		{"empty", "", CodeInvalidChannel},
		{"257 bytes", strings.Repeat("c", 257), CodeInvalidChannel},
		{"258 bytes of two-byte runes", strings.Repeat("é", 129), CodeInvalidChannel},
		{"NUL", "\x00", CodeInvalidChannel},
		{"tab", "a\tb", CodeInvalidChannel},
		{"US 0x1f", "a\x1f", CodeInvalidChannel},
		{"DEL", "\x7f", CodeInvalidChannel},
		{"C1 U+0080", "\u0080", CodeInvalidChannel},
		{"C1 U+0085", "a\u0085b", CodeInvalidChannel},
		{"C1 U+009F", "\u009f", CodeInvalidChannel},
		{"invalid UTF-8", "a\xffb", CodeInvalidChannel},
		{"truncated UTF-8", "a\xc3", CodeInvalidChannel},
		{"control char in a reserved name", "_system/\x00", CodeInvalidChannel},
		{"_metered/", "_metered/x", CodeChannelReserved},
		{"_internal/", "_internal/x", CodeChannelReserved},
		{"_system/", "_system/x", CodeChannelReserved},
		{"upper", "_METERED/x", CodeChannelReserved},
		{"mixed", "_InTeRnAl/a/b", CodeChannelReserved},
		{"prefix only", "_System/", CodeChannelReserved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidateChannel(tc.channel); got != tc.want {
				t.Fatalf("ValidateChannel(%q) = %q, want %q", tc.channel, got, tc.want)
			}
		})
	}
}

func TestIsReservedChannel(t *testing.T) {
	for ch, want := range map[string]bool{
		"_metered/": true, "_METERED/a": true, "_internal/": true, "_system/x/y": true, "_sYsTeM/": true,
		"_metered": false, "metered/": false, "_system": false, " _system/": false, "": false, "_sys": false,
		// Only ASCII case variants count: the SDK lower-cases with JS rules, which keep "ſ" (U+017F).
		"_ſystem/": false,
	} {
		if got := IsReservedChannel(ch); got != want {
			t.Errorf("IsReservedChannel(%q) = %v, want %v", ch, got, want)
		}
	}
}

func TestValidPeerID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "u_alice_123": true, strings.Repeat("p", 128): true, " ": true, "~": true,
		"3b6f0e8a-52d4-4f0c-9a61-7c2e1d9f4b80": true, "a b": true, `!"#$%&'()*+,-./:;<=>?@[\]^_{|}`: true,
		"": false, strings.Repeat("p", 129): false, "a\x00": false, "a\n": false, "\x1f": false, "\x7f": false,
		"é": false, "\xff": false, "日本": false, "a\u2028": false,
	} {
		if got := ValidPeerID(id); got != want {
			t.Errorf("ValidPeerID(%q) = %v, want %v", id, got, want)
		}
	}
}
