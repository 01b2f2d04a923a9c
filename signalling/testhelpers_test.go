package signalling

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// Credentials of the test configuration. Every app and key is set explicitly: tests never rely on
// the demo app.
const (
	testApp    = "app1"
	testKID    = "sk_id_test"
	testSecret = "sk_secret_test_0123"
	// testKIDLimited may only subscribe (no presence, publish or send) on acme/* channels.
	testKIDLimited    = "sk_id_limited"
	testSecretLimited = "sk_secret_limited_0123"
	testPK            = "pk_live_test"    // every action, every channel
	testPKNoSend      = "pk_live_nosend"  // default actions: subscribe, publish, presence
	testPKOrigin      = "pk_live_origin"  // allowed origin testOrigin only
	testPKSpecial     = "pk_live_a+b/c=d" // needs percent-encoding in a query
	testOrigin        = "https://good.example"

	otherApp    = "app2"
	otherKID    = "sk_id_other"
	otherSecret = "sk_secret_other_0123"
	otherPK     = "pk_live_other"

	suspendedPK = "pk_live_suspended"

	frameTimeout = 5 * time.Second
)

// testConfig is the configuration every test server starts from.
func testConfig() ServerConfig {
	all := []Action{ActionSubscribe, ActionPublish, ActionPresence, ActionSend}
	return ServerConfig{
		Listen: "127.0.0.1:0",
		Apps: []AppConfig{
			{
				ID: testApp,
				PublishableKeys: []PublishableKey{
					{Key: testPK, ChannelPatterns: []string{"**"}, Actions: all},
					{Key: testPKNoSend, ChannelPatterns: []string{"**"}},
					{Key: testPKOrigin, ChannelPatterns: []string{"**"}, Actions: all, AllowedOrigins: []string{testOrigin}},
					{Key: testPKSpecial, ChannelPatterns: []string{"**"}, Actions: all},
				},
				SecretKeys: []SecretKeyConfig{
					{ID: testKID, Secret: testSecret, ChannelPatterns: []string{"**"}, Actions: all},
					{ID: testKIDLimited, Secret: testSecretLimited, ChannelPatterns: []string{"acme/*"}, Actions: []Action{ActionSubscribe}},
				},
			},
			{
				ID:              otherApp,
				PublishableKeys: []PublishableKey{{Key: otherPK, ChannelPatterns: []string{"**"}, Actions: all}},
				SecretKeys:      []SecretKeyConfig{{ID: otherKID, Secret: otherSecret, ChannelPatterns: []string{"**"}, Actions: all}},
			},
			{
				ID:              "suspended",
				Suspended:       true,
				PublishableKeys: []PublishableKey{{Key: suspendedPK, ChannelPatterns: []string{"**"}, Actions: all}},
			},
		},
	}
}

// testServer is a real Server behind a real HTTP listener on a port picked by httptest.
type testServer struct {
	srv  *Server
	http *httptest.Server
	ws   string // ws://127.0.0.1:PORT
	logs *lockedBuffer
}

// lockedBuffer collects the server log; it is printed when the test fails.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestServer starts a server with testConfig, changed by mutate (may be nil). It is stopped
// (connections dropped, listener closed) when the test ends.
func newTestServer(t testing.TB, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := NewServer(cfg, log)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	ts := &testServer{srv: srv, http: hs, ws: "ws" + strings.TrimPrefix(hs.URL, "http"), logs: logs}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
		hs.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return ts
}

// mint signs claims with the test app's secret key. Missing exp defaults to one hour ahead.
func mint(t testing.TB, c Claims) string {
	t.Helper()
	return mintWith(t, testKID, testSecret, c)
}

func mintWith(t testing.TB, kid, secret string, c Claims) string {
	t.Helper()
	if c.ExpiresAt == 0 {
		c.ExpiresAt = time.Now().Add(time.Hour).Unix()
	}
	tok, err := MintToken(kid, secret, c)
	if err != nil {
		t.Fatalf("MintToken: %v", err)
	}
	return tok
}

// rawToken signs arbitrary claims with any method (used to build tokens MintToken refuses to make).
// kid "" leaves the header without kid.
func rawToken(t testing.TB, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign raw token: %v", err)
	}
	return s
}

// withClaims returns base changed by extra: a nil value deletes the claim, any other sets it.
func withClaims(base, extra jwt.MapClaims) jwt.MapClaims {
	for k, v := range extra {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	return base
}

func tokenQuery(tok string) string { return "token=" + url.QueryEscape(tok) }
func keyQuery(key string) string   { return "key=" + url.QueryEscape(key) }

// inbound is one result of the client's reader: a frame or the error that ended the connection.
type inbound struct {
	typ websocket.MessageType
	raw []byte
	err error
	at  time.Time
}

// testClient is a real WebSocket client. A background goroutine reads (so WS pings are answered
// and close frames processed) unless the client was dialled with dialSilent.
type testClient struct {
	ws     *websocket.Conn
	in     chan inbound
	done   chan struct{}
	closed bool // the reader reported the end of the connection
	// welcome is the first frame of a client made by connect.
	welcome Frame
}

// dialOptions adjust a dial.
type dialOptions struct {
	header http.Header
	silent bool // never read: the client answers no pings and sees no frames
}

// dial opens a WebSocket to /v1?query and asserts the upgrade succeeded (S2: never an HTTP error).
func (ts *testServer) dial(t testing.TB, query string) *testClient {
	t.Helper()
	return ts.dialWith(t, query, dialOptions{})
}

// dialSilent opens a connection whose client never reads (so it cannot answer pings).
func (ts *testServer) dialSilent(t testing.TB, query string) *testClient {
	t.Helper()
	return ts.dialWith(t, query, dialOptions{silent: true})
}

func (ts *testServer) dialWith(t testing.TB, query string, o dialOptions) *testClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, ts.ws+"/v1?"+query, &websocket.DialOptions{HTTPHeader: o.header})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial /v1 (HTTP status %d): %v", status, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status = %d, want 101", resp.StatusCode)
	}
	ws.SetReadLimit(2 << 20)
	c := &testClient{ws: ws, in: make(chan inbound, 8192), done: make(chan struct{})}
	if o.silent {
		close(c.done)
	} else {
		go c.readLoop()
	}
	t.Cleanup(func() {
		_ = ws.CloseNow()
		<-c.done
	})
	return c
}

func (c *testClient) readLoop() {
	defer close(c.done)
	for {
		typ, raw, err := c.ws.Read(context.Background())
		c.in <- inbound{typ: typ, raw: raw, err: err, at: time.Now()}
		if err != nil {
			return
		}
	}
}

// connect dials and expects the welcome as the first frame.
func (ts *testServer) connect(t testing.TB, query string) *testClient {
	t.Helper()
	c := ts.dial(t, query)
	c.welcome = c.expect(t, TypeWelcome)
	return c
}

// connectAs connects with a JWT for sub (full grants of the test secret key).
func (ts *testServer) connectAs(t testing.TB, sub string) *testClient {
	t.Helper()
	return ts.connect(t, tokenQuery(mint(t, Claims{Subject: sub})))
}

// pair connects first and second, subscribes both to ch (first, then second) and requires first
// to see second join.
func (ts *testServer) pair(t testing.TB, ch, first, second string) (*testClient, *testClient) {
	t.Helper()
	a, b := ts.connectAs(t, first), ts.connectAs(t, second)
	a.subscribe(t, ch, first)
	b.subscribe(t, ch, second)
	a.expectPresence(t, ch, []string{second}, nil)
	return a, b
}

// next returns the next inbound item, failing the test after timeout.
func (c *testClient) next(t testing.TB, timeout time.Duration) inbound {
	t.Helper()
	if c.closed {
		t.Fatalf("read after the connection ended")
	}
	select {
	case m := <-c.in:
		if m.err != nil {
			c.closed = true
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no frame within %s", timeout)
		return inbound{}
	}
}

// readRaw returns the next text frame's bytes after checking it has a §2.3 shape.
func (c *testClient) readRaw(t testing.TB) []byte {
	t.Helper()
	m := c.next(t, frameTimeout)
	if m.err != nil {
		t.Fatalf("expected a frame, connection ended: %v (close code %d)", m.err, websocket.CloseStatus(m.err))
	}
	if m.typ != websocket.MessageText {
		t.Fatalf("server sent a %v frame, want text only (S4)", m.typ)
	}
	checkShape(t, m.raw)
	return m.raw
}

// readUnchecked returns the next text frame without the §2.3 shape check (for test hooks that
// deliberately break the protocol).
func (c *testClient) readUnchecked(t testing.TB) []byte {
	t.Helper()
	m := c.next(t, frameTimeout)
	if m.err != nil || m.typ != websocket.MessageText {
		t.Fatalf("expected a text frame, got type %v err %v", m.typ, m.err)
	}
	return m.raw
}

// readFrame decodes the next frame.
func (c *testClient) readFrame(t testing.TB) Frame {
	t.Helper()
	raw := c.readRaw(t)
	var f Frame
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("decode frame %s: %v", raw, err)
	}
	return f
}

// expect reads the next frame and requires its type.
func (c *testClient) expect(t testing.TB, typ string) Frame {
	t.Helper()
	raw := c.readRaw(t)
	var f Frame
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("decode frame %s: %v", raw, err)
	}
	if f.Type != typ {
		t.Fatalf("got frame %s, want type %q", raw, typ)
	}
	return f
}

// expectRaw reads the next frame and requires its exact bytes.
func (c *testClient) expectRaw(t testing.TB, want string) {
	t.Helper()
	if got := c.readRaw(t); string(got) != want {
		t.Fatalf("frame\n got %s\nwant %s", got, want)
	}
}

// expectAck requires {"type":"ack","requestId":rid} exactly.
func (c *testClient) expectAck(t testing.TB, rid string) {
	t.Helper()
	c.expectRaw(t, `{"type":"ack","requestId":`+jsonString(rid)+`}`)
}

// expectError requires an error frame with code and requestId (rid "" = the key must be absent).
func (c *testClient) expectError(t testing.TB, code, rid string) Frame {
	t.Helper()
	raw := c.readRaw(t)
	var f Frame
	_ = json.Unmarshal(raw, &f)
	if f.Type != TypeError || f.Code != code || f.RequestID != rid {
		t.Fatalf("got %s, want error code %q requestId %q", raw, code, rid)
	}
	if rid == "" && bytes.Contains(raw, []byte(`"requestId"`)) {
		t.Fatalf("error %s carries a requestId though the request had none", raw)
	}
	return f
}

// expectClose requires that the connection ends with close code, with no frame before it.
// It returns the close reason.
func (c *testClient) expectClose(t testing.TB, code int) string {
	t.Helper()
	return c.expectCloseWithin(t, code, frameTimeout)
}

func (c *testClient) expectCloseWithin(t testing.TB, code int, timeout time.Duration) string {
	t.Helper()
	reason, _ := c.expectCloseAt(t, code, timeout)
	return reason
}

// expectCloseAt is expectCloseWithin that also returns when the client saw the close.
func (c *testClient) expectCloseAt(t testing.TB, code int, timeout time.Duration) (string, time.Time) {
	t.Helper()
	m := c.next(t, timeout)
	if m.err == nil {
		t.Fatalf("got frame %s, want close %d", m.raw, code)
	}
	var ce websocket.CloseError
	if !errors.As(m.err, &ce) {
		t.Fatalf("connection ended without a close frame (%v), want close %d", m.err, code)
	}
	if int(ce.Code) != code {
		t.Fatalf("close code = %d (%q), want %d", ce.Code, ce.Reason, code)
	}
	return ce.Reason, m.at
}

// send writes one text frame.
func (c *testClient) send(t testing.TB, frame string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// sendJSON marshals v into one text frame.
func (c *testClient) sendJSON(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	c.send(t, string(b))
}

// sync is a barrier: it sends a ping and requires the very next frame to be the pong, proving no
// other frame was queued for this connection before it.
func (c *testClient) sync(t testing.TB) {
	t.Helper()
	c.send(t, `{"type":"ping"}`)
	c.expectRaw(t, `{"type":"pong"}`)
}

// subscribe subscribes with requestId rid and requires ack then snapshot (S7); it returns the snapshot.
func (c *testClient) subscribe(t testing.TB, ch, rid string) Frame {
	t.Helper()
	c.send(t, fmt.Sprintf(`{"type":"subscribe","channel":%s,"requestId":%s}`, jsonString(ch), jsonString(rid)))
	c.expectAck(t, rid)
	snap := c.expect(t, TypePresence)
	if snap.Channel != ch || len(snap.Left) != 0 {
		t.Fatalf("snapshot = %+v, want channel %q with an empty left", snap, ch)
	}
	return snap
}

// expectPresence requires a presence frame for ch with exactly the given joined and left peer ids.
func (c *testClient) expectPresence(t testing.TB, ch string, joined, left []string) Frame {
	t.Helper()
	f := c.expect(t, TypePresence)
	if f.Channel != ch || !sameIDs(peerIDs(f.Joined), joined) || !sameIDs(peerIDs(f.Left), left) {
		t.Fatalf("presence = channel %q joined %v left %v; want channel %q joined %v left %v",
			f.Channel, peerIDs(f.Joined), peerIDs(f.Left), ch, joined, left)
	}
	return f
}

func peerIDs(es []PresenceEntry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.PeerID)
	}
	return out
}

// sameIDs compares two id lists as multisets.
func sameIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
		if count[s] < 0 {
			return false
		}
	}
	return true
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkShape asserts that raw is exactly one of the §2.3 frame shapes (S4), at most 1 MiB, and
// that no presence frame names a peer in both joined and left (S8).
func checkShape(t testing.TB, raw []byte) {
	t.Helper()
	if err := frameShapeError(raw); err != nil {
		t.Fatalf("frame %s violates §2.3: %v", truncate(raw, 300), err)
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func frameShapeError(raw []byte) error {
	if len(raw) > 1<<20 {
		return fmt.Errorf("frame is %d bytes, over 1 MiB", len(raw))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return errors.New("not a JSON object")
	}
	var typ string
	if err := json.Unmarshal(m["type"], &typ); err != nil || typ == "" {
		return errors.New("type missing or not a string")
	}
	kind := func(key string) string {
		v, ok := m[key]
		if !ok {
			return ""
		}
		v = bytes.TrimSpace(v)
		switch {
		case len(v) == 0:
			return ""
		case v[0] == '"':
			return "string"
		case v[0] == '{':
			return "object"
		case v[0] == '[':
			return "array"
		case bytes.Equal(v, []byte("null")):
			return "null"
		case bytes.Equal(v, []byte("true")), bytes.Equal(v, []byte("false")):
			return "bool"
		default:
			return "number"
		}
	}
	type field struct {
		name     string
		kinds    []string // allowed kinds; "any" = any JSON value
		required bool
	}
	var fields []field
	switch typ {
	case TypeWelcome:
		fields = []field{{"peerId", []string{"string"}, true}, {"expiresAt", []string{"number", "null"}, true},
			{"serverTime", []string{"number"}, true}, {"maxMessageSize", []string{"number"}, true},
			{"metadata", []string{"object"}, false}}
	case TypeAck:
		fields = []field{{"requestId", []string{"string"}, true}}
	case TypeError:
		fields = []field{{"code", []string{"string"}, true}, {"message", []string{"string"}, false}, {"requestId", []string{"string"}, false}}
		var code string
		_ = json.Unmarshal(m["code"], &code)
		if code == "" {
			return errors.New("error code is empty")
		}
	case TypeMessage:
		fields = []field{{"channel", []string{"string"}, true}, {"from", []string{"string"}, true},
			{"data", []string{"any"}, true}, {"fromMetadata", []string{"object"}, false}}
	case TypeDirect:
		fields = []field{{"from", []string{"string"}, true}, {"data", []string{"any"}, true}, {"fromMetadata", []string{"object"}, false}}
	case TypePresence:
		fields = []field{{"channel", []string{"string"}, true}, {"joined", []string{"array"}, true}, {"left", []string{"array"}, true}}
		if err := presenceEntriesError(m["joined"], m["left"]); err != nil {
			return err
		}
	case TypeGoingAway:
		fields = []field{{"retryAfterMs", []string{"number"}, false}}
	case TypePong:
	default:
		return fmt.Errorf("unknown server frame type %q", typ)
	}
	allowed := map[string]bool{"type": true}
	for _, f := range fields {
		allowed[f.name] = true
		k := kind(f.name)
		if k == "" {
			if f.required {
				return fmt.Errorf("%s: required key %q missing", typ, f.name)
			}
			continue
		}
		if f.kinds[0] != "any" && !slices.Contains(f.kinds, k) {
			return fmt.Errorf("%s: %q is a %s, want %v", typ, f.name, k, f.kinds)
		}
	}
	for k := range m {
		if !allowed[k] {
			return fmt.Errorf("%s: unexpected key %q", typ, k)
		}
	}
	return nil
}

func presenceEntriesError(joinedRaw, leftRaw json.RawMessage) error {
	ids := func(raw json.RawMessage, name string) (map[string]bool, error) {
		var es []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &es); err != nil {
			return nil, fmt.Errorf("presence %s: %v", name, err)
		}
		seen := map[string]bool{}
		for _, e := range es {
			var id string
			if err := json.Unmarshal(e["peerId"], &id); err != nil {
				return nil, fmt.Errorf("presence %s entry without a string peerId", name)
			}
			for k, v := range e {
				switch k {
				case "peerId":
				case "metadata":
					if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '{' {
						return nil, fmt.Errorf("presence %s entry metadata is not an object", name)
					}
				default:
					return nil, fmt.Errorf("presence %s entry has unexpected key %q", name, k)
				}
			}
			if seen[id] {
				return nil, fmt.Errorf("presence %s lists %q twice", name, id)
			}
			seen[id] = true
		}
		return seen, nil
	}
	joined, err := ids(joinedRaw, "joined")
	if err != nil {
		return err
	}
	left, err := ids(leftRaw, "left")
	if err != nil {
		return err
	}
	for id := range joined {
		if left[id] {
			return fmt.Errorf("peer %q is in both joined and left (S8)", id)
		}
	}
	return nil
}

// bodyOf is a request body holding s, or no body (nil) for "".
func bodyOf(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

// restCall performs an HTTP request against the test server and decodes a JSON reply into out
// (when non-nil). It returns the status code and the raw body.
func (ts *testServer) restCall(t testing.TB, method, path, auth string, body io.Reader, out any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.http.URL+path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ts.http.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

const testBearer = "Bearer " + testKID + ":" + testSecret

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(frameTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
