// Package publisher is a Go participant that behaves like a @metered-ca/realtime SDK peer with
// media (§5.5 of the protocol notes): on discovering a channel member it sends
// __meteredTrackMeta for its tracks, adds them to a fresh PeerConnection and offers; it trickles
// candidates, applies answers, renegotiates when streams are added or removed, and builds a new
// connection when a member re-joins. Media comes from Ogg/Opus and IVF files, sent in real time.
// The demo, the benchmarks and the browser-free tests use it to exercise the bot.
package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/roomtape/roomtape/internal/logattr"
	"github.com/roomtape/roomtape/signalling"
)

// Stream is one MediaStream to publish: an audio file, a video file or both, with a role
// ({"role": Role} is its track metadata, like addStream(stream, {role})).
type Stream struct {
	Role  string
	Audio string // Ogg/Opus file, one packet per page
	Video string // IVF file (VP8, VP9 or AV1)
}

// Config configures a publisher.
type Config struct {
	Channel    string
	Signalling signalling.ClientConfig
	Streams    []Stream
	// Loop repeats the media forever; otherwise each track sends its file once.
	Loop bool
	// Peers, when set, limits the members this publisher connects to (offers to): only those for
	// which it returns true. Nil connects to every member, like the SDK. Benchmarks use it so that
	// N publishers in one channel send to the receiver under test instead of forming a mesh.
	Peers  func(peerID string) bool
	Logger *slog.Logger
}

// TrackDesc describes a published track (what the receiver should see).
type TrackDesc struct {
	Role, Kind, StreamID, TrackID, MimeType string
}

type localTrack struct {
	desc  TrackDesc
	track *webrtc.TrackLocalStaticSample
	clip  clip
	meta  json.RawMessage
}

type localStream struct {
	role   string
	id     string
	tracks []*localTrack
	cancel context.CancelFunc
}

// Publisher is one media-sending participant.
type Publisher struct {
	cfg    Config
	api    *webrtc.API
	log    *slog.Logger
	client *signalling.Client
	out    *signalling.Outbox

	ctx     context.Context
	wg      sync.WaitGroup
	sendWG  sync.WaitGroup
	started chan struct{} // closed once Run started the senders

	mu      sync.Mutex
	streams []*localStream
	conns   map[string]*conn
	self    string
}

// conn is the PeerConnection to one remote member.
type conn struct {
	peer      string
	pc        *webrtc.PeerConnection
	senders   map[string]*webrtc.RTPSender // by track id
	offering  bool                         // an offer is out, waiting for its answer
	again     bool                         // renegotiate once the answer arrives
	connected chan struct{}
	connOnce  sync.Once
}

// New loads the media and prepares the publisher; api is a pion API (e.g. bot.Transport.API()).
func New(cfg Config, api *webrtc.API) (*Publisher, error) {
	if code := signalling.ValidateChannel(cfg.Channel); code != "" {
		return nil, fmt.Errorf("publisher channel %q: %s", cfg.Channel, code)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{cfg: cfg, api: api, log: cfg.Logger.With(logattr.Channel, cfg.Channel),
		conns: map[string]*conn{}, started: make(chan struct{})}
	for _, s := range cfg.Streams {
		ls, err := p.loadStream(s)
		if err != nil {
			return nil, err
		}
		p.streams = append(p.streams, ls)
	}
	sc := cfg.Signalling
	sc.Channels = []string{cfg.Channel}
	sc.Logger = p.log
	client, err := signalling.NewClient(sc, signalling.Handler{
		Connected: p.onConnected, Presence: p.onPresence, Direct: p.onDirect,
	})
	if err != nil {
		return nil, err
	}
	p.client = client
	p.out = signalling.NewOutbox(client, p.log)
	return p, nil
}

func (p *Publisher) loadStream(s Stream) (*localStream, error) {
	ls := &localStream{role: s.Role, id: uuid.NewString()}
	meta, _ := json.Marshal(map[string]string{"role": s.Role})
	for _, path := range []string{s.Audio, s.Video} {
		if path == "" {
			continue
		}
		c, err := loadClip(path)
		if err != nil {
			return nil, err
		}
		kind := "video"
		if c.mime == webrtc.MimeTypeOpus {
			kind = "audio"
		}
		capab := webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 90000}
		if kind == "audio" {
			capab = webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 48000, Channels: 2}
		}
		id := uuid.NewString()
		t, err := webrtc.NewTrackLocalStaticSample(capab, id, ls.id)
		if err != nil {
			return nil, fmt.Errorf("track for %s: %w", path, err)
		}
		ls.tracks = append(ls.tracks, &localTrack{
			desc:  TrackDesc{Role: s.Role, Kind: kind, StreamID: ls.id, TrackID: id, MimeType: c.mime},
			track: t, clip: c, meta: meta,
		})
	}
	if len(ls.tracks) == 0 {
		return nil, fmt.Errorf("stream %q has no media file", s.Role)
	}
	return ls, nil
}

// Tracks lists the currently published tracks.
func (p *Publisher) Tracks() []TrackDesc {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []TrackDesc
	for _, s := range p.streams {
		for _, t := range s.tracks {
			out = append(out, t.desc)
		}
	}
	return out
}

// PeerID is the publisher's peer id.
func (p *Publisher) PeerID() string { return p.client.PeerID() }

// Connected returns a channel closed once the connection to peer reached "connected".
func (p *Publisher) Connected(peer string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[peer]; c != nil {
		return c.connected
	}
	return nil
}

// Run joins the channel and publishes until ctx ends (nil) or signalling fails for good. Without
// Loop the media is sent once (see MediaDone) but the connections stay until ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	p.ctx = ctx
	p.mu.Lock()
	for _, s := range p.streams {
		p.startSending(s)
	}
	p.mu.Unlock()
	close(p.started)
	octx, cancel := context.WithCancel(ctx)
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.out.Run(octx) }()
	err := p.client.Run(ctx)
	cancel()
	p.mu.Lock()
	for _, s := range p.streams {
		s.cancel()
	}
	conns := p.conns
	p.conns = map[string]*conn{}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.pc.Close()
	}
	p.sendWG.Wait()
	p.wg.Wait()
	return err
}

// MediaDone returns a channel closed when every track sent its file once (never with Loop).
func (p *Publisher) MediaDone() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		<-p.started
		p.sendWG.Wait()
		close(done)
	}()
	return done
}

// startSending runs one real-time sender per track; caller holds p.mu.
func (p *Publisher) startSending(s *localStream) {
	ctx, cancel := context.WithCancel(p.ctx)
	s.cancel = cancel
	for _, t := range s.tracks {
		p.sendWG.Add(1)
		go func() {
			defer p.sendWG.Done()
			p.send(ctx, t)
		}()
	}
}

func (p *Publisher) send(ctx context.Context, t *localTrack) {
	next := time.Now()
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		for _, s := range t.clip.samples {
			if err := t.track.WriteSample(media.Sample{Data: s.data, Duration: s.duration}); err != nil && !errors.Is(err, context.Canceled) {
				p.log.Debug("write sample", logattr.Err, err)
			}
			next = next.Add(s.duration)
			wait.Reset(time.Until(next))
			select {
			case <-ctx.Done():
				return
			case <-wait.C:
			}
		}
		if !p.cfg.Loop {
			return
		}
	}
}

// AddStream publishes another stream (e.g. a screen share) and renegotiates with every member.
func (p *Publisher) AddStream(s Stream) (TrackDesc, error) {
	ls, err := p.loadStream(s)
	if err != nil {
		return TrackDesc{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.streams = append(p.streams, ls)
	if p.ctx != nil {
		p.startSending(ls)
	}
	for _, c := range p.conns {
		for _, t := range ls.tracks {
			p.sendMeta(c.peer, t.desc.TrackID, t.meta)
			sender, err := c.pc.AddTrack(t.track)
			if err != nil {
				p.log.Warn("add track", logattr.Peer, c.peer, logattr.Err, err)
				continue
			}
			c.senders[t.desc.TrackID] = sender
			go drainRTCP(sender)
		}
		p.renegotiate(c)
	}
	return ls.tracks[0].desc, nil
}

// RemoveStream stops publishing the stream with role and renegotiates.
func (p *Publisher) RemoveStream(role string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, ls := range p.streams {
		if ls.role != role {
			continue
		}
		p.streams = append(p.streams[:i], p.streams[i+1:]...)
		if ls.cancel != nil {
			ls.cancel()
		}
		for _, c := range p.conns {
			for _, t := range ls.tracks {
				p.sendMeta(c.peer, t.desc.TrackID, nil)
				if sender := c.senders[t.desc.TrackID]; sender != nil {
					if err := c.pc.RemoveTrack(sender); err != nil {
						p.log.Warn("remove track", logattr.Err, err)
					}
					delete(c.senders, t.desc.TrackID)
				}
			}
			p.renegotiate(c)
		}
		return nil
	}
	return fmt.Errorf("no stream with role %q", role)
}

func (p *Publisher) sendMeta(peer, trackID string, meta json.RawMessage) {
	m := map[string]any{"trackId": trackID}
	if meta != nil {
		m["metadata"] = meta
	}
	p.out.Send(peer, map[string]any{"__meteredTrackMeta": m})
}

func (p *Publisher) onConnected(w signalling.Welcome, _ bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.self != "" && p.self != w.PeerID {
		for id, c := range p.conns {
			_ = c.pc.Close()
			delete(p.conns, id)
		}
	}
	p.self = w.PeerID
}

func (p *Publisher) onPresence(ev signalling.PresenceEvent) {
	if ev.Channel != p.cfg.Channel {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Snapshot {
		present := map[string]bool{}
		for _, e := range ev.Joined {
			present[e.PeerID] = true
		}
		for id, c := range p.conns {
			if !present[id] {
				_ = c.pc.Close()
				delete(p.conns, id)
			}
		}
	} else {
		for _, e := range ev.Left {
			if c := p.conns[e.PeerID]; c != nil {
				_ = c.pc.Close()
				delete(p.conns, e.PeerID)
			}
		}
	}
	for _, e := range ev.Joined {
		if e.PeerID == p.self || (p.cfg.Peers != nil && !p.cfg.Peers(e.PeerID)) {
			continue
		}
		if c := p.conns[e.PeerID]; c != nil {
			if ev.Snapshot {
				continue // survivor of our own reconnect: the connection stays
			}
			_ = c.pc.Close() // re-joined: a fresh connection, like the SDK's RemotePeer
		}
		if err := p.connect(e.PeerID); err != nil {
			p.log.Warn("connect to peer", logattr.Peer, e.PeerID, logattr.Err, err)
		}
	}
}

// connect builds a PeerConnection to peer, sends track metadata, adds tracks and offers.
// Caller holds p.mu.
func (p *Publisher) connect(peer string) error {
	c, err := p.newConn(peer)
	if err != nil {
		return err
	}
	pc := c.pc
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Info("connection state", logattr.Peer, peer, "state", s.String())
		if s == webrtc.PeerConnectionStateConnected {
			c.connOnce.Do(func() { close(c.connected) })
		}
	})
	for _, s := range p.streams {
		for _, t := range s.tracks {
			p.sendMeta(peer, t.desc.TrackID, t.meta)
			sender, err := pc.AddTrack(t.track)
			if err != nil {
				return fmt.Errorf("add track: %w", err)
			}
			c.senders[t.desc.TrackID] = sender
			go drainRTCP(sender)
		}
	}
	if len(c.senders) == 0 {
		return nil // like the SDK: a peer without media never offers
	}
	p.renegotiate(c)
	return nil
}

// renegotiate sends an offer now, or after the pending answer. Caller holds p.mu.
func (p *Publisher) renegotiate(c *conn) {
	if c.offering {
		c.again = true
		return
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		p.log.Warn("create offer", logattr.Peer, c.peer, logattr.Err, err)
		return
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		p.log.Warn("set local offer", logattr.Peer, c.peer, logattr.Err, err)
		return
	}
	c.offering = true
	p.sendDescription(c.peer, "offer", c.pc.LocalDescription().SDP)
}

// sendDescription sends {"type":"rtc-description","description":{"type":typ,"sdp":sdp}} to peer.
func (p *Publisher) sendDescription(peer, typ, sdp string) {
	p.out.Send(peer, map[string]any{"type": "rtc-description",
		"description": map[string]string{"type": typ, "sdp": sdp}})
}

func (p *Publisher) onDirect(from string, data, _ json.RawMessage) {
	var env struct {
		Type        string `json:"type"`
		Description *struct {
			Type string `json:"type"`
			SDP  string `json:"sdp"`
		} `json:"description"`
		Candidate *webrtc.ICECandidateInit `json:"candidate"`
	}
	if json.Unmarshal(data, &env) != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conns[from]
	if c == nil {
		return // like the SDK: signals from peers not in the roster are dropped
	}
	switch {
	case env.Type == "rtc-description" && env.Description != nil && env.Description.Type == "answer":
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: env.Description.SDP}); err != nil {
			p.log.Warn("apply answer", logattr.Peer, from, logattr.Err, err)
		}
		c.offering = false
		if c.again {
			c.again = false
			p.renegotiate(c)
		}
	case env.Type == "rtc-description" && env.Description != nil && env.Description.Type == "offer":
		// Glare between two publishers: the impolite side (larger id) keeps its offer; the polite
		// side starts over on a fresh receive-only connection (pion cannot roll back).
		if p.self > from {
			return
		}
		_ = c.pc.Close()
		nc, err := p.newConn(from)
		if err != nil {
			return
		}
		pc := nc.pc
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: env.Description.SDP}); err != nil {
			return
		}
		ans, err := pc.CreateAnswer(nil)
		if err != nil || pc.SetLocalDescription(ans) != nil {
			return
		}
		p.sendDescription(from, "answer", pc.LocalDescription().SDP)
	case env.Type == "rtc-ice":
		if env.Candidate == nil || env.Candidate.Candidate == "" {
			return
		}
		if err := c.pc.AddICECandidate(*env.Candidate); err != nil {
			p.log.Debug("add candidate", logattr.Err, err)
		}
	}
}

// drainRTCP reads a sender's RTCP so that interceptors (NACK responder, reports) run.
func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

// newConn builds a PeerConnection to peer, registers it (replacing any other) and trickles its
// local candidates to peer, then candidate null at the end of gathering. Caller holds p.mu.
func (p *Publisher) newConn(peer string) (*conn, error) {
	pc, err := p.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	c := &conn{peer: peer, pc: pc, senders: map[string]*webrtc.RTPSender{}, connected: make(chan struct{})}
	p.conns[peer] = c
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		var v any // null
		if cand != nil {
			v = cand.ToJSON()
		}
		p.out.Send(peer, map[string]any{"type": "rtc-ice", "candidate": v})
	})
	return c, nil
}
