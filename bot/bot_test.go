package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/publisher"
	"github.com/roomtape/roomtape/signalling"
)

const (
	testKeyID  = "sk_id_bot"
	testSecret = "sk_secret_bot"
)

// startServer runs a real signalling server with the test app on a loopback port.
func startServer(t *testing.T) string {
	return testenv.SignalServer(t, signalling.ServerConfig{Apps: []signalling.AppConfig{{
		ID: "app", SecretKeys: []signalling.SecretKeyConfig{{ID: testKeyID, Secret: testSecret}},
	}}})
}

func creds(sub string, peerMeta string) signalling.SecretKeyCredentials {
	c := signalling.SecretKeyCredentials{KeyID: testKeyID, Secret: testSecret, Subject: sub}
	if peerMeta != "" {
		c.PeerMetadata = json.RawMessage(peerMeta)
	}
	return c
}

// setup is what most tests start from: a signalling server, a loopback transport, the media
// fixtures and an empty collector.
func setup(t *testing.T) (url string, tr *bot.Transport, dir string, col *collector) {
	t.Helper()
	return startServer(t), testenv.Transport(t), fixtures.Dir(t), newCollector()
}

// collector is a Consumer that records what arrived.
type collector struct {
	mu      sync.Mutex
	tracks  []*collected
	changed chan struct{}
}

type collected struct {
	info    bot.TrackInfo
	packets int
	rtcp    int
	ended   bot.EndReason
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector) TrackStarted(info bot.TrackInfo, _ bot.TrackControl) bot.TrackSink {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &collected{info: info}
	c.tracks = append(c.tracks, t)
	c.notify()
	return &collectorSink{c: c, t: t}
}

type collectorSink struct {
	c *collector
	t *collected
}

func (s *collectorSink) WriteRTP(*rtp.Packet, time.Time) {
	s.c.mu.Lock()
	s.t.packets++
	s.c.mu.Unlock()
	s.c.notify()
}
func (s *collectorSink) WriteRTCP([]rtcp.Packet, time.Time) {
	s.c.mu.Lock()
	s.t.rtcp++
	s.c.mu.Unlock()
}
func (s *collectorSink) Reconnected() {}
func (s *collectorSink) End(r bot.EndReason) {
	s.c.mu.Lock()
	s.t.ended = r
	s.c.mu.Unlock()
	s.c.notify()
}

// waitFor polls cond (under the collector lock) until it holds or the deadline passes.
func (c *collector) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			var s string
			for _, tr := range c.tracks {
				s += fmt.Sprintf("\n  %s/%s %s role=%q packets=%d ended=%q", tr.info.PeerID, tr.info.TrackID, tr.info.Kind, tr.info.Role(), tr.packets, tr.ended)
			}
			t.Fatalf("timed out waiting for %s; tracks:%s", what, s)
		}
	}
}

// find returns the collected track with trackID and the given connection number.
func (c *collector) find(trackID string, connection int) *collected {
	for _, t := range c.tracks {
		if t.info.TrackID == trackID && t.info.Connection == connection {
			return t
		}
	}
	return nil
}

func runBot(t *testing.T, url string, tr *bot.Transport, consumer bot.Consumer, ev bot.Events) *bot.Bot {
	t.Helper()
	b, err := bot.New(bot.Config{
		Channel: "room", Announce: true,
		Signalling: signalling.ClientConfig{URL: url, Credentials: creds("~roomtape-bot", `{"roomtape":"recorder"}`)},
	}, tr, consumer, ev)
	if err != nil {
		t.Fatal(err)
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
		case <-time.After(15 * time.Second):
			t.Error("bot did not stop")
		}
	})
	return b
}

type runningPublisher struct {
	*publisher.Publisher
	stop func()
}

func runPublisher(t *testing.T, url, sub string, tr *bot.Transport, streams ...publisher.Stream) *runningPublisher {
	t.Helper()
	p, err := publisher.New(publisher.Config{
		Channel: "room", Loop: true, Streams: streams,
		Signalling: signalling.ClientConfig{URL: url, Credentials: creds(sub, `{"name":"`+sub+`"}`)},
	}, tr.API())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("publisher did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return &runningPublisher{Publisher: p, stop: stop}
}

func camera(dir string) publisher.Stream {
	return publisher.Stream{Role: "camera", Audio: dir + "/" + fixtures.Audio, Video: dir + "/" + fixtures.Camera}
}

// The bot joins first; a publisher joins and offers; the bot answers and receives both tracks
// with the sender's track ids, stream id, role metadata and presence metadata (§7 scenario 2).
func TestBotReceivesTracksWithMetadata(t *testing.T) {
	url, tr, dir, col := setup(t)
	runBot(t, url, tr, col, bot.Events{})
	pub := runPublisher(t, url, "alice", tr, camera(dir))
	want := pub.Tracks()
	col.waitFor(t, "both tracks flowing", 20*time.Second, func() bool {
		for _, w := range want {
			if tr := col.find(w.TrackID, 1); tr == nil || tr.packets < 20 {
				return false
			}
		}
		return true
	})
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, w := range want {
		got := col.find(w.TrackID, 1).info
		if got.PeerID != "alice" || got.StreamID != w.StreamID || got.Kind != w.Kind || got.Role() != "camera" {
			t.Errorf("track %s: got %+v, want peer alice stream %s kind %s role camera", w.TrackID, got, w.StreamID, w.Kind)
		}
		if string(got.PeerMetadata) != `{"name":"alice"}` {
			t.Errorf("peer metadata = %s", got.PeerMetadata)
		}
	}
}

// A second stream is added and removed on the same session (§7 scenario 6): the bot keeps the
// connection, gets a screen track, and sees it end as removed while the camera continues.
func TestBotScreenShareAddedAndRemoved(t *testing.T) {
	url, tr, dir, col := setup(t)
	replaced := make(chan string, 4)
	runBot(t, url, tr, col, bot.Events{SessionReplaced: func(peer, _, _ string) { replaced <- peer }})
	pub := runPublisher(t, url, "alice", tr, camera(dir))
	cam := pub.Tracks()
	col.waitFor(t, "camera flowing", 20*time.Second, func() bool {
		tr := col.find(cam[1].TrackID, 1)
		return tr != nil && tr.packets > 10
	})
	screen, err := pub.AddStream(publisher.Stream{Role: "screen", Video: dir + "/" + fixtures.Screen})
	if err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, "screen flowing on the same connection", 20*time.Second, func() bool {
		tr := col.find(screen.TrackID, 1)
		return tr != nil && tr.packets > 10 && tr.info.Role() == "screen"
	})
	if err := pub.RemoveStream("screen"); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, "screen ended as removed", 20*time.Second, func() bool {
		return col.find(screen.TrackID, 1).ended == bot.EndRemoved
	})
	col.mu.Lock()
	before := col.find(cam[1].TrackID, 1).packets
	camEnded := col.find(cam[1].TrackID, 1).ended
	col.mu.Unlock()
	if camEnded != "" {
		t.Fatalf("camera ended (%s) when the screen share was removed", camEnded)
	}
	col.waitFor(t, "camera still flowing", 10*time.Second, func() bool {
		return col.find(cam[1].TrackID, 1).packets > before+10
	})
	select {
	case p := <-replaced:
		t.Fatalf("renegotiation replaced the connection of %s", p)
	default:
	}
}

// The same sub leaves and joins again with a new PeerConnection (§7 scenario 16): the bot sees a
// new session, ends the old tracks and records the new ones as connection 2.
func TestBotNewSessionAfterRejoin(t *testing.T) {
	url, tr, dir, col := setup(t)
	runBot(t, url, tr, col, bot.Events{})
	first := runPublisher(t, url, "alice", tr, camera(dir))
	firstTracks := first.Tracks()
	col.waitFor(t, "first session flowing", 20*time.Second, func() bool {
		tr := col.find(firstTracks[0].TrackID, 1)
		return tr != nil && tr.packets > 10
	})
	first.stop()
	second := runPublisher(t, url, "alice", tr, camera(dir))
	secondTracks := second.Tracks()
	col.waitFor(t, "second session flowing", 20*time.Second, func() bool {
		tr := col.find(secondTracks[0].TrackID, 2)
		return tr != nil && tr.packets > 10
	})
	col.waitFor(t, "first session's tracks ended", 20*time.Second, func() bool {
		return col.find(firstTracks[0].TrackID, 1).ended != ""
	})
}

// Two publishers and the bot (§7 scenario 5): four tracks, each bound to its own peer.
func TestBotTwoPublishers(t *testing.T) {
	url, tr, dir, col := setup(t)
	runBot(t, url, tr, col, bot.Events{})
	a := runPublisher(t, url, "alice", tr, camera(dir))
	b := runPublisher(t, url, "bob", tr, camera(dir))
	all := map[string]string{}
	for _, d := range a.Tracks() {
		all[d.TrackID] = "alice"
	}
	for _, d := range b.Tracks() {
		all[d.TrackID] = "bob"
	}
	col.waitFor(t, "four tracks flowing", 30*time.Second, func() bool {
		for id := range all {
			if tr := col.find(id, 1); tr == nil || tr.packets < 10 {
				return false
			}
		}
		return true
	})
	col.mu.Lock()
	defer col.mu.Unlock()
	for id, peer := range all {
		if got := col.find(id, 1).info.PeerID; got != peer {
			t.Errorf("track %s bound to %s, want %s", id, got, peer)
		}
	}
}
