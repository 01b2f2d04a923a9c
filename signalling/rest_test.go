package signalling

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type restErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func TestRESTMintTokenConnects(t *testing.T) {
	ts := newTestServer(t, nil)
	var out struct {
		Token     string `json:"token"`
		ExpiresAt int64  `json:"expiresAt"`
	}
	before := time.Now().Unix()
	status, raw := ts.restCall(t, http.MethodPost, "/v1/tokens", testBearer,
		strings.NewReader(`{"peerId":"alice","peerMetadata":{"displayName":"Alice"},"metadata":{"k":1},"channels":["room-*"],"permissions":["subscribe","presence"]}`), &out)
	if status != http.StatusOK || out.Token == "" {
		t.Fatalf("POST /v1/tokens = %d %s", status, raw)
	}
	if out.ExpiresAt < before+3600 || out.ExpiresAt > time.Now().Unix()+3600 {
		t.Fatalf("expiresAt %d, want now+3600", out.ExpiresAt)
	}
	c := ts.connect(t, tokenQuery(out.Token))
	if c.welcome.PeerID != "alice" || *c.welcome.ExpiresAt != out.ExpiresAt || string(c.welcome.Metadata) != `{"k":1}` {
		t.Fatalf("welcome = %+v", c.welcome)
	}
	c.subscribe(t, "room-1", "s")
	c.send(t, `{"type":"subscribe","channel":"lobby","requestId":"x"}`)
	c.expectError(t, CodeChannelNotAuthorized, "x")
	c.send(t, `{"type":"publish","channel":"room-1","data":1,"requestId":"p"}`)
	c.expectError(t, CodeActionNotPermitted, "p")
	// peerMetadata shows in presence.
	var peers struct {
		Channel string          `json:"channel"`
		Peers   []PresenceEntry `json:"peers"`
	}
	ts.restCall(t, http.MethodGet, "/v1/channels/room-1/peers", testBearer, nil, &peers)
	if len(peers.Peers) != 1 || string(peers.Peers[0].Metadata) != `{"displayName":"Alice"}` {
		t.Fatalf("peers = %+v", peers)
	}
}

func TestRESTMintTokenValidation(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name, body string
		status     int
		ttl        int64 // expected lifetime when 200
	}{
		{"default lifetime", `{"peerId":"a"}`, 200, 3600},
		{"1 second", `{"peerId":"a","expiresInSec":1}`, 200, 1},
		{"max lifetime", `{"peerId":"a","expiresInSec":86400}`, 200, 86400},
		{"over max", `{"peerId":"a","expiresInSec":86401}`, 400, 0},
		{"negative", `{"peerId":"a","expiresInSec":-1}`, 400, 0},
		{"fractional", `{"peerId":"a","expiresInSec":1.5}`, 400, 0},
		{"missing peerId", `{}`, 400, 0},
		{"bad peerId", `{"peerId":"a\nb"}`, 400, 0},
		{"unknown permission", `{"peerId":"a","permissions":["admin"]}`, 400, 0},
		{"bad channel pattern", `{"peerId":"a","channels":["a\\"]}`, 400, 0},
		{"metadata not an object", `{"peerId":"a","metadata":[1]}`, 400, 0},
		{"oversize peerMetadata", `{"peerId":"a","peerMetadata":{"b":"` + strings.Repeat("x", MaxPeerMetadataBytes) + `"}}`, 400, 0},
		{"unknown field", `{"peerId":"a","sub":"b"}`, 400, 0},
		{"not JSON", `peerId=a`, 400, 0},
		{"empty body", ``, 400, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out struct {
				Token     string `json:"token"`
				ExpiresAt int64  `json:"expiresAt"`
				restErrorBody
			}
			now := time.Now().Unix()
			status, raw := ts.restCall(t, http.MethodPost, "/v1/tokens", testBearer, strings.NewReader(tc.body), &out)
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, raw, tc.status)
			}
			if tc.status != 200 {
				if out.Error != "invalid_request" || out.Message == "" {
					t.Fatalf("error body %s, want invalid_request with a message", raw)
				}
				return
			}
			if d := out.ExpiresAt - now; d < tc.ttl-1 || d > tc.ttl+1 {
				t.Fatalf("lifetime %d s, want %d", d, tc.ttl)
			}
		})
	}
}

func TestRESTEmptyChannelsMintTokenThatAllowsNothing(t *testing.T) {
	ts := newTestServer(t, nil)
	var out struct{ Token string }
	ts.restCall(t, http.MethodPost, "/v1/tokens", testBearer, strings.NewReader(`{"peerId":"a","channels":[]}`), &out)
	c := ts.connect(t, tokenQuery(out.Token))
	c.send(t, `{"type":"subscribe","channel":"room","requestId":"s"}`)
	c.expectError(t, CodeChannelNotAuthorized, "s")
}

func TestRESTBodyLimit(t *testing.T) {
	ts := newTestServer(t, nil)
	body := `{"peerId":"a"}`
	exact := body + strings.Repeat(" ", 32<<10-len(body))
	if status, raw := ts.restCall(t, http.MethodPost, "/v1/tokens", testBearer, strings.NewReader(exact), nil); status != http.StatusOK {
		t.Fatalf("32 KiB body: %d %s", status, raw)
	}
	var e restErrorBody
	status, raw := ts.restCall(t, http.MethodPost, "/v1/tokens", testBearer, strings.NewReader(exact+" "), &e)
	if status != http.StatusRequestEntityTooLarge || e.Error != "invalid_request" {
		t.Fatalf("32 KiB + 1 body: %d %s, want 413 invalid_request", status, raw)
	}
	status, _ = ts.restCall(t, http.MethodPost, "/v1/channels/room/publish", testBearer, strings.NewReader(`{"data":"`+strings.Repeat("x", 40<<10)+`"}`), nil)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("publish 40 KiB: %d, want 413", status)
	}
}

func TestRESTRequiresSecretKey(t *testing.T) {
	ts := newTestServer(t, nil)
	calls := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/tokens", `{"peerId":"a"}`},
		{http.MethodGet, "/v1/channels/room/peers", ""},
		{http.MethodPost, "/v1/channels/room/publish", `{"data":1}`},
		{http.MethodDelete, "/v1/peers/a", ""},
	}
	auths := []string{
		"", "Bearer " + testKID + ":wrong", "Bearer " + testPK, "Bearer " + testKID, "Basic " + testKID + ":" + testSecret,
		"Bearer " + otherKID + ":" + testSecret,
	}
	for _, c := range calls {
		for _, auth := range auths {
			var e restErrorBody
			status, raw := ts.restCall(t, c.method, c.path, auth, bodyOf(c.body), &e)
			if status != http.StatusUnauthorized || e.Error != "unauthorized" {
				t.Errorf("%s %s with %q: %d %s, want 401 unauthorized", c.method, c.path, auth, status, raw)
			}
		}
	}
}

func TestRESTPeers(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connect(t, tokenQuery(mint(t, Claims{Subject: "alice", PeerMetadata: json.RawMessage(`{"n":"A"}`)})))
	b := ts.connectAs(t, "bob")
	a.subscribe(t, "acme/room-1", "s")
	b.subscribe(t, "acme/room-1", "s")
	b.subscribe(t, "acme", "s")
	var out struct {
		Channel string                       `json:"channel"`
		Peers   []map[string]json.RawMessage `json:"peers"`
	}
	path := "/v1/channels/" + url.PathEscape("acme/room-1") + "/peers"
	if !strings.Contains(path, "%2F") {
		t.Fatalf("path %s does not encode /", path)
	}
	status, raw := ts.restCall(t, http.MethodGet, path, testBearer, nil, &out)
	if status != http.StatusOK || out.Channel != "acme/room-1" || len(out.Peers) != 2 {
		t.Fatalf("GET %s = %d %s", path, status, raw)
	}
	got := map[string]string{}
	for _, p := range out.Peers {
		var id string
		json.Unmarshal(p["peerId"], &id)
		got[id] = string(p["metadata"])
	}
	if got["alice"] != `{"n":"A"}` || got["bob"] != "" || len(got) != 2 {
		t.Fatalf("peers = %s, want alice with metadata and bob without", raw)
	}

	// An empty channel lists [] (not null).
	status, raw = ts.restCall(t, http.MethodGet, "/v1/channels/empty/peers", testBearer, nil, nil)
	if status != http.StatusOK || strings.TrimSpace(string(raw)) != `{"channel":"empty","peers":[]}` {
		t.Fatalf("empty channel: %d %s", status, raw)
	}

	errs := []struct {
		path, auth string
		status     int
		code       string
	}{
		{"/v1/channels/" + url.PathEscape("_system/x") + "/peers", testBearer, 400, "channel_reserved"},
		{"/v1/channels/" + url.PathEscape("a\x01b") + "/peers", testBearer, 400, "invalid_request"},
		{"/v1/channels/" + strings.Repeat("c", 257) + "/peers", testBearer, 400, "invalid_request"},
		// The limited key lacks presence.
		{"/v1/channels/" + url.PathEscape("acme/room-1") + "/peers", "Bearer " + testKIDLimited + ":" + testSecretLimited, 403, "action_not_permitted"},
	}
	for _, e := range errs {
		var body restErrorBody
		status, raw := ts.restCall(t, http.MethodGet, e.path, e.auth, nil, &body)
		if status != e.status || body.Error != e.code {
			t.Errorf("GET %s: %d %s, want %d %s", e.path, status, raw, e.status, e.code)
		}
	}
}

func TestRESTPeersChannelNotAuthorized(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) {
		c.Apps[0].SecretKeys[1].Actions = []Action{ActionPresence, ActionPublish}
	})
	auth := "Bearer " + testKIDLimited + ":" + testSecretLimited
	for _, tc := range []struct{ method, path, body, code string }{
		{http.MethodGet, "/v1/channels/other/peers", "", "channel_not_authorized"},
		{http.MethodGet, "/v1/channels/" + url.PathEscape("acme/a/b") + "/peers", "", "channel_not_authorized"},
		{http.MethodPost, "/v1/channels/other/publish", `{"data":1}`, "channel_not_authorized"},
	} {
		var body restErrorBody
		status, raw := ts.restCall(t, tc.method, tc.path, auth, bodyOf(tc.body), &body)
		if status != http.StatusForbidden || body.Error != tc.code {
			t.Errorf("%s %s: %d %s, want 403 %s", tc.method, tc.path, status, raw, tc.code)
		}
	}
	status, raw := ts.restCall(t, http.MethodGet, "/v1/channels/"+url.PathEscape("acme/x")+"/peers", auth, nil, nil)
	if status != http.StatusOK {
		t.Fatalf("allowed channel: %d %s", status, raw)
	}
}

func TestRESTPublish(t *testing.T) {
	ts := newTestServer(t, nil)
	withMeta := ts.connectAs(t, "with-meta")
	plain := ts.connectAs(t, "plain")
	withMeta.send(t, `{"type":"subscribe","channel":"acme/room-1","requestId":"s","includeSenderMetadata":true}`)
	withMeta.expectAck(t, "s")
	withMeta.expect(t, TypePresence)
	plain.subscribe(t, "acme/room-1", "s")
	withMeta.expect(t, TypePresence)

	path := "/v1/channels/" + url.PathEscape("acme/room-1") + "/publish"
	var out struct {
		Channel   string `json:"channel"`
		Delivered int    `json:"delivered"`
	}
	status, raw := ts.restCall(t, http.MethodPost, path, testBearer, strings.NewReader(`{"data":{"chat":"hi"}}`), &out)
	if status != http.StatusOK || out.Channel != "acme/room-1" || out.Delivered != 2 {
		t.Fatalf("publish: %d %s", status, raw)
	}
	for _, c := range []*testClient{withMeta, plain} {
		c.expectRaw(t, `{"type":"message","channel":"acme/room-1","from":"_server","data":{"chat":"hi"}}`)
	}
	status, raw = ts.restCall(t, http.MethodPost, path, testBearer, strings.NewReader(`{"data":null,"from":"bot-1","peerMetadata":{"role":"bot"}}`), &out)
	if status != http.StatusOK {
		t.Fatalf("publish with from: %d %s", status, raw)
	}
	withMeta.expectRaw(t, `{"type":"message","channel":"acme/room-1","from":"bot-1","data":null,"fromMetadata":{"role":"bot"}}`)
	plain.expectRaw(t, `{"type":"message","channel":"acme/room-1","from":"bot-1","data":null}`)

	for _, tc := range []struct {
		path, body string
		status     int
		code       string
	}{
		{path, `{}`, 400, "missing_data"},
		{path, `{"data":1,"from":"bad\nid"}`, 400, "invalid_request"},
		{path, `{"data":1,"peerMetadata":[1]}`, 400, "invalid_request"},
		{path, `{"data":1,"extra":1}`, 400, "invalid_request"},
		{"/v1/channels/" + url.PathEscape("_internal/x") + "/publish", `{"data":1}`, 400, "channel_reserved"},
	} {
		var e restErrorBody
		status, raw := ts.restCall(t, http.MethodPost, tc.path, testBearer, strings.NewReader(tc.body), &e)
		if status != tc.status || e.Error != tc.code {
			t.Errorf("publish %s: %d %s, want %d %s", tc.body, status, raw, tc.status, tc.code)
		}
	}
	// No publish action.
	var e restErrorBody
	status, raw = ts.restCall(t, http.MethodPost, "/v1/channels/"+url.PathEscape("acme/x")+"/publish",
		"Bearer "+testKIDLimited+":"+testSecretLimited, strings.NewReader(`{"data":1}`), &e)
	if status != http.StatusForbidden || e.Error != "action_not_permitted" {
		t.Errorf("publish without the action: %d %s", status, raw)
	}
	withMeta.sync(t)
	plain.sync(t)
}

func TestRESTKick(t *testing.T) {
	ts := newTestServer(t, nil)
	obs, victim := ts.pair(t, "room", "observer", "victim")

	var out map[string]any
	status, raw := ts.restCall(t, http.MethodDelete, "/v1/peers/victim", testBearer, nil, &out)
	if status != http.StatusOK || strings.TrimSpace(string(raw)) != `{"closed":1,"peerId":"victim"}` {
		t.Fatalf("kick: %d %s", status, raw)
	}
	if reason := victim.expectClose(t, CloseAdminDisconnect); reason == "" {
		t.Fatal("kick close has no reason")
	}
	obs.expectPresence(t, "room", nil, []string{"victim"})

	status, raw = ts.restCall(t, http.MethodDelete, "/v1/peers/victim", testBearer, nil, nil)
	if status != http.StatusOK || strings.TrimSpace(string(raw)) != `{"closed":0,"peerId":"victim"}` {
		t.Fatalf("second kick: %d %s", status, raw)
	}
	status, _ = ts.restCall(t, http.MethodDelete, "/v1/peers/"+url.PathEscape("bad\x01id"), testBearer, nil, nil)
	if status != http.StatusBadRequest {
		t.Fatalf("kick of an invalid id: %d, want 400", status)
	}
	obs.sync(t)
}

func TestRESTKickEveryConnectionOfAPeer(t *testing.T) {
	// With S10 disabled one peer id can hold several connections; the kick closes all of them.
	ts := newTestServer(t, func(c *ServerConfig) { c.Testing.NoSupersede = true })
	a1 := ts.connectAs(t, "multi")
	a2 := ts.connectAs(t, "multi")
	var out struct {
		PeerID string `json:"peerId"`
		Closed int    `json:"closed"`
	}
	ts.restCall(t, http.MethodDelete, "/v1/peers/multi", testBearer, nil, &out)
	if out.PeerID != "multi" || out.Closed != 2 {
		t.Fatalf("kick = %+v, want closed 2", out)
	}
	a1.expectClose(t, CloseAdminDisconnect)
	a2.expectClose(t, CloseAdminDisconnect)
}

func TestHealthz(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "a")
	a.subscribe(t, "room", "s")
	var out struct {
		Status      string `json:"status"`
		Connections int    `json:"connections"`
		Channels    int    `json:"channels"`
	}
	status, raw := ts.restCall(t, http.MethodGet, "/healthz", "", nil, &out)
	if status != http.StatusOK || out.Status != "ok" || out.Connections != 1 || out.Channels != 1 {
		t.Fatalf("healthz: %d %s", status, raw)
	}
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, nil)
	a := ts.connectAs(t, "a")
	a.subscribe(t, "room", "s")
	a.send(t, `{"type":"nope"}`)
	a.expectError(t, CodeUnknownType, "")
	ts.dial(t, "").expectClose(t, CloseInvalidToken)
	status, raw := ts.restCall(t, http.MethodGet, "/metrics", "", nil, nil)
	if status != http.StatusOK {
		t.Fatalf("metrics: %d", status)
	}
	body := string(raw)
	for _, want := range []string{
		"roomtape_signal_connections 1",
		"roomtape_signal_channels 1",
		`roomtape_signal_messages_in_total{type="subscribe"} 1`,
		`roomtape_signal_messages_in_total{type="unknown"} 1`,
		`roomtape_signal_messages_out_total{type="welcome"} 1`,
		`roomtape_signal_messages_out_total{type="ack"} 1`,
		`roomtape_signal_errors_total{code="unknown_type"} 1`,
		`roomtape_signal_closes_total{code="4001"} 1`,
		`roomtape_signal_connections_accepted_total{credential="token"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, testSecret) || strings.Contains(body, "peer=") {
		t.Error("/metrics exposes secrets or peer ids")
	}
}
