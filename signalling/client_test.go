package signalling

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// clServer runs a real Server on a loopback port that can be stopped and restarted on the same port.
type clServer struct {
	t    *testing.T
	cfg  ServerConfig
	addr string
	srv  *Server
	done chan error
}

func clStartServer(t *testing.T, mutate func(*ServerConfig)) *clServer {
	t.Helper()
	cfg := ServerConfig{Apps: []AppConfig{{
		ID:              "app",
		SecretKeys:      []SecretKeyConfig{{ID: "sk_id_test", Secret: "sk_secret_test"}},
		PublishableKeys: []PublishableKey{{Key: "pk_test", Actions: AllActions}},
	}}}
	if mutate != nil {
		mutate(&cfg)
	}
	s := &clServer{t: t, cfg: cfg, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *clServer) start() {
	s.t.Helper()
	srv, err := NewServer(s.cfg, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; i < 50; i++ { // the port of a just-closed server may take a moment to free
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.srv, s.done = srv, make(chan error, 1)
	go func() { s.done <- srv.Serve(ln) }()
}

// crash drops every connection without going_away, like a killed process.
func (s *clServer) crash() {
	if s.srv == nil {
		return
	}
	_ = s.srv.Close()
	<-s.done
	s.srv = nil
}

func (s *clServer) stop() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
	s.srv = nil
}

func (s *clServer) url() string { return "ws://" + s.addr }

// clRecorder collects a client's events.
type clRecorder struct {
	mu        sync.Mutex
	connected []Welcome
	presence  []PresenceEvent
	directs   []string
	discons   []int
	notify    chan struct{}
}

func newCLRecorder() *clRecorder { return &clRecorder{notify: make(chan struct{}, 100)} }

func (r *clRecorder) handler() Handler {
	ping := func() {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
	return Handler{
		Connected: func(w Welcome, _ bool) {
			r.mu.Lock()
			r.connected = append(r.connected, w)
			r.mu.Unlock()
			ping()
		},
		Presence: func(ev PresenceEvent) {
			r.mu.Lock()
			r.presence = append(r.presence, ev)
			r.mu.Unlock()
			ping()
		},
		Direct: func(from string, data, _ json.RawMessage) {
			r.mu.Lock()
			r.directs = append(r.directs, from+":"+string(data))
			r.mu.Unlock()
			ping()
		},
		Disconnected: func(code int, _ string, _ bool) {
			r.mu.Lock()
			r.discons = append(r.discons, code)
			r.mu.Unlock()
			ping()
		},
	}
}

func (r *clRecorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func clRun(t *testing.T, cfg ClientConfig, h Handler) (*Client, <-chan error, context.CancelFunc) {
	t.Helper()
	c, err := NewClient(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	finished := make(chan struct{})
	go func() { errc <- c.Run(ctx); close(finished) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("client did not stop")
		}
	})
	return c, errc, cancel
}

func clCreds(sub string) SecretKeyCredentials {
	return SecretKeyCredentials{KeyID: "sk_id_test", Secret: "sk_secret_test", Subject: sub,
		PeerMetadata: json.RawMessage(`{"roomtape":"recorder"}`)}
}

func clFastBackoff() BackoffConfig {
	return BackoffConfig{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}
}

func TestClientSnapshotThenDeltasAndDirect(t *testing.T) {
	s := clStartServer(t, nil)
	botRec, aliceRec := newCLRecorder(), newCLRecorder()
	bot, _, _ := clRun(t, ClientConfig{URL: s.url(), Credentials: clCreds("~bot"), Channels: []string{"room"}}, botRec.handler())
	botRec.waitFor(t, "bot snapshot", func() bool { return len(botRec.presence) == 1 })
	if ev := botRec.presence[0]; !ev.Snapshot || len(ev.Joined) != 0 {
		t.Fatalf("first presence = %+v, want an empty snapshot", ev)
	}
	alice, _, _ := clRun(t, ClientConfig{URL: s.url(), Credentials: clCreds("alice"), Channels: []string{"room"}}, aliceRec.handler())
	aliceRec.waitFor(t, "alice snapshot", func() bool { return len(aliceRec.presence) == 1 })
	if ev := aliceRec.presence[0]; !ev.Snapshot || len(ev.Joined) != 1 || ev.Joined[0].PeerID != "~bot" ||
		string(ev.Joined[0].Metadata) != `{"roomtape":"recorder"}` {
		t.Fatalf("alice snapshot = %+v", ev)
	}
	botRec.waitFor(t, "bot delta", func() bool { return len(botRec.presence) == 2 })
	if ev := botRec.presence[1]; ev.Snapshot || len(ev.Joined) != 1 || ev.Joined[0].PeerID != "alice" {
		t.Fatalf("bot delta = %+v", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := alice.Send(ctx, "~bot", map[string]string{"hello": "bot"}); err != nil {
		t.Fatal(err)
	}
	botRec.waitFor(t, "direct", func() bool { return len(botRec.directs) == 1 })
	if got := botRec.directs[0]; got != `alice:{"hello":"bot"}` {
		t.Fatalf("direct = %s", got)
	}
	err := bot.Send(ctx, "nobody", "x")
	var se *ServerError
	if !errors.As(err, &se) || se.Code != CodePeerNotFound {
		t.Fatalf("send to absent peer: %v, want peer_not_found", err)
	}
	if err := bot.Publish(ctx, "room", map[string]string{"recording": "started"}); err != nil {
		t.Fatal(err)
	}
}

func TestClientReconnectsAndResubscribesAfterServerCrash(t *testing.T) {
	s := clStartServer(t, nil)
	rec := newCLRecorder()
	clRun(t, ClientConfig{URL: s.url(), Credentials: clCreds("~bot"), Channels: []string{"room"}, Backoff: clFastBackoff()}, rec.handler())
	rec.waitFor(t, "first snapshot", func() bool { return len(rec.presence) == 1 })
	s.crash()
	rec.waitFor(t, "disconnect", func() bool { return len(rec.discons) == 1 })
	s.start()
	rec.waitFor(t, "reconnect", func() bool { return len(rec.connected) == 2 })
	rec.waitFor(t, "second snapshot", func() bool { return len(rec.presence) == 2 })
	if !rec.presence[1].Snapshot {
		t.Fatalf("presence after resubscribe = %+v, want a snapshot", rec.presence[1])
	}
	if rec.connected[1].PeerID != "~bot" {
		t.Fatalf("peer id after reconnect = %q", rec.connected[1].PeerID)
	}
}

func TestClientReconnectsAfterGoingAway(t *testing.T) {
	s := clStartServer(t, nil)
	rec := newCLRecorder()
	clRun(t, ClientConfig{URL: s.url(), Credentials: clCreds("~bot"), Channels: []string{"room"}, Backoff: clFastBackoff()}, rec.handler())
	rec.waitFor(t, "connected", func() bool { return len(rec.connected) == 1 && len(rec.presence) == 1 })
	s.stop()
	rec.waitFor(t, "disconnect 1001", func() bool { return len(rec.discons) == 1 })
	if rec.discons[0] != CloseGoingAway {
		t.Fatalf("close code = %d, want 1001", rec.discons[0])
	}
	s.start()
	rec.waitFor(t, "reconnect", func() bool { return len(rec.connected) == 2 && len(rec.presence) == 2 })
}

func TestClientStopsOnTerminalClose(t *testing.T) {
	s := clStartServer(t, nil)
	rec := newCLRecorder()
	_, errc, _ := clRun(t, ClientConfig{URL: s.url(), Credentials: clCreds("~bot"), Backoff: clFastBackoff()}, rec.handler())
	rec.waitFor(t, "connected", func() bool { return len(rec.connected) == 1 })
	req, _ := http.NewRequest(http.MethodDelete, "http://"+s.addr+"/v1/peers/~bot", nil)
	req.Header.Set("Authorization", "Bearer sk_id_test:sk_secret_test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-errc:
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != CloseAdminDisconnect {
			t.Fatalf("Run returned %v, want CloseError 4020", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client kept running after 4020")
	}
}

func TestClientInvalidCredentialsAreTerminal(t *testing.T) {
	s := clStartServer(t, nil)
	creds := clCreds("~bot")
	creds.Secret = "wrong-secret"
	_, errc, _ := clRun(t, ClientConfig{URL: s.url(), Credentials: creds, Backoff: clFastBackoff()}, Handler{})
	select {
	case err := <-errc:
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != CloseInvalidToken {
			t.Fatalf("Run returned %v, want CloseError 4001", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client kept retrying after 4001")
	}
}

// A fresh token is minted on each connect, so a 4002 close is followed by a successful reconnect.
func TestClientRefreshesTokenAfterExpiry(t *testing.T) {
	s := clStartServer(t, func(c *ServerConfig) { c.ExpiryLead = 100 * time.Millisecond })
	rec := newCLRecorder()
	creds := clCreds("~bot")
	creds.TTL = 2 * time.Second
	clRun(t, ClientConfig{URL: s.url(), Credentials: creds, Channels: []string{"room"}, Backoff: clFastBackoff()}, rec.handler())
	rec.waitFor(t, "expiry close and reconnect", func() bool { return len(rec.connected) >= 2 })
	if rec.discons[0] != CloseTokenExpired {
		t.Fatalf("first close = %d, want 4002", rec.discons[0])
	}
}

// A superseded socket (same sub connecting again) is closed 4020 by the server; the newest
// connection keeps working.
func TestClientSupersededByNewerConnection(t *testing.T) {
	s := clStartServer(t, nil)
	first, second := newCLRecorder(), newCLRecorder()
	_, errc1, _ := clRun(t, ClientConfig{URL: s.url(), Credentials: clCreds("~bot")}, first.handler())
	first.waitFor(t, "first connected", func() bool { return len(first.connected) == 1 })
	c2, _, _ := clRun(t, ClientConfig{URL: s.url(), Credentials: clCreds("~bot"), Channels: []string{"room"}}, second.handler())
	second.waitFor(t, "second subscribed", func() bool { return len(second.presence) == 1 })
	select {
	case err := <-errc1:
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != CloseAdminDisconnect {
			t.Fatalf("old client ended with %v, want 4020", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("old client was not superseded")
	}
	if !c2.Connected() {
		t.Fatal("new client lost its connection")
	}
}

func TestClientKeepaliveAndInactivity(t *testing.T) {
	s := clStartServer(t, nil)
	rec := newCLRecorder()
	clRun(t, ClientConfig{URL: s.url(), Credentials: clCreds("~bot"), PingAfter: 100 * time.Millisecond,
		InactivityTimeout: 400 * time.Millisecond}, rec.handler())
	rec.waitFor(t, "connected", func() bool { return len(rec.connected) == 1 })
	time.Sleep(1500 * time.Millisecond) // > 3 inactivity windows: pongs must keep it alive
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.discons) != 0 {
		t.Fatalf("idle connection dropped (codes %v) although the server answers pings", rec.discons)
	}
}

func TestClientBackoffSchedule(t *testing.T) {
	c, err := NewClient(ClientConfig{URL: "ws://127.0.0.1:1", Credentials: StaticToken("x")}, Handler{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		attempt int
		floor   time.Duration
		base    time.Duration
	}{
		{1, 0, 500 * time.Millisecond}, {2, 0, time.Second}, {3, 0, 2 * time.Second},
		{7, 0, 30 * time.Second}, {50, 0, 30 * time.Second}, {1, 30 * time.Second, 30 * time.Second},
	} {
		for i := 0; i < 20; i++ {
			d := c.backoff(tc.attempt, tc.floor)
			lo, hi := time.Duration(float64(tc.base)*0.8), time.Duration(float64(tc.base)*1.2)
			if d < lo || d > hi {
				t.Fatalf("attempt %d floor %s: delay %s outside [%s, %s]", tc.attempt, tc.floor, d, lo, hi)
			}
		}
	}
}

func TestNewClientRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "http://x", "ws://", "::"} {
		if _, err := NewClient(ClientConfig{URL: u, Credentials: StaticToken("x")}, Handler{}); err == nil {
			t.Errorf("NewClient(%q) succeeded", u)
		}
	}
}
