// Package e2e_test runs the bot and the recorder against real browsers: headless Chromium running
// the unmodified @metered-ca/realtime SDK (package internal/browsertest), a real signalling server
// on loopback, and TCP proxies the tests own to cut WebSocket connections. The scenarios are those
// of ../shared/metered-protocol.md §7 that issue 3 lists for the browser interop suite, plus the
// browser end-to-end recording checks of issue 4.
//
// Every wait is on an observable event (a page event, a bot event, a packet counter, a manifest
// change) with a generous deadline; fixed sleeps only shape stimuli (how long a socket stays cut).
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/browsertest"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/signalling"
)

const (
	// The built-in demo app of a server started with an empty configuration.
	demoKeyID  = "sk_id_demo"
	demoSecret = "sk_secret_demo"

	channel = "room"
	// botSub sorts above every browser id, so the bot is the impolite side (B6; irrelevant for a
	// pure answerer, but it is what production uses).
	botSub = "~roomtape-recorder"

	// Deadlines. They are generous because the machine is shared and tests run with -race.
	connectTimeout = 30 * time.Second // a browser's RemotePeer reaching connected, a bot track flowing
	eventTimeout   = 20 * time.Second // any other event
	reconnectWait  = 45 * time.Second // a reconnect on the SDK's backoff schedule plus renegotiation
)

// ---------------------------------------------------------------------------------------------
// Signalling server

// signalServer is an in-process signalling server on a fixed loopback address that a test can
// crash (no going_away, as a killed process) and start again on the same address.
type signalServer struct {
	t    testing.TB
	addr string

	mu   sync.Mutex
	srv  *signalling.Server
	done chan error
}

// startSignal runs a server with the built-in demo app on 127.0.0.1:0.
func startSignal(t testing.TB) *signalServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &signalServer{t: t, addr: ln.Addr().String()}
	s.serve(ln)
	t.Cleanup(func() {
		s.mu.Lock()
		srv, done := s.srv, s.done
		s.srv = nil
		s.mu.Unlock()
		if srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Logf("signalling shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("signalling serve: %v", err)
		}
	})
	return s
}

func (s *signalServer) serve(ln net.Listener) {
	s.t.Helper()
	srv, err := signalling.NewServer(signalling.ServerConfig{}, nil)
	if err != nil {
		ln.Close()
		s.t.Fatalf("signalling.NewServer: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.mu.Lock()
	s.srv, s.done = srv, done
	s.mu.Unlock()
}

// URL is the ws:// origin of the server itself.
func (s *signalServer) URL() string { return "ws://" + s.addr }

// Addr is the server's host:port (the target of a proxy).
func (s *signalServer) Addr() string { return s.addr }

// Crash drops every connection without going_away or close frames and stops listening.
func (s *signalServer) Crash() {
	s.t.Helper()
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		s.t.Fatal("signalling server is not running")
	}
	if err := srv.Close(); err != nil {
		s.t.Logf("signalling close: %v", err)
	}
	if err := <-done; err != nil {
		s.t.Errorf("signalling serve: %v", err)
	}
}

// Restart starts a fresh server (empty state) on the same address.
func (s *signalServer) Restart() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old listener's port is free at once; retry in case it lingers
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// mintToken signs a JWT for sub with peerMetadata {"name": sub}, valid for ttl.
func mintToken(t testing.TB, sub string, ttl time.Duration) string {
	t.Helper()
	tok, err := signalling.MintToken(demoKeyID, demoSecret, signalling.Claims{
		Subject: sub, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(ttl).Unix(),
		PeerMetadata: peerMeta(sub),
	})
	if err != nil {
		t.Fatalf("MintToken: %v", err)
	}
	return tok
}

func peerMeta(sub string) json.RawMessage {
	return json.RawMessage(`{"name":"` + sub + `"}`)
}

// botSignalling is the bot's signalling configuration: the demo app's secret key, from which the
// bot mints its own token on every (re)connect, marked as a recorder.
func botSignalling(url string) signalling.ClientConfig {
	return signalling.ClientConfig{URL: url, Credentials: signalling.SecretKeyCredentials{
		KeyID: demoKeyID, Secret: demoSecret, Subject: botSub, PeerMetadata: json.RawMessage(`{"roomtape":"recorder"}`),
	}}
}

// ---------------------------------------------------------------------------------------------
// TCP proxy

// tcpProxy forwards TCP connections from a loopback port to a target. A test cuts every forwarded
// connection (both halves, so the server sees the client go away at once) and can refuse new ones
// (accepted and closed at once: the browser sees a failed WebSocket, close 1006).
type tcpProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	refuse  bool
	conns   map[net.Conn]struct{}
	accepts []time.Time // when each forwarded connection was accepted
	changed chan struct{}
	wg      sync.WaitGroup
}

func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, changed: make(chan struct{}, 1)}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// URL is the ws:// origin that reaches the target through the proxy.
func (p *tcpProxy) URL() string { return "ws://" + p.ln.Addr().String() }

func (p *tcpProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.refuse {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.accepts = append(p.accepts, time.Now())
		p.mu.Unlock()
		select {
		case p.changed <- struct{}{}:
		default:
		}
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every forwarded connection.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Refuse makes the proxy close new connections at once (true) or forward them again (false).
func (p *tcpProxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Accepted is how many connections were forwarded so far.
func (p *tcpProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.accepts)
}

// WaitAccepted waits until more than n connections were forwarded and returns when the
// (n+1)th was accepted.
func (p *tcpProxy) WaitAccepted(t testing.TB, n int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		if len(p.accepts) > n {
			at := p.accepts[n]
			p.mu.Unlock()
			return at
		}
		p.mu.Unlock()
		select {
		case <-p.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("proxy: connection %d not forwarded within %v", n+1, timeout)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// The bot and what it observed

// observer is a bot.Consumer (and the source of bot.Events) that records every track the bot
// handed over, its packets, how it ended, and the bot's events, for tests to wait on.
type observer struct {
	mu      sync.Mutex
	tracks  []*seenTrack
	events  []botEvent
	dupLive []string // tracks started while another live track had the same peer and track id
	changed chan struct{}
}

// seenTrack is one track the bot delivered.
type seenTrack struct {
	info        bot.TrackInfo
	packets     int
	first, last time.Time // arrival of the first and latest RTP packet
	ended       bot.EndReason
}

// botEvent is one bot.Events callback.
type botEvent struct {
	At   time.Time
	Kind string // joined, left, replaced, state, datachannel
	Peer string
	A, B string // replaced: old, new session; state: session, state; datachannel: label
}

func newObserver() *observer { return &observer{changed: make(chan struct{}, 1)} }

func (o *observer) notify() {
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// TrackStarted implements bot.Consumer.
func (o *observer) TrackStarted(info bot.TrackInfo, _ bot.TrackControl) bot.TrackSink {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, t := range o.tracks {
		if t.ended == "" && t.info.PeerID == info.PeerID && t.info.TrackID == info.TrackID {
			o.dupLive = append(o.dupLive, fmt.Sprintf("%s/%s on connection %d while connection %d's is live",
				info.PeerID, info.TrackID, info.Connection, t.info.Connection))
		}
	}
	st := &seenTrack{info: info}
	o.tracks = append(o.tracks, st)
	o.notify()
	return &observerSink{o: o, t: st}
}

type observerSink struct {
	o *observer
	t *seenTrack
}

func (s *observerSink) WriteRTP(_ *rtp.Packet, at time.Time) {
	s.o.mu.Lock()
	if s.t.packets == 0 {
		s.t.first = at
	}
	s.t.packets++
	s.t.last = at
	s.o.mu.Unlock()
	s.o.notify()
}

func (s *observerSink) WriteRTCP([]rtcp.Packet, time.Time) {}

func (s *observerSink) Reconnected() {}

func (s *observerSink) End(r bot.EndReason) {
	s.o.mu.Lock()
	s.t.ended = r
	s.o.mu.Unlock()
	s.o.notify()
}

func (o *observer) add(ev botEvent) {
	ev.At = time.Now()
	o.mu.Lock()
	o.events = append(o.events, ev)
	o.mu.Unlock()
	o.notify()
}

// botEvents reports the bot's events to the observer.
func (o *observer) botEvents() bot.Events {
	return bot.Events{
		PeerJoined: func(id string, _ json.RawMessage) { o.add(botEvent{Kind: "joined", Peer: id}) },
		PeerLeft:   func(id string) { o.add(botEvent{Kind: "left", Peer: id}) },
		SessionReplaced: func(id, old, cur string) {
			o.add(botEvent{Kind: "replaced", Peer: id, A: old, B: cur})
		},
		ConnectionState: func(id, session, state string) {
			o.add(botEvent{Kind: "state", Peer: id, A: session, B: state})
		},
		DataChannel: func(id, label string) { o.add(botEvent{Kind: "datachannel", Peer: id, A: label}) },
	}
}

// waitFor polls cond (called with the observer locked) until it holds.
func (o *observer) waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		ok := cond()
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-o.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("bot: timed out after %v waiting for %s; the bot saw:\n%s", timeout, what, o.describe())
		}
	}
}

// describe lists the tracks and events (for failure messages).
func (o *observer) describe() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for _, t := range o.tracks {
		fmt.Fprintf(&b, "  track %s/%s %s role=%q stream=%s conn=%d packets=%d ended=%q\n", t.info.PeerID, t.info.TrackID,
			t.info.Kind, t.info.Role(), t.info.StreamID, t.info.Connection, t.packets, t.ended)
	}
	for _, e := range o.events {
		if e.Kind != "state" || e.B == "connected" || e.B == "failed" || e.B == "closed" {
			fmt.Fprintf(&b, "  %s %s %s %s %s\n", e.At.Format("15:04:05.000"), e.Kind, e.Peer, e.A, e.B)
		}
	}
	return b.String()
}

// findWhere returns the latest track with this peer and track id whose connection number
// matches. Call with o.mu held.
func (o *observer) findWhere(peer, trackID string, conn func(int) bool) *seenTrack {
	var found *seenTrack
	for _, t := range o.tracks {
		if t.info.PeerID == peer && t.info.TrackID == trackID && conn(t.info.Connection) {
			found = t
		}
	}
	return found
}

// snapshot copies a track's state.
func (o *observer) snapshot(t *seenTrack) seenTrack {
	o.mu.Lock()
	defer o.mu.Unlock()
	return *t
}

// count counts events of kind about peer ("" = any peer). Call with o.mu held.
func (o *observer) count(kind, peer string) int {
	n := 0
	for _, e := range o.events {
		if e.Kind == kind && (peer == "" || e.Peer == peer) {
			n++
		}
	}
	return n
}

// countEvents is count with the lock taken.
func (o *observer) countEvents(kind, peer string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count(kind, peer)
}

// presence lists the joined and left events about peer, in order. Call with o.mu held.
func (o *observer) presence(peer string) []string {
	var seq []string
	for _, e := range o.events {
		if e.Peer == peer && (e.Kind == "joined" || e.Kind == "left") {
			seq = append(seq, e.Kind)
		}
	}
	return seq
}

// tracksOf lists the tracks of a peer. Call with o.mu held.
func (o *observer) tracksOf(peer string) []*seenTrack {
	var out []*seenTrack
	for _, t := range o.tracks {
		if t.info.PeerID == peer {
			out = append(out, t)
		}
	}
	return out
}

// checkNoDuplicates fails if two live tracks ever had the same peer and track id.
func (o *observer) checkNoDuplicates(t testing.TB) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range o.dupLive {
		t.Errorf("bot: duplicate live track: %s", d)
	}
}

// testBot is a running bot with its observer and captured log.
type testBot struct {
	*bot.Bot
	obs  *observer
	logs *logBuffer
}

// startBot runs a bot in the test channel, connected to url (the server or a proxy in front of it).
func startBot(t testing.TB, url string) *testBot {
	t.Helper()
	tr := testenv.Transport(t)
	obs := newObserver()
	logs := newLogBuffer(t, "bot")
	b, err := bot.New(bot.Config{Channel: channel, Announce: true, Signalling: botSignalling(url), Logger: logs.Logger()},
		tr, obs, obs.botEvents())
	if err != nil {
		t.Fatalf("bot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bot.Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("bot did not stop within 20s")
		}
	})
	tb := &testBot{Bot: b, obs: obs, logs: logs}
	deadline := time.Now().Add(eventTimeout)
	for b.PeerID() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("bot did not get a welcome within %v", eventTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tb
}

// logBuffer keeps the newest lines of a component's log and prints them when the test fails.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
	part  []byte
}

const maxLogLines = 400

func newLogBuffer(t testing.TB, name string) *logBuffer {
	l := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("%s log (last %d lines):\n%s", name, len(l.lines), strings.Join(l.lines, "\n"))
		}
	})
	return l
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.part[:i]))
		l.part = l.part[i+1:]
	}
	if len(l.lines) > maxLogLines {
		l.lines = append([]string(nil), l.lines[len(l.lines)-maxLogLines:]...)
	}
	return len(p), nil
}

// Logger logs at debug level into the buffer.
func (l *logBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// contains reports whether a retained line contains every one of the substrings.
func (l *logBuffer) contains(subs ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		ok := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------
// Browser pages

// joinAs joins the test channel with a fresh one-hour JWT for sub through url.
func joinAs(t testing.TB, p *browsertest.Page, url, sub string) string {
	t.Helper()
	id := p.Join(t, browsertest.JoinOptions{URL: url, Channel: channel, Token: mintToken(t, sub, time.Hour)})
	if id != sub {
		t.Fatalf("%s joined as %q, want the JWT sub %q", p.Name(), id, sub)
	}
	return id
}

// joinWithCamera opens a page, adds its fake camera and microphone (role camera) and joins the
// test channel as sub through url. It returns the page, its peer id and its camera stream.
func joinWithCamera(t testing.TB, b *browsertest.Browser, url, sub string) (*browsertest.Page, string, browsertest.LocalStream) {
	t.Helper()
	p := b.NewPage(t)
	cam := p.AddCamera(t, camMeta)
	return p, joinAs(t, p, url, sub), cam
}

// waitConnectedAfter waits for the page's RemotePeer for remote to report connected after the
// event with sequence number mark (-1 = any time).
func waitConnectedAfter(t testing.TB, p *browsertest.Page, remote string, mark int) browsertest.Event {
	t.Helper()
	return p.WaitEvent(t, browsertest.And(browsertest.After(mark), browsertest.RemoteStateIs(remote, "connected")), connectTimeout)
}

// waitReconnected waits for the page's signalling connection to come back (a reconnect) after the
// event with sequence number mark.
func waitReconnected(t testing.TB, p *browsertest.Page, mark int) {
	t.Helper()
	p.WaitEvent(t, browsertest.And(browsertest.After(mark), browsertest.OfType(browsertest.EventSignallingConnected),
		func(e browsertest.Event) bool { return e.Reconnect }), reconnectWait)
}

// remoteInfo returns the page's RemotePeer snapshot for id.
func remoteInfo(t testing.TB, p *browsertest.Page, id string) browsertest.RemoteInfo {
	t.Helper()
	for _, r := range p.Remotes(t) {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("%s has no RemotePeer %s", p.Name(), id)
	return browsertest.RemoteInfo{}
}

// pcLog returns the API/event timelines of every RTCPeerConnection the page created (assets/ice.js).
func pcLog(t testing.TB, p *browsertest.Page) []string {
	t.Helper()
	var pcs []struct {
		Log []string `json:"log"`
	}
	p.Eval(t, "window.rtIce.stats()", &pcs)
	var out []string
	for _, pc := range pcs {
		out = append(out, pc.Log...)
	}
	return out
}

// checkPageHealthy fails on SDK errors, page errors, negotiation errors and 4011 closes.
func checkPageHealthy(t testing.TB, p *browsertest.Page) {
	t.Helper()
	for _, e := range p.Events(t) {
		switch {
		case e.Type == browsertest.EventPageError, e.Type == browsertest.EventNegotiationError, e.Type == browsertest.EventError:
			t.Errorf("%s: %s", p.Name(), e.Raw)
		case e.Type == browsertest.EventSignallingDisconnected && e.Code == 4011:
			t.Errorf("%s: rate limited: %s", p.Name(), e.Raw)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// What the bot received from a browser

// expectTracks waits until the bot receives every track of the browser's stream from peer on
// the given bot connection (0 = any), with the browser's MediaStreamTrack id and stream id, the
// role from the SDK's __meteredTrackMeta, the peer's presence metadata, and packets flowing
// (counting on after they were first seen). It returns the tracks in the stream's order.
func expectTracks(t testing.TB, o *observer, peer string, s browsertest.LocalStream, role string, connection int) []*seenTrack {
	t.Helper()
	what := fmt.Sprintf("%s's %s tracks %v on connection %d", peer, role, trackIDs(s), connection)
	return expectTracksWhere(t, o, peer, s, role, what, func(c int) bool { return connection == 0 || c == connection })
}

// expectTracksWhere is expectTracks for the latest connection whose number matches conn.
func expectTracksWhere(t testing.TB, o *observer, peer string, s browsertest.LocalStream, role, what string, conn func(int) bool) []*seenTrack {
	t.Helper()
	if len(s.Tracks) == 0 {
		t.Fatalf("stream %s (%s) has no tracks", s.StreamID, s.Role)
	}
	o.waitFor(t, what, connectTimeout, func() bool {
		for _, lt := range s.Tracks {
			if st := o.findWhere(peer, lt.ID, conn); st == nil || st.packets == 0 {
				return false
			}
		}
		return true
	})
	var out []*seenTrack
	o.mu.Lock()
	for _, lt := range s.Tracks {
		st := o.findWhere(peer, lt.ID, conn)
		out = append(out, st)
		in := st.info
		if in.Kind != lt.Kind || in.StreamID != s.StreamID || in.Role() != role {
			t.Errorf("bot: track %s: kind %s stream %s role %q, want %s %s %q", lt.ID, in.Kind, in.StreamID, in.Role(), lt.Kind, s.StreamID, role)
		}
		if string(in.PeerMetadata) != string(peerMeta(peer)) {
			t.Errorf("bot: track %s: peer metadata %s, want %s", lt.ID, in.PeerMetadata, peerMeta(peer))
		}
	}
	o.mu.Unlock()
	expectFlowing(t, o, out...)
	return out
}

// expectFlowing waits until each track received at least 20 more RTP packets than now.
func expectFlowing(t testing.TB, o *observer, tracks ...*seenTrack) {
	t.Helper()
	base := make([]int, len(tracks))
	o.mu.Lock()
	for i, st := range tracks {
		base[i] = st.packets
	}
	o.mu.Unlock()
	o.waitFor(t, "packets flowing", connectTimeout, func() bool {
		for i, st := range tracks {
			if st.packets < base[i]+20 || st.ended != "" {
				return false
			}
		}
		return true
	})
}

func trackIDs(s browsertest.LocalStream) []string {
	var ids []string
	for _, tr := range s.Tracks {
		ids = append(ids, tr.Kind+":"+tr.ID)
	}
	return ids
}

// hasLine reports whether any line contains s.
func hasLine(lines []string, s string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, s) })
}
