package signalling

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// newTestAuth builds an Authenticator over testConfig with a fixed clock.
func newTestAuth(t *testing.T, now time.Time) *Authenticator {
	t.Helper()
	cfg := testConfig()
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthenticator(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return now }
	return a
}

func TestAuthenticatorToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newTestAuth(t, now)
	exp := now.Add(time.Hour).Unix()
	sign := func(c jwt.MapClaims) string {
		return rawToken(t, jwt.SigningMethodHS256, testKID, []byte(testSecret), c)
	}
	base := func(extra jwt.MapClaims) jwt.MapClaims {
		return withClaims(jwt.MapClaims{"sub": "alice", "exp": exp}, extra)
	}
	tests := []struct {
		name  string
		token string
		close int // 0 = accepted
	}{
		{"valid", sign(base(nil)), 0},
		{"exp just after the lead", sign(base(jwt.MapClaims{"exp": now.Add(time.Second).Unix()})), 0},
		{"exp at now", sign(base(jwt.MapClaims{"exp": now.Unix()})), CloseTokenExpired},
		{"exp in the past", sign(base(jwt.MapClaims{"exp": now.Add(-time.Second).Unix()})), CloseTokenExpired},
		{"exp float", sign(base(jwt.MapClaims{"exp": float64(exp)})), 0},
		{"exp string", sign(base(jwt.MapClaims{"exp": "soon"})), CloseInvalidToken},
		{"exp missing", sign(base(jwt.MapClaims{"exp": nil})), CloseInvalidToken},
		{"nbf at leeway edge", sign(base(jwt.MapClaims{"nbf": now.Add(5 * time.Second).Unix()})), 0},
		{"nbf past leeway", sign(base(jwt.MapClaims{"nbf": now.Add(6 * time.Second).Unix()})), CloseInvalidToken},
		{"sub missing", sign(base(jwt.MapClaims{"sub": nil})), CloseInvalidToken},
		{"sub 128", sign(base(jwt.MapClaims{"sub": strings.Repeat("s", 128)})), 0},
		{"sub 129", sign(base(jwt.MapClaims{"sub": strings.Repeat("s", 129)})), CloseInvalidToken},
		{"permissions too many", sign(base(jwt.MapClaims{"permissions": strings.Split(strings.Repeat("send,", 17), ",")[:17]})), CloseInvalidToken},
		{"permissions unknown", sign(base(jwt.MapClaims{"permissions": []string{"Send"}})), CloseInvalidToken},
		{"channels 100", sign(base(jwt.MapClaims{"channels": strings.Split(strings.Repeat("a,", 100), ",")[:100]})), 0},
		{"channels 101", sign(base(jwt.MapClaims{"channels": strings.Split(strings.Repeat("a,", 101), ",")[:101]})), CloseInvalidToken},
		{"channels with empty pattern", sign(base(jwt.MapClaims{"channels": []string{""}})), CloseInvalidToken},
		{"metadata null", sign(base(jwt.MapClaims{"metadata": nil, "peerMetadata": nil})), 0},
		{"peerMetadata 4 KiB", sign(base(jwt.MapClaims{"peerMetadata": map[string]string{"b": strings.Repeat("p", MaxPeerMetadataBytes-8)}})), 0},
		{"peerMetadata over", sign(base(jwt.MapClaims{"peerMetadata": map[string]string{"b": strings.Repeat("p", MaxPeerMetadataBytes-7)}})), CloseInvalidToken},
		{"metadata 8 KiB", sign(base(jwt.MapClaims{"metadata": map[string]string{"b": strings.Repeat("m", MaxMetadataBytes-8)}})), 0},
		{"metadata over", sign(base(jwt.MapClaims{"metadata": map[string]string{"b": strings.Repeat("m", MaxMetadataBytes-7)}})), CloseInvalidToken},
		{"alg none", rawToken(t, jwt.SigningMethodNone, testKID, jwt.UnsafeAllowNoneSignatureType, base(nil)), CloseInvalidToken},
		{"HS384", rawToken(t, jwt.SigningMethodHS384, testKID, []byte(testSecret), base(nil)), CloseInvalidToken},
		{"wrong secret", rawToken(t, jwt.SigningMethodHS256, testKID, []byte(otherSecret), base(nil)), CloseInvalidToken},
		{"unknown kid", rawToken(t, jwt.SigningMethodHS256, "nope", []byte(testSecret), base(nil)), CloseInvalidToken},
		{"empty", "", CloseInvalidToken},
		{"garbage", "a.b.c", CloseInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Token(tc.token)
			if tc.close == 0 {
				if err != nil {
					t.Fatalf("Token: %v", err)
				}
				return
			}
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Close != tc.close || id != nil {
				t.Fatalf("Token = %v, %v; want AuthError %d", id, err, tc.close)
			}
			if strings.Contains(ae.Error(), testSecret) {
				t.Fatalf("error %q leaks the secret", ae.Error())
			}
		})
	}
}

func TestAuthenticatorTokenIdentity(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newTestAuth(t, now)
	exp := now.Add(time.Hour).Unix()
	tok := mint(t, Claims{Subject: "alice", ExpiresAt: exp, Channels: []string{"acme/room-*", "other/**"},
		Permissions: []Action{ActionSubscribe, ActionSend},
		Metadata:    json.RawMessage(`{ "iceServers" : [] }`), PeerMetadata: json.RawMessage("{\n\"n\": 1}")})
	id, err := a.Token(tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.PeerID != "alice" || id.ExpiresAt.Unix() != exp || id.App.ID != testApp || id.KeyID != testKID || id.Publishable {
		t.Fatalf("identity = %+v", id)
	}
	if string(id.Metadata) != `{"iceServers":[]}` || string(id.PeerMetadata) != `{"n":1}` {
		t.Fatalf("metadata %s / %s, want compacted", id.Metadata, id.PeerMetadata)
	}
	for act, want := range map[Action]bool{ActionSubscribe: true, ActionSend: true, ActionPublish: false, ActionPresence: false} {
		if id.Can(act) != want {
			t.Errorf("Can(%s) = %v, want %v", act, !want, want)
		}
	}
	for ch, want := range map[string]bool{"acme/room-1": true, "other/a/b": true, "acme/lobby": false, "x": false} {
		if id.Allows(ch) != want {
			t.Errorf("Allows(%q) = %v, want %v", ch, !want, want)
		}
	}

	// Effective grants are the intersection with the key's: the limited key allows only
	// subscribe on acme/*.
	lim, err := a.Token(mintWith(t, testKIDLimited, testSecretLimited, Claims{Subject: "l", ExpiresAt: exp,
		Channels: []string{"**"}, Permissions: []Action{ActionSubscribe, ActionPublish}}))
	if err != nil {
		t.Fatal(err)
	}
	if !lim.Can(ActionSubscribe) || lim.Can(ActionPublish) || !lim.Allows("acme/x") || lim.Allows("other/x") || lim.Allows("acme/x/y") {
		t.Fatalf("limited identity grants are not the intersection")
	}
}

func TestAuthenticatorEmptyClaimListsGrantNothing(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newTestAuth(t, now)
	exp := now.Add(time.Hour).Unix()
	// Minted through MintToken: empty lists must survive encoding (not be dropped as "absent").
	id, err := a.Token(mint(t, Claims{Subject: "a", ExpiresAt: exp, Channels: []string{}, Permissions: []Action{}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, act := range AllActions {
		if id.Can(act) {
			t.Errorf("empty permissions grant %s", act)
		}
	}
	if id.Allows("room") {
		t.Error("empty channels allow room")
	}
	// Absent lists mean the key's full grants.
	full, err := a.Token(mint(t, Claims{Subject: "b", ExpiresAt: exp}))
	if err != nil {
		t.Fatal(err)
	}
	if !full.Can(ActionSend) || !full.Allows("any/thing") {
		t.Error("absent claims do not fall back to the key's grants")
	}
}

func TestAuthenticatorPublishable(t *testing.T) {
	a := newTestAuth(t, time.Now())
	id, err := a.Publishable(testPK, "")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := uuid.Parse(id.PeerID); err != nil || u.Version() != 4 {
		t.Fatalf("peerId %q is not a UUID v4", id.PeerID)
	}
	if !id.Publishable || !id.ExpiresAt.IsZero() || id.PeerMetadata != nil || !id.Can(ActionSend) {
		t.Fatalf("identity = %+v", id)
	}
	id2, _ := a.Publishable(testPK, "")
	if id2.PeerID == id.PeerID {
		t.Fatal("peerId reused")
	}
	def, err := a.Publishable(testPKNoSend, "https://x")
	if err != nil {
		t.Fatal(err)
	}
	if def.Can(ActionSend) || !def.Can(ActionSubscribe) || !def.Can(ActionPublish) || !def.Can(ActionPresence) {
		t.Fatal("default publishable actions are not subscribe, publish, presence")
	}
	if _, err := a.Publishable(testPKOrigin, testOrigin); err != nil {
		t.Fatalf("allowed origin rejected: %v", err)
	}
	for _, o := range []string{"", "https://GOOD.example", testOrigin + "/", "null"} {
		var ae *AuthError
		if _, err := a.Publishable(testPKOrigin, o); !errors.As(err, &ae) || ae.Close != CloseInvalidToken {
			t.Errorf("origin %q: %v, want 4001", o, err)
		}
	}
	if _, err := a.Publishable("pk_nope", ""); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestAuthenticatorSecretKey(t *testing.T) {
	a := newTestAuth(t, time.Now())
	app, key, _, ok := a.SecretKey("Bearer " + testKID + ":" + testSecret)
	if !ok || app.ID != testApp || key.ID != testKID {
		t.Fatalf("valid bearer rejected")
	}
	for _, h := range []string{
		"", "Bearer", "Bearer ", testKID + ":" + testSecret, "Basic " + testKID + ":" + testSecret,
		"Bearer " + testKID, "Bearer " + testKID + ":", "Bearer " + testKID + ":" + testSecret + "x",
		"Bearer " + testKID + ":" + otherSecret, "Bearer " + testPK, "Bearer :" + testSecret, "Bearer nope:" + testSecret,
	} {
		if _, _, _, ok := a.SecretKey(h); ok {
			t.Errorf("SecretKey(%q) accepted", h)
		}
	}
}

func TestMintToken(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	for name, tc := range map[string]struct {
		kid, secret string
		c           Claims
	}{
		"no kid":            {"", testSecret, Claims{Subject: "a", ExpiresAt: exp}},
		"no secret":         {testKID, "", Claims{Subject: "a", ExpiresAt: exp}},
		"bad sub":           {testKID, testSecret, Claims{Subject: "a\n", ExpiresAt: exp}},
		"empty sub":         {testKID, testSecret, Claims{ExpiresAt: exp}},
		"no exp":            {testKID, testSecret, Claims{Subject: "a"}},
		"metadata array":    {testKID, testSecret, Claims{Subject: "a", ExpiresAt: exp, Metadata: json.RawMessage(`[]`)}},
		"big peerMetadata":  {testKID, testSecret, Claims{Subject: "a", ExpiresAt: exp, PeerMetadata: json.RawMessage(`{"b":"` + strings.Repeat("x", 5000) + `"}`)}},
		"invalid meta JSON": {testKID, testSecret, Claims{Subject: "a", ExpiresAt: exp, Metadata: json.RawMessage(`{"a":}`)}},
	} {
		if _, err := MintToken(tc.kid, tc.secret, tc.c); err == nil {
			t.Errorf("%s: MintToken succeeded", name)
		}
	}
	tok, err := MintToken(testKID, testSecret, Claims{Subject: "a", ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["alg"] != "HS256" || parsed.Header["kid"] != testKID {
		t.Fatalf("header = %v", parsed.Header)
	}
	claims := parsed.Claims.(jwt.MapClaims)
	if _, ok := claims["channels"]; ok {
		t.Errorf("absent channels encoded: %v", claims)
	}
	if _, ok := claims["permissions"]; ok {
		t.Errorf("absent permissions encoded: %v", claims)
	}
	if !tokenSignedBy(tok, testSecret) {
		t.Fatal("minted token fails the HMAC oracle")
	}
}
