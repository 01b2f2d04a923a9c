package mediabench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/roomtape/roomtape/signalling"
)

// bareAPI is pion with its defaults for media: RegisterDefaultCodecs and
// RegisterDefaultInterceptors (NACK, RTCP reports, simulcast headers, stats, TWCC). Only the
// network is narrowed, exactly as for the bot: UDP4 host candidates on 127.0.0.1, no mDNS.
func bareAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("bare: codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("bare: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// bareReceiver is the smallest answerer that gets media from the publishers: the signalling
// client and outbox (shared plumbing), one pion PeerConnection per remote peer, and per track the
// loop of pion's save-to-disk example (ReadRTP → writer) or a read-and-discard loop.
type bareReceiver struct {
	cfg    ReceiverConfig
	api    *webrtc.API
	out    *signalling.Outbox
	tally  *tally
	log    *slog.Logger
	files  atomic.Int64
	ctx    context.Context
	wg     sync.WaitGroup // peer goroutines and track readers
	mu     sync.Mutex
	peers  map[string]*barePeer
	closed bool
}

func runBareReceiver(ctx context.Context, cc signalling.ClientConfig, cfg ReceiverConfig, t *tally) error {
	api, err := bareAPI()
	if err != nil {
		return err
	}
	r := &bareReceiver{cfg: cfg, api: api, tally: t, log: cfg.Logger, ctx: ctx, peers: map[string]*barePeer{}}
	cc.Channels = []string{cfg.Channel}
	cc.Logger = cfg.Logger
	client, err := signalling.NewClient(cc, signalling.Handler{Direct: r.onDirect, Presence: r.onPresence})
	if err != nil {
		return err
	}
	r.out = signalling.NewOutbox(client, cfg.Logger)
	outCtx, stopOut := context.WithCancel(context.WithoutCancel(ctx))
	var outDone sync.WaitGroup
	outDone.Add(1)
	go func() { defer outDone.Done(); r.out.Run(outCtx) }()
	runErr := client.Run(ctx)
	r.mu.Lock()
	r.closed = true
	peers := r.peers
	r.peers = nil
	r.mu.Unlock()
	for _, p := range peers {
		p.stop()
	}
	r.wg.Wait()
	stopOut()
	outDone.Wait()
	return runErr
}

// peer returns the actor of id, creating it; nil once the receiver is closing.
func (r *bareReceiver) peer(id string) *barePeer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	p := r.peers[id]
	if p == nil {
		p = &barePeer{r: r, id: id, wake: make(chan struct{}, 1), done: make(chan struct{})}
		r.peers[id] = p
		r.wg.Add(1)
		go func() { defer r.wg.Done(); p.run() }()
	}
	return p
}

func (r *bareReceiver) onPresence(ev signalling.PresenceEvent) {
	for _, e := range ev.Left {
		r.mu.Lock()
		p := r.peers[e.PeerID]
		delete(r.peers, e.PeerID)
		r.mu.Unlock()
		if p != nil {
			p.stop()
		}
	}
}

func (r *bareReceiver) onDirect(from string, data, _ json.RawMessage) {
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
	switch {
	case env.Type == "rtc-description" && env.Description != nil && env.Description.Type == "offer":
		if p := r.peer(from); p != nil {
			sdp := env.Description.SDP
			p.post(func() { p.answer(sdp) })
		}
	case env.Type == "rtc-ice" && env.Candidate != nil && env.Candidate.Candidate != "":
		if p := r.peer(from); p != nil {
			c := *env.Candidate
			p.post(func() { p.addCandidate(c) })
		}
	}
}

// track starts a reader for a remote track unless the receiver is closing.
func (r *bareReceiver) track(peer string, track *webrtc.TrackRemote) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	c := r.tally.start(peer)
	defer r.tally.end(c)
	if r.cfg.Sink == SinkDiscard {
		readDiscard(track, c)
		return
	}
	if err := r.save(track, c); err != nil {
		r.log.Warn("bare save failed", "peer", peer, "err", err)
		readDiscard(track, c)
	}
}

// readDiscard is pion's read-and-discard loop; the sequence number is read from the header
// bytes for the loss count.
func readDiscard(track *webrtc.TrackRemote, c *seqCounter) {
	buf := make([]byte, 1500)
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if n >= 4 {
			c.observe(binary.BigEndian.Uint16(buf[2:4]), n)
		}
	}
}

// save is pion's save-to-disk loop (ReadRTP → oggwriter/ivfwriter, no jitter buffer), with the
// writers behind a 64 KiB bufio.Writer flushed about once a second, as the recorder flushes.
func (r *bareReceiver) save(track *webrtc.TrackRemote, c *seqCounter) (err error) {
	mime := strings.ToLower(track.Codec().MimeType)
	n := r.files.Add(1)
	var ext string
	switch mime {
	case strings.ToLower(webrtc.MimeTypeOpus):
		ext = "ogg"
	case strings.ToLower(webrtc.MimeTypeVP8), strings.ToLower(webrtc.MimeTypeVP9), strings.ToLower(webrtc.MimeTypeAV1):
		ext = "ivf"
	default:
		return fmt.Errorf("no pion writer for %s", mime)
	}
	f, err := os.Create(filepath.Join(r.cfg.Out, fmt.Sprintf("track-%04d-%s.%s", n, track.Kind(), ext)))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	var w media.Writer
	if ext == "ogg" {
		w, err = oggwriter.NewWith(bw, track.Codec().ClockRate, max(track.Codec().Channels, 1))
	} else {
		w, err = ivfwriter.NewWith(bw, ivfwriter.WithCodec(track.Codec().MimeType))
	}
	if err != nil {
		return errors.Join(err, f.Close())
	}
	defer func() { err = errors.Join(err, w.Close(), bw.Flush(), f.Close()) }()
	lastFlush := time.Now()
	for {
		pkt, _, rerr := track.ReadRTP()
		if rerr != nil {
			return nil // io.EOF or closed: the connection ended
		}
		c.observe(pkt.SequenceNumber, pkt.MarshalSize())
		if werr := w.WriteRTP(pkt); werr != nil {
			return werr
		}
		if now := time.Now(); now.Sub(lastFlush) >= time.Second {
			lastFlush = now
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
		}
	}
}

// barePeer is one remote peer: signals are applied in arrival order on its goroutine.
type barePeer struct {
	r    *bareReceiver
	id   string
	qmu  sync.Mutex
	q    []func()
	wake chan struct{}
	done chan struct{}
	once sync.Once

	// Owned by the peer goroutine.
	pc      *webrtc.PeerConnection
	pending []webrtc.ICECandidateInit // remote candidates that came before the offer

	cmu      sync.Mutex
	answered bool
	held     []*webrtc.ICECandidate // local candidates gathered before the answer was queued
}

func (p *barePeer) post(fn func()) {
	p.qmu.Lock()
	p.q = append(p.q, fn)
	p.qmu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// stop ends the goroutine once the queue is empty, closing the peer connection.
func (p *barePeer) stop() { p.once.Do(func() { close(p.done) }) }

// runQueued runs the signals posted so far and reports whether there were any.
func (p *barePeer) runQueued() bool {
	p.qmu.Lock()
	q := p.q
	p.q = nil
	p.qmu.Unlock()
	for _, fn := range q {
		fn()
	}
	return len(q) > 0
}

func (p *barePeer) run() {
	for {
		if p.runQueued() {
			continue
		}
		select {
		case <-p.wake:
		case <-p.done:
			p.runQueued()
			p.close()
			return
		}
	}
}

func (p *barePeer) close() {
	if p.pc != nil {
		_ = p.pc.Close()
		p.pc = nil
	}
}

func (p *barePeer) answer(sdp string) {
	if p.pc == nil {
		pc, err := p.r.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			p.r.log.Warn("bare: new peer connection", "peer", p.id, "err", err)
			return
		}
		p.pc = pc
		pc.OnICECandidate(p.onLocalCandidate)
		pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { p.r.track(p.id, t) })
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		p.r.log.Warn("bare: set offer", "peer", p.id, "err", err)
		return
	}
	for _, c := range p.pending {
		_ = p.pc.AddICECandidate(c)
	}
	p.pending = nil
	ans, err := p.pc.CreateAnswer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(ans)
	}
	if err != nil {
		p.r.log.Warn("bare: answer", "peer", p.id, "err", err)
		return
	}
	p.r.out.Send(p.id, map[string]any{"type": "rtc-description",
		"description": map[string]string{"type": "answer", "sdp": p.pc.LocalDescription().SDP}})
	p.cmu.Lock()
	p.answered = true
	held := p.held
	p.held = nil
	p.cmu.Unlock()
	for _, c := range held {
		p.sendCandidate(c)
	}
}

func (p *barePeer) addCandidate(c webrtc.ICECandidateInit) {
	if p.pc == nil || p.pc.RemoteDescription() == nil {
		p.pending = append(p.pending, c)
		return
	}
	_ = p.pc.AddICECandidate(c)
}

func (p *barePeer) onLocalCandidate(c *webrtc.ICECandidate) {
	p.cmu.Lock()
	if !p.answered {
		p.held = append(p.held, c)
		p.cmu.Unlock()
		return
	}
	p.cmu.Unlock()
	p.sendCandidate(c)
}

func (p *barePeer) sendCandidate(c *webrtc.ICECandidate) {
	if c == nil {
		p.r.out.Send(p.id, map[string]any{"type": "rtc-ice", "candidate": nil})
		return
	}
	p.r.out.Send(p.id, map[string]any{"type": "rtc-ice", "candidate": c.ToJSON()})
}
