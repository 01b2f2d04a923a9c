package recorder

import (
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/logattr"
)

// Keyframe policy (field notes, pitfall 1): PLI at start, every 200 ms while waiting, after loss
// at most once a second, and a warning when none arrived for 4 s.
const (
	pliWhileWaiting  = 200 * time.Millisecond
	pliAfterLossMin  = time.Second
	keyframeWatchdog = 4 * time.Second
	// maxClockDrift re-anchors the RTP timeline to arrival time when they disagree by more than
	// this (timestamp jumps, sender restarts).
	maxClockDrift = 5 * time.Second
	videoRate     = 90000
)

// queuedPacket is one RTP packet waiting for the track's worker: 16 bytes, so the queue costs
// 64 KiB of memory per track however long it is waited on.
type queuedPacket struct {
	pkt *rtp.Packet
	at  time.Duration // arrival, since the track's base time (monotonic)
}

// control is a rarer event: sender reports, or the end of the track.
type control struct {
	rtcp   []rtcp.Packet
	at     time.Time
	end    bool
	reason bot.EndReason
}

// Queue sizes: 4096 packets is 4 s of a 4 Mbps screen share, 80 s of audio.
const (
	packetQueue  = 4096
	controlQueue = 16
	// pollPending is how often a track with packets held back (a hole waiting for NACK, a frame
	// not yet complete, a keyframe awaited) re-checks them; an idle track has no timer at all.
	pollPending = 20 * time.Millisecond
)

// trackRec records one remote track: WriteRTP (the bot's reader goroutine) only queues; the
// worker goroutine reorders, assembles, gates, times and writes, so a slow disk never stalls the
// reader and a full queue drops packets (counted) instead of blocking.
type trackRec struct {
	rec  *Recording
	info bot.TrackInfo
	ctrl bot.TrackControl
	log  *slog.Logger
	mt   *Track

	in          chan queuedPacket
	ctl         chan control
	base        time.Time
	done        chan struct{}
	endOnce     sync.Once
	reconnected atomic.Bool
	queueDrops  atomic.Uint64

	// Worker state.
	audio     bool
	jb        *jitterBuffer
	dep       Depacketizer
	ssrc      uint32
	ts        tsUnwrapper
	anchored  bool
	anchorExt uint64
	anchorAt  time.Time
	gapCause  string // cause of the next timeline gap, when known

	seg      *segment
	segCount int

	waitingKF bool
	waitSince time.Time
	lastPLI   time.Time
	warnedKF  bool
}

func newTrackRec(r *Recording, info bot.TrackInfo, ctrl bot.TrackControl, mt *Track) (*trackRec, error) {
	t := &trackRec{
		rec: r, info: info, ctrl: ctrl, mt: mt,
		log:   r.log.With(logattr.Peer, info.PeerID, logattr.Track, info.TrackID, "kind", info.Kind),
		in:    make(chan queuedPacket, packetQueue),
		ctl:   make(chan control, controlQueue),
		base:  time.Now(),
		done:  make(chan struct{}),
		audio: info.Kind == "audio",
		ssrc:  info.SSRC,
	}
	dep, err := NewDepacketizer(info.MimeType)
	if err != nil {
		return nil, err
	}
	t.dep = dep
	t.jb = newJitterBuffer(r.opts.JitterLatency, t.audio, frameStartFunc(info.MimeType))
	if !t.audio {
		t.waitingKF = true
		t.waitSince = time.Now()
	}
	return t, nil
}

// WriteRTP queues a packet; it never blocks.
func (t *trackRec) WriteRTP(pkt *rtp.Packet, arrival time.Time) {
	select {
	case t.in <- queuedPacket{pkt: pkt, at: arrival.Sub(t.base)}:
	default:
		if t.queueDrops.Add(1)%100 == 1 {
			t.log.Warn("recorder queue full; dropping packets", "dropped", t.queueDrops.Load())
		}
	}
}

// WriteRTCP queues sender reports for the timeline mapping.
func (t *trackRec) WriteRTCP(pkts []rtcp.Packet, arrival time.Time) {
	select {
	case t.ctl <- control{rtcp: pkts, at: arrival}:
	default:
	}
}

// Reconnected marks the next timeline gap as caused by a reconnect (ICE restart).
func (t *trackRec) Reconnected() { t.reconnected.Store(true) }

// End finishes the track: remaining complete frames are written and the file is closed.
func (t *trackRec) End(reason bot.EndReason) {
	t.endOnce.Do(func() {
		t.ctl <- control{end: true, reason: reason}
	})
	<-t.done
}

func (t *trackRec) run() {
	defer close(t.done)
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("panic in track recorder; closing its file", "panic", r)
			t.closeSegment("panic", true)
			t.drain()
		}
	}()
	poll := time.NewTimer(pollPending)
	defer poll.Stop()
	polling := true
	flush := time.NewTicker(t.rec.opts.FlushInterval)
	defer flush.Stop()
	for {
		select {
		case q := <-t.in:
			t.onPacket(q.pkt, t.base.Add(q.at))
			t.release(time.Now(), false)
		case c := <-t.ctl:
			if c.end {
				// Every packet was queued before End: write them, then close.
				for more := true; more; {
					select {
					case q := <-t.in:
						t.onPacket(q.pkt, t.base.Add(q.at))
					default:
						more = false
					}
				}
				t.release(time.Now(), true)
				t.closeSegment(string(c.reason), false)
				return
			}
			t.onRTCP(c.rtcp, c.at)
		case now := <-poll.C:
			polling = false
			t.release(now, false)
			t.keyframeTimers(now)
		case <-flush.C:
			if t.seg != nil {
				if err := t.seg.flush(); err != nil {
					t.log.Error("flush failed", logattr.Err, err)
				}
				t.rec.updateFile(t.seg.mf, t.seg.stats(t.jb.stats, t.queueDrops.Load()))
			}
		}
		if !polling && (t.jb.pending() || t.waitingKF) {
			poll.Reset(pollPending)
			polling = true
		}
	}
}

// drain keeps accepting events after a failure so the bot's reader never blocks on End.
func (t *trackRec) drain() {
	for {
		select {
		case <-t.in:
		case c := <-t.ctl:
			if c.end {
				return
			}
		}
	}
}

func (t *trackRec) onPacket(p *rtp.Packet, at time.Time) {
	if p.SSRC != t.ssrc {
		// A new SSRC restarts sequence and timestamp spaces: release what is complete, then
		// re-anchor the timeline at arrival time (the gap is recorded).
		t.log.Info("ssrc changed", "old", t.ssrc, "new", p.SSRC)
		t.release(at, true)
		t.jb.reset()
		t.ts = tsUnwrapper{}
		t.anchored = false
		t.ssrc = p.SSRC
		t.gapCause = "ssrc_change"
		if !t.audio {
			t.closeGate(at)
		}
	}
	t.jb.push(p, at)
}

func (t *trackRec) onRTCP(pkts []rtcp.Packet, at time.Time) {
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == t.ssrc && t.seg != nil {
			t.seg.senderReport(sr, at)
		}
	}
}

// release writes every frame the jitter buffer lets go.
func (t *trackRec) release(now time.Time, flush bool) {
	for {
		f, ok := t.jb.pop(now, flush)
		if !ok {
			return
		}
		t.writeFrame(f)
	}
}

// mediaTime maps a frame's RTP timestamp to wall-clock time: 64-bit extended RTP time anchored
// at the arrival of the first frame, re-anchored when it drifts more than maxClockDrift.
func (t *trackRec) mediaTime(f releasedFrame) time.Time {
	rate := float64(t.info.ClockRate)
	if rate == 0 {
		rate = videoRate
	}
	ext := t.ts.unwrap(f.pkts[0].Timestamp)
	if !t.anchored {
		t.anchored, t.anchorExt, t.anchorAt = true, ext, f.arrival
		return f.arrival
	}
	delta := float64(int64(ext-t.anchorExt)) / rate
	wall := t.anchorAt.Add(time.Duration(delta * float64(time.Second)))
	if d := wall.Sub(f.arrival); d > maxClockDrift || d < -maxClockDrift {
		t.log.Info("RTP timeline jumped; re-anchoring to arrival time", "drift", d.Round(time.Millisecond))
		t.anchorExt, t.anchorAt = ext, f.arrival
		if t.gapCause == "" {
			t.gapCause = "timestamp_jump"
		}
		return f.arrival
	}
	return wall
}

func (t *trackRec) writeFrame(f releasedFrame) {
	if len(f.pkts) == 0 {
		return
	}
	if t.reconnected.Swap(false) {
		t.gapCause = "reconnect"
	}
	if f.lossBefore && t.gapCause == "" {
		t.gapCause = "loss"
	}
	wall := t.mediaTime(f)
	frame, err := t.dep.Depacketize(f.pkts)
	if err != nil {
		t.log.Debug("undecodable frame dropped", logattr.Err, err)
		if !t.audio {
			t.closeGate(f.arrival)
		}
		return
	}
	if len(frame.Data) == 0 {
		return
	}
	if !t.audio {
		if f.lossBefore {
			t.closeGate(f.arrival)
		}
		if t.waitingKF {
			if !frame.Keyframe {
				return
			}
			t.openGate(f.arrival)
		}
	}
	if t.seg == nil {
		if err := t.openSegment(wall, frame); err != nil {
			t.log.Error("cannot open recording file", logattr.Err, err)
			return
		}
	}
	if err := t.seg.write(frame, wall, t.takeGapCause()); err != nil {
		t.log.Error("write failed; closing the file", logattr.Err, err)
		t.closeSegment("write_error", true)
	}
}

func (t *trackRec) takeGapCause() string {
	c := t.gapCause
	if c == "" {
		c = "silence" // the sender paused: DTX, mute, or a track with nothing to send
	}
	t.gapCause = ""
	return c
}

func (t *trackRec) openSegment(start time.Time, first Frame) error {
	t.segCount++
	seg, err := t.rec.openSegment(t, start, first)
	if err != nil {
		return err
	}
	t.seg = seg
	return nil
}

func (t *trackRec) closeSegment(reason string, partial bool) {
	if t.seg == nil {
		return
	}
	seg := t.seg
	t.seg = nil
	t.rec.closeSegment(seg, reason, partial, seg.stats(t.jb.stats, t.queueDrops.Load()))
}

func (t *trackRec) closeGate(at time.Time) {
	if t.waitingKF {
		return
	}
	t.waitingKF, t.waitSince, t.warnedKF = true, at, false
	if at.Sub(t.lastPLI) >= pliAfterLossMin {
		t.requestKeyframe(at)
	}
}

func (t *trackRec) openGate(at time.Time) {
	t.waitingKF = false
	if t.seg != nil {
		t.seg.keyframeWait(t.waitSince, at)
	}
}

func (t *trackRec) keyframeTimers(now time.Time) {
	if t.audio || !t.waitingKF {
		return
	}
	if now.Sub(t.lastPLI) >= pliWhileWaiting {
		t.requestKeyframe(now)
	}
	if !t.warnedKF && now.Sub(t.waitSince) >= keyframeWatchdog {
		t.warnedKF = true
		t.log.Warn("no keyframe received", "waiting", now.Sub(t.waitSince).Round(time.Millisecond))
	}
}

func (t *trackRec) requestKeyframe(now time.Time) {
	t.lastPLI = now
	if t.ctrl != nil {
		t.ctrl.RequestKeyframe()
	}
}

// samplesAt converts a duration to 48 kHz samples, rounded.
func samplesAt(d time.Duration) int64 {
	return int64(math.Round(d.Seconds() * OpusSampleRate))
}
