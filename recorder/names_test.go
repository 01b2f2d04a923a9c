package recorder

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSafeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"u_bob-42.x", "u_bob-42.x"},
	} {
		if got := SafeName(tc.in); got != tc.want {
			t.Errorf("SafeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	hostile := []string{"", ".", "..", "../../etc/passwd", "/abs/path", "a/b", "a_b", "a\x00b", "a\nb", "C:\\x",
		strings.Repeat("x", 500), "ünïcødé", "~bot", ".hidden", "con", "a b"}
	seen := map[string]string{}
	for _, in := range hostile {
		got := SafeName(in)
		if got == "" || got == "." || got == ".." || strings.ContainsAny(got, "/\\\x00\n") || len(got) > maxNameLen ||
			strings.HasPrefix(got, ".") || filepath.Base(got) != got {
			t.Errorf("SafeName(%q) = %q is not a safe path element", in, got)
		}
		if other, dup := seen[got]; dup && other != in {
			t.Errorf("SafeName(%q) and SafeName(%q) collide: %q", in, other, got)
		}
		seen[got] = in
	}
}

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"alice", "../x", "a/b", "\x00", strings.Repeat("é", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SafeName(in)
		if got == "" || got == "." || got == ".." || strings.ContainsAny(got, "/\\\x00") || len(got) > maxNameLen || strings.HasPrefix(got, ".") {
			t.Fatalf("SafeName(%q) = %q", in, got)
		}
		if SafeName(in) != got {
			t.Fatal("not deterministic")
		}
	})
}
