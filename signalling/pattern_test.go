package signalling

import (
	"errors"
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		// Examples of §3.8.
		{"acme/*", "acme/room-1", true},
		{"acme/*", "acme/a/b", false},
		{"acme/**", "acme/room-1", true},
		{"acme/**", "acme/a/b", true},
		{"**", "anything/at/all", true},
		{"**", "", true},
		{"acme/room-*", "acme/room-1", true},
		{"acme/room-*", "acme/room-1/x", false},
		{"acme/room-*", "acme/lobby", false},
		{"room-*", "room-42", true},
		{"room-*", "admin-1", false},
		// Whole-string match.
		{"room", "room", true},
		{"room", "room1", false},
		{"room", "xroom", false},
		{"room", "Room", false},
		{"acme/*", "xacme/a", false},
		{"*", "", true},
		{"*", "abc", true},
		{"*", "a/b", false},
		{"*", "/", false},
		{"acme/*", "acme/", true},
		{"acme/**", "acme/", true},
		{"acme/**", "acme", false},
		{"**/x", "/x", true},
		{"**/x", "a/b/x", true},
		{"**/x", "a/b/y", false},
		{"*/x", "a/x", true},
		{"*/x", "a/b/x", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "a-b-c", true},
		{"a*b*c", "a/b/c", false},
		{"a**b**c", "a/b/c", true},
		{"a*b", "ab/b", false},
		{"a*b", "abb", true},
		{"*-*-*", "a-b-c", true},
		{"*-*-*", "a-b", false},
		{"*/*", "a/b", true},
		{"*/*", "a/b/c", false},
		{"**/*", "a/b/c", true},
		{"*/**", "a", false},
		// Runs of wildcards behave as **.
		{"***", "a/b", true},
		{"a***b", "a/x/b", true},
		{"a* *b", "a/ b", false},
		// Escapes.
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{`\*`, "*", true},
		{`\*`, "x", false},
		{`a\\b`, `a\b`, true},
		{`a\\b`, `a\\b`, false},
		{`\\*`, `\abc`, true},
		{`\\*`, `\a/c`, false},
		{`\*\*`, "**", true},
		{`\*\*`, "ab", false},
		{`*\*`, "abc*", true},
		{`*\*`, "abc", false},
		// Other glob metacharacters are literal.
		{"a?c", "abc", false},
		{"a?c", "a?c", true},
		{"[ab]", "a", false},
		{"[ab]", "[ab]", true},
		{"a.c", "abc", false},
		{"a+", "a+", true},
		{"(x)|y", "(x)|y", true},
		{"^$", "^$", true},
		// Non-ASCII.
		{"日本/*", "日本/ルーム", true},
		{"é*", "éé", true},
		{"*", "a\nb", true},
	}
	for _, tc := range tests {
		p, err := CompilePattern(tc.pattern)
		if err != nil {
			t.Fatalf("CompilePattern(%q): %v", tc.pattern, err)
		}
		if got := p.Match(tc.name); got != tc.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
		if re, ok := patternRegexp(tc.pattern); !ok || re.MatchString(tc.name) != tc.want {
			t.Errorf("oracle disagrees with the table for %q / %q", tc.pattern, tc.name)
		}
	}
}

func TestCompilePatternErrors(t *testing.T) {
	for _, src := range []string{"", `\`, `a\`, `\a`, `a\b*`, `\/`, strings.Repeat("a", 2*MaxChannelLen+1)} {
		_, err := CompilePattern(src)
		if !errors.Is(err, ErrBadPattern) {
			t.Errorf("CompilePattern(%q) = %v, want ErrBadPattern", src, err)
		}
	}
	if _, err := CompilePattern(strings.Repeat("a", 2*MaxChannelLen)); err != nil {
		t.Errorf("a %d-byte pattern is rejected: %v", 2*MaxChannelLen, err)
	}
}

func TestPatternHostileInputsStayFast(t *testing.T) {
	// A naive backtracking matcher is exponential on these; the memoised one returns at once.
	// There is no timing assertion: a regression shows up as a test timeout.
	long := strings.Repeat("a", MaxChannelLen)
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*a*a*a*a*a*b", long, false},
		{"*a*a*a*a*a*a", long, true},
		{"**a**a**a**a**a**b", strings.Repeat("a/", MaxChannelLen/2), false},
		{strings.Repeat("*a", MaxChannelLen-1) + "b", long, false},
		{strings.Repeat("**a", 170) + "b", long, false},
		{strings.Repeat(`*\*`, 170), strings.Repeat("*", MaxChannelLen), true},
	}
	for _, tc := range tests {
		p := MustCompilePattern(tc.pattern)
		for i := 0; i < 5; i++ {
			if got := p.Match(tc.name); got != tc.want {
				t.Fatalf("%.30q….Match(%.30q…) = %v, want %v", tc.pattern, tc.name, got, tc.want)
			}
		}
	}
}

func TestPatternSetAndHelpers(t *testing.T) {
	set, err := CompilePatterns([]string{"acme/*", "other/**"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"acme/a": true, "other/a/b": true, "acme/a/b": false, "x": false} {
		if got := set.Match(name); got != want {
			t.Errorf("set.Match(%q) = %v, want %v", name, got, want)
		}
	}
	if (PatternSet{}).Match("x") || PatternSet(nil).Match("x") {
		t.Error("an empty set matches")
	}
	if _, err := CompilePatterns([]string{"ok", `bad\`}); !errors.Is(err, ErrBadPattern) {
		t.Errorf("CompilePatterns with a bad entry = %v", err)
	}
	if s := MustCompilePattern(`a\*`).String(); s != `a\*` {
		t.Errorf("String() = %q", s)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustCompilePattern did not panic on a bad pattern")
		}
	}()
	MustCompilePattern("")
}
