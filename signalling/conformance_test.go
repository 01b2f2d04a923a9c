package signalling

// Conformance tests for §6.1 S1–S22 of the protocol spec (/work/shared/metered-protocol.md).
// Every test drives the real server over real WebSockets; every frame a test client reads is
// checked against the §2.3 shapes (S4) and the S8 invariant by readRaw.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// ---- S1: endpoint and credential parameters ----

func TestS1_UpgradeAtV1WithKeyOrToken(t *testing.T) {
	ts := newTestServer(t, nil)
	if w := ts.connect(t, keyQuery(testPK)).welcome; w.PeerID == "" {
		t.Fatalf("publishable key welcome without peerId: %+v", w)
	}
	if w := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "alice"}))).welcome; w.PeerID != "alice" {
		t.Fatalf("token welcome peerId = %q, want alice", w.PeerID)
	}
}

func TestS1_CredentialIsPercentDecoded(t *testing.T) {
	ts := newTestServer(t, nil)
	// "pk_live_a+b/c=d" arrives as pk_live_a%2Bb%2Fc%3Dd, as encodeURIComponent would send it.
	q := keyQuery(testPKSpecial)
	if !strings.Contains(q, "%2B") {
		t.Fatalf("query %q is not percent-encoded", q)
	}
	ts.connect(t, q)
}

func TestS1_LongQueryStringTolerated(t *testing.T) {
	ts := newTestServer(t, nil)
	pad := strings.Repeat("x", 32<<10)
	ts.connect(t, keyQuery(testPK)+"&pad="+pad)
	// A JWT whose claims make the query string long (metadata just under 8 KB, many channels).
	chans := make([]string, 100)
	for i := range chans {
		chans[i] = fmt.Sprintf("acme/some-fairly-long-channel-prefix-%03d/**", i)
	}
	meta := `{"blob":"` + strings.Repeat("m", 8000) + `"}`
	tok := mint(t, Claims{Subject: "long", Channels: chans, Metadata: json.RawMessage(meta)})
	if len(tokenQuery(tok)) < 12<<10 {
		t.Fatalf("token query only %d bytes", len(tokenQuery(tok)))
	}
	c := ts.connect(t, tokenQuery(tok))
	if string(c.welcome.Metadata) != meta {
		t.Fatalf("welcome metadata = %.60s…, want the token's", c.welcome.Metadata)
	}
}

func TestS1_OnlyV1IsTheEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, path := range []string{"/v1/", "/v2", "/", "/v1/x"} {
		ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
		ws, resp, err := websocket.Dial(ctx, ts.ws+path+"?"+keyQuery(testPK), nil)
		cancel()
		if err == nil {
			ws.CloseNow()
			t.Fatalf("%s accepted a WebSocket upgrade", path)
		}
		if resp == nil || resp.StatusCode == http.StatusSwitchingProtocols {
			t.Fatalf("%s: want an HTTP error, got %v", path, resp)
		}
	}
}

func TestS1_ExactlyOneCredential(t *testing.T) {
	ts := newTestServer(t, nil)
	tok := mint(t, Claims{Subject: "alice"})
	for name, q := range map[string]string{
		"none":        "",
		"unrelated":   "foo=bar",
		"both":        keyQuery(testPK) + "&" + tokenQuery(tok),
		"empty key":   "key=",
		"empty token": "token=",
	} {
		t.Run(name, func(t *testing.T) {
			ts.dial(t, q).expectClose(t, CloseInvalidToken)
		})
	}
}

// ---- S2: credential validation closes after the upgrade ----

func TestS2_BadCredentialsCloseAfterUpgrade(t *testing.T) {
	ts := newTestServer(t, nil)
	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	secret := []byte(testSecret)
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		return withClaims(jwt.MapClaims{"sub": "mallory", "exp": exp}, extra)
	}
	hs256 := func(extra jwt.MapClaims) string {
		return rawToken(t, jwt.SigningMethodHS256, testKID, secret, claims(extra))
	}
	valid := hs256(nil)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":`+fmt.Sprint(exp)+`}`)) + "." + parts[2]
	bigMeta := map[string]any{"blob": strings.Repeat("m", MaxMetadataBytes)}
	bigPeerMeta := map[string]any{"blob": strings.Repeat("p", MaxPeerMetadataBytes)}

	tests := []struct {
		name  string
		query string
		code  int
	}{
		{"unknown publishable key", keyQuery("pk_live_nope"), CloseInvalidToken},
		{"secret key id as key", keyQuery(testKID), CloseInvalidToken},
		{"jwt in key param", keyQuery(valid), CloseInvalidToken},
		{"not a jwt", tokenQuery("not-a-jwt"), CloseInvalidToken},
		{"two segments", tokenQuery(parts[0] + "." + parts[1]), CloseInvalidToken},
		{"empty signature", tokenQuery(parts[0] + "." + parts[1] + "."), CloseInvalidToken},
		{"tampered payload", tokenQuery(tampered), CloseInvalidToken},
		{"alg none", tokenQuery(rawToken(t, jwt.SigningMethodNone, testKID, jwt.UnsafeAllowNoneSignatureType, claims(nil))), CloseInvalidToken},
		{"HS384", tokenQuery(rawToken(t, jwt.SigningMethodHS384, testKID, secret, claims(nil))), CloseInvalidToken},
		{"HS512", tokenQuery(rawToken(t, jwt.SigningMethodHS512, testKID, secret, claims(nil))), CloseInvalidToken},
		{"wrong key", tokenQuery(rawToken(t, jwt.SigningMethodHS256, testKID, []byte("sk_secret_wrong"), claims(nil))), CloseInvalidToken},
		{"other app's secret with this kid", tokenQuery(rawToken(t, jwt.SigningMethodHS256, testKID, []byte(otherSecret), claims(nil))), CloseInvalidToken},
		{"unknown kid", tokenQuery(rawToken(t, jwt.SigningMethodHS256, "sk_id_nope", secret, claims(nil))), CloseInvalidToken},
		{"no kid", tokenQuery(rawToken(t, jwt.SigningMethodHS256, "", secret, claims(nil))), CloseInvalidToken},
		{"publishable key as kid", tokenQuery(rawToken(t, jwt.SigningMethodHS256, testPK, []byte(testPK), claims(nil))), CloseInvalidToken},
		{"missing sub", tokenQuery(hs256(jwt.MapClaims{"sub": nil})), CloseInvalidToken},
		{"empty sub", tokenQuery(hs256(jwt.MapClaims{"sub": ""})), CloseInvalidToken},
		{"numeric sub", tokenQuery(hs256(jwt.MapClaims{"sub": 42})), CloseInvalidToken},
		{"sub with control char", tokenQuery(hs256(jwt.MapClaims{"sub": "a\nb"})), CloseInvalidToken},
		{"sub over 128", tokenQuery(hs256(jwt.MapClaims{"sub": strings.Repeat("s", 129)})), CloseInvalidToken},
		{"sub non-ascii", tokenQuery(hs256(jwt.MapClaims{"sub": "alicé"})), CloseInvalidToken},
		{"missing exp", tokenQuery(hs256(jwt.MapClaims{"exp": nil})), CloseInvalidToken},
		{"nbf in the future", tokenQuery(hs256(jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()})), CloseInvalidToken},
		{"oversize metadata", tokenQuery(hs256(jwt.MapClaims{"metadata": bigMeta})), CloseInvalidToken},
		{"oversize peerMetadata", tokenQuery(hs256(jwt.MapClaims{"peerMetadata": bigPeerMeta})), CloseInvalidToken},
		{"metadata not an object", tokenQuery(hs256(jwt.MapClaims{"metadata": []int{1}})), CloseInvalidToken},
		{"peerMetadata not an object", tokenQuery(hs256(jwt.MapClaims{"peerMetadata": "x"})), CloseInvalidToken},
		{"unknown permission", tokenQuery(hs256(jwt.MapClaims{"permissions": []string{"admin"}})), CloseInvalidToken},
		{"too many channels", tokenQuery(hs256(jwt.MapClaims{"channels": make([]string, MaxTokenChannels+1)})), CloseInvalidToken},
		{"bad channel pattern", tokenQuery(hs256(jwt.MapClaims{"channels": []string{`a\b`}})), CloseInvalidToken},
		{"expired", tokenQuery(hs256(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), CloseTokenExpired},
		{"exp now (inside the pre-expiry window)", tokenQuery(hs256(jwt.MapClaims{"exp": now.Unix()})), CloseTokenExpired},
		{"suspended app", keyQuery(suspendedPK), CloseSuspended},
		{"origin not allowed", keyQuery(testPKOrigin), CloseInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// dial asserts HTTP 101; expectClose asserts the close is the first thing received.
			reason := ts.dial(t, tc.query).expectClose(t, tc.code)
			if strings.Contains(reason, testSecret) || len(reason) > 123 {
				t.Fatalf("close reason %q leaks the secret or is too long", reason)
			}
		})
	}
}

func TestS2_AcceptedTokenVariants(t *testing.T) {
	ts := newTestServer(t, nil)
	now := time.Now()
	secret := []byte(testSecret)
	for name, c := range map[string]jwt.MapClaims{
		"nbf within leeway":         {"sub": "a1", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(2 * time.Second).Unix()},
		"nbf in the past":           {"sub": "a2", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix()},
		"iss and aud ignored":       {"sub": "a3", "exp": now.Add(time.Hour).Unix(), "iss": "free text", "aud": "whatever"},
		"exp far in the future":     {"sub": "a4", "exp": now.Add(10 * 365 * 24 * time.Hour).Unix()},
		"metadata exactly at limit": {"sub": "a5", "exp": now.Add(time.Hour).Unix(), "metadata": map[string]any{"b": strings.Repeat("m", MaxMetadataBytes-8)}},
		"printable ascii sub":       {"sub": "~!@#$%^&*()_+ {}|:<>?", "exp": now.Add(time.Hour).Unix()},
	} {
		t.Run(name, func(t *testing.T) {
			c := ts.connect(t, tokenQuery(rawToken(t, jwt.SigningMethodHS256, testKID, secret, c)))
			if !ValidPeerID(c.welcome.PeerID) {
				t.Fatalf("welcome peerId %q", c.welcome.PeerID)
			}
		})
	}
}

// ---- S3: welcome ----

func TestS3_WelcomeForToken(t *testing.T) {
	ts := newTestServer(t, nil)
	exp := time.Now().Add(time.Hour).Unix()
	start := time.Now()
	c := ts.dial(t, tokenQuery(mint(t, Claims{Subject: "alice", ExpiresAt: exp,
		Metadata: json.RawMessage(`{"room": "r1"}`), PeerMetadata: json.RawMessage(`{"displayName":"Alice"}`)})))
	raw := c.readRaw(t)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("welcome after %s, want within 10 s", d)
	}
	var w struct {
		Type           string          `json:"type"`
		PeerID         string          `json:"peerId"`
		ExpiresAt      int64           `json:"expiresAt"`
		ServerTime     float64         `json:"serverTime"`
		MaxMessageSize int             `json:"maxMessageSize"`
		Metadata       json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &w); err != nil || w.Type != TypeWelcome {
		t.Fatalf("first frame %s is not a welcome", raw)
	}
	if w.PeerID != "alice" || w.ExpiresAt != exp || w.MaxMessageSize != 65536 {
		t.Fatalf("welcome %s: want peerId alice, expiresAt %d, maxMessageSize 65536", raw, exp)
	}
	if d := w.ServerTime - float64(time.Now().Unix()); d < -5 || d > 5 {
		t.Fatalf("serverTime %v is not Unix seconds near now", w.ServerTime)
	}
	if string(w.Metadata) != `{"room":"r1"}` {
		t.Fatalf("welcome metadata = %s, want the token's metadata", w.Metadata)
	}
	// Exactly one welcome: the next frame is the pong of a ping.
	c.sync(t)
	c.sync(t)
}

func TestS3_WelcomeForPublishableKey(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial(t, keyQuery(testPK))
	raw := c.readRaw(t)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if string(m["type"]) != `"welcome"` || string(m["expiresAt"]) != "null" {
		t.Fatalf("welcome %s: want expiresAt present and null", raw)
	}
	if md, ok := m["metadata"]; ok && string(md) != "{}" {
		t.Fatalf("welcome metadata = %s, want absent or {} without token metadata or ICE servers", md)
	}
	c.sync(t)
}

func TestS3_MaxMessageSizeConfigurable(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.MaxMessageSize = 2048 })
	if got := ts.connect(t, keyQuery(testPK)).welcome.MaxMessageSize; got != 2048 {
		t.Fatalf("maxMessageSize = %d, want 2048", got)
	}
}

func TestS3_ICEServersInjected(t *testing.T) {
	ice := []ICEServer{{URLs: []string{"stun:stun.example.net:3478"}}, {URLs: []string{"turn:turn.example.net:3478"}, Username: "u", Credential: "p"}}
	ts := newTestServer(t, func(c *ServerConfig) { c.ICEServers = ice })
	wantICE := `[{"urls":["stun:stun.example.net:3478"]},{"urls":["turn:turn.example.net:3478"],"username":"u","credential":"p"}]`
	iceOf := func(t *testing.T, meta json.RawMessage) (map[string]json.RawMessage, string) {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal(meta, &m); err != nil {
			t.Fatalf("welcome metadata %s is not an object", meta)
		}
		return m, string(m["iceServers"])
	}
	t.Run("publishable key", func(t *testing.T) {
		_, got := iceOf(t, ts.connect(t, keyQuery(testPK)).welcome.Metadata)
		if got != wantICE {
			t.Fatalf("iceServers = %s, want %s", got, wantICE)
		}
	})
	t.Run("token without iceServers keeps its metadata", func(t *testing.T) {
		c := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "a", Metadata: json.RawMessage(`{"room":"r1"}`)})))
		m, got := iceOf(t, c.welcome.Metadata)
		if got != wantICE || string(m["room"]) != `"r1"` {
			t.Fatalf("metadata = %s, want room r1 and the configured iceServers", c.welcome.Metadata)
		}
	})
	t.Run("token iceServers take precedence", func(t *testing.T) {
		own := `{"iceServers":[{"urls":"stun:own.example:3478"}]}`
		c := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "b", Metadata: json.RawMessage(own)})))
		if string(c.welcome.Metadata) != own {
			t.Fatalf("metadata = %s, want the token's own %s", c.welcome.Metadata, own)
		}
	})
}

// ---- S4: frame shapes ----

func TestS4_ExactFrameShapes(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	b := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "bob", PeerMetadata: json.RawMessage(`{"n": "Bob"}`)})))

	a.send(t, `{"type":"subscribe","channel":"room","requestId":"r1"}`)
	a.expectRaw(t, `{"type":"ack","requestId":"r1"}`)
	a.expectRaw(t, `{"type":"presence","channel":"room","joined":[],"left":[]}`)
	b.send(t, `{"type":"subscribe","channel":"room","requestId":"r2"}`)
	b.expectRaw(t, `{"type":"ack","requestId":"r2"}`)
	b.expectRaw(t, `{"type":"presence","channel":"room","joined":[{"peerId":"alice"}],"left":[]}`)
	a.expectRaw(t, `{"type":"presence","channel":"room","joined":[{"peerId":"bob","metadata":{"n":"Bob"}}],"left":[]}`)

	// data null is still carried (the key must be present).
	b.send(t, `{"type":"publish","channel":"room","data":null}`)
	a.expectRaw(t, `{"type":"message","channel":"room","from":"bob","data":null}`)
	b.send(t, `{"type":"send","to":"alice","data":null}`)
	a.expectRaw(t, `{"type":"direct","from":"bob","data":null,"fromMetadata":{"n":"Bob"}}`)
	a.send(t, `{"type":"send","to":"bob","data":false}`)
	b.expectRaw(t, `{"type":"direct","from":"alice","data":false}`)

	a.send(t, `{"type":"bogus","requestId":"r3"}`)
	a.expectRaw(t, `{"type":"error","code":"unknown_type","message":"unknown message type","requestId":"r3"}`)
	a.send(t, `{"type":"unsubscribe","channel":"room"}`)
	b.expectRaw(t, `{"type":"presence","channel":"room","joined":[],"left":[{"peerId":"alice"}]}`)
	a.send(t, `{"type":"ping"}`)
	a.expectRaw(t, `{"type":"pong"}`)
}

// ---- S5: request/ack correlation ----

func TestS5_EachRequestGetsExactlyOneReply(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	b := ts.connectAs(t, "bob")
	b.subscribe(t, "room", "b1")

	a.send(t, `{"type":"subscribe","channel":"room","requestId":"s1","extra":{"ignored":true},"includeSenderMetadata":false}`)
	a.expectAck(t, "s1")
	a.expectPresence(t, "room", []string{"bob"}, nil)
	b.expectPresence(t, "room", []string{"alice"}, nil)
	a.send(t, `{"type":"publish","channel":"room","data":1,"requestId":"p1","unknown":[1,2]}`)
	a.expectAck(t, "p1")
	b.expect(t, TypeMessage)
	a.send(t, `{"type":"send","to":"bob","data":2,"requestId":"d1","z":null}`)
	a.expectAck(t, "d1")
	b.expect(t, TypeDirect)
	a.send(t, `{"type":"unsubscribe","channel":"room","requestId":"u1"}`)
	a.expectAck(t, "u1")
	b.expectPresence(t, "room", nil, []string{"alice"})
	a.sync(t) // nothing else (no second ack) was queued
	b.sync(t)
}

func TestS5_NoAckWithoutRequestID(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	ts.connectAs(t, "bob")
	a.send(t, `{"type":"subscribe","channel":"room"}`)
	a.expectPresence(t, "room", nil, nil) // snapshot, no ack
	a.send(t, `{"type":"publish","channel":"room","data":1}`)
	a.send(t, `{"type":"send","to":"bob","data":1}`)
	a.send(t, `{"type":"unsubscribe","channel":"room"}`)
	a.sync(t)
	// Errors without a requestId carry none.
	a.send(t, `{"type":"send","to":"nobody","data":1}`)
	a.expectError(t, CodePeerNotFound, "")
}

func TestS5_UnsubscribeWhenNotSubscribedIsAcked(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	a.send(t, `{"type":"unsubscribe","channel":"never-joined","requestId":"u1"}`)
	a.expectAck(t, "u1")
	a.subscribe(t, "room", "s1")
	a.send(t, `{"type":"unsubscribe","channel":"room","requestId":"u2"}`)
	a.expectAck(t, "u2")
	a.send(t, `{"type":"unsubscribe","channel":"room","requestId":"u3"}`)
	a.expectAck(t, "u3")
	// A reserved channel is never joined, so leaving it is acked too (§3.2 lists
	// channel_reserved for subscribe and publish only).
	a.send(t, `{"type":"unsubscribe","channel":"_system/x","requestId":"u4"}`)
	a.expectAck(t, "u4")
	a.sync(t)
}

func TestS5_RequestIDEchoedOnErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	rid := strings.Repeat("r", MaxRequestIDLen) // the longest accepted
	for _, tc := range []struct{ frame, code string }{
		{`{"type":"subscribe","channel":"","requestId":%s}`, CodeInvalidChannel},
		{`{"type":"publish","channel":"room","requestId":%s}`, CodeMissingData},
		{`{"type":"send","to":"","data":1,"requestId":%s}`, CodeInvalidPeerID},
		{`{"type":"nope","requestId":%s}`, CodeUnknownType},
		{`{"type":"subscribe","channel":7,"requestId":%s}`, CodeMalformedMessage},
		{`{"requestId":%s}`, CodeMalformedMessage},
	} {
		a.send(t, fmt.Sprintf(tc.frame, jsonString(rid)))
		a.expectError(t, tc.code, rid)
	}
}

// ---- S6: ping ----

func TestS6_PingAnsweredWithPong(t *testing.T) {
	// A strict limiter (1/s, burst 1) shows that pings are exempt while other frames count.
	ts := newTestServer(t, func(c *ServerConfig) {
		c.RateLimit = RateLimitConfig{Enabled: true, PerSecond: 1, Burst: 1}
	})
	a := ts.connectAs(t, "alice")
	for i := 0; i < 300; i++ {
		a.send(t, `{"type":"ping"}`)
	}
	for i := 0; i < 300; i++ {
		a.expectRaw(t, `{"type":"pong"}`)
	}
	a.send(t, `{"type":"ping","requestId":"x","extra":1}`)
	a.expectRaw(t, `{"type":"pong"}`)
	// The limiter is active: the first counted frame passes, the second closes with 4011.
	a.send(t, `{"type":"publish","channel":"room","data":1,"requestId":"p1"}`)
	a.expectAck(t, "p1")
	a.send(t, `{"type":"publish","channel":"room","data":2,"requestId":"p2"}`)
	a.expectClose(t, CloseOverRate)
}

// ---- S7: subscribe atomicity and ordering ----

func TestS7_AckThenSnapshotEvenWhenEmpty(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	a.send(t, `{"type":"subscribe","channel":"room","requestId":"s1"}`)
	a.expectAck(t, "s1")
	a.expectRaw(t, `{"type":"presence","channel":"room","joined":[],"left":[]}`)
	a.sync(t)
}

func TestS7_SnapshotListsOtherMembersAndJoinedIsBroadcast(t *testing.T) {
	ts := newTestServer(t, nil)
	meta := func(n string) json.RawMessage { return json.RawMessage(`{"displayName":"` + n + `"}`) }
	a := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "alice", PeerMetadata: meta("Alice")})))
	b := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "bob", PeerMetadata: meta("Bob")})))
	k := ts.connect(t, keyQuery(testPK)) // publishable: no metadata
	a.subscribe(t, "room", "a1")
	b.send(t, `{"type":"subscribe","channel":"room","requestId":"b1"}`)
	b.expectAck(t, "b1")
	b.expectRaw(t, `{"type":"presence","channel":"room","joined":[{"peerId":"alice","metadata":{"displayName":"Alice"}}],"left":[]}`)
	a.expectRaw(t, `{"type":"presence","channel":"room","joined":[{"peerId":"bob","metadata":{"displayName":"Bob"}}],"left":[]}`)

	snap := k.subscribe(t, "room", "k1")
	if !sameIDs(peerIDs(snap.Joined), []string{"alice", "bob"}) {
		t.Fatalf("snapshot joined = %v, want alice and bob", peerIDs(snap.Joined))
	}
	for _, e := range snap.Joined {
		if want := `{"displayName":"` + map[string]string{"alice": "Alice", "bob": "Bob"}[e.PeerID] + `"}`; string(e.Metadata) != want {
			t.Fatalf("snapshot entry %s metadata %s, want %s", e.PeerID, e.Metadata, want)
		}
	}
	want := `{"type":"presence","channel":"room","joined":[{"peerId":"` + k.welcome.PeerID + `"}],"left":[]}`
	a.expectRaw(t, want)
	b.expectRaw(t, want)
	for _, c := range []*testClient{a, b, k} {
		c.sync(t)
	}
}

func TestS7_RepeatedSubscribeGetsFreshSnapshotWithoutSecondJoined(t *testing.T) {
	ts := newTestServer(t, nil)
	a, b := ts.pair(t, "room", "alice", "bob")
	for i := 0; i < 3; i++ {
		rid := fmt.Sprintf("again-%d", i)
		snap := b.subscribe(t, "room", rid)
		if !sameIDs(peerIDs(snap.Joined), []string{"alice"}) {
			t.Fatalf("repeated snapshot joined = %v, want [alice]", peerIDs(snap.Joined))
		}
	}
	a.sync(t) // no second joined for bob was queued
	b.sync(t)
}

func TestS7_ConcurrentSubscribersSeeConsistentPresence(t *testing.T) {
	ts := newTestServer(t, nil)
	const n = 12
	clients := make([]*testClient, n)
	for i := range clients {
		clients[i] = ts.connectAs(t, fmt.Sprintf("p%02d", i))
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.ws.Write(context.Background(), websocket.MessageText, []byte(fmt.Sprintf(`{"type":"subscribe","channel":"room","requestId":"s%d"}`, i)))
		}()
	}
	wg.Wait()
	for i, c := range clients {
		self := fmt.Sprintf("p%02d", i)
		// The first frame is the ack, the second the snapshot; then one joined per later
		// subscriber. Every other peer must be announced exactly once overall.
		c.expectAck(t, fmt.Sprintf("s%d", i))
		seen := map[string]int{}
		snap := c.expect(t, TypePresence)
		for _, id := range peerIDs(snap.Joined) {
			seen[id]++
		}
		for len(seen) < n-1 {
			f := c.expect(t, TypePresence)
			if len(f.Joined) != 1 || len(f.Left) != 0 {
				t.Fatalf("%s: delta %+v, want exactly one joined", self, f)
			}
			seen[f.Joined[0].PeerID]++
		}
		for id, k := range seen {
			if id == self || k != 1 {
				t.Fatalf("%s: peer %s announced %d times (self must never be announced)", self, id, k)
			}
		}
		c.sync(t)
	}
}

// TestS7_TestHookBreaksOrdering proves the ordering check above can fail: the
// snapshot_before_ack hook (interop scenario 29) puts the snapshot first.
func TestS7_TestHookBreaksOrdering(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.Testing.SnapshotBeforeAck = true })
	a := ts.connectAs(t, "alice")
	a.send(t, `{"type":"subscribe","channel":"room","requestId":"s1"}`)
	if f := a.readFrame(t); f.Type != TypePresence {
		t.Fatalf("with the hook the first frame is %q, want presence", f.Type)
	}
	a.expectAck(t, "s1")
}

// ---- S8: never joined and left for one peer in one frame ----

func TestS8_LeaveThenJoinAreTwoFrames(t *testing.T) {
	ts := newTestServer(t, nil)
	obs := ts.connectAs(t, "observer")
	obs.subscribe(t, "room", "o1")
	old := ts.connectAs(t, "alice")
	old.subscribe(t, "room", "a1")
	obs.expectRaw(t, `{"type":"presence","channel":"room","joined":[{"peerId":"alice"}],"left":[]}`)

	fresh := ts.connectAs(t, "alice")
	fresh.subscribe(t, "room", "a2")
	// readRaw rejects any frame naming alice in both arrays; require the exact two frames.
	obs.expectRaw(t, `{"type":"presence","channel":"room","joined":[],"left":[{"peerId":"alice"}]}`)
	obs.expectRaw(t, `{"type":"presence","channel":"room","joined":[{"peerId":"alice"}],"left":[]}`)
	obs.sync(t)
	if got := old.expectClose(t, CloseAdminDisconnect); got != "superseded" {
		t.Fatalf("old connection close reason %q, want superseded", got)
	}
}

func TestS8_ShapeCheckerRejectsBothArrays(t *testing.T) {
	// The invariant checker used by every test must itself be able to fail.
	bad := `{"type":"presence","channel":"c","joined":[{"peerId":"x"}],"left":[{"peerId":"x"}]}`
	if err := frameShapeError([]byte(bad)); err == nil || !strings.Contains(err.Error(), "S8") {
		t.Fatalf("frameShapeError(%s) = %v, want an S8 violation", bad, err)
	}
	for _, f := range []string{
		`{"type":"presence","channel":"c","joined":[]}`,
		`{"type":"welcome","peerId":"p","serverTime":1,"maxMessageSize":1}`,
		`{"type":"message","channel":"c","from":"f"}`,
		`{"type":"error","code":""}`,
		`{"type":"ack","requestId":"r","extra":1}`,
	} {
		if frameShapeError([]byte(f)) == nil {
			t.Errorf("frameShapeError accepted %s", f)
		}
	}
}

// ---- S9: left on every way of leaving ----

func TestS9_LeftBroadcastForEveryChannel(t *testing.T) {
	leave := map[string]func(t *testing.T, ts *testServer, c *testClient){
		"unsubscribe": func(t *testing.T, ts *testServer, c *testClient) {
			c.send(t, `{"type":"unsubscribe","channel":"room1","requestId":"u1"}`)
			c.expectAck(t, "u1")
			c.send(t, `{"type":"unsubscribe","channel":"room2","requestId":"u2"}`)
			c.expectAck(t, "u2")
		},
		"client close": func(t *testing.T, ts *testServer, c *testClient) {
			if err := c.ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
				t.Fatalf("close: %v", err)
			}
		},
		"abrupt disconnect": func(t *testing.T, ts *testServer, c *testClient) {
			c.ws.CloseNow()
		},
		"kick": func(t *testing.T, ts *testServer, c *testClient) {
			status, _ := ts.restCall(t, http.MethodDelete, "/v1/peers/leaver", testBearer, nil, nil)
			if status != http.StatusOK {
				t.Fatalf("kick status %d", status)
			}
			c.expectClose(t, CloseAdminDisconnect)
		},
	}
	for name, fn := range leave {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			m1 := ts.connectAs(t, "m1")
			m2 := ts.connectAs(t, "m2")
			m1.subscribe(t, "room1", "s")
			m2.subscribe(t, "room2", "s")
			c := ts.connectAs(t, "leaver")
			c.subscribe(t, "room1", "l1")
			c.subscribe(t, "room2", "l2")
			m1.expectPresence(t, "room1", []string{"leaver"}, nil)
			m2.expectPresence(t, "room2", []string{"leaver"}, nil)
			fn(t, ts, c)
			m1.expectRaw(t, `{"type":"presence","channel":"room1","joined":[],"left":[{"peerId":"leaver"}]}`)
			m2.expectRaw(t, `{"type":"presence","channel":"room2","joined":[],"left":[{"peerId":"leaver"}]}`)
			m1.sync(t)
			m2.sync(t)
		})
	}
}

func TestS9_LeaverGetsNoLeftAndEmptyChannelsVanish(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	a.subscribe(t, "room", "s1")
	a.send(t, `{"type":"unsubscribe","channel":"room","requestId":"u1"}`)
	a.expectAck(t, "u1")
	a.sync(t)
	waitFor(t, "no channels", func() bool { _, n := ts.srv.broker.Counts(); return n == 0 })
}

// ---- S10: newest connection wins ----

func TestS10_NewestConnectionWins(t *testing.T) {
	ts := newTestServer(t, nil)
	obs := ts.connectAs(t, "observer")
	obs.subscribe(t, "room", "o1")
	obs.subscribe(t, "room2", "o2")
	old := ts.connectAs(t, "alice")
	old.subscribe(t, "room", "a1")
	old.subscribe(t, "room2", "a2")
	obs.expectPresence(t, "room", []string{"alice"}, nil)
	obs.expectPresence(t, "room2", []string{"alice"}, nil)

	fresh := ts.connectAs(t, "alice")
	// (a) the old connection is closed with 4020 "superseded" and its memberships are removed:
	// the left frames were queued to the observer before the new welcome was sent.
	if reason := old.expectClose(t, CloseAdminDisconnect); reason != "superseded" {
		t.Fatalf("close reason %q, want superseded", reason)
	}
	var left []string
	for i := 0; i < 2; i++ {
		f := obs.expect(t, TypePresence)
		if len(f.Joined) != 0 || !sameIDs(peerIDs(f.Left), []string{"alice"}) {
			t.Fatalf("presence %+v, want left alice", f)
		}
		left = append(left, f.Channel)
	}
	if !sameIDs(left, []string{"room", "room2"}) {
		t.Fatalf("left announced in %v, want room and room2", left)
	}
	obs.sync(t)
	// (b) a later subscribe is a separate joined.
	fresh.subscribe(t, "room", "f1")
	obs.expectRaw(t, `{"type":"presence","channel":"room","joined":[{"peerId":"alice"}],"left":[]}`)
	// (c) sends go to the new connection.
	obs.send(t, `{"type":"send","to":"alice","data":"hi","requestId":"d1"}`)
	obs.expectAck(t, "d1")
	fresh.expectRaw(t, `{"type":"direct","from":"observer","data":"hi"}`)
	var peers struct{ Peers []PresenceEntry }
	ts.restCall(t, http.MethodGet, "/v1/channels/room/peers", testBearer, nil, &peers)
	if !sameIDs(peerIDs(peers.Peers), []string{"observer", "alice"}) {
		t.Fatalf("peers = %v, want observer and alice once", peerIDs(peers.Peers))
	}
}

// TestS10_SupersededConnectionCannotRejoin floods subscribes from a connection while it is being
// superseded: frames the server reads after the eviction must not re-add the dead connection to
// any channel (which would leave a ghost member that is never removed).
func TestS10_SupersededConnectionCannotRejoin(t *testing.T) {
	ts := newTestServer(t, nil)
	obs := ts.connectAs(t, "observer")
	obs.subscribe(t, "room", "o1")
	for round := 0; round < 8; round++ {
		// Without the presence action the flooding subscribes get no reply (no requestId, no
		// snapshot), so the old connection's send queue cannot overflow (which would close 1008).
		old := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "alice", Permissions: []Action{ActionSubscribe}})))
		stop := make(chan struct{})
		flooding := make(chan struct{})
		go func() {
			defer close(flooding)
			frame := []byte(`{"type":"subscribe","channel":"room"}`)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if old.ws.Write(context.Background(), websocket.MessageText, frame) != nil {
					return
				}
			}
		}()
		time.Sleep(10 * time.Millisecond)
		fresh := ts.connectAs(t, "alice")
		// Drain the old connection up to its close.
		for {
			m := old.next(t, frameTimeout)
			if m.err != nil {
				if websocket.CloseStatus(m.err) != CloseAdminDisconnect {
					t.Fatalf("old connection ended with %v, want 4020", m.err)
				}
				break
			}
		}
		close(stop)
		<-flooding
		// The observer saw alice join (once) and leave; skip those frames up to a barrier.
		obs.send(t, `{"type":"ping"}`)
		for {
			if f := obs.readFrame(t); f.Type == TypePong {
				break
			}
		}
		snap := fresh.subscribe(t, "room", "f")
		if !sameIDs(peerIDs(snap.Joined), []string{"observer"}) {
			t.Fatalf("round %d: new alice's snapshot = %v, want [observer] (ghost of the superseded connection?)", round, peerIDs(snap.Joined))
		}
		obs.expectPresence(t, "room", []string{"alice"}, nil)
		fresh.send(t, `{"type":"unsubscribe","channel":"room","requestId":"u"}`)
		fresh.expectAck(t, "u")
		obs.expectPresence(t, "room", nil, []string{"alice"})
		var peers struct{ Peers []PresenceEntry }
		ts.restCall(t, http.MethodGet, "/v1/channels/room/peers", testBearer, nil, &peers)
		if !sameIDs(peerIDs(peers.Peers), []string{"observer"}) {
			t.Fatalf("round %d: peers = %v, want [observer]", round, peerIDs(peers.Peers))
		}
	}
}

func TestS10_NoSupersedeHookKeepsBoth(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.Testing.NoSupersede = true })
	a1 := ts.connectAs(t, "alice")
	ts.connectAs(t, "alice")
	a1.sync(t) // still open
}

// ---- S11: send ----

func TestS11_SendDeliversDirectVerbatim(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "alice", PeerMetadata: json.RawMessage(`{ "displayName" : "Alice" }`)})))
	b := ts.connectAs(t, "bob")
	// No channel in common: cross-channel sends are allowed.
	a.subscribe(t, "room-a", "s")
	data := `{"type":"rtc-description", "description":{"type":"offer","sdp":"v=0\r\n\u2028 é"},"n":[1, 2.50, null]}`
	a.send(t, `{"type":"send","to":"bob","requestId":"d1","data":`+data+`}`)
	a.expectAck(t, "d1")
	b.expectRaw(t, `{"type":"direct","from":"alice","data":`+data+`,"fromMetadata":{"displayName":"Alice"}}`)
	// Publishable keys have no peer metadata: no fromMetadata.
	k := ts.connect(t, keyQuery(testPK))
	k.send(t, `{"type":"send","to":"bob","data":[1]}`)
	b.expectRaw(t, `{"type":"direct","from":"`+k.welcome.PeerID+`","data":[1]}`)
	k.sync(t)
}

func TestS11_SendErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	ts.connectAs(t, "bob")
	for _, tc := range []struct{ name, frame, code string }{
		{"empty to", `{"type":"send","to":"","data":1,"requestId":"r"}`, CodeInvalidPeerID},
		{"missing to", `{"type":"send","data":1,"requestId":"r"}`, CodeInvalidPeerID},
		{"to over 128", `{"type":"send","to":"` + strings.Repeat("b", 129) + `","data":1,"requestId":"r"}`, CodeInvalidPeerID},
		{"to with control char", `{"type":"send","to":"b\u0001ob","data":1,"requestId":"r"}`, CodeInvalidPeerID},
		{"to non-ascii", `{"type":"send","to":"böb","data":1,"requestId":"r"}`, CodeInvalidPeerID},
		{"missing data", `{"type":"send","to":"bob","requestId":"r"}`, CodeMissingData},
		{"unknown peer", `{"type":"send","to":"carol","data":1,"requestId":"r"}`, CodePeerNotFound},
		{"peer in another app", `{"type":"send","to":"app2-peer","data":1,"requestId":"r"}`, CodePeerNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.send(t, tc.frame)
			a.expectError(t, tc.code, "r")
		})
	}
	t.Run("without the send action", func(t *testing.T) {
		k := ts.connect(t, keyQuery(testPKNoSend))
		k.send(t, `{"type":"send","to":"bob","data":1,"requestId":"r"}`)
		k.expectError(t, CodeActionNotPermitted, "r")
		p := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "nosend", Permissions: []Action{ActionSubscribe, ActionPresence}})))
		p.send(t, `{"type":"send","to":"bob","data":1,"requestId":"r"}`)
		p.expectError(t, CodeActionNotPermitted, "r")
	})
	a.sync(t) // connection stays open after every error
}

// ---- S12: publish ----

func TestS12_PublishFanOut(t *testing.T) {
	ts := newTestServer(t, nil)
	pub := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "pub", PeerMetadata: json.RawMessage(`{"role":"host"}`)})))
	withMeta := ts.connectAs(t, "with-meta")
	plain := ts.connectAs(t, "plain")
	outsider := ts.connectAs(t, "outsider")
	pub.subscribe(t, "room", "p")
	withMeta.send(t, `{"type":"subscribe","channel":"room","requestId":"w","includeSenderMetadata":true}`)
	withMeta.expectAck(t, "w")
	withMeta.expect(t, TypePresence)
	plain.subscribe(t, "room", "x")
	pub.expect(t, TypePresence)
	pub.expect(t, TypePresence)
	withMeta.expect(t, TypePresence)

	pub.send(t, `{"type":"publish","channel":"room","data":{"chat":"hi"},"requestId":"m1"}`)
	pub.expectAck(t, "m1")
	withMeta.expectRaw(t, `{"type":"message","channel":"room","from":"pub","data":{"chat":"hi"},"fromMetadata":{"role":"host"}}`)
	plain.expectRaw(t, `{"type":"message","channel":"room","from":"pub","data":{"chat":"hi"}}`)
	pub.sync(t) // no copy to the publisher
	outsider.sync(t)

	// Last subscribe wins for includeSenderMetadata.
	withMeta.send(t, `{"type":"subscribe","channel":"room","requestId":"w2"}`)
	withMeta.expectAck(t, "w2")
	withMeta.expect(t, TypePresence)
	pub.send(t, `{"type":"publish","channel":"room","data":2}`)
	withMeta.expectRaw(t, `{"type":"message","channel":"room","from":"pub","data":2}`)
	plain.expectRaw(t, `{"type":"message","channel":"room","from":"pub","data":2}`)

	// Publishing without being subscribed is allowed (§8 Q13).
	outsider.send(t, `{"type":"publish","channel":"room","data":3,"requestId":"o"}`)
	outsider.expectAck(t, "o")
	for _, c := range []*testClient{pub, withMeta, plain} {
		c.expectRaw(t, `{"type":"message","channel":"room","from":"outsider","data":3}`)
	}
}

func TestS12_PublishErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "alice", Channels: []string{"acme/room-*"}})))
	noPub := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "nopub", Permissions: []Action{ActionSubscribe, ActionPresence}})))
	for _, tc := range []struct {
		c           *testClient
		name, frame string
		code        string
	}{
		{a, "missing data", `{"type":"publish","channel":"acme/room-1","requestId":"r"}`, CodeMissingData},
		{a, "empty channel", `{"type":"publish","channel":"","data":1,"requestId":"r"}`, CodeInvalidChannel},
		{a, "reserved", `{"type":"publish","channel":"_Metered/x","data":1,"requestId":"r"}`, CodeChannelReserved},
		{a, "outside token channels", `{"type":"publish","channel":"other/x","data":1,"requestId":"r"}`, CodeChannelNotAuthorized},
		{a, "star does not cross /", `{"type":"publish","channel":"acme/room-1/x","data":1,"requestId":"r"}`, CodeChannelNotAuthorized},
		{noPub, "no publish permission", `{"type":"publish","channel":"room","data":1,"requestId":"r"}`, CodeActionNotPermitted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.send(t, tc.frame)
			tc.c.expectError(t, tc.code, "r")
			tc.c.sync(t)
		})
	}
}

// ---- S13: ordering ----

func TestS13_DirectFramesKeepOrder(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	b := ts.connectAs(t, "bob")
	const n = 500
	go func() {
		for i := 0; i < n; i++ {
			if a.ws.Write(context.Background(), websocket.MessageText, []byte(fmt.Sprintf(`{"type":"send","to":"bob","data":%d}`, i))) != nil {
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		b.expectRaw(t, fmt.Sprintf(`{"type":"direct","from":"alice","data":%d}`, i))
	}
}

func TestS13_InboundFramesProcessedInOrder(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	var frames []string
	for i := 0; i < 20; i++ {
		frames = append(frames,
			fmt.Sprintf(`{"type":"subscribe","channel":"c%d","requestId":"s%d"}`, i, i),
			fmt.Sprintf(`{"type":"publish","channel":"c%d","data":%d,"requestId":"p%d"}`, i, i, i),
			fmt.Sprintf(`{"type":"unsubscribe","channel":"c%d","requestId":"u%d"}`, i, i))
	}
	for _, f := range frames {
		a.send(t, f)
	}
	for i := 0; i < 20; i++ {
		a.expectAck(t, fmt.Sprintf("s%d", i))
		a.expectPresence(t, fmt.Sprintf("c%d", i), nil, nil)
		a.expectAck(t, fmt.Sprintf("p%d", i))
		a.expectAck(t, fmt.Sprintf("u%d", i))
	}
}

func TestS13_JoinedBeforeDirectFromTheJoiner(t *testing.T) {
	ts := newTestServer(t, nil)
	m := ts.connectAs(t, "member")
	m.subscribe(t, "room", "m")
	for i := 0; i < 20; i++ {
		x := ts.connectAs(t, fmt.Sprintf("x%d", i))
		// Pipelined without waiting: subscribe, then immediately a direct to the member.
		x.send(t, `{"type":"subscribe","channel":"room"}`)
		x.send(t, `{"type":"send","to":"member","data":"offer"}`)
		m.expectPresence(t, "room", []string{fmt.Sprintf("x%d", i)}, nil)
		m.expectRaw(t, fmt.Sprintf(`{"type":"direct","from":"x%d","data":"offer"}`, i))
	}
}

// ---- S14: validation and authorization errors ----

func TestS14_ChannelValidation(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	bad := []struct{ name, channel, code string }{
		{"empty", "", CodeInvalidChannel},
		{"257 bytes", strings.Repeat("c", 257), CodeInvalidChannel},
		{"129 two-byte runes (258 bytes)", strings.Repeat("é", 129), CodeInvalidChannel},
		{"NUL", "a\x00b", CodeInvalidChannel},
		{"newline", "a\nb", CodeInvalidChannel},
		{"unit separator", "a\x1fb", CodeInvalidChannel},
		{"DEL", "a\x7fb", CodeInvalidChannel},
		{"C1 U+0080", "a\u0080b", CodeInvalidChannel},
		{"C1 U+009F", "a\u009fb", CodeInvalidChannel},
		{"_metered/", "_metered/x", CodeChannelReserved},
		{"_METERED/", "_METERED/x", CodeChannelReserved},
		{"_Internal/", "_Internal/a/b", CodeChannelReserved},
		{"_system/ only", "_system/", CodeChannelReserved},
		{"_SyStEm/", "_SyStEm/room", CodeChannelReserved},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			for _, typ := range []string{"subscribe", "publish"} {
				a.send(t, fmt.Sprintf(`{"type":%q,"channel":%s,"data":1,"requestId":"r"}`, typ, jsonString(tc.channel)))
				a.expectError(t, tc.code, "r")
			}
			if tc.code == CodeInvalidChannel {
				a.send(t, fmt.Sprintf(`{"type":"unsubscribe","channel":%s,"requestId":"r"}`, jsonString(tc.channel)))
				a.expectError(t, tc.code, "r")
			}
		})
	}
	good := []string{strings.Repeat("c", 256), strings.Repeat("é", 128), "_metered", "_meteredx/y", "x/_system/y", "日本語/ルーム", "a b", "CaseSensitive"}
	for _, ch := range good {
		a.subscribe(t, ch, "ok")
	}
	a.sync(t)
}

func TestS14_AuthorizationErrorsKeepConnectionOpen(t *testing.T) {
	ts := newTestServer(t, nil)
	tok := mint(t, Claims{Subject: "alice", Channels: []string{"acme/room-*"}})
	a := ts.connect(t, tokenQuery(tok))
	a.send(t, `{"type":"subscribe","channel":"other/x","requestId":"r1"}`)
	a.expectError(t, CodeChannelNotAuthorized, "r1")
	a.subscribe(t, "acme/room-1", "r2")
	lim := ts.connect(t, tokenQuery(mintWith(t, testKIDLimited, testSecretLimited, Claims{Subject: "lim"})))
	lim.send(t, `{"type":"subscribe","channel":"other","requestId":"r3"}`)
	lim.expectError(t, CodeChannelNotAuthorized, "r3")
	// A key without presence: subscribe is acked, but no snapshot is sent.
	lim.send(t, `{"type":"subscribe","channel":"acme/x","requestId":"r4"}`)
	lim.expectAck(t, "r4")
	lim.sync(t)
	noSub := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "nosub", Permissions: []Action{ActionPublish}})))
	noSub.send(t, `{"type":"subscribe","channel":"room","requestId":"r5"}`)
	noSub.expectError(t, CodeActionNotPermitted, "r5")
	// An empty (but present) channels claim allows nothing.
	none := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "none", Channels: []string{}})))
	none.send(t, `{"type":"subscribe","channel":"room","requestId":"r6"}`)
	none.expectError(t, CodeChannelNotAuthorized, "r6")
	// An empty permissions claim grants no action.
	noActs := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "noacts", Permissions: []Action{}})))
	noActs.send(t, `{"type":"subscribe","channel":"room","requestId":"r7"}`)
	noActs.expectError(t, CodeActionNotPermitted, "r7")
	for _, c := range []*testClient{a, lim, noSub, none, noActs} {
		c.sync(t)
	}
}

func TestS14_ChannelLimit(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	for i := 0; i < 100; i++ {
		a.send(t, fmt.Sprintf(`{"type":"subscribe","channel":"c%d"}`, i))
	}
	for i := 0; i < 100; i++ {
		a.expectPresence(t, fmt.Sprintf("c%d", i), nil, nil)
	}
	a.send(t, `{"type":"subscribe","channel":"c100","requestId":"over"}`)
	a.expectError(t, CodeChannelLimitExceeded, "over")
	a.subscribe(t, "c5", "again") // re-subscribing a held channel is fine at the cap
	a.send(t, `{"type":"unsubscribe","channel":"c0","requestId":"u"}`)
	a.expectAck(t, "u")
	a.subscribe(t, "c100", "now")
}

func TestS14_MalformedFrames(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "alice")
	for _, tc := range []struct{ name, frame, rid string }{
		{"not JSON", `hello`, ""},
		{"truncated JSON", `{"type":"ping"`, ""},
		{"array", `[{"type":"ping"}]`, ""},
		{"null", `null`, ""},
		{"string", `"ping"`, ""},
		{"empty", ``, ""},
		{"no type", `{"channel":"room"}`, ""},
		{"no type, requestId echoed", `{"requestId":"r1"}`, "r1"},
		{"type not a string", `{"type":7,"requestId":"r2"}`, "r2"},
		{"type null", `{"type":null}`, ""},
		{"requestId not a string", `{"type":"subscribe","channel":"room","requestId":5}`, ""},
		{"requestId over 128", `{"type":"subscribe","channel":"room","requestId":"` + strings.Repeat("r", 129) + `"}`, ""},
		{"channel not a string", `{"type":"subscribe","channel":["room"],"requestId":"r3"}`, "r3"},
		{"to not a string", `{"type":"send","to":1,"data":1,"requestId":"r4"}`, "r4"},
		{"includeSenderMetadata not a bool", `{"type":"subscribe","channel":"room","includeSenderMetadata":"yes","requestId":"r5"}`, "r5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.send(t, tc.frame)
			a.expectError(t, CodeMalformedMessage, tc.rid)
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		if err := a.ws.Write(context.Background(), websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		a.expectError(t, CodeMalformedMessage, "")
	})
	t.Run("unknown type", func(t *testing.T) {
		a.send(t, `{"type":"hello","requestId":"u1"}`)
		a.expectError(t, CodeUnknownType, "u1")
		a.send(t, `{"type":"Subscribe","channel":"room"}`)
		a.expectError(t, CodeUnknownType, "")
		a.send(t, `{"type":""}`)
		a.expectError(t, CodeUnknownType, "")
	})
	a.sync(t)
}

// ---- S15: liveness ----

func TestS15_SilentConnectionIsReaped(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) {
		c.PingInterval = 300 * time.Millisecond
		c.ReapAfter = time.Second
	})
	m := ts.connectAs(t, "member")
	m.subscribe(t, "room", "m")
	silent := ts.dialSilent(t, tokenQuery(mint(t, Claims{Subject: "silent"})))
	start := time.Now()
	// The silent client never reads, so it never answers the server's pings.
	if err := silent.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"subscribe","channel":"room"}`)); err != nil {
		t.Fatal(err)
	}
	m.expectPresence(t, "room", []string{"silent"}, nil)
	m.expectRaw(t, `{"type":"presence","channel":"room","joined":[],"left":[{"peerId":"silent"}]}`)
	if d := time.Since(start); d < time.Second {
		t.Fatalf("reaped after %s, before reap_after", d)
	}
	// The member answers pings (its reader runs), so it is still connected.
	m.sync(t)
	waitFor(t, "one connection", func() bool { n, _ := ts.srv.broker.Counts(); return n == 1 })
}

func TestS15_ResponsiveIdleConnectionIsKept(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) {
		c.PingInterval = 250 * time.Millisecond
		c.ReapAfter = time.Second
	})
	a, b := ts.pair(t, "room", "alice", "bob")
	// Idle for 2.5 reap intervals: only WS pongs keep the connections alive.
	time.Sleep(2500 * time.Millisecond)
	a.sync(t)
	b.sync(t)
}

// ---- S16: token expiry ----

func TestS16_ExpiredTokenClosedBeforeExp(t *testing.T) {
	ts := newTestServer(t, nil)
	m := ts.connectAs(t, "member")
	m.subscribe(t, "room", "m")
	exp := time.Now().Add(2 * time.Second).Unix()
	c := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "shortlived", ExpiresAt: exp})))
	if c.welcome.ExpiresAt == nil || *c.welcome.ExpiresAt != exp {
		t.Fatalf("welcome expiresAt = %v, want %d", c.welcome.ExpiresAt, exp)
	}
	c.subscribe(t, "room", "s")
	m.expectPresence(t, "room", []string{"shortlived"}, nil)
	_, at := c.expectCloseAt(t, CloseTokenExpired, 5*time.Second)
	expAt := time.Unix(exp, 0)
	if at.After(expAt) {
		t.Fatalf("closed at %s, after exp %s", at.Format(time.StampMilli), expAt.Format(time.StampMilli))
	}
	if lead := ts.srv.Config().ExpiryLead; at.Before(expAt.Add(-lead)) {
		t.Fatalf("closed at %s, earlier than exp - %s", at.Format(time.StampMilli), lead)
	}
	m.expectPresence(t, "room", nil, []string{"shortlived"})
}

// ---- S17: graceful shutdown ----

func TestS17_ShutdownSendsGoingAwayThen1001(t *testing.T) {
	ts := newTestServer(t, nil)
	clients := []*testClient{ts.connectAs(t, "a"), ts.connectAs(t, "b"), ts.connect(t, keyQuery(testPK))}
	for _, c := range clients {
		c.subscribe(t, "room", "s")
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ts.srv.Shutdown(ctx)
	}()
	for _, c := range clients {
		// Presence deltas from earlier subscribes or a peer that closed first may precede it.
		for {
			f := c.readFrame(t)
			if f.Type == TypePresence {
				continue
			}
			if f.Type != TypeGoingAway || f.RetryAfterMs <= 0 {
				t.Fatalf("got %+v, want going_away with retryAfterMs", f)
			}
			break
		}
		c.expectClose(t, CloseGoingAway)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	status, _ := ts.restCall(t, http.MethodGet, "/healthz", "", nil, nil)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("healthz after shutdown = %d, want 503", status)
	}
}

// ---- S18: frame size ----

// paddedPublish builds a publish frame of exactly n bytes using pad (1 or 2 UTF-8 bytes).
func paddedPublish(t *testing.T, n int, pad string, rid string) string {
	t.Helper()
	head := `{"type":"publish","channel":"room","requestId":"` + rid + `","data":"`
	tail := `"}`
	room := n - len(head) - len(tail)
	body := strings.Repeat(pad, room/len(pad)) + strings.Repeat("x", room%len(pad))
	f := head + body + tail
	if len(f) != n {
		t.Fatalf("padded frame is %d bytes, want %d", len(f), n)
	}
	return f
}

func TestS18_FrameSizeLimit(t *testing.T) {
	for _, pad := range []string{"x", "é"} {
		t.Run("pad "+pad, func(t *testing.T) {
			ts := newTestServer(t, nil)
			limit := 65536 + 4096
			sub := ts.connectAs(t, "sub")
			sub.subscribe(t, "room", "s")
			a := ts.connectAs(t, "alice")
			a.send(t, paddedPublish(t, limit, pad, "at-limit"))
			a.expectAck(t, "at-limit")
			if f := sub.expect(t, TypeMessage); len(f.Data) < 65536 {
				t.Fatalf("delivered data is %d bytes", len(f.Data))
			}
			a.send(t, paddedPublish(t, limit+1, pad, "over"))
			a.expectClose(t, CloseMessageTooBig)
			sub.sync(t) // the oversize frame was not delivered
		})
	}
}

func TestS18_ConfiguredSize(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.MaxMessageSize = 1024 })
	a := ts.connectAs(t, "alice")
	a.send(t, paddedPublish(t, 1024+4096, "x", "ok"))
	a.expectAck(t, "ok")
	a.send(t, paddedPublish(t, 1024+4096+1, "x", "over"))
	a.expectClose(t, CloseMessageTooBig)
}

// ---- S19: rate and connection limits ----

func TestS19_RateLimitCloses4011(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) {
		c.RateLimit = RateLimitConfig{Enabled: true, PerSecond: 100, Burst: 200}
	})
	a := ts.connectAs(t, "alice")
	publish := func(n int) {
		for i := 0; i < n; i++ {
			a.send(t, `{"type":"publish","channel":"room","data":1}`)
		}
	}
	publish(200) // a full burst passes
	a.sync(t)
	time.Sleep(1100 * time.Millisecond) // one second refills 100
	publish(100)
	a.sync(t)
	for i := 0; i < 300; i++ {
		if a.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"publish","channel":"room","data":1}`)) != nil {
			break
		}
	}
	a.expectClose(t, CloseOverRate)
}

func TestS19_ConnectionCapCloses4010(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.Apps[0].MaxConnections = 2 })
	ts.connectAs(t, "alice")
	b := ts.connectAs(t, "bob")
	ts.dial(t, keyQuery(testPK)).expectClose(t, CloseOverConnLimit)
	ts.dial(t, tokenQuery(mint(t, Claims{Subject: "carol"}))).expectClose(t, CloseOverConnLimit)
	// Another app is not affected.
	ts.connect(t, keyQuery(otherPK))
	// Reconnecting with the same sub supersedes instead of exceeding the cap.
	ts.connectAs(t, "alice")
	// A slot frees when a connection ends.
	b.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "bob unregistered", func() bool {
		r := ts.srv.broker.(*localBroker).room(testApp)
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.conns) == 1
	})
	ts.connectAs(t, "carol")
}

// ---- S20: permanent rejections never use 1000/1001 ----

func TestS20_PermanentRejectionsUse4xxx(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.Apps[1].MaxConnections = 1 })
	codes := map[string]int{}
	codes["bad token"] = int(websocket.CloseStatus(ts.dial(t, tokenQuery("x.y.z")).drainToClose(t)))
	codes["expired"] = int(websocket.CloseStatus(ts.dial(t, tokenQuery(mint(t, Claims{Subject: "e", ExpiresAt: time.Now().Add(-time.Hour).Unix()}))).drainToClose(t)))
	codes["suspended"] = int(websocket.CloseStatus(ts.dial(t, keyQuery(suspendedPK)).drainToClose(t)))
	ts.connect(t, keyQuery(otherPK))
	codes["over cap"] = int(websocket.CloseStatus(ts.dial(t, keyQuery(otherPK)).drainToClose(t)))
	kicked := ts.connectAs(t, "kicked")
	ts.restCall(t, http.MethodDelete, "/v1/peers/kicked", testBearer, nil, nil)
	codes["kick"] = int(websocket.CloseStatus(kicked.drainToClose(t)))
	old := ts.connectAs(t, "dup")
	ts.connectAs(t, "dup")
	codes["superseded"] = int(websocket.CloseStatus(old.drainToClose(t)))
	want := map[string]int{"bad token": 4001, "expired": 4002, "suspended": 4012, "over cap": 4010, "kick": 4020, "superseded": 4020}
	for k, code := range codes {
		if code == 1000 || code == 1001 || code != want[k] {
			t.Errorf("%s closed with %d, want %d", k, code, want[k])
		}
	}
}

// drainToClose skips frames and returns the error that ended the connection.
func (c *testClient) drainToClose(t testing.TB) error {
	t.Helper()
	for {
		if m := c.next(t, frameTimeout); m.err != nil {
			return m.err
		}
	}
}

// ---- S21: tenant isolation ----

func TestS21_AppsAreIsolated(t *testing.T) {
	ts := newTestServer(t, nil)
	a1 := ts.connectAs(t, "alice")
	a2 := ts.connect(t, tokenQuery(mintWith(t, otherKID, otherSecret, Claims{Subject: "alice"})))
	b2 := ts.connect(t, tokenQuery(mintWith(t, otherKID, otherSecret, Claims{Subject: "bob"})))
	// Same peerId in two apps: no supersede.
	a1.sync(t)
	a2.sync(t)
	a1.subscribe(t, "room", "1")
	if snap := b2.subscribe(t, "room", "2"); len(snap.Joined) != 0 {
		t.Fatalf("app2 snapshot lists %v from app1", peerIDs(snap.Joined))
	}
	a1.sync(t) // no joined from app2
	a1.send(t, `{"type":"publish","channel":"room","data":1,"requestId":"p"}`)
	a1.expectAck(t, "p")
	b2.sync(t)
	a1.send(t, `{"type":"send","to":"bob","data":1,"requestId":"d"}`)
	a1.expectError(t, CodePeerNotFound, "d")
	b2.send(t, `{"type":"send","to":"alice","data":"x","requestId":"d"}`)
	b2.expectAck(t, "d")
	a2.expectRaw(t, `{"type":"direct","from":"bob","data":"x"}`)
	a1.sync(t)
	// REST is scoped too.
	var peers struct{ Peers []PresenceEntry }
	ts.restCall(t, http.MethodGet, "/v1/channels/room/peers", "Bearer "+otherKID+":"+otherSecret, nil, &peers)
	if !sameIDs(peerIDs(peers.Peers), []string{"bob"}) {
		t.Fatalf("app2 peers = %v, want [bob]", peerIDs(peers.Peers))
	}
	var kick struct{ Closed int }
	ts.restCall(t, http.MethodDelete, "/v1/peers/alice", "Bearer "+otherKID+":"+otherSecret, nil, &kick)
	if kick.Closed != 1 {
		t.Fatalf("app2 kick closed %d, want 1", kick.Closed)
	}
	a2.expectClose(t, CloseAdminDisconnect)
	a1.sync(t)
}

// ---- S22: publishable keys ----

func TestS22_AllowedOrigins(t *testing.T) {
	ts := newTestServer(t, nil)
	hdr := func(o string) http.Header { return http.Header{"Origin": {o}} }
	c := ts.dialWith(t, keyQuery(testPKOrigin), dialOptions{header: hdr(testOrigin)})
	c.expect(t, TypeWelcome)
	for _, o := range []string{"https://evil.example", "https://good.example.evil", "http://good.example", ""} {
		var h http.Header
		if o != "" {
			h = hdr(o)
		}
		ts.dialWith(t, keyQuery(testPKOrigin), dialOptions{header: h}).expectClose(t, CloseInvalidToken)
	}
	// Keys without allowed_origins accept any origin.
	ts.dialWith(t, keyQuery(testPK), dialOptions{header: hdr("https://anything.example")}).expect(t, TypeWelcome)
}

func TestS22_FreshUUIDv4PerConnection(t *testing.T) {
	ts := newTestServer(t, nil)
	seen := map[string]bool{}
	var clients []*testClient
	for i := 0; i < 5; i++ {
		c := ts.connect(t, keyQuery(testPK))
		clients = append(clients, c)
		id, err := uuid.Parse(c.welcome.PeerID)
		if err != nil || id.Version() != 4 || id.Variant() != uuid.RFC4122 || id.String() != c.welcome.PeerID {
			t.Fatalf("peerId %q is not a canonical UUID v4", c.welcome.PeerID)
		}
		if seen[id.String()] {
			t.Fatalf("peerId %s reused", id)
		}
		seen[id.String()] = true
	}
	for _, c := range clients {
		c.sync(t) // none superseded another
	}
}
