package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/browsertest"
)

var camMeta = map[string]any{"role": "camera"}

// §7.1: a browser joins with camera and microphone, then the bot joins. The browser offers on the
// presence "joined" of the bot; the bot answers and records both tracks.
func TestBotJoinsSecond(t *testing.T) {
	srv := startSignal(t)
	b := browsertest.Launch(t)
	alice, aliceID, cam := joinWithCamera(t, b, srv.URL(), "alice")

	start := time.Now()
	tb := startBot(t, srv.URL())
	waitConnectedAfter(t, alice, botSub, -1)
	tracks := expectTracks(t, tb.obs, aliceID, cam, "camera", 1)
	t.Logf("bot joined second: both tracks flowing %v after the bot started", time.Since(start).Round(time.Millisecond))
	alice.WaitOutbound(t, botSub, eventTimeout, "audio", "video")
	if r := remoteInfo(t, alice, botSub); r.State != "connected" || r.ConnectionState != "connected" {
		t.Errorf("alice: RemotePeer(bot) %+v, want connected", r)
	}
	for _, st := range tracks {
		if st.info.Connection != 1 {
			t.Errorf("track %s on connection %d, want 1", st.info.TrackID, st.info.Connection)
		}
	}
	checkPageHealthy(t, alice)
}

// §7.2: the bot subscribes to an empty channel first, then a browser joins and publishes. Pass as
// in §7.1, and the bot never sent an offer (the browser only ever applied an answer).
func TestBotJoinsFirst(t *testing.T) {
	srv := startSignal(t)
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	alice, aliceID, cam := joinWithCamera(t, b, srv.URL(), "alice")

	waitConnectedAfter(t, alice, botSub, -1)
	expectTracks(t, tb.obs, aliceID, cam, "camera", 1)
	alice.WaitOutbound(t, botSub, eventTimeout, "audio", "video")

	log := pcLog(t, alice)
	if hasLine(log, "setRemoteDescription offer") {
		t.Errorf("alice applied a remote offer: the bot must never offer\n%v", log)
	}
	if !hasLine(log, "setRemoteDescription answer") {
		t.Errorf("alice never applied an answer\n%v", log)
	}
	checkPageHealthy(t, alice)
}

// §7.3: a browser joins with nothing while the bot is present: no negotiation. Then it adds its
// camera: the SDK sends the track metadata, then an offer; the bot records both tracks with role
// camera (bound at OnTrack, so the metadata preceded the tracks).
func TestBotStreamAddedLater(t *testing.T) {
	srv := startSignal(t)
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	alice := b.NewPage(t)
	aliceID := joinAs(t, alice, srv.URL(), "alice")
	alice.WaitEvent(t, browsertest.PeerJoined(botSub), eventTimeout)
	tb.obs.waitFor(t, "alice in the bot's roster", eventTimeout, func() bool { return tb.obs.count("joined", aliceID) > 0 })

	// A page with no media never negotiates: the bot's RemotePeer stays idle, its
	// RTCPeerConnection has not made or applied any description, and the bot has no connection.
	quiet(t, 2*time.Second, func() string {
		if r := remoteInfo(t, alice, botSub); r.State != "idle" || r.SignalingState != "stable" || r.ConnectionState != "new" {
			return "RemotePeer(bot) left idle before any media: " + r.State + "/" + r.SignalingState + "/" + r.ConnectionState
		}
		if n := tb.obs.countEvents("state", aliceID); n > 0 {
			return "the bot opened a connection to alice before she had media"
		}
		return ""
	})
	if log := pcLog(t, alice); hasLine(log, "createOffer") || hasLine(log, "setRemoteDescription") {
		t.Errorf("negotiation before any media:\n%v", log)
	}

	mark := alice.LastSeq(t)
	cam := alice.AddCamera(t, camMeta)
	waitConnectedAfter(t, alice, botSub, mark)
	expectTracks(t, tb.obs, aliceID, cam, "camera", 1)
	if !tb.logs.contains("answered offer", "peer="+aliceID) {
		t.Errorf("the bot's log has no answered offer for %s", aliceID)
	}
	checkPageHealthy(t, alice)
}

// quiet checks, every 200 ms for d, that check reports nothing. It is the observation window of a
// negative assertion ("nothing happens"), not a wait for something to happen.
func quiet(t testing.TB, d time.Duration, check func() string) {
	t.Helper()
	end := time.Now().Add(d)
	for {
		if msg := check(); msg != "" {
			t.Fatal(msg)
		}
		if time.Now().After(end) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// §7.4: a viewer-only browser (no media) never negotiates with the bot: no rtc traffic either way,
// its RemotePeer(bot) stays idle, the bot gets no tracks. A publishing browser joins afterwards as
// the sentinel: by the time the bot records it, the viewer must still be untouched.
func TestBotViewerOnly(t *testing.T) {
	srv := startSignal(t)
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	viewer := b.NewPage(t)
	viewerID := joinAs(t, viewer, srv.URL(), "viewer")
	viewer.WaitEvent(t, browsertest.PeerJoined(botSub), eventTimeout)
	tb.obs.waitFor(t, "viewer in the bot's roster", eventTimeout, func() bool { return tb.obs.count("joined", viewerID) > 0 })

	// The sentinel has media, so it offers to the bot and to the viewer (who only answers).
	pub, pubID, cam := joinWithCamera(t, b, srv.URL(), "publisher")
	waitConnectedAfter(t, pub, botSub, -1)
	expectTracks(t, tb.obs, pubID, cam, "camera", 1)
	waitConnectedAfter(t, viewer, pubID, -1) // the viewer is alive and negotiates with publishers

	r := remoteInfo(t, viewer, botSub)
	if r.State != "idle" || r.SignalingState != "stable" || r.ConnectionState != "new" || r.ICEConnectionState != "new" {
		t.Errorf("viewer: RemotePeer(bot) %+v, want idle with an untouched RTCPeerConnection", r)
	}
	for _, e := range viewer.Events(t) {
		if e.Peer == botSub && (e.Type == browsertest.EventRemoteState || e.Type == browsertest.EventTrack) {
			t.Errorf("viewer: unexpected event from the bot: %s", e.Raw)
		}
	}
	tb.obs.mu.Lock()
	if n := len(tb.obs.tracksOf(viewerID)); n > 0 {
		t.Errorf("bot: %d tracks from the viewer", n)
	}
	if n := tb.obs.count("state", viewerID); n > 0 {
		t.Errorf("bot: %d connection state changes with the viewer: it negotiated", n)
	}
	tb.obs.mu.Unlock()
	if tb.logs.contains("peer="+viewerID, "answered offer") || tb.logs.contains("peer="+viewerID, "candidate") {
		t.Errorf("bot: rtc traffic with the viewer in its log")
	}
	checkPageHealthy(t, viewer)
	checkPageHealthy(t, pub)
}

// connectSecond joins page as sub without media, waits until it is connected to every other
// browser in others (they have media and offer to it) and then adds its camera, which
// renegotiates with them and makes the first offer to the bot. This is how the browser harness
// avoids the SDK's browser-to-browser glare stall (two browsers with media joining at once); the
// bot is never affected because it never offers.
func connectSecond(t *testing.T, page *browsertest.Page, url, sub string, others ...*browsertest.Page) (string, browsertest.LocalStream) {
	t.Helper()
	id := joinAs(t, page, url, sub)
	for _, o := range others {
		waitConnectedAfter(t, page, o.PeerID(), -1)
		waitConnectedAfter(t, o, id, -1)
	}
	mark := page.LastSeq(t)
	cam := page.AddCamera(t, camMeta)
	waitConnectedAfter(t, page, botSub, mark)
	return id, cam
}

// §7.5: two browsers and the bot. The browsers connect to each other and the bot records four
// tracks, each bound to its own peer with its metadata.
func TestBotTwoBrowsers(t *testing.T) {
	srv := startSignal(t)
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	alice, aliceID, aliceCam := joinWithCamera(t, b, srv.URL(), "alice")
	waitConnectedAfter(t, alice, botSub, -1)
	bob := b.NewPage(t)
	bobID, bobCam := connectSecond(t, bob, srv.URL(), "bob", alice)

	at := expectTracks(t, tb.obs, aliceID, aliceCam, "camera", 1)
	bt := expectTracks(t, tb.obs, bobID, bobCam, "camera", 1)
	tb.obs.mu.Lock()
	if n := len(tb.obs.tracks); n != 4 {
		t.Errorf("bot received %d tracks, want 4", n)
	}
	tb.obs.mu.Unlock()
	expectFlowing(t, tb.obs, append(at, bt...)...)
	alice.WaitInbound(t, bobID, eventTimeout, "audio", "video")
	bob.WaitInbound(t, aliceID, eventTimeout, "audio", "video")
	checkPageHealthy(t, alice)
	checkPageHealthy(t, bob)
}

// §7.6: a screen share is added and later removed on the same session. The bot renegotiates on
// its existing connection (no replacement), records the screen track with role screen, ends it
// as removed, and the camera keeps flowing throughout.
func TestBotScreenShareAddedAndRemoved(t *testing.T) {
	srv := startSignal(t)
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	alice, aliceID, cam := joinWithCamera(t, b, srv.URL(), "alice")
	waitConnectedAfter(t, alice, botSub, -1)
	camTracks := expectTracks(t, tb.obs, aliceID, cam, "camera", 1)

	screen := alice.AddScreen(t, map[string]any{"role": "screen"})
	st := expectTracks(t, tb.obs, aliceID, screen, "screen", 1)[0]
	expectFlowing(t, tb.obs, camTracks...)

	alice.RemoveStream(t, "screen")
	tb.obs.waitFor(t, "the screen track to end", eventTimeout, func() bool { return st.ended != "" })
	if got := tb.obs.snapshot(st).ended; got != bot.EndRemoved {
		t.Errorf("screen track ended with %q, want %q", got, bot.EndRemoved)
	}
	expectFlowing(t, tb.obs, camTracks...) // the camera is unaffected

	tb.obs.mu.Lock()
	if n := tb.obs.count("replaced", aliceID); n > 0 {
		t.Errorf("bot replaced alice's connection %d times during renegotiation", n)
	}
	for _, tr := range tb.obs.tracksOf(aliceID) {
		if tr.info.Connection != 1 {
			t.Errorf("track %s on connection %d, want 1", tr.info.TrackID, tr.info.Connection)
		}
	}
	tb.obs.mu.Unlock()
	for _, e := range alice.Events(t) {
		if e.Type == browsertest.EventConnectionReset {
			t.Errorf("alice: %s", e.Raw)
		}
	}
	if r := remoteInfo(t, alice, botSub); r.State != "connected" {
		t.Errorf("alice: RemotePeer(bot) %+v after the screen share", r)
	}
	checkPageHealthy(t, alice)
}

// cutBrowserSocket cuts a page's WebSocket at the proxy and keeps new connections refused for
// outage (the stimulus), then lets the SDK's next attempt through. It returns the page's event
// mark from before the cut and when the proxy forwarded the reconnect.
func cutBrowserSocket(t *testing.T, p *browsertest.Page, px *tcpProxy, outage time.Duration) (mark int, cutAt, reconnectAt time.Time) {
	t.Helper()
	mark = p.LastSeq(t)
	n := px.Accepted()
	px.Refuse(true)
	cutAt = time.Now()
	px.Cut()
	p.WaitEvent(t, browsertest.And(browsertest.After(mark), browsertest.OfType(browsertest.EventSignallingDisconnected)), eventTimeout)
	time.Sleep(outage)
	px.Refuse(false)
	reconnectAt = px.WaitAccepted(t, n, reconnectWait)
	waitReconnected(t, p, mark)
	return mark, cutAt, reconnectAt
}

// expectNewSession checks the bot's view of a peer's new session: the old tracks ended, the new
// ones (on the latest connection after old's) carry the same track ids and flow.
func expectNewSession(t *testing.T, o *observer, peer string, s browsertest.LocalStream, old []*seenTrack) []*seenTrack {
	t.Helper()
	after := old[0].info.Connection
	cur := expectTracksWhere(t, o, peer, s, "camera", fmt.Sprintf("%s's camera tracks %v on a connection after %d", peer, trackIDs(s), after),
		func(c int) bool { return c > after })
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.count("replaced", peer) == 0 {
		t.Errorf("bot: no session-replaced event for %s", peer)
	}
	for _, st := range old {
		// The SDK closes its old RTCPeerConnection before it offers from the new one, so pion
		// usually sees the DTLS close_notify first (connection lost); if that is lost, the
		// new-session offer replaces the connection. Never "removed": nothing was removed.
		if st.ended != bot.EndSessionReplaced && st.ended != bot.EndConnectionLost {
			t.Errorf("bot: old %s track of %s ended %q, want %q or %q", st.info.Kind, peer, st.ended,
				bot.EndConnectionLost, bot.EndSessionReplaced)
		}
	}
	for _, st := range cur {
		if st.info.SessionID == old[0].info.SessionID {
			t.Errorf("bot: new %s track of %s has the old session id %s", st.info.Kind, peer, st.info.SessionID)
		}
	}
	return cur
}

// gaps logs and returns, per kind, the time between the old track's last packet and the new
// track's first.
func gaps(t *testing.T, o *observer, old, cur []*seenTrack) map[string]time.Duration {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]time.Duration{}
	for _, n := range cur {
		for _, p := range old {
			if p.info.TrackID == n.info.TrackID || (p.info.Kind == n.info.Kind && p.info.StreamID == n.info.StreamID) {
				out[n.info.Kind] = n.first.Sub(p.last)
			}
		}
	}
	t.Logf("media gaps between sessions: %v", out)
	return out
}

// §7.8: the browser's WebSocket is cut for about 2 s by a proxy between the page and the server
// (media keeps flowing peer to peer). The server emits left and joined (S10), the SDK reconciles
// with a fresh RTCPeerConnection, the bot detects the new session, replaces its connection and
// records the same tracks again within 3 s of the reconnect.
func TestBotBrowserSocketCut(t *testing.T) {
	srv := startSignal(t)
	px := startProxy(t, srv.Addr())
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	alice, aliceID, cam := joinWithCamera(t, b, px.URL(), "alice")
	waitConnectedAfter(t, alice, botSub, -1)
	old := expectTracks(t, tb.obs, aliceID, cam, "camera", 1)
	events := tb.obs.countEvents("joined", aliceID) + tb.obs.countEvents("left", aliceID)

	mark, cutAt, reconnectAt := cutBrowserSocket(t, alice, px, 2*time.Second)
	alice.WaitEvent(t, browsertest.And(browsertest.After(mark), browsertest.OfType(browsertest.EventConnectionReset), browsertest.FromPeer(botSub)), eventTimeout)
	waitConnectedAfter(t, alice, botSub, mark)
	cur := expectNewSession(t, tb.obs, aliceID, cam, old)

	tb.obs.mu.Lock()
	seq := tb.obs.presence(aliceID)
	var resumed time.Time
	for _, st := range cur {
		if resumed.IsZero() || st.first.After(resumed) {
			resumed = st.first
		}
	}
	tb.obs.mu.Unlock()
	if got := seq[events:]; len(got) != 2 || got[0] != "left" || got[1] != "joined" {
		t.Errorf("bot saw %v for alice after the cut, want [left joined] (S10)", got)
	}
	t.Logf("socket down %v; media resumed %v after the reconnect reached the server", reconnectAt.Sub(cutAt).Round(time.Millisecond),
		resumed.Sub(reconnectAt).Round(time.Millisecond))
	if d := resumed.Sub(reconnectAt); d > 3*time.Second {
		t.Errorf("media resumed %v after the browser reconnected, want < 3s", d)
	}
	for kind, g := range gaps(t, tb.obs, old, cur) {
		if limit := reconnectAt.Sub(cutAt) + 2*time.Second; g > limit {
			t.Errorf("%s gap %v, want <= reconnection time + 2s = %v", kind, g, limit)
		}
	}
	tb.obs.checkNoDuplicates(t)
	checkPageHealthy(t, alice)
}

// §7.10: the bot's own WebSocket is cut (proxy between bot and server). The bot reconnects with
// the same identity; the server emits left and joined for it (S10); both browsers drop their
// RemotePeer for the bot, discover it again and offer; the bot replaces each connection and
// records every track again, never with two live recorders for one track.
func TestBotSocketCut(t *testing.T) {
	srv := startSignal(t)
	px := startProxy(t, srv.Addr())
	tb := startBot(t, px.URL())
	b := browsertest.Launch(t)
	alice, aliceID, aliceCam := joinWithCamera(t, b, srv.URL(), "alice")
	waitConnectedAfter(t, alice, botSub, -1)
	bob := b.NewPage(t)
	bobID, bobCam := connectSecond(t, bob, srv.URL(), "bob", alice)
	aliceOld := expectTracks(t, tb.obs, aliceID, aliceCam, "camera", 1)
	bobOld := expectTracks(t, tb.obs, bobID, bobCam, "camera", 1)

	marks := []int{alice.LastSeq(t), bob.LastSeq(t)}
	n := px.Accepted()
	px.Cut()
	px.WaitAccepted(t, n, reconnectWait)
	for i, p := range []*browsertest.Page{alice, bob} {
		p.WaitEvent(t, browsertest.And(browsertest.After(marks[i]), browsertest.PeerLeft(botSub)), eventTimeout)
		p.WaitEvent(t, browsertest.And(browsertest.After(marks[i]), browsertest.PeerJoined(botSub)), reconnectWait)
		waitConnectedAfter(t, p, botSub, marks[i])
	}
	expectNewSession(t, tb.obs, aliceID, aliceCam, aliceOld)
	expectNewSession(t, tb.obs, bobID, bobCam, bobOld)
	if tb.PeerID() != botSub {
		t.Errorf("bot peer id %q after reconnect, want %q", tb.PeerID(), botSub)
	}
	tb.obs.checkNoDuplicates(t)
	tb.obs.mu.Lock()
	live := map[string]int{}
	for _, st := range tb.obs.tracks {
		if st.ended == "" {
			live[st.info.PeerID+"/"+st.info.TrackID]++
		}
	}
	tb.obs.mu.Unlock()
	if len(live) != 4 {
		t.Errorf("bot has live tracks %v, want the 4 browser tracks once each", live)
	}
	checkPageHealthy(t, alice)
	checkPageHealthy(t, bob)
}

// §7.12: the signalling server crashes (no going_away) and restarts on the same address during
// a call of three browsers and the bot. Every client reconnects on its backoff schedule, every
// browser rebuilds its connection to the bot, and the bot records every browser again. No client
// ends in ReconcileTimeoutError or is rate limited (4011).
func TestBotServerRestart(t *testing.T) {
	srv := startSignal(t)
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	alice, aliceID, aliceCam := joinWithCamera(t, b, srv.URL(), "alice")
	pages := []*browsertest.Page{alice, b.NewPage(t), b.NewPage(t)}
	ids, cams := []string{aliceID}, []browsertest.LocalStream{aliceCam}
	waitConnectedAfter(t, pages[0], botSub, -1)
	for i, sub := range []string{"bob", "carol"} {
		id, cam := connectSecond(t, pages[i+1], srv.URL(), sub, pages[:i+1]...)
		ids, cams = append(ids, id), append(cams, cam)
	}
	var old [][]*seenTrack
	for i := range pages {
		old = append(old, expectTracks(t, tb.obs, ids[i], cams[i], "camera", 1))
	}

	marks := make([]int, len(pages))
	for i, p := range pages {
		marks[i] = p.LastSeq(t)
	}
	srv.Crash()
	srv.Restart()
	for i, p := range pages {
		waitReconnected(t, p, marks[i])
		waitConnectedAfter(t, p, botSub, marks[i])
	}
	for i := range pages {
		expectNewSession(t, tb.obs, ids[i], cams[i], old[i])
	}
	tb.obs.checkNoDuplicates(t)
	for i, p := range pages {
		for _, e := range p.Events(t) {
			if e.Seq <= marks[i] {
				continue
			}
			switch {
			case e.Type == browsertest.EventError || e.Type == browsertest.EventPageError:
				t.Errorf("%s: %s", p.Name(), e.Raw)
			case e.Type == browsertest.EventSignallingDisconnected && e.Code == 4011:
				t.Errorf("%s: rate limited: %s", p.Name(), e.Raw)
			case e.Type == browsertest.EventNegotiationError && e.Peer == botSub:
				t.Errorf("%s: %s", p.Name(), e.Raw)
			case e.Type == browsertest.EventNegotiationError:
				t.Logf("%s (browser to browser, not checked): %s", p.Name(), e.Raw)
			}
		}
		if st := p.State(t); st.State != "joined" {
			t.Errorf("%s: state %+v after the restart, want joined", p.Name(), st)
		}
	}
}

// §7.16: a browser leaves (MeteredPeer.close) and a new MeteredPeer with the same JWT sub joins.
// The bot sees left then joined, gets a new-session offer, replaces its state and records the new
// tracks as a new connection of the same peer id.
func TestBotSameSubRejoins(t *testing.T) {
	srv := startSignal(t)
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	first, aliceID, firstCam := joinWithCamera(t, b, srv.URL(), "alice")
	waitConnectedAfter(t, first, botSub, -1)
	old := expectTracks(t, tb.obs, aliceID, firstCam, "camera", 1)

	first.Close(t)
	tb.obs.waitFor(t, "alice to leave", eventTimeout, func() bool { return tb.obs.count("left", aliceID) == 1 })
	second, _, secondCam := joinWithCamera(t, b, srv.URL(), "alice")
	waitConnectedAfter(t, second, botSub, -1)
	cur := expectTracks(t, tb.obs, aliceID, secondCam, "camera", 2)

	tb.obs.mu.Lock()
	seq := tb.obs.presence(aliceID)
	if want := []string{"joined", "left", "joined"}; len(seq) != 3 || seq[1] != "left" || seq[2] != "joined" {
		t.Errorf("bot saw %v for alice, want %v", seq, want)
	}
	for _, st := range old {
		// close() closes the RTCPeerConnection (DTLS close_notify: connection lost); had that
		// been lost, the new-session offer would replace the connection.
		if st.ended != bot.EndConnectionLost && st.ended != bot.EndSessionReplaced {
			t.Errorf("old %s track ended %q, want %q or %q", st.info.Kind, st.ended, bot.EndConnectionLost, bot.EndSessionReplaced)
		}
	}
	if cur[0].info.SessionID == old[0].info.SessionID {
		t.Errorf("new session has the old session id %s", old[0].info.SessionID)
	}
	tb.obs.mu.Unlock()
	tb.obs.checkNoDuplicates(t)
	checkPageHealthy(t, second)
}

// §7.17: the browser's JWT lives 90 s. The server closes its socket with 4002 just before exp; the
// SDK asks its tokenProvider again (the page returns the fresh token the test handed it with
// SetToken), reconnects and rebuilds its connection to the bot; the bot follows the new session
// and the media gap stays under 3 s.
func TestBotTokenExpiry(t *testing.T) {
	srv := startSignal(t)
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	alice := b.NewPage(t)
	cam := alice.AddCamera(t, camMeta)
	joined := time.Now()
	aliceID := alice.Join(t, browsertest.JoinOptions{URL: srv.URL(), Channel: channel, Token: mintToken(t, "alice", 90*time.Second)})
	alice.SetToken(t, mintToken(t, "alice", time.Hour)) // what the tokenProvider returns from now on
	waitConnectedAfter(t, alice, botSub, -1)
	old := expectTracks(t, tb.obs, aliceID, cam, "camera", 1)

	mark := alice.LastSeq(t)
	ev := alice.WaitEvent(t, browsertest.And(browsertest.After(mark), browsertest.OfType(browsertest.EventSignallingDisconnected)), 120*time.Second)
	t.Logf("socket closed %v after join: %s", time.Since(joined).Round(time.Millisecond), ev.Raw)
	if ev.Code != 4002 || !ev.WillReconnect {
		t.Errorf("disconnect %s, want code 4002 with a reconnect", ev.Raw)
	}
	waitReconnected(t, alice, mark)
	waitConnectedAfter(t, alice, botSub, mark)
	cur := expectNewSession(t, tb.obs, aliceID, cam, old)
	for kind, g := range gaps(t, tb.obs, old, cur) {
		if g >= 3*time.Second {
			t.Errorf("%s gap %v across the token renewal, want < 3s", kind, g)
		}
	}
	tb.obs.checkNoDuplicates(t)
	checkPageHealthy(t, alice)
}

// §7.33: the page opens a data channel to the bot on peer-joined and again on connection-reset.
// The bot gets it (OnDataChannel) and the channel opens; after a WebSocket cut the SDK rebuilds its
// RTCPeerConnection, the page re-creates the channel, and it reappears on the bot's new connection.
func TestBotDataChannel(t *testing.T) {
	const label = "roomtape-e2e"
	srv := startSignal(t)
	px := startProxy(t, srv.Addr())
	tb := startBot(t, srv.URL())
	b := browsertest.Launch(t)
	alice := b.NewPage(t)
	cam := alice.AddCamera(t, camMeta)
	aliceID := alice.Join(t, browsertest.JoinOptions{URL: px.URL(), Channel: channel, Token: mintToken(t, "alice", time.Hour), DataChannel: label})
	dcOpen := func(mark int) {
		t.Helper()
		alice.WaitEvent(t, browsertest.And(browsertest.After(mark), browsertest.OfType(browsertest.EventDataChannelOpen),
			browsertest.FromPeer(botSub), func(e browsertest.Event) bool { return e.Label == label }), connectTimeout)
	}
	dcOpen(-1)
	tb.obs.waitFor(t, "the bot's first data channel", eventTimeout, func() bool { return tb.obs.count("datachannel", aliceID) == 1 })
	old := expectTracks(t, tb.obs, aliceID, cam, "camera", 1)

	mark, _, _ := cutBrowserSocket(t, alice, px, 2*time.Second)
	alice.WaitEvent(t, browsertest.And(browsertest.After(mark), browsertest.OfType(browsertest.EventConnectionReset), browsertest.FromPeer(botSub)), eventTimeout)
	dcOpen(mark)
	tb.obs.waitFor(t, "the data channel on the new connection", eventTimeout, func() bool { return tb.obs.count("datachannel", aliceID) == 2 })
	expectNewSession(t, tb.obs, aliceID, cam, old)

	tb.obs.mu.Lock()
	var replacedAt, secondDC time.Time
	for _, e := range tb.obs.events {
		switch {
		case e.Kind == "replaced" && e.Peer == aliceID:
			replacedAt = e.At
		case e.Kind == "datachannel" && e.Peer == aliceID:
			if e.A != label {
				t.Errorf("bot: data channel label %q, want %q", e.A, label)
			}
			secondDC = e.At
		}
	}
	tb.obs.mu.Unlock()
	if secondDC.Before(replacedAt) {
		t.Errorf("the second data channel arrived before the connection was replaced")
	}
	checkPageHealthy(t, alice)
}
