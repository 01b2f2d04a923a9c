package bot

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/roomtape/roomtape/internal/logattr"
)

// session is one pion PeerConnection to one remote session of a peer.
type session struct {
	p   *remotePeer
	pc  *webrtc.PeerConnection
	n   int // connection number for this peer (1, 2, …)
	log *slog.Logger

	// Owned by the actor.
	info       offerInfo
	candidates int // added in the current generation

	mu        sync.Mutex
	answered  bool                   // the answer was queued: candidates may follow it
	heldICE   []*webrtc.ICECandidate // local candidates gathered before the answer was queued
	closed    bool
	endReason EndReason
	tracks    map[*trackReader]struct{}
	everUp    bool
	deadTimer *time.Timer
	readers   sync.WaitGroup
}

func newSession(p *remotePeer, info offerInfo, n int) (*session, error) {
	pc, err := p.b.transport.api.NewPeerConnection(webrtc.Configuration{ICEServers: p.b.currentICEServers()})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	s := &session{p: p, pc: pc, n: n, info: info, tracks: map[*trackReader]struct{}{},
		log: p.log.With("session", info.SessionID, "connection", n)}
	pc.OnICECandidate(s.onLocalCandidate)
	pc.OnConnectionStateChange(s.onConnectionState)
	pc.OnTrack(s.onTrack)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		s.log.Info("browser opened a data channel", "label", dc.Label())
		if ev := p.b.events.DataChannel; ev != nil {
			ev(p.id, dc.Label())
		}
	})
	return s, nil
}

func (s *session) sameSession(info offerInfo) bool {
	return s.info.SessionID == info.SessionID && s.info.Fingerprint == info.Fingerprint &&
		s.pc.SignalingState() == webrtc.SignalingStateStable
}

func (s *session) hasRemote() bool { return s.pc.RemoteDescription() != nil }

// answer applies an offer and queues the answer (B9); local candidates follow it (B7).
func (s *session) answer(sdpText string, info offerInfo) error {
	s.info = info
	s.candidates = 0
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdpText}); err != nil {
		return fmt.Errorf("set remote offer: %w", err)
	}
	for _, tr := range s.pc.GetTransceivers() {
		if prefs := s.p.b.transport.preferences(tr.Kind()); len(prefs) > 0 {
			if err := tr.SetCodecPreferences(prefs); err != nil {
				s.log.Debug("codec preferences not applied", "kind", tr.Kind().String(), logattr.Err, err)
			}
		}
	}
	ans, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	if err := s.pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("set local answer: %w", err)
	}
	local := s.pc.LocalDescription()
	s.p.b.out.Send(s.p.id, map[string]any{
		"type":        "rtc-description",
		"description": map[string]string{"type": "answer", "sdp": local.SDP},
	})
	s.mu.Lock()
	s.answered = true
	held := s.heldICE
	s.heldICE = nil
	s.mu.Unlock()
	for _, c := range held {
		s.sendCandidate(c)
	}
	s.log.Info("answered offer", "tracks", info.Tracks)
	return nil
}

func (s *session) onLocalCandidate(c *webrtc.ICECandidate) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if !s.answered {
		s.heldICE = append(s.heldICE, c)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.sendCandidate(c)
}

// sendCandidate sends {"type":"rtc-ice","candidate":{…}} or candidate null at end of gathering.
func (s *session) sendCandidate(c *webrtc.ICECandidate) {
	var cand any // null
	if c != nil {
		cand = c.ToJSON()
	}
	s.p.b.out.Send(s.p.id, map[string]any{"type": "rtc-ice", "candidate": cand})
}

// addCandidate applies a remote candidate (B10). nil or "" means end of candidates.
func (s *session) addCandidate(c *candidateInit) {
	if c == nil || c.Candidate == "" {
		if err := s.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: ""}); err != nil {
			s.log.Debug("end-of-candidates not applied", logattr.Err, err)
		}
		return
	}
	if c.UsernameFragment != nil && *c.UsernameFragment != "" && !s.info.Ufrags[*c.UsernameFragment] {
		s.log.Debug("dropping candidate for another ICE generation", "ufrag", *c.UsernameFragment)
		return
	}
	if s.candidates >= maxCandidatesPerGeneration {
		s.log.Debug("dropping candidate: generation limit reached")
		return
	}
	s.candidates++
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	if err := s.pc.AddICECandidate(init); err != nil {
		s.log.Debug("candidate not applied", logattr.Err, err)
	}
}

func (s *session) onConnectionState(state webrtc.PeerConnectionState) {
	s.log.Info("connection state", "state", state.String())
	if ev := s.p.b.events.ConnectionState; ev != nil {
		ev(s.p.id, s.info.SessionID, state.String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	switch state {
	case webrtc.PeerConnectionStateConnected:
		if s.deadTimer != nil {
			s.deadTimer.Stop()
			s.deadTimer = nil
		}
		if s.everUp {
			// Re-attach after an ICE restart: sinks learn of the reconnect, video gets a keyframe.
			for t := range s.tracks {
				t.reconnected.Store(true)
				t.RequestKeyframe()
			}
		}
		s.everUp = true
	case webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateFailed:
		// B11: keep the connection while the browser runs its ICE-restart ladder.
		if s.deadTimer == nil {
			s.deadTimer = time.AfterFunc(s.p.b.cfg.DeadSessionTimeout, func() {
				s.p.post(func() {
					if s.p.session == s && s.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
						s.log.Warn("connection dead for too long; closing it", "timeout", s.p.b.cfg.DeadSessionTimeout)
						s.p.closeSession(EndConnectionLost)
					}
				})
			})
		}
	}
}

// close ends every track with reason and closes the PeerConnection; it waits for the readers.
func (s *session) close(reason EndReason) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.endReason = reason
	if s.deadTimer != nil {
		s.deadTimer.Stop()
	}
	s.mu.Unlock()
	if err := s.pc.Close(); err != nil {
		s.log.Debug("close peer connection", logattr.Err, err)
	}
	s.readers.Wait()
}

// reason is why a track of this session ended: the session's close reason; the connection lost
// when pion closed the PeerConnection by itself (the browser closed its RTCPeerConnection and
// pion reacts to the DTLS close_notify: the SDK does that when it swaps connections after a
// reconnect, on close() and on peer-left, before any new offer arrives); else removal by
// renegotiation (B14).
func (s *session) reason() EndReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.endReason
	}
	if s.pc.SignalingState() == webrtc.SignalingStateClosed { // set before pion stops the receivers
		return EndConnectionLost
	}
	return EndRemoved
}

func (s *session) onTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.readers.Add(1)
	s.mu.Unlock()
	defer s.readers.Done()

	codec := track.Codec()
	meta, streamMeta, presence := s.p.bindMeta(track.ID(), track.StreamID())
	info := TrackInfo{
		PeerID: s.p.id, PeerMetadata: presence, SessionID: s.info.SessionID, Connection: s.n,
		StreamID: track.StreamID(), TrackID: track.ID(), Metadata: meta, StreamMetadata: streamMeta,
		Kind: track.Kind().String(), MimeType: strings.ToLower(codec.MimeType), ClockRate: codec.ClockRate,
		Channels: codec.Channels, FmtpLine: codec.SDPFmtpLine, PayloadType: uint8(codec.PayloadType),
		SSRC: uint32(track.SSRC()), RID: track.RID(), StartedAt: time.Now(),
	}
	for _, e := range receiver.GetParameters().HeaderExtensions {
		if e.URI == AudioLevelURI && e.ID > 0 && e.ID < 256 {
			info.AudioLevelExtID = uint8(e.ID)
		}
	}
	t := &trackReader{s: s, track: track, receiver: receiver, info: info,
		log: s.log.With(logattr.Track, info.TrackID, "kind", info.Kind, "ssrc", info.SSRC)}
	s.mu.Lock()
	s.tracks[t] = struct{}{}
	s.mu.Unlock()
	t.run()
	s.mu.Lock()
	delete(s.tracks, t)
	s.mu.Unlock()
}

// trackReader reads one remote track and feeds its sink; it is the track's only goroutine for
// RTP (RTCP is read by a helper so that interceptors run).
type trackReader struct {
	s           *session
	track       *webrtc.TrackRemote
	receiver    *webrtc.RTPReceiver
	info        TrackInfo
	log         *slog.Logger
	sink        atomic.Pointer[TrackSink]
	reconnected atomic.Bool
}

// RequestKeyframe sends a PLI for video tracks.
func (t *trackReader) RequestKeyframe() {
	if t.info.Kind != "video" {
		return
	}
	if err := t.s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.info.SSRC}}); err != nil {
		t.log.Debug("PLI not sent", logattr.Err, err)
	}
}

func (t *trackReader) run() {
	events := t.s.p.b.events
	t.log.Info("track started", "codec", t.info.MimeType, "role", t.info.Role(), "stream", t.info.StreamID)
	t.guard("TrackStarted", func() {
		if sink := t.s.p.b.consumer.TrackStarted(t.info, t); sink != nil {
			t.sink.Store(&sink)
		}
	})
	if events.TrackStarted != nil {
		events.TrackStarted(t.info)
	}
	t.RequestKeyframe() // B12: a keyframe as a video track starts
	var rtcpDone sync.WaitGroup
	rtcpDone.Add(1)
	go func() {
		defer rtcpDone.Done()
		for {
			pkts, _, err := t.receiver.ReadRTCP()
			if err != nil {
				return
			}
			if sink := t.sink.Load(); sink != nil {
				now := time.Now()
				t.guard("WriteRTCP", func() { (*sink).WriteRTCP(pkts, now) })
			}
		}
	}()
	packets := 0
	for {
		pkt, _, err := t.track.ReadRTP()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.log.Debug("track read ended", logattr.Err, err)
			}
			break
		}
		packets++
		sink := t.sink.Load()
		if sink == nil {
			continue
		}
		if t.reconnected.CompareAndSwap(true, false) {
			t.guard("Reconnected", func() { (*sink).Reconnected() })
		}
		now := time.Now()
		t.guard("WriteRTP", func() { (*sink).WriteRTP(pkt, now) })
	}
	rtcpDone.Wait()
	reason := t.s.reason()
	t.log.Info("track ended", "reason", string(reason), "packets", packets)
	if sink := t.sink.Load(); sink != nil {
		t.guard("End", func() { (*sink).End(reason) })
	}
	if events.TrackEnded != nil {
		events.TrackEnded(t.info, reason)
	}
}

// guard runs a consumer callback; a panic detaches the sink (the track keeps being drained).
func (t *trackReader) guard(what string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("panic in track consumer; detaching it", "call", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			t.sink.Store(nil)
		}
	}()
	fn()
}
