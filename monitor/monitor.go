package monitor

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/logattr"
	"github.com/roomtape/roomtape/recorder"
)

// Thresholds configure the alerts; a zero duration disables its alert.
type Thresholds struct {
	// SilentAfter raises "silent" when none of a participant's audio tracks carried speech (or,
	// without audio levels, any packet) for this long.
	SilentAfter time.Duration
	// FrozenAfter raises "frozen" when a video track had no complete frame for this long.
	FrozenAfter time.Duration
	// LossPercent and LossFor raise "loss" when the packets a track is missing over the last
	// LossFor exceed LossPercent of those expected.
	LossPercent float64
	LossFor     time.Duration
	// NoMediaAfter raises "no_media" when a participant in the channel's presence sent no
	// packet on any track for this long (since it joined, or since its last packet).
	NoMediaAfter time.Duration
	// NoKeyframeAfter raises "no_keyframe" when a video track needs a keyframe (at its start,
	// or after an unrecovered loss) and none came for this long.
	NoKeyframeAfter time.Duration
	// LeftAfter raises "left_unexpectedly" when a participant's connection stays failed or
	// disconnected this long, or its tracks end because the connection was lost.
	LeftAfter time.Duration
}

// Config configures a Monitor.
type Config struct {
	// Interval is the stats period (samples, events, stats.jsonl). Default 5s.
	Interval time.Duration
	// SpeechLevel is the audio level (dBov) from which a packet counts as speech. Default -50.
	SpeechLevel float64
	// RecoveryWindow is how long a missing packet may still arrive (NACK) before it counts as
	// lost. Default 1s, the recorder's jitter latency.
	RecoveryWindow time.Duration
	Thresholds     Thresholds
	// Job labels metrics and logs.
	Job    string
	Logger *slog.Logger
	// Metrics, when set, receives per-participant gauges and counters.
	Metrics *Metrics
}

// DefaultThresholds are the alert thresholds when none are configured.
func DefaultThresholds() Thresholds {
	return Thresholds{
		SilentAfter: 30 * time.Second, FrozenAfter: 3 * time.Second, LossPercent: 5, LossFor: 10 * time.Second,
		NoMediaAfter: 15 * time.Second, NoKeyframeAfter: 10 * time.Second, LeftAfter: 5 * time.Second,
	}
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.SpeechLevel == 0 {
		c.SpeechLevel = -50
	}
	if c.RecoveryWindow <= 0 {
		c.RecoveryWindow = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Outputs receive what a Monitor measures. Calls come from the monitor's goroutine (Run) in
// order and must not block for long; nil fields are skipped.
type Outputs struct {
	Sample func(Sample)
	Alert  func(recorder.Alert)
	// Quality receives a logical track's summary (peer, track key, kind) after every interval
	// and when it ends.
	Quality func(peer, track, kind string, q recorder.Quality)
}

// Monitor measures every track handed to it and raises alerts. Tracks come through Track
// (from a bot.Consumer), participants through Events; Run drives the intervals.
type Monitor struct {
	cfg     Config
	out     Outputs
	log     *slog.Logger
	started time.Time
	clock   func() time.Time // time.Now; tests replace it

	mu      sync.Mutex
	peers   map[string]*peerState
	order   []string // peers in order of appearance
	alerts  map[alertKey]*recorder.Alert
	history []recorder.Alert
	ended   []*meter // tracks ended since the last interval (their final figures are reported once)
	done    map[string]recorder.Quality
}

type peerState struct {
	id        string
	present   bool
	joinedAt  time.Time
	state     string // connection state of the newest session
	session   string
	badSince  time.Time // connection failed/disconnected since
	lostConn  bool      // a track ended with connection_lost
	tracks    []*meter  // live tracks
	hadAudio  bool
	lastAudio time.Time // last speech (or audio packet) of ended audio tracks
	recorder  bool      // another roomtape bot (presence metadata has "roomtape"): sends no media
}

type alertKey struct{ code, peer, track string }

// New returns a Monitor; started is the recording's start (sample offsets count from it).
func New(cfg Config, out Outputs, started time.Time) *Monitor {
	cfg.defaults()
	return &Monitor{
		cfg: cfg, out: out, started: started,
		log:   cfg.Logger.With(logattr.Job, cfg.Job),
		peers: map[string]*peerState{}, alerts: map[alertKey]*recorder.Alert{}, done: map[string]recorder.Quality{},
		clock: time.Now,
	}
}

// Track starts measuring a track; key is its logical track key (the manifest's). The returned
// sink never blocks.
func (m *Monitor) Track(info bot.TrackInfo, key string) bot.TrackSink {
	now := m.clock()
	t := newMeter(m, info, key, now)
	m.mu.Lock()
	p := m.peerLocked(info.PeerID, now)
	p.tracks = append(p.tracks, t)
	if t.audio {
		p.hadAudio = true
	}
	m.mu.Unlock()
	return t
}

func (m *Monitor) peerLocked(id string, now time.Time) *peerState {
	p := m.peers[id]
	if p == nil {
		p = &peerState{id: id, joinedAt: now}
		m.peers[id] = p
		m.order = append(m.order, id)
	}
	return p
}

func (m *Monitor) trackEnded(t *meter, reason bot.EndReason, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[t.info.PeerID]
	if p == nil {
		return
	}
	p.tracks = slices.DeleteFunc(p.tracks, func(x *meter) bool { return x == t })
	if reason == bot.EndConnectionLost {
		p.lostConn = true
		if p.badSince.IsZero() {
			p.badSince = now
		}
	}
	if t.audio {
		l := t.live()
		p.lastAudio = later(p.lastAudio, l.lastSpeech)
	}
	m.ended = append(m.ended, t)
}

// Events keeps presence and connection states for the participant alerts.
func (m *Monitor) Events() bot.Events {
	return bot.Events{
		PeerJoined: func(id string, meta json.RawMessage) {
			now := m.clock()
			bot := isRoomtape(meta)
			m.mu.Lock()
			p := m.peerLocked(id, now)
			if !p.present {
				p.present, p.joinedAt = true, now
			}
			p.recorder = bot
			m.mu.Unlock()
		},
		PeerLeft: func(id string) {
			m.mu.Lock()
			if p := m.peers[id]; p != nil {
				p.present = false
			}
			m.mu.Unlock()
		},
		ConnectionState: func(id, session, state string) {
			now := m.clock()
			m.mu.Lock()
			p := m.peerLocked(id, now)
			if session != p.session && state != "connected" && p.session != "" && p.state == "connected" {
				// A late state of an older session; the newest connected one counts.
				m.mu.Unlock()
				return
			}
			p.session, p.state = session, state
			switch state {
			case "failed", "disconnected":
				if p.badSince.IsZero() {
					p.badSince = now
				}
			case "connected":
				p.badSince, p.lostConn = time.Time{}, false
			}
			m.mu.Unlock()
		},
	}
}

// Run takes a sample every interval and evaluates the alerts twice a second until ctx ends;
// then it takes a final sample and reports every track's summary. A panic in one round is logged
// and the next round goes on: monitoring never takes the job down.
func (m *Monitor) Run(ctx context.Context) {
	eval := time.NewTicker(500 * time.Millisecond)
	defer eval.Stop()
	sample := time.NewTicker(m.cfg.Interval)
	defer sample.Stop()
	for {
		select {
		case <-ctx.Done():
			now := time.Now()
			m.guard("evaluate", func() { m.evaluate(now) })
			m.guard("sample", func() { m.sample(now) })
			return
		case now := <-eval.C:
			m.guard("evaluate", func() { m.evaluate(now) })
		case now := <-sample.C:
			m.guard("evaluate", func() { m.evaluate(now) })
			m.guard("sample", func() { m.sample(now) })
		}
	}
}

func (m *Monitor) guard(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in monitor; skipping this round", "round", what, "panic", r)
		}
	}()
	f()
}

// History returns every alert raise and clear so far.
func (m *Monitor) History() []recorder.Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.history)
}

// sample closes an interval: stats of every live track, the summaries, the sample itself.
func (m *Monitor) sample(now time.Time) {
	m.mu.Lock()
	var live []*meter
	for _, id := range m.order {
		live = append(live, m.peers[id].tracks...)
	}
	ended := m.ended
	m.ended = nil
	m.mu.Unlock()

	s := Sample{At: now.UTC(), OffsetMs: now.Sub(m.started).Milliseconds(), IntervalMs: m.cfg.Interval.Milliseconds(),
		Peers: []PeerStats{}, Tracks: []TrackStats{}, Alerts: []recorder.Alert{}}
	for _, t := range live {
		s.Tracks = append(s.Tracks, t.snapshot(now))
	}
	for _, t := range ended {
		m.finish(t, now)
	}
	quality := map[string]recorder.Quality{}
	keys := []string{}
	for _, t := range live {
		k := t.summaryKey()
		if _, ok := quality[k]; !ok {
			keys = append(keys, k)
			quality[k] = m.doneFor(k)
		}
		quality[k] = Merge(quality[k], t.summary(now))
	}
	m.mu.Lock()
	for _, id := range m.order {
		p := m.peers[id]
		ps := PeerStats{Peer: id, Present: p.present, State: p.state, Health: "ok", Tracks: len(p.tracks)}
		for _, ts := range s.Tracks {
			if ts.Peer == id && ts.Speaking {
				ps.Speaking = true
			}
		}
		for k := range m.alerts {
			if k.peer == id {
				ps.Alerts = append(ps.Alerts, k.code)
			}
		}
		slices.Sort(ps.Alerts)
		ps.Alerts = slices.Compact(ps.Alerts)
		if len(ps.Alerts) > 0 {
			ps.Health = "warning"
		}
		if (ps.Present && !p.recorder) || ps.Tracks > 0 || len(ps.Alerts) > 0 {
			s.Peers = append(s.Peers, ps)
		}
	}
	for _, a := range m.alerts {
		s.Alerts = append(s.Alerts, *a)
	}
	m.mu.Unlock()
	slices.SortFunc(s.Alerts, func(a, b recorder.Alert) int { return a.At.Compare(b.At) })
	s.Health = "ok"
	if len(s.Alerts) > 0 {
		s.Health = "warning"
	}
	if m.cfg.Metrics != nil {
		m.cfg.Metrics.observe(m.cfg.Job, s)
	}
	if m.out.Quality != nil {
		for _, k := range keys {
			f := strings.SplitN(k, "\x00", 3)
			m.out.Quality(f[0], f[1], f[2], quality[k])
		}
	}
	if m.out.Sample != nil {
		m.out.Sample(s)
	}
}

// finish folds an ended track into its logical track's summary and reports it.
func (m *Monitor) finish(t *meter, now time.Time) {
	k := t.summaryKey()
	m.mu.Lock()
	q := Merge(m.done[k], t.summary(now))
	m.done[k] = q
	m.mu.Unlock()
	if m.out.Quality != nil {
		m.out.Quality(t.info.PeerID, t.key, t.info.Kind, q)
	}
}

func (m *Monitor) doneFor(k string) recorder.Quality {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done[k]
}

// summaryKey identifies the logical track a session belongs to: peer, track key and kind (a
// camera stream's audio and video share the key).
func (t *meter) summaryKey() string { return t.info.PeerID + "\x00" + t.key + "\x00" + t.info.Kind }

// isRoomtape reports presence metadata of a roomtape bot ({"roomtape": ...}, bot.peer_metadata).
func isRoomtape(meta json.RawMessage) bool {
	var v map[string]json.RawMessage
	if len(meta) == 0 || json.Unmarshal(meta, &v) != nil {
		return false
	}
	_, ok := v["roomtape"]
	return ok
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
