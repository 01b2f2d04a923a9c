package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// pageSeq numbers pages across all browsers, so that failure messages are unambiguous.
var pageSeq atomic.Int64

// Page is one participant: a browser tab (in its own browser context) with the
// SDK and window.rt loaded. It holds at most one MeteredPeer.
type Page struct {
	b      *Browser
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	events []Event
	peerID string
	closed bool
}

// JoinOptions are the arguments of [Page.Join]. Exactly one of Token and APIKey
// must be set.
type JoinOptions struct {
	// URL is the signalling origin, e.g. ws://127.0.0.1:PORT (the SDK appends /v1).
	URL string `json:"url"`
	// Token is a JWT; the page's tokenProvider returns it (see [Page.SetToken]).
	Token string `json:"token,omitempty"`
	// APIKey is a publishable key (pk_...).
	APIKey string `json:"apiKey,omitempty"`
	// Channel is the channel to join.
	Channel string `json:"channel"`
	// IncludeSenderMetadata is passed to MeteredPeer.join.
	IncludeSenderMetadata bool `json:"includeSenderMetadata,omitempty"`
	// NoReconnect sets the SDK option reconnect: false.
	NoReconnect bool `json:"-"`
	// InactivityTimeoutMs is the SDK option of the same name; 0 keeps the default.
	InactivityTimeoutMs int `json:"-"`
	// DataChannel, when set, makes the page act like an app that opens a data
	// channel with this label to every remote peer: remote.pc.createDataChannel
	// on "peer-joined" and again on "connection-reset" (the old channel dies
	// with the replaced RTCPeerConnection). See EventDataChannelOpen.
	DataChannel string `json:"-"`
}

// LocalStream describes a stream the page captured and handed to the SDK.
type LocalStream struct {
	Role     string         `json:"role"`
	StreamID string         `json:"streamId"`
	Metadata map[string]any `json:"metadata"`
	Tracks   []LocalTrack   `json:"tracks"`
}

// LocalTrack is one track of a LocalStream.
type LocalTrack struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Label string `json:"label"`
}

// RemoteInfo is a snapshot of one SDK RemotePeer.
type RemoteInfo struct {
	ID                 string         `json:"id"`
	State              string         `json:"state"` // idle | connecting | connected | reconnecting | closed
	Polite             bool           `json:"polite"`
	Metadata           map[string]any `json:"metadata"` // the remote's peerMetadata
	ConnectionState    string         `json:"connectionState"`
	ICEConnectionState string         `json:"iceConnectionState"`
	SignalingState     string         `json:"signalingState"`
}

// PeerState is the local MeteredPeer's state ("none" before Join).
type PeerState struct {
	State   string `json:"state"`
	PeerID  string `json:"peerId"`
	Channel string `json:"channel"`
}

// RTPCounters sums the RTP stream stats of one media kind.
type RTPCounters struct {
	Bytes   int64 `json:"bytes"`
	Packets int64 `json:"packets"`
	Frames  int64 `json:"frames"`  // framesDecoded (inbound) or framesEncoded (outbound); 0 for audio
	Streams int   `json:"streams"` // how many inbound-rtp / outbound-rtp entries were summed
}

// Stats summarises remote.pc.getStats() for one remote peer.
type Stats struct {
	Peer               string                 `json:"peer"`
	State              string                 `json:"state"` // RemotePeer.state
	ConnectionState    string                 `json:"connectionState"`
	ICEConnectionState string                 `json:"iceConnectionState"`
	SignalingState     string                 `json:"signalingState"`
	Inbound            map[string]RTPCounters `json:"inbound"`  // by kind: "audio", "video"
	Outbound           map[string]RTPCounters `json:"outbound"` // by kind
	InboundBytes       int64                  `json:"inboundBytes"`
	OutboundBytes      int64                  `json:"outboundBytes"`
	LocalCandidate     string                 `json:"localCandidate"`  // selected pair, "udp 127.0.0.1:PORT host"
	RemoteCandidate    string                 `json:"remoteCandidate"` // selected pair
}

// LogEntry is one message of the SDK's logger.
type LogEntry struct {
	T     int64           `json:"t"`
	Level string          `json:"level"`
	Msg   string          `json:"msg"`
	Ctx   json.RawMessage `json:"ctx"`
}

// NewPage opens a new participant tab and loads the test page. t.Cleanup closes
// it (closing its MeteredPeer first).
func (b *Browser) NewPage(t testing.TB) *Page {
	t.Helper()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		t.Fatalf("browsertest: NewPage on a closed browser")
	}
	b.mu.Unlock()
	name := fmt.Sprintf("page%d", pageSeq.Add(1))

	start := time.Now()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	p := &Page{b: b, name: name, ctx: ctx, cancel: cancel}
	b.mu.Lock()
	b.pages = append(b.pages, p)
	b.mu.Unlock()
	t.Cleanup(func() { p.close(t, true) })

	// The first Run creates the tab and binds it to ctx: no timeout here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: %s: opening a tab: %v", name, err)
	}
	nctx, ncancel := context.WithTimeout(ctx, b.evalTimeout)
	defer ncancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(b.site.URL+"/")); err != nil {
		t.Fatalf("browsertest: %s: loading the test page: %v", name, err)
	}
	var ready struct {
		RT  bool `json:"rt"`
		SDK bool `json:"sdk"`
	}
	if err := p.TryEval(`({rt: !!(window.rt && window.rt.ready), sdk: typeof window.MeteredPeer === "object" && typeof window.MeteredPeer.MeteredPeer === "function"})`, &ready); err != nil {
		t.Fatalf("browsertest: %s: %v", name, err)
	}
	if !ready.SDK || !ready.RT {
		t.Fatalf("browsertest: %s: the test page did not load the SDK (MeteredPeer.MeteredPeer: %v, window.rt: %v)", name, ready.SDK, ready.RT)
	}
	b.debugf(t, "%s: opened in %v", name, time.Since(start))
	return p
}

// Name is the page's label in logs and failure messages ("page1", "page2", ...;
// unique within the test binary).
func (p *Page) Name() string { return p.name }

// PeerID is the peer id the server assigned at Join ("" before).
func (p *Page) PeerID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peerID
}

// TryEval evaluates a JavaScript expression in the page, awaits it if it is a
// promise and decodes its JSON value into out (out may be nil). It returns an
// error instead of failing the test; it is safe to call from any goroutine.
func (p *Page) TryEval(js string, out any) error {
	return p.evalWithin(p.b.evalTimeout, js, out)
}

func (p *Page) evalWithin(timeout time.Duration, js string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		var ex *chromedp.ExceptionError
		if errors.As(err, &ex) && ex.Exception != nil && ex.Exception.Description != "" {
			return fmt.Errorf("%s: %s", p.name, firstLine(ex.Exception.Description))
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no result within %v: %w", p.name, timeout, err)
		}
		return fmt.Errorf("%s: %w", p.name, err)
	}
	if out == nil {
		return nil
	}
	if len(raw) == 0 {
		raw = []byte("null")
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s: decoding %.200s: %w", p.name, raw, err)
	}
	return nil
}

// Eval is TryEval that fails the test on error.
func (p *Page) Eval(t testing.TB, js string, out any) {
	t.Helper()
	if err := p.TryEval(js, out); err != nil {
		t.Fatalf("browsertest: eval %s: %v", shorten(js), err)
	}
}

// call evaluates rt.<method>(args...) with JSON-encoded arguments.
func (p *Page) call(method string, out any, args ...any) error {
	parts := make([]string, len(args))
	for i, a := range args {
		j, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("%s: encoding argument of rt.%s: %w", p.name, method, err)
		}
		parts[i] = string(j)
	}
	return p.TryEval("window.rt."+method+"("+strings.Join(parts, ",")+")", out)
}

func (p *Page) mustCall(t testing.TB, method string, out any, args ...any) {
	t.Helper()
	if err := p.call(method, out, args...); err != nil {
		t.Fatalf("browsertest: rt.%s: %v%s", method, err, p.diagnostics())
	}
}

// TryJoin creates the page's MeteredPeer, attaches the local streams added so
// far and joins the channel. It returns the peer id from the welcome.
func (p *Page) TryJoin(o JoinOptions) (string, error) {
	if o.URL == "" || o.Channel == "" || (o.Token == "") == (o.APIKey == "") {
		return "", fmt.Errorf("%s: JoinOptions needs URL, Channel and exactly one of Token and APIKey", p.name)
	}
	args := map[string]any{"url": o.URL, "channel": o.Channel}
	if o.Token != "" {
		args["token"] = o.Token
	} else {
		args["apiKey"] = o.APIKey
	}
	if o.IncludeSenderMetadata {
		args["includeSenderMetadata"] = true
	}
	if o.NoReconnect {
		args["reconnect"] = false
	}
	if o.InactivityTimeoutMs != 0 {
		args["inactivityTimeoutMs"] = o.InactivityTimeoutMs
	}
	if o.DataChannel != "" {
		args["dataChannel"] = o.DataChannel
	}
	var res PeerState
	if err := p.call("join", &res, args); err != nil {
		return "", err
	}
	p.mu.Lock()
	p.peerID = res.PeerID
	p.mu.Unlock()
	return res.PeerID, nil
}

// Join is TryJoin that fails the test on error.
func (p *Page) Join(t testing.TB, o JoinOptions) string {
	t.Helper()
	id, err := p.TryJoin(o)
	if err != nil {
		t.Fatalf("browsertest: join %q: %v%s", o.Channel, err, p.diagnostics())
	}
	return id
}

// SetToken changes the JWT the page's tokenProvider returns on later reconnects.
func (p *Page) SetToken(t testing.TB, token string) {
	t.Helper()
	p.mustCall(t, "setToken", nil, token)
}

// AddCamera captures the fake camera and microphone (getUserMedia({audio:true,
// video:true})) and calls peer.addStream(stream, meta). meta nil means
// {role:"camera"}; the stream is registered under meta["role"] for
// RemoveStream and ReplaceVideoTrack. Before Join, the stream is attached at
// Join.
func (p *Page) AddCamera(t testing.TB, meta map[string]any) LocalStream {
	t.Helper()
	var s LocalStream
	p.mustCall(t, "addCamera", &s, nilMeta(meta))
	return s
}

// AddScreen stands in for a screen share: a second video-only fake-camera
// stream, added with peer.addStream(stream, meta). meta nil means {role:"screen"}.
func (p *Page) AddScreen(t testing.TB, meta map[string]any) LocalStream {
	t.Helper()
	var s LocalStream
	p.mustCall(t, "addScreen", &s, nilMeta(meta))
	return s
}

// RemoveStream calls peer.removeStream for the local stream with this role and
// stops its tracks.
func (p *Page) RemoveStream(t testing.TB, role string) {
	t.Helper()
	p.mustCall(t, "removeStream", nil, role)
}

// ReplaceVideoTrack swaps the video track of the local stream with this role
// ("" = "camera") for a fresh fake-camera track with peer.replaceTrack. It
// returns the old and new track ids.
func (p *Page) ReplaceVideoTrack(t testing.TB, role string) (oldID, newID string) {
	t.Helper()
	if role == "" {
		role = "camera"
	}
	var res struct {
		Old string `json:"oldTrackId"`
		New string `json:"newTrackId"`
	}
	p.mustCall(t, "replaceVideoTrack", &res, role)
	return res.Old, res.New
}

// State returns the local MeteredPeer's state.
func (p *Page) State(t testing.TB) PeerState {
	t.Helper()
	var s PeerState
	p.mustCall(t, "state", &s)
	return s
}

// Remotes lists the SDK's RemotePeers.
func (p *Page) Remotes(t testing.TB) []RemoteInfo {
	t.Helper()
	var rs []RemoteInfo
	p.mustCall(t, "remotes", &rs)
	return rs
}

// TryStats summarises remote.pc.getStats() for the remote peer peerID.
func (p *Page) TryStats(peerID string) (Stats, error) {
	var s Stats
	err := p.call("stats", &s, peerID)
	return s, err
}

// Stats is TryStats that fails the test on error.
func (p *Page) Stats(t testing.TB, peerID string) Stats {
	t.Helper()
	s, err := p.TryStats(peerID)
	if err != nil {
		t.Fatalf("browsertest: stats of %s: %v%s", peerID, err, p.diagnostics())
	}
	return s
}

// WaitConnected waits until the RemotePeer for remoteID reports "connected"
// (RemotePeer state-change) and returns that event.
func (p *Page) WaitConnected(t testing.TB, remoteID string, timeout time.Duration) Event {
	t.Helper()
	return p.WaitEvent(t, RemoteStateIs(remoteID, "connected"), timeout)
}

// WaitInbound waits until inbound RTP bytes from peerID grow between two
// samples for every given kind (default "audio" and "video"), and returns the
// last sample.
func (p *Page) WaitInbound(t testing.TB, peerID string, timeout time.Duration, kinds ...string) Stats {
	t.Helper()
	return p.waitRTPGrowth(t, "inbound", "from", peerID, timeout, kinds, func(s Stats) map[string]RTPCounters { return s.Inbound })
}

// WaitOutbound is WaitInbound for the RTP the page sends to peerID.
func (p *Page) WaitOutbound(t testing.TB, peerID string, timeout time.Duration, kinds ...string) Stats {
	t.Helper()
	return p.waitRTPGrowth(t, "outbound", "to", peerID, timeout, kinds, func(s Stats) map[string]RTPCounters { return s.Outbound })
}

// waitRTPGrowth samples the stats for peerID until the counters of one
// direction (dir, "inbound" or "outbound") grow between two samples for every
// kind, and returns the last sample.
func (p *Page) waitRTPGrowth(t testing.TB, dir, prep, peerID string, timeout time.Duration, kinds []string, counters func(Stats) map[string]RTPCounters) Stats {
	t.Helper()
	if len(kinds) == 0 {
		kinds = []string{"audio", "video"}
	}
	deadline := time.Now().Add(timeout)
	var prev, cur Stats
	var err error
	havePrev := false
	for {
		cur, err = p.TryStats(peerID)
		if err == nil {
			if havePrev {
				grown := true
				for _, k := range kinds {
					if counters(cur)[k].Bytes <= counters(prev)[k].Bytes {
						grown = false
					}
				}
				if grown {
					return cur
				}
			}
			prev, havePrev = cur, true
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("browsertest: %s: %s %v RTP %s %s did not grow within %v (last stats %+v, err %v)%s",
		p.name, dir, kinds, prep, peerID, timeout, cur, err, p.diagnostics())
	return cur
}

// TryEvents fetches the events recorded since the last fetch and returns a copy
// of all events so far.
func (p *Page) TryEvents() ([]Event, error) {
	p.mu.Lock()
	n := len(p.events)
	p.mu.Unlock()
	var raws []json.RawMessage
	if err := p.TryEval(fmt.Sprintf("window.rt.events.slice(%d)", n), &raws); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, raw := range raws {
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("%s: decoding event %s: %w", p.name, raw, err)
		}
		if ev.Seq < len(p.events) { // a concurrent fetch already stored it
			continue
		}
		ev.Raw = raw
		p.events = append(p.events, ev)
	}
	return append([]Event(nil), p.events...), nil
}

// Events returns every event the page recorded so far.
func (p *Page) Events(t testing.TB) []Event {
	t.Helper()
	evs, err := p.TryEvents()
	if err != nil {
		t.Fatalf("browsertest: events: %v", err)
	}
	return evs
}

// LastSeq is the Seq of the newest recorded event (-1 if none); use it with
// After to wait only for later events.
func (p *Page) LastSeq(t testing.TB) int {
	t.Helper()
	return len(p.Events(t)) - 1
}

// TryWaitEvent polls the page's events (every 50 ms) until one matches and
// returns the first match, including events recorded before the call.
func (p *Page) TryWaitEvent(match Predicate, timeout time.Duration) (Event, error) {
	deadline := time.Now().Add(timeout)
	for {
		evs, err := p.TryEvents()
		if err != nil {
			return Event{}, err
		}
		for _, ev := range evs {
			if match(ev) {
				return ev, nil
			}
		}
		if time.Now().After(deadline) {
			return Event{}, fmt.Errorf("%s: no matching event within %v", p.name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitEvent is TryWaitEvent that fails the test (with the page's events and SDK
// warnings) on timeout.
func (p *Page) WaitEvent(t testing.TB, match Predicate, timeout time.Duration) Event {
	t.Helper()
	ev, err := p.TryWaitEvent(match, timeout)
	if err != nil {
		t.Fatalf("browsertest: wait event: %v%s", err, p.diagnostics())
	}
	return ev
}

// Close closes the MeteredPeer and then the tab. Idempotent; t.Cleanup calls it.
func (p *Page) Close(t testing.TB) {
	t.Helper()
	p.close(t, true)
}

func (p *Page) close(t testing.TB, dump bool) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	if dump && t.Failed() {
		t.Logf("browsertest: %s (peer %s) at the failure:%s", p.name, p.PeerID(), p.diagnostics())
	}
	// Leave the channel politely so the server sees a normal close; bounded
	// because the browser may already be gone.
	start := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void]("window.rt && window.rt.close()", chromedp.EvalAwaitPromise))
	cancel()
	p.b.debugf(t, "%s: peer closed after %v", p.name, time.Since(start))
	p.cancel() // closes the tab and disposes of its browser context
	p.b.debugf(t, "%s: tab closed after %v", p.name, time.Since(start))
	p.b.mu.Lock()
	for i, q := range p.b.pages {
		if q == p {
			p.b.pages = append(p.b.pages[:i], p.b.pages[i+1:]...)
			break
		}
	}
	p.b.mu.Unlock()
}

// diagnostics formats recent events and SDK warnings for a failure message.
func (p *Page) diagnostics() string {
	var b strings.Builder
	var evs []json.RawMessage
	if err := p.evalWithin(3*time.Second, "window.rt.events.slice(-60)", &evs); err != nil {
		return fmt.Sprintf("\n(no diagnostics: %v)", err)
	}
	fmt.Fprintf(&b, "\n--- %s events (last %d) ---", p.name, len(evs))
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s", e)
	}
	var logs []LogEntry
	if err := p.evalWithin(3*time.Second, `window.rt.logs.filter(l => l.level === "warn" || l.level === "error").slice(-30)`, &logs); err == nil && len(logs) > 0 {
		fmt.Fprintf(&b, "\n--- %s SDK warnings/errors (last %d) ---", p.name, len(logs))
		for _, l := range logs {
			fmt.Fprintf(&b, "\n  %6dms %s %s %s", l.T, l.Level, l.Msg, l.Ctx)
		}
	}
	var rs []RemoteInfo
	if err := p.evalWithin(3*time.Second, "window.rt.remotes()", &rs); err == nil {
		fmt.Fprintf(&b, "\n--- %s remote peers ---", p.name)
		for _, r := range rs {
			fmt.Fprintf(&b, "\n  %+v", r)
		}
	}
	var ice []map[string]any
	if err := p.evalWithin(3*time.Second, "window.rtIce ? window.rtIce.stats() : []", &ice); err == nil && len(ice) > 0 {
		for _, s := range ice {
			log, _ := s["log"].([]any)
			delete(s, "log")
			fmt.Fprintf(&b, "\n--- %s RTCPeerConnection %v ---\n  %v", p.name, s["index"], s)
			for _, l := range log {
				fmt.Fprintf(&b, "\n    %v", l)
			}
		}
	}
	return b.String()
}

func nilMeta(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func shorten(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}
