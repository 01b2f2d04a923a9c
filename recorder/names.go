package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxNameLen bounds one path element derived from peer, channel or stream names.
const maxNameLen = 64

// SafeName turns an untrusted name (peer id, channel, role, stream id) into one file-system path
// element: only [A-Za-z0-9._-], no leading dot, at most maxNameLen bytes, never empty. Whenever
// the name had to change, a short hash of the original is appended, so two different names never
// collide (e.g. "a/b" and "a_b").
func SafeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if s == name && s != "" && len(s) <= maxNameLen {
		return s
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "-" + hex.EncodeToString(sum[:4])
	if len(s) > maxNameLen-len(suffix) {
		s = s[:maxNameLen-len(suffix)]
	}
	if s == "" {
		s = "x"
	}
	return s + suffix
}
