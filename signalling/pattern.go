package signalling

import (
	"errors"
	"fmt"
)

// Pattern is a compiled channel glob (§3.8): `*` matches any run without `/`, `**` any run
// including `/`, `\*` and `\\` are literal, everything else is literal, and the whole name must match.
type Pattern struct {
	src   string
	parts []patternPart
}

type patternPart struct {
	kind partKind
	lit  string
}

type partKind uint8

const (
	partLiteral    partKind = iota
	partStar                // *
	partDoubleStar          // **
)

// ErrBadPattern is wrapped by pattern compilation errors.
var ErrBadPattern = errors.New("bad channel pattern")

// CompilePattern parses a channel glob.
func CompilePattern(src string) (Pattern, error) {
	if src == "" {
		return Pattern{}, fmt.Errorf("%w: empty", ErrBadPattern)
	}
	if len(src) > 2*MaxChannelLen {
		return Pattern{}, fmt.Errorf("%w: longer than %d bytes", ErrBadPattern, 2*MaxChannelLen)
	}
	p := Pattern{src: src}
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			p.parts = append(p.parts, patternPart{kind: partLiteral, lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '\\':
			if i+1 >= len(src) || (src[i+1] != '*' && src[i+1] != '\\') {
				return Pattern{}, fmt.Errorf("%w: %q: backslash must escape * or \\", ErrBadPattern, src)
			}
			lit = append(lit, src[i+1])
			i++
		case '*':
			flush()
			kind := partStar
			if i+1 < len(src) && src[i+1] == '*' {
				kind = partDoubleStar
				i++
			}
			// Collapse runs of wildcards: "***" behaves as "**".
			if n := len(p.parts); n > 0 && p.parts[n-1].kind != partLiteral {
				if kind == partDoubleStar {
					p.parts[n-1].kind = partDoubleStar
				}
				continue
			}
			p.parts = append(p.parts, patternPart{kind: kind})
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return p, nil
}

// MustCompilePattern is CompilePattern for constants; it panics on error.
func MustCompilePattern(src string) Pattern {
	p, err := CompilePattern(src)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern's source.
func (p Pattern) String() string { return p.src }

// Match reports whether the whole channel name matches.
func (p Pattern) Match(name string) bool { return matchParts(p.parts, name) }

// matchParts sweeps the name once per part, tracking every position the parts so far can end
// at, so matching costs O(len(pattern)·len(name)) with no backtracking, even for hostile
// patterns such as "*a*a*a*a*a*b".
func matchParts(parts []patternPart, s string) bool {
	cur := make([]bool, len(s)+1) // cur[i]: the parts so far can match s[:i]
	next := make([]bool, len(s)+1)
	cur[0] = true
	for _, pt := range parts {
		clear(next)
		reachable := false
		switch pt.kind {
		case partLiteral:
			for pos := 0; pos+len(pt.lit) <= len(s); pos++ {
				if cur[pos] && hasPrefixAt(s, pos, pt.lit) {
					next[pos+len(pt.lit)] = true
					reachable = true
				}
			}
		case partStar, partDoubleStar:
			active := false
			for pos := 0; pos <= len(s); pos++ {
				if pos > 0 && pt.kind == partStar && s[pos-1] == '/' {
					active = false // * does not cross "/"
				}
				if cur[pos] {
					active = true
				}
				next[pos] = active
				reachable = reachable || active
			}
		}
		if !reachable {
			return false
		}
		cur, next = next, cur
	}
	return cur[len(s)]
}

func hasPrefixAt(s string, pos int, lit string) bool {
	return len(s)-pos >= len(lit) && s[pos:pos+len(lit)] == lit
}

// PatternSet is a list of patterns; a name is allowed when any pattern matches.
type PatternSet []Pattern

// CompilePatterns compiles every source.
func CompilePatterns(srcs []string) (PatternSet, error) {
	set := make(PatternSet, 0, len(srcs))
	for _, s := range srcs {
		p, err := CompilePattern(s)
		if err != nil {
			return nil, err
		}
		set = append(set, p)
	}
	return set, nil
}

// Match reports whether any pattern matches name.
func (s PatternSet) Match(name string) bool {
	for _, p := range s {
		if p.Match(name) {
			return true
		}
	}
	return false
}
