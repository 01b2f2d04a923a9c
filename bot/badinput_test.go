package bot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/signalling"
)

// hostile is a raw signalling client that sends the bot whatever a test wants.
func hostile(t *testing.T, url, sub string) *signalling.Client {
	t.Helper()
	joined := make(chan struct{}, 1)
	c, err := signalling.NewClient(signalling.ClientConfig{URL: url, Credentials: creds(sub, ""), Channels: []string{"room"}},
		signalling.Handler{Presence: func(signalling.PresenceEvent) {
			select {
			case joined <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-joined:
	case <-time.After(10 * time.Second):
		t.Fatal("hostile client did not join")
	}
	return c
}

// offerSDP builds a real offer from a pion peer with n audio tracks.
func offerSDP(t *testing.T, n int, codec webrtc.RTPCodecCapability) string {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if codec.MimeType == "audio/PCMU" {
		m = &webrtc.MediaEngine{}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: codec, PayloadType: 0}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := 0; i < n; i++ {
		tr, err := webrtc.NewTrackLocalStaticSample(codec, fmt.Sprintf("t%d", i), "s")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

func offerMsg(sdp string) map[string]any {
	return map[string]any{"type": "rtc-description", "description": map[string]string{"type": "offer", "sdp": sdp}}
}

// Hostile and broken signalling from one peer never stops the bot from recording another.
func TestBotSurvivesBadInput(t *testing.T) {
	url, tr, dir, col := setup(t)
	runBot(t, url, tr, col, bot.Events{})
	bad := hostile(t, url, "mallory")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	send := func(what string, data any) {
		t.Helper()
		if err := bad.Send(ctx, "~roomtape-bot", data); err != nil {
			t.Fatalf("%s: send: %v", what, err)
		}
	}
	opus := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	bigMeta := map[string]any{"__meteredTrackMeta": map[string]any{"trackId": "x", "metadata": map[string]string{"pad": strings.Repeat("x", 9000)}}}
	cases := []struct {
		what string
		data any
	}{
		{"malformed sdp", offerMsg("v=0\r\nthis is not sdp")},
		{"sdp without fingerprint", offerMsg("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")},
		{"no common codec", offerMsg(offerSDP(t, 1, webrtc.RTPCodecCapability{MimeType: "audio/PCMU", ClockRate: 8000}))},
		{"fifty tracks", offerMsg(offerSDP(t, 50, opus))},
		{"unsolicited answer", map[string]any{"type": "rtc-description", "description": map[string]string{"type": "answer", "sdp": "v=0"}}},
		{"oversize metadata", bigMeta},
		{"metadata not an object", map[string]any{"__meteredTrackMeta": map[string]any{"trackId": "x", "metadata": []int{1}}}},
		{"candidate not an object", map[string]any{"type": "rtc-ice", "candidate": 42}},
		{"over-long candidate", map[string]any{"type": "rtc-ice", "candidate": map[string]any{"candidate": strings.Repeat("a", 2000)}}},
		{"garbage candidate", map[string]any{"type": "rtc-ice", "candidate": map[string]any{"candidate": "candidate:garbage", "usernameFragment": "zz"}}},
		{"null description", map[string]any{"type": "rtc-description", "description": nil}},
	}
	for _, c := range cases {
		send(c.what, c.data)
	}
	for i := 0; i < 250; i++ { // more than 200 candidates before any offer
		send("candidate flood", map[string]any{"type": "rtc-ice", "candidate": map[string]any{
			"candidate": fmt.Sprintf("candidate:%d 1 udp 1 127.0.0.1 %d typ host", i, 10000+i), "sdpMid": "0", "sdpMLineIndex": 0}})
	}
	// A peer not in the roster (no presence: it never subscribed) cannot reach the bot's actor.
	ghost, err := signalling.NewClient(signalling.ClientConfig{URL: url, Credentials: creds("ghost", "")}, signalling.Handler{})
	if err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithCancel(context.Background())
	gdone := make(chan struct{})
	go func() { _ = ghost.Run(gctx); close(gdone) }()
	defer func() { gcancel(); <-gdone }()
	for !ghost.Connected() {
		time.Sleep(20 * time.Millisecond)
	}
	if err := ghost.Send(ctx, "~roomtape-bot", offerMsg(offerSDP(t, 1, opus))); err != nil {
		t.Fatal(err)
	}

	// A well-behaved publisher still records.
	pub := runPublisher(t, url, "alice", tr, camera(dir))
	for _, w := range pub.Tracks() {
		col.waitFor(t, "alice's "+w.Kind+" despite hostile peers", 30*time.Second, func() bool {
			tr := col.find(w.TrackID, 1)
			return tr != nil && tr.packets > 20
		})
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, tr := range col.tracks {
		if tr.info.PeerID != "alice" {
			t.Errorf("a track from %s was accepted: %+v", tr.info.PeerID, tr.info)
		}
	}
}

// A consumer that panics for one peer's tracks detaches from those tracks only: the other peer's
// tracks keep recording and the bot keeps running.
func TestBotContainsConsumerPanics(t *testing.T) {
	url, tr, dir, col := setup(t)
	runBot(t, url, tr, bot.ConsumerFunc(func(info bot.TrackInfo, ctrl bot.TrackControl) bot.TrackSink {
		if info.PeerID == "bob" {
			panic("consumer bug for bob")
		}
		return col.TrackStarted(info, ctrl)
	}), bot.Events{})
	runPublisher(t, url, "bob", tr, camera(dir))
	alice := runPublisher(t, url, "alice", tr, camera(dir))
	for _, w := range alice.Tracks() {
		col.waitFor(t, "alice's "+w.Kind+" next to bob's panicking consumer", 30*time.Second, func() bool {
			tr := col.find(w.TrackID, 1)
			return tr != nil && tr.packets > 20
		})
	}
}

// A credential that does not cover the channel ends Run with ErrChannelForbidden (retrying
// cannot help), instead of idling in a channel it never joined.
func TestBotStopsWhenChannelIsForbidden(t *testing.T) {
	url := startServer(t)
	c := creds("~roomtape-bot", "")
	c.Channels = []string{"other/*"}
	b, err := bot.New(bot.Config{Channel: "room", Signalling: signalling.ClientConfig{URL: url, Credentials: c}},
		testenv.Transport(t), newCollector(), bot.Events{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = b.Run(ctx)
	if !errors.Is(err, bot.ErrChannelForbidden) {
		t.Fatalf("Run = %v, want ErrChannelForbidden", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run only returned at the deadline")
	}
}
