package signalling

import (
	"strings"
	"unicode/utf8"
)

// MaxChannelLen is the longest channel name in UTF-8 bytes.
const MaxChannelLen = 256

// MaxPeerIDLen is the longest peer id.
const MaxPeerIDLen = 128

var reservedPrefixes = []string{"_metered/", "_internal/", "_system/"}

// ValidateChannel returns "" for a valid, unreserved channel name, or the §3.2 error code.
func ValidateChannel(ch string) string {
	if ch == "" || len(ch) > MaxChannelLen || !utf8.ValidString(ch) {
		return CodeInvalidChannel
	}
	for _, r := range ch {
		if isControl(r) {
			return CodeInvalidChannel
		}
	}
	if IsReservedChannel(ch) {
		return CodeChannelReserved
	}
	return ""
}

// IsReservedChannel reports whether ch starts, case-insensitively, with a reserved prefix.
func IsReservedChannel(ch string) bool {
	for _, p := range reservedPrefixes {
		if len(ch) >= len(p) && strings.EqualFold(ch[:len(p)], p) {
			return true
		}
	}
	return false
}

// ValidPeerID reports whether id is 1–128 printable ASCII characters.
func ValidPeerID(id string) bool {
	if id == "" || len(id) > MaxPeerIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7E {
			return false
		}
	}
	return true
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7F || (r >= 0x80 && r <= 0x9F)
}
