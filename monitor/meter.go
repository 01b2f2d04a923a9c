package monitor

import (
	"math"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/recorder"
)

const (
	// freezeMin is the pause without a complete frame that counts as a freeze.
	freezeMin = time.Second
	// maxHoles bounds the sequence numbers a track keeps as missing; a bigger jump (a sender
	// restart, a long outage) is counted as lost without being remembered one by one.
	maxHoles = 2048
	// lateMemory is how long a hole that was declared lost is remembered, so that a packet
	// arriving after the recovery window counts as late instead of duplicate.
	lateMemory = 10 * time.Second
	// speechShare is the share of an interval's packets that must be speech for "speaking".
	speechShare = 0.1
	// noLevel marks a packet without an audio level.
	noLevel = -1
)

// hole is a sequence number seen missing.
type hole struct {
	since time.Time
	lost  bool // the recovery window passed
}

// meter measures one remote track from its packets. WriteRTP runs on the bot's reader goroutine
// and does constant work per packet (plus the rare hole bookkeeping) under the meter's lock;
// snapshots are taken by the monitor's ticker.
type meter struct {
	mon   *Monitor
	info  bot.TrackInfo
	key   string
	role  string
	audio bool
	rate  float64 // RTP clock rate
	start recorder.FrameStart
	level uint8 // RFC 6464 extension id, 0 = not negotiated

	mu    sync.Mutex
	ended bool

	began      time.Time
	lastPacket time.Time

	// Sequence numbers (extended to 64 bits).
	seqInit bool
	baseSeq uint64
	maxSeq  uint64
	holes   map[uint64]hole

	packets, bytes, dups, late    uint64
	lostFirst, recovered, lostFin uint64

	// Jitter (RFC 3550 §6.4.1), in RTP clock units.
	jitter      float64
	lastTransit float64
	haveTransit bool
	tsCycles    uint64
	lastTS      uint32

	// Video frames.
	curTS        uint32
	curStart     bool
	curStartSeq  uint64
	frames       uint64
	lastComplete time.Time
	freezes      int
	frozenFor    time.Duration
	keyframes    uint64
	lastKey      time.Time
	keyInterval  time.Duration
	needKeySince time.Time // zero when decodable (a keyframe came after the last unrecovered loss)
	width        int
	height       int
	maxW, maxH   int

	// Audio levels.
	hasLevel    bool
	lastSpeech  time.Time
	levelPkts   uint64  // interval: packets with a level
	speechPkts  uint64  // interval: speech packets
	levelEnergy float64 // interval: sum of linear power
	speechAll   uint64  // whole track: speech packets
	levelAll    uint64  // whole track: packets with a level
	speechDB    float64 // whole track: sum of speech levels (dBov)

	// Interval bookkeeping.
	prev      counters
	prevAt    time.Time
	sum       summaryAcc
	lastStats TrackStats

	// lossWin is the loss rule's window, touched only by the monitor's evaluate.
	lossWin []lossPoint
}

// counters is what an interval is measured against.
type counters struct {
	packets, bytes, expected, lostFin, lostFirst, frames uint64
}

// summaryAcc accumulates interval figures for the manifest's Quality.
type summaryAcc struct {
	intervals   int
	jitterSum   float64
	jitterMax   float64
	bitrateMax  float64
	fpsSum      float64
	fpsN        int
	keyIntSum   time.Duration
	keyIntN     int
	silentFor   time.Duration
	silentSince time.Time
}

func newMeter(m *Monitor, info bot.TrackInfo, key string, now time.Time) *meter {
	rate := float64(info.ClockRate)
	if rate == 0 {
		rate = 90000
	}
	t := &meter{
		mon: m, info: info, key: key, role: info.Role(), audio: info.Kind == "audio", rate: rate,
		level: info.AudioLevelExtID, holes: map[uint64]hole{},
		began: now, prevAt: now, lastComplete: now,
	}
	if !t.audio {
		t.start = recorder.NewFrameStart(info.MimeType)
		t.needKeySince = now
	} else {
		t.lastSpeech = now
		t.sum.silentSince = now
	}
	return t
}

// WriteRTP accounts one packet.
func (t *meter) WriteRTP(p *rtp.Packet, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	t.packets++
	t.bytes += uint64(len(p.Payload))
	t.lastPacket = at
	seq, fresh := t.sequence(p.SequenceNumber, at)
	if !fresh {
		return
	}
	t.transit(p.Timestamp, at)
	if t.audio {
		t.audioLevel(p, at)
		return
	}
	t.frame(p, seq, at)
}

// sequence extends and classifies a sequence number; fresh means newer than any seen so far.
func (t *meter) sequence(s uint16, at time.Time) (uint64, bool) {
	if !t.seqInit {
		t.seqInit, t.baseSeq, t.maxSeq = true, uint64(s)+1<<16, uint64(s)+1<<16
		return t.maxSeq, true
	}
	// The extended number closest to the highest seen.
	ext := t.maxSeq&^0xFFFF | uint64(s)
	switch d := int64(ext) - int64(t.maxSeq); {
	case d > 1<<15:
		ext -= 1 << 16
	case d < -(1 << 15):
		ext += 1 << 16
	}
	if ext > t.maxSeq {
		gap := ext - t.maxSeq - 1
		if gap > 0 {
			t.lostFirst += gap
			for n := ext - min(gap, maxHoles); n < ext; n++ {
				t.holes[n] = hole{since: at}
			}
			if gap > maxHoles {
				t.lostFin += gap - maxHoles // too many to wait for one by one
			}
			if len(t.holes) > 2*maxHoles {
				t.expire(at, true)
			}
		}
		t.maxSeq = ext
		return ext, true
	}
	if h, ok := t.holes[ext]; ok {
		delete(t.holes, ext)
		if h.lost {
			t.late++ // arrived after the recovery window: it stays counted as lost
		} else {
			t.recovered++
		}
		return ext, false
	}
	if ext < t.baseSeq {
		t.late++
		return ext, false
	}
	t.dups++
	return ext, false
}

// expire declares holes older than the recovery window lost and forgets old lost holes; with
// force (too many holes) every pending hole is declared lost.
func (t *meter) expire(now time.Time, force bool) {
	win := t.mon.cfg.RecoveryWindow
	for n, h := range t.holes {
		age := now.Sub(h.since)
		switch {
		case !h.lost && (force || age >= win):
			h.lost = true
			t.holes[n] = h
			t.lostFin++
			if !t.audio && t.needKeySince.IsZero() {
				t.needKeySince = now // an unrecovered loss: the decoder needs a keyframe
			}
		case h.lost && (force || age >= win+lateMemory):
			delete(t.holes, n)
		}
	}
}

// transit updates the RFC 3550 interarrival jitter with a packet's transit time.
func (t *meter) transit(ts uint32, at time.Time) {
	if ts < t.lastTS && t.lastTS-ts > 1<<31 {
		t.tsCycles++
	}
	t.lastTS = ts
	arrival := float64(at.UnixNano()) / 1e9 * t.rate
	tr := arrival - float64(t.tsCycles<<32|uint64(ts))
	if t.haveTransit {
		d := math.Abs(tr - t.lastTransit)
		if d < 60*t.rate { // a jump of a minute is a timestamp reset, not jitter
			t.jitter += (d - t.jitter) / 16
		}
	}
	t.lastTransit, t.haveTransit = tr, true
}

func (t *meter) audioLevel(p *rtp.Packet, at time.Time) {
	if t.level == 0 {
		t.lastSpeech = at // no levels: any audio packet counts as sound
		return
	}
	ext := p.GetExtension(t.level)
	if len(ext) == 0 {
		t.lastSpeech = at // negotiated but not sent: the packet counts as sound
		return
	}
	t.hasLevel = true
	lvl := int(ext[0] & 0x7F) // -dBov
	t.levelPkts++
	t.levelAll++
	t.levelEnergy += dbovPower[lvl]
	if -float64(lvl) >= t.mon.cfg.SpeechLevel {
		t.speechPkts++
		t.speechAll++
		t.speechDB -= float64(lvl)
		t.lastSpeech = at
	}
}

// dbovPower[l] is the linear power of -l dBov.
var dbovPower = func() (p [128]float64) {
	for l := range p {
		p[l] = math.Pow(10, -float64(l)/10)
	}
	return
}()

func (t *meter) frame(p *rtp.Packet, seq uint64, at time.Time) {
	if p.Timestamp != t.curTS {
		t.curTS, t.curStart = p.Timestamp, false
	}
	if t.start != nil {
		if start, key, w, h := t.start(p); start {
			t.curStart, t.curStartSeq = true, seq
			if key {
				t.keyframe(at, w, h)
			}
		}
	}
	if !p.Marker || !t.curStart {
		return
	}
	if t.frameMissing(seq) {
		return
	}
	t.frames++
	if gap := at.Sub(t.lastComplete); gap > freezeMin {
		t.freezes++
		t.frozenFor += gap
	}
	t.lastComplete = at
}

// frameMissing reports whether a packet of the frame [curStartSeq, end) is still missing,
// looking up the frame's own sequence numbers (a few) rather than every remembered hole.
func (t *meter) frameMissing(end uint64) bool {
	if len(t.holes) == 0 {
		return false
	}
	if end-t.curStartSeq > uint64(len(t.holes)) {
		for n := range t.holes {
			if n >= t.curStartSeq && n < end {
				return true
			}
		}
		return false
	}
	for n := t.curStartSeq; n < end; n++ {
		if _, missing := t.holes[n]; missing {
			return true
		}
	}
	return false
}

func (t *meter) keyframe(at time.Time, w, h int) {
	t.keyframes++
	if !t.lastKey.IsZero() {
		t.keyInterval = at.Sub(t.lastKey)
		t.sum.keyIntSum += t.keyInterval
		t.sum.keyIntN++
	}
	t.lastKey = at
	t.needKeySince = time.Time{}
	if w > 0 && h > 0 {
		t.width, t.height = w, h
		t.maxW, t.maxH = max(t.maxW, w), max(t.maxH, h)
	}
}

// WriteRTCP is not needed: everything is measured on the receive side.
func (t *meter) WriteRTCP([]rtcp.Packet, time.Time) {}

// Reconnected: the gap that follows an ICE restart is expected; the jitter baseline restarts.
func (t *meter) Reconnected() {
	t.mu.Lock()
	t.haveTransit = false
	t.mu.Unlock()
}

// End stops the track; its last figures stay for the summary.
func (t *meter) End(reason bot.EndReason) {
	now := t.mon.clock()
	t.mu.Lock()
	if !t.ended {
		t.expire(now, true)
		t.closeFreeze(now)
		t.ended = true
	}
	t.mu.Unlock()
	t.mon.trackEnded(t, reason, now)
}

// closeFreeze counts a freeze still going on when the track ends.
func (t *meter) closeFreeze(now time.Time) {
	if t.audio {
		return
	}
	if gap := now.Sub(t.lastComplete); gap > freezeMin && t.lastPacket.After(t.lastComplete) {
		t.freezes++
		t.frozenFor += gap
		t.lastComplete = now
	}
}

func (t *meter) expected() uint64 {
	if !t.seqInit {
		return 0
	}
	return t.maxSeq - t.baseSeq + 1
}

// snapshot closes an interval: it expires holes, computes the interval's rates and returns
// the track's stats.
func (t *meter) snapshot(now time.Time) TrackStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return t.lastStats
	}
	t.expire(now, false)
	el := now.Sub(t.prevAt).Seconds()
	if el <= 0 {
		el = 1e-9
	}
	cur := counters{packets: t.packets, bytes: t.bytes, expected: t.expected(), lostFin: t.lostFin, lostFirst: t.lostFirst, frames: t.frames}
	s := TrackStats{
		Peer: t.info.PeerID, Track: t.key, TrackID: t.info.TrackID, Session: t.info.SessionID,
		Kind: t.info.Kind, Role: t.role, Codec: t.info.MimeType,
		Packets: t.packets, Bytes: t.bytes, Expected: cur.expected, LostBeforeRecovery: t.lostFirst,
		Recovered: t.recovered, Lost: t.lostFin, Late: t.late, Duplicates: t.dups,
		JitterMs:   t.jitter / t.rate * 1000,
		BitrateBps: float64(cur.bytes-t.prev.bytes) * 8 / el,
		PacketRate: float64(cur.packets-t.prev.packets) / el,
	}
	if exp := cur.expected - t.prev.expected; exp > 0 {
		s.LossPct = pct(cur.lostFin-t.prev.lostFin, exp)
		s.LossBeforeRecoveryPct = pct(cur.lostFirst-t.prev.lostFirst, exp)
	}
	if !t.lastPacket.IsZero() {
		s.SinceLastPacketMs = now.Sub(t.lastPacket).Milliseconds()
	} else {
		s.SinceLastPacketMs = now.Sub(t.began).Milliseconds()
	}
	if t.audio {
		if t.levelPkts > 0 {
			l := 10 * math.Log10(t.levelEnergy/float64(t.levelPkts))
			l = math.Round(max(l, -127)*10) / 10
			s.Level = &l
			s.SpeechPct = pct(t.speechPkts, t.levelPkts)
		}
		s.Speaking = t.levelPkts > 0 && float64(t.speechPkts) >= speechShare*float64(t.levelPkts)
		if t.level == 0 {
			s.Speaking = cur.packets > t.prev.packets
		}
		if s.Speaking {
			if !t.sum.silentSince.IsZero() {
				t.sum.silentFor += now.Sub(t.sum.silentSince)
				t.sum.silentSince = time.Time{}
			}
		} else if t.sum.silentSince.IsZero() {
			t.sum.silentSince = t.prevAt
		}
		t.levelPkts, t.speechPkts, t.levelEnergy = 0, 0, 0
	} else {
		s.Frames, s.Keyframes = t.frames, t.keyframes
		s.FPS = float64(cur.frames-t.prev.frames) / el
		s.KeyframeIntervalMs = t.keyInterval.Milliseconds()
		if !t.lastKey.IsZero() {
			s.SinceKeyframeMs = now.Sub(t.lastKey).Milliseconds()
		}
		s.Width, s.Height = t.width, t.height
		s.Frozen = now.Sub(t.lastComplete) > freezeMin
		s.Freezes, s.FrozenMs = t.freezes, t.frozenFor.Milliseconds()
		if s.Frozen {
			s.FrozenMs += now.Sub(t.lastComplete).Milliseconds()
		}
		t.sum.fpsSum += s.FPS
		t.sum.fpsN++
	}
	t.sum.intervals++
	t.sum.jitterSum += s.JitterMs
	t.sum.jitterMax = max(t.sum.jitterMax, s.JitterMs)
	t.sum.bitrateMax = max(t.sum.bitrateMax, s.BitrateBps)
	t.prev, t.prevAt = cur, now
	t.lastStats = s
	return s
}

// live is what alert rules look at, read under the meter's lock.
type live struct {
	audio, ended          bool
	began, lastPacket     time.Time
	lastSpeech            time.Time
	lastComplete          time.Time
	needKeySince          time.Time
	expected, lostPending uint64
}

func (t *meter) live() live {
	t.mu.Lock()
	defer t.mu.Unlock()
	return live{
		audio: t.audio, ended: t.ended, began: t.began, lastPacket: t.lastPacket, lastSpeech: t.lastSpeech,
		lastComplete: t.lastComplete, needKeySince: t.needKeySince,
		expected: t.expected(), lostPending: t.lostFirst - t.recovered,
	}
}

// summary is the track's figures for the manifest (one session of a logical track).
func (t *meter) summary(now time.Time) recorder.Quality {
	t.mu.Lock()
	defer t.mu.Unlock()
	end := now
	if t.ended && !t.lastPacket.IsZero() {
		end = t.lastPacket
	}
	active := end.Sub(t.began)
	q := recorder.Quality{
		Packets: t.packets, Bytes: t.bytes, Expected: t.expected(), LostBeforeRecovery: t.lostFirst,
		Recovered: t.recovered, Lost: t.lostFin, Late: t.late, Duplicates: t.dups,
		JitterMaxMs: t.sum.jitterMax, BitrateMaxBps: t.sum.bitrateMax, ActiveMs: active.Milliseconds(),
	}
	if t.sum.intervals > 0 {
		q.JitterMeanMs = t.sum.jitterSum / float64(t.sum.intervals)
	}
	if t.audio {
		q.AudioLevel = t.hasLevel
		silent := t.sum.silentFor
		if !t.sum.silentSince.IsZero() {
			silent += end.Sub(t.sum.silentSince)
		}
		q.SilentMs = max(silent, 0).Milliseconds()
		if t.levelAll > 0 {
			q.SpeechPct = pct(t.speechAll, t.levelAll)
		}
		if t.speechAll > 0 {
			q.LevelMeanDBov = t.speechDB / float64(t.speechAll)
		}
	} else {
		q.Frames, q.Keyframes = t.frames, t.keyframes
		q.Width, q.Height, q.MaxWidth, q.MaxHeight = t.width, t.height, t.maxW, t.maxH
		q.Freezes, q.FrozenMs = t.freezes, t.frozenFor.Milliseconds()
		if t.sum.keyIntN > 0 {
			q.KeyframeIntervalMeanMs = float64(t.sum.keyIntSum.Milliseconds()) / float64(t.sum.keyIntN)
		}
	}
	return q
}

func pct(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return math.Round(float64(n)/float64(of)*100*100) / 100
}
