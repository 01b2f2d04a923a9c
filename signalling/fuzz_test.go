package signalling

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Fuzz targets. Seeds are added with f.Add; inputs that once failed live in testdata/fuzz/<Name>/.
// Run one locally with: go test -run='^$' -fuzz=FuzzDecodeRequest -fuzztime=30s ./signalling/

var knownDecodeCodes = map[string]bool{CodeMalformedMessage: true}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","channel":"acme/room-7","requestId":"0b9e1c52-58f3-4d0e-9d55-0c7d1c2a6f10","includeSenderMetadata":true}`,
		`{"type":"unsubscribe","channel":"acme/room-7","requestId":"4f1d"}`,
		`{"type":"publish","channel":"acme/room-7","data":{"chat":"hello"},"requestId":"9a7c"}`,
		`{"type":"send","to":"u_bob_456","data":{"type":"rtc-ice","candidate":null},"requestId":"c3d4"}`,
		`{"type":"send","to":"u","data":null}`,
		`{"type":"ping"}`,
		`{"type":"ping","requestId":null,"channel":null,"to":null,"includeSenderMetadata":null}`,
		`{"requestId":"x"}`,
		`{"type":1}`,
		`{"type":null,"requestId":"r"}`,
		`{"type":"subscribe","requestId":1}`,
		`{"type":"subscribe","channel":{}}`,
		`{"type":"a","type":"b"}`,
		`{"type":"x","requestId":"` + strings.Repeat("r", 129) + `"}`,
		`{"type":"x","data":` + strings.Repeat("[", 50) + strings.Repeat("]", 50) + `}`,
		"{\"type\":\"\xff\"}",
		`[]`, `null`, `"s"`, `1`, ``, ` `, `{`, `{"type":"ping"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := DecodeRequest(frame)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			if !knownDecodeCodes[de.Code] || de.Msg == "" {
				t.Fatalf("DecodeError %+v: unknown code or empty message", de)
			}
			if len(de.RequestID) > MaxRequestIDLen {
				t.Fatalf("DecodeError echoes a %d-byte requestId", len(de.RequestID))
			}
			if req != nil {
				t.Fatalf("non-nil request with an error")
			}
			return
		}
		if req == nil {
			t.Fatal("nil request without error")
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(frame, &obj) != nil || obj == nil {
			t.Fatalf("accepted %q, which is not a JSON object", frame)
		}
		var typ *string
		if json.Unmarshal(obj["type"], &typ) != nil || typ == nil || *typ != req.Type {
			t.Fatalf("accepted %q without a string type", frame)
		}
		if len(req.RequestID) > MaxRequestIDLen {
			t.Fatalf("accepted a %d-byte requestId", len(req.RequestID))
		}
		_, hasData := obj["data"]
		if hasData != (req.Data != nil) {
			t.Fatalf("data key present=%v but Data=%q", hasData, req.Data)
		}
		if req.Data != nil && !json.Valid(req.Data) {
			t.Fatalf("Data %q is not valid JSON", req.Data)
		}
	})
}

// patternRegexp is an independent oracle for §3.8: the glob translated to an anchored regexp.
// It reports ok=false for sources CompilePattern must reject.
func patternRegexp(src string) (*regexp.Regexp, bool) {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '\\':
			if i+1 >= len(src) || (src[i+1] != '*' && src[i+1] != '\\') {
				return nil, false
			}
			b.WriteString(regexp.QuoteMeta(src[i+1 : i+2]))
			i++
		case '*':
			if i+1 < len(src) && src[i+1] == '*' {
				b.WriteString(`.*`)
				i++
			} else {
				b.WriteString(`[^/]*`)
			}
		default:
			j := i
			for j < len(src) && src[j] != '\\' && src[j] != '*' {
				j++
			}
			b.WriteString(regexp.QuoteMeta(src[i:j]))
			i = j - 1
		}
	}
	b.WriteString(`\z`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, false
	}
	return re, true
}

func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"acme/*", "acme/room-1"}, {"acme/*", "acme/a/b"}, {"acme/**", "acme/a/b"}, {"**", ""},
		{"room-*", "admin-1"}, {`a\*b`, "a*b"}, {`a\\b`, `a\b`}, {`a\b`, "ab"}, {`\`, ""},
		{"***", "x/y"}, {"*/**/*", "a/b/c"}, {"*a*a*a*a*a*b", strings.Repeat("a", 200)},
		{"**a**a**a**b", strings.Repeat("a/", 100)}, {"x", "x"}, {"é*", "éé"}, {"a*", "a\n"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, src, name string) {
		if len(name) > 16*MaxChannelLen {
			return // the server validates names (≤256 bytes) before matching; keep the oracle fast
		}
		p, err := CompilePattern(src)
		if err != nil {
			if !errors.Is(err, ErrBadPattern) {
				t.Fatalf("CompilePattern(%q) error %v does not wrap ErrBadPattern", src, err)
			}
			return
		}
		got := p.Match(name)
		if !strings.ContainsAny(src, `*\`) && got != (src == name) {
			t.Fatalf("literal pattern %q Match(%q) = %v", src, name, got)
		}
		if !MustCompilePattern("**").Match(name) {
			t.Fatalf(`"**" does not match %q`, name)
		}
		if utf8.ValidString(src) && utf8.ValidString(name) {
			re, ok := patternRegexp(src)
			if !ok {
				t.Fatalf("CompilePattern accepted %q, which the oracle rejects", src)
			}
			if want := re.MatchString(name); got != want {
				t.Fatalf("pattern %q Match(%q) = %v, oracle says %v", src, name, got, want)
			}
		}
	})
}

// tokenSignedBy is an independent oracle: header alg HS256 and a valid HMAC-SHA256 of
// header.payload under secret.
func tokenSignedBy(tok, secret string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "HS256" {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	return hmac.Equal(sig, mac.Sum(nil))
}

func TestTokenOracle(t *testing.T) {
	tok := mint(t, Claims{Subject: "a"})
	if !tokenSignedBy(tok, testSecret) {
		t.Fatal("oracle rejects a minted token")
	}
	if tokenSignedBy(tok, "other-secret") || tokenSignedBy(tok[:len(tok)-2], testSecret) {
		t.Fatal("oracle accepts a wrong key or a changed signature")
	}
}

func FuzzToken(f *testing.F) {
	cfg := testConfig()
	cfg.Defaults()
	auth, err := NewAuthenticator(&cfg)
	if err != nil {
		f.Fatal(err)
	}
	far := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	seed := func(c Claims) string {
		c.ExpiresAt = far
		tok, err := MintToken(testKID, testSecret, c)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	valid := seed(Claims{Subject: "alice"})
	f.Add(valid)
	f.Add(seed(Claims{Subject: "bob", Channels: []string{"acme/*"}, Permissions: []Action{ActionSend},
		Metadata: json.RawMessage(`{"iceServers":[]}`), PeerMetadata: json.RawMessage(`{"n":1}`)}))
	f.Add(valid[:len(valid)-1])
	f.Add(strings.Replace(valid, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiSldUIiwia2lkIjoic2tfaWRfdGVzdCJ9.eyJzdWIiOiJhIiwiZXhwIjo0MTAyNDQ0ODAwfQ.")
	f.Add("")
	f.Add("a.b.c")
	f.Add("....")
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := auth.Token(raw)
		if err != nil {
			var ae *AuthError
			if !errors.As(err, &ae) || (ae.Close != CloseInvalidToken && ae.Close != CloseTokenExpired) {
				t.Fatalf("Token error %v is not an AuthError with 4001/4002", err)
			}
			return
		}
		if !tokenSignedBy(raw, testSecret) && !tokenSignedBy(raw, testSecretLimited) && !tokenSignedBy(raw, otherSecret) {
			t.Fatalf("accepted %q, which no configured key signed", raw)
		}
		if !ValidPeerID(id.PeerID) || id.ExpiresAt.IsZero() {
			t.Fatalf("accepted identity %+v", id)
		}
	})
}
