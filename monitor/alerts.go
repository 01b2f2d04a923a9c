package monitor

import (
	"fmt"
	"math"
	"time"

	"github.com/roomtape/roomtape/internal/logattr"
	"github.com/roomtape/roomtape/recorder"
)

// condition is one alert rule's verdict for a participant or track at one evaluation.
type condition struct {
	key       alertKey
	kind      string
	since     time.Time
	value     float64 // seconds, or percent for loss
	threshold float64
	msg       string
}

// lossWindow remembers (time, expected, missing) points of one track for the loss rule.
type lossPoint struct {
	at                time.Time
	expected, missing uint64
}

// evaluate checks every rule, raises alerts whose condition holds and clears those whose
// condition stopped holding.
func (m *Monitor) evaluate(now time.Time) {
	th := m.cfg.Thresholds
	var active []condition
	m.mu.Lock()
	for _, id := range m.order {
		p := m.peers[id]
		active = append(active, m.peerConditions(p, now, th)...)
	}
	var raise, clear []recorder.Alert
	seen := map[alertKey]bool{}
	for _, c := range active {
		seen[c.key] = true
		if a, ok := m.alerts[c.key]; ok {
			a.Value = c.value
			continue
		}
		a := &recorder.Alert{
			Code: c.key.code, State: recorder.AlertRaised, Peer: c.key.peer, Track: c.key.track, Kind: c.kind,
			At: now.UTC(), Since: c.since.UTC(), OffsetMs: now.Sub(m.started).Milliseconds(),
			Value: round1(c.value), Threshold: c.threshold, Message: c.msg,
		}
		m.alerts[c.key] = a
		raise = append(raise, *a)
	}
	for k, a := range m.alerts {
		if seen[k] {
			continue
		}
		delete(m.alerts, k)
		c := *a
		c.State, c.At, c.OffsetMs = recorder.AlertCleared, now.UTC(), now.Sub(m.started).Milliseconds()
		c.Value = round1(now.Sub(a.Since).Seconds())
		c.Message = fmt.Sprintf("%s cleared after %s", a.Code, now.Sub(a.Since).Round(100*time.Millisecond))
		clear = append(clear, c)
	}
	m.history = append(m.history, raise...)
	m.history = append(m.history, clear...)
	m.mu.Unlock()
	for _, a := range append(raise, clear...) {
		m.log.Info("alert "+a.State, "code", a.Code, logattr.Peer, a.Peer, logattr.Track, a.Track, "value", a.Value, "threshold", a.Threshold)
		if m.cfg.Metrics != nil {
			m.cfg.Metrics.alert(m.cfg.Job, a)
		}
		if m.out.Alert != nil {
			m.out.Alert(a)
		}
	}
}

// peerConditions lists the rules that hold for one participant and its tracks (m.mu held).
func (m *Monitor) peerConditions(p *peerState, now time.Time, th Thresholds) []condition {
	var out []condition
	secs := func(d time.Duration) float64 { return d.Seconds() }
	// Participant left unexpectedly: its connection failed or stayed disconnected, or its tracks
	// ended because the connection was lost, and it has not come back.
	if th.LeftAfter > 0 && !p.badSince.IsZero() && (p.lostConn || now.Sub(p.badSince) >= th.LeftAfter) {
		out = append(out, condition{key: alertKey{recorder.AlertLeftUnexpectedly, p.id, ""}, since: p.badSince,
			value: secs(now.Sub(p.badSince)), threshold: secs(th.LeftAfter),
			msg: fmt.Sprintf("%s's connection is %s", p.id, stateOr(p.state, "lost"))})
	}
	lives := make([]live, len(p.tracks))
	for i, t := range p.tracks {
		lives[i] = t.live()
	}
	// No media from a present participant (other roomtape bots send none by design).
	if th.NoMediaAfter > 0 && p.present && !p.recorder {
		last := p.joinedAt
		for _, l := range lives {
			last = later(last, l.lastPacket)
		}
		if d := now.Sub(last); d >= th.NoMediaAfter {
			out = append(out, condition{key: alertKey{recorder.AlertNoMedia, p.id, ""}, since: last,
				value: secs(d), threshold: secs(th.NoMediaAfter),
				msg: fmt.Sprintf("%s is in the channel but sent no media for %s", p.id, d.Round(time.Second))})
		}
	}
	// Silent: no speech on any audio track (a participant that had audio and is still here).
	if th.SilentAfter > 0 && p.hadAudio && (p.present || len(p.tracks) > 0) {
		last, audio := p.lastAudio, false
		for _, l := range lives {
			if l.audio {
				audio = true
				last = later(last, later(l.lastSpeech, l.began))
			}
		}
		if audio || p.present {
			if d := now.Sub(last); !last.IsZero() && d >= th.SilentAfter {
				out = append(out, condition{key: alertKey{recorder.AlertSilent, p.id, ""}, kind: "audio", since: last,
					value: secs(d), threshold: secs(th.SilentAfter),
					msg: fmt.Sprintf("%s has been silent for %s", p.id, d.Round(time.Second))})
			}
		}
	}
	for i, t := range p.tracks {
		l := lives[i]
		if l.ended {
			continue
		}
		kind := t.info.Kind
		if !l.audio && th.FrozenAfter > 0 {
			if d := now.Sub(l.lastComplete); d >= th.FrozenAfter {
				out = append(out, condition{key: alertKey{recorder.AlertFrozen, p.id, t.key}, kind: kind, since: l.lastComplete,
					value: secs(d), threshold: secs(th.FrozenAfter),
					msg: fmt.Sprintf("%s's %s video has shown no new frame for %s", p.id, t.key, d.Round(100*time.Millisecond))})
			}
		}
		if !l.audio && th.NoKeyframeAfter > 0 && !l.needKeySince.IsZero() {
			if d := now.Sub(l.needKeySince); d >= th.NoKeyframeAfter {
				out = append(out, condition{key: alertKey{recorder.AlertNoKeyframe, p.id, t.key}, kind: kind, since: l.needKeySince,
					value: secs(d), threshold: secs(th.NoKeyframeAfter),
					msg: fmt.Sprintf("%s's %s video has waited %s for a keyframe", p.id, t.key, d.Round(100*time.Millisecond))})
			}
		}
		if th.LossPercent > 0 && th.LossFor > 0 {
			if c, ok := t.lossCondition(now, l, th); ok {
				out = append(out, c)
			}
		}
	}
	return out
}

// lossCondition keeps the track's loss window and reports whether loss over the last LossFor
// exceeds LossPercent. Missing packets count until they are recovered.
func (t *meter) lossCondition(now time.Time, l live, th Thresholds) (condition, bool) {
	t.lossWin = append(t.lossWin, lossPoint{at: now, expected: l.expected, missing: l.lostPending})
	i := 0
	for i < len(t.lossWin)-1 && now.Sub(t.lossWin[i+1].at) >= th.LossFor {
		i++
	}
	t.lossWin = t.lossWin[i:]
	first := t.lossWin[0]
	if now.Sub(first.at) < th.LossFor || l.expected <= first.expected {
		return condition{}, false
	}
	exp := l.expected - first.expected
	miss := int64(l.lostPending) - int64(first.missing)
	p := float64(max(miss, 0)) / float64(exp) * 100
	if p <= th.LossPercent {
		return condition{}, false
	}
	return condition{key: alertKey{recorder.AlertLoss, t.info.PeerID, t.key}, kind: t.info.Kind, since: first.at,
		value: p, threshold: th.LossPercent,
		msg: fmt.Sprintf("%s's %s lost %.1f%% of its packets over %s", t.info.PeerID, t.key, p, th.LossFor)}, true
}

func stateOr(s, def string) string {
	if s == "" || s == "connected" {
		return def
	}
	return s
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
