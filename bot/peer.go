package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/roomtape/roomtape/internal/logattr"
)

// Candidate limits (B10): per negotiation generation, and per candidate string.
const (
	maxCandidatesPerGeneration = 200
	maxCandidateLen            = 1000
)

// remotePeer is the actor for one remote participant: every signal for it runs on its goroutine,
// in arrival order (B4). A panic while handling one signal closes this peer's connection and
// leaves every other peer alone.
type remotePeer struct {
	b   *Bot
	id  string
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	qmu   sync.Mutex
	queue []func()
	wake  chan struct{}

	// Guarded by metaMu: read by track goroutines when a track starts.
	metaMu     sync.Mutex
	trackMeta  *trackMetaCache
	streamMeta map[string]json.RawMessage
	presence   json.RawMessage

	// Owned by the actor goroutine.
	inRoster    bool
	session     *session
	connections int
	pendingICE  []candidateInit // candidates that arrived before their offer
	leftTimer   *time.Timer
}

func newRemotePeer(b *Bot, id string) *remotePeer {
	ctx, cancel := context.WithCancel(b.ctx)
	return &remotePeer{
		b: b, id: id, log: b.log.With(logattr.Peer, id),
		ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1),
		trackMeta: newTrackMetaCache(), streamMeta: map[string]json.RawMessage{},
	}
}

// post queues fn for the actor goroutine.
func (p *remotePeer) post(fn func()) {
	p.qmu.Lock()
	p.queue = append(p.queue, fn)
	p.qmu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *remotePeer) run() {
	for {
		p.qmu.Lock()
		items := p.queue
		p.queue = nil
		p.qmu.Unlock()
		for _, fn := range items {
			p.safely(fn)
		}
		if len(items) > 0 {
			continue
		}
		select {
		case <-p.wake:
		case <-p.ctx.Done():
			p.closeSession(EndBotStopped)
			return
		}
	}
}

// safely runs fn, containing a panic to this peer: the connection is dropped, the actor lives on.
func (p *remotePeer) safely(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic while handling peer; closing its connection", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			func() {
				defer func() { _ = recover() }()
				p.closeSession(EndConnectionLost)
			}()
		}
	}()
	fn()
}

// stop ends the actor, closing its connection with reason (called from outside the actor).
func (p *remotePeer) stop(reason EndReason) {
	done := make(chan struct{})
	p.post(func() {
		p.closeSession(reason)
		close(done)
	})
	select {
	case <-done:
	case <-p.ctx.Done():
	case <-time.After(10 * time.Second):
		p.log.Warn("peer actor did not stop in time")
	}
	p.cancel()
}

func (p *remotePeer) setTrackMeta(m trackMetaMessage) {
	p.metaMu.Lock()
	defer p.metaMu.Unlock()
	if m.Metadata == nil {
		// A clear (e.g. from replaceTrack) never strips metadata from a live track: tracks bind
		// their metadata when they start (B13).
		p.trackMeta.clear(m.TrackID)
		return
	}
	p.trackMeta.set(m.TrackID, m.Metadata)
}

// bindMeta returns the track's metadata and its stream's (first track seen for the stream).
func (p *remotePeer) bindMeta(trackID, streamID string) (track, stream, presence json.RawMessage) {
	p.metaMu.Lock()
	defer p.metaMu.Unlock()
	track = p.trackMeta.get(trackID)
	if streamID != "" && streamID != "-" {
		if _, seen := p.streamMeta[streamID]; !seen {
			p.streamMeta[streamID] = track
		}
		stream = p.streamMeta[streamID]
	}
	return track, stream, p.presence
}

func (p *remotePeer) onJoined(meta json.RawMessage) {
	p.metaMu.Lock()
	p.presence = meta
	p.metaMu.Unlock()
	if p.leftTimer != nil {
		p.leftTimer.Stop()
		p.leftTimer = nil
	}
	if !p.inRoster && p.b.events.PeerJoined != nil {
		p.b.events.PeerJoined(p.id, meta)
	}
	if p.inRoster {
		return
	}
	p.inRoster = true
	if p.session != nil {
		p.log.Info("peer joined again; expecting a new-session offer")
	} else {
		p.log.Info("peer joined")
	}
}

// onLeft starts the grace period (B16): the connection stays while media may still flow.
func (p *remotePeer) onLeft() {
	if !p.inRoster && p.session == nil {
		p.b.forget(p)
		p.cancel()
		return
	}
	p.inRoster = false
	p.pendingICE = nil
	if p.b.events.PeerLeft != nil {
		p.b.events.PeerLeft(p.id)
	}
	if p.session == nil {
		p.b.forget(p)
		p.cancel()
		return
	}
	p.log.Info("peer left; keeping its connection during the grace period", "grace", p.b.cfg.LeftGrace)
	if p.leftTimer != nil {
		p.leftTimer.Stop()
	}
	p.leftTimer = time.AfterFunc(p.b.cfg.LeftGrace, func() {
		p.post(func() {
			if p.inRoster {
				return
			}
			p.log.Info("grace period over; closing the connection of a departed peer")
			p.closeSession(EndPeerLeft)
			p.b.forget(p)
			p.cancel()
		})
	})
}

func (p *remotePeer) onSignal(sig signal) {
	switch {
	case sig.Description != nil && sig.Description.Type == "offer":
		p.handleOffer(sig.Description.SDP)
	case sig.Description != nil:
		// B5: the bot never offers, so an answer is unsolicited.
		p.log.Warn("ignoring an unsolicited answer")
	case sig.HasCandidate:
		p.handleCandidate(sig.Candidate)
	}
}

// handleOffer applies B8/B9: same session → renegotiate on the existing connection; a new
// session (o= id or fingerprint changed) or a connection not in stable → replace it.
func (p *remotePeer) handleOffer(text string) {
	info, err := parseOffer(text)
	if err != nil {
		p.log.Warn("rejecting unusable offer", logattr.Err, err)
		return
	}
	if info.Tracks > p.b.cfg.MaxTracksPerPeer {
		p.log.Warn("rejecting offer with too many tracks", "tracks", info.Tracks, "max", p.b.cfg.MaxTracksPerPeer)
		return
	}
	s := p.session
	if s != nil && !s.sameSession(info) {
		old := s.info.SessionID
		p.log.Info("new session from peer; replacing its connection", "old_session", old, "new_session", info.SessionID)
		p.closeSession(EndSessionReplaced)
		if p.b.events.SessionReplaced != nil {
			p.b.events.SessionReplaced(p.id, old, info.SessionID)
		}
		s = nil
	}
	if s == nil {
		if s, err = p.newSession(info); err != nil {
			p.log.Error("cannot create peer connection", logattr.Err, err)
			return
		}
	}
	if err := s.answer(text, info); err != nil {
		p.log.Warn("offer failed on the current connection; retrying on a fresh one", logattr.Err, err)
		p.closeSession(EndSessionReplaced)
		if s, err = p.newSession(info); err != nil {
			p.log.Error("cannot create peer connection", logattr.Err, err)
			return
		}
		if err := s.answer(text, info); err != nil {
			p.log.Warn("rejecting offer", logattr.Err, err)
			p.closeSession(EndConnectionLost)
			return
		}
	}
	pending := p.pendingICE
	p.pendingICE = nil
	for i := range pending {
		s.addCandidate(&pending[i])
	}
}

func (p *remotePeer) newSession(info offerInfo) (*session, error) {
	p.connections++
	s, err := newSession(p, info, p.connections)
	if err != nil {
		return nil, err
	}
	p.session = s
	return s, nil
}

// handleCandidate applies B10: buffer before the offer, filter by ufrag, bound count and size.
func (p *remotePeer) handleCandidate(c *candidateInit) {
	if c != nil && len(c.Candidate) > maxCandidateLen {
		p.log.Debug("dropping over-long candidate", "len", len(c.Candidate))
		return
	}
	if p.session == nil || !p.session.hasRemote() {
		if c == nil || c.Candidate == "" {
			return
		}
		if len(p.pendingICE) >= maxCandidatesPerGeneration {
			p.log.Debug("dropping candidate: too many buffered before the offer")
			return
		}
		p.pendingICE = append(p.pendingICE, *c)
		return
	}
	p.session.addCandidate(c)
}

// closeSession closes the current connection, ending its tracks with reason.
func (p *remotePeer) closeSession(reason EndReason) {
	if p.session == nil {
		return
	}
	s := p.session
	p.session = nil
	s.close(reason)
}
