package monitor

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomtape/roomtape/recorder"
)

// Metrics are the monitor's Prometheus metrics. Labels are bounded: job × peer × kind, where kind
// is "audio" or "video" (a participant's tracks of one kind are summed, or their worst value
// taken), so a worker exports at most 2 series per participant of each job it runs, per metric.
// A job's series are deleted when it ends (Forget). Alert metrics use job × code (6 codes).
type Metrics struct {
	bitrate, loss, jitter, fps, level, frozen *prometheus.GaugeVec
	speaking                                  *prometheus.GaugeVec
	packets, lost                             *prometheus.CounterVec
	active                                    *prometheus.GaugeVec
	alerts                                    *prometheus.CounterVec

	mu   sync.Mutex
	last map[string]counterMark // per job/peer/track/session: what the counters already hold
}

type counterMark struct{ packets, lost uint64 }

// NewMetrics registers the monitor's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	pk := []string{"job", "peer", "kind"}
	g := func(name, help string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	c := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		bitrate:  g("roomtape_monitor_bitrate_bps", "RTP payload bit rate of a participant's tracks of one kind over the last interval.", pk),
		loss:     g("roomtape_monitor_loss_ratio", "Worst share of packets lost after retransmissions over the last interval (0-1).", pk),
		jitter:   g("roomtape_monitor_jitter_seconds", "Worst RFC 3550 interarrival jitter of a participant's tracks of one kind.", pk),
		fps:      g("roomtape_monitor_frames_per_second", "Complete video frames per second (highest of the participant's video tracks).", pk),
		level:    g("roomtape_monitor_audio_level_dbov", "Audio level over the last interval (RFC 6464, dBov; loudest audio track).", pk),
		frozen:   g("roomtape_monitor_video_frozen", "1 while a participant's video track has shown no complete frame for over 1 s.", pk),
		speaking: g("roomtape_monitor_speaking", "1 when the participant's audio carried speech in the last interval.", []string{"job", "peer"}),
		packets:  c("roomtape_monitor_packets_received_total", "RTP packets received.", pk),
		lost:     c("roomtape_monitor_packets_lost_total", "RTP packets never received, after retransmissions.", pk),
		active:   g("roomtape_monitor_alerts_active", "Alerts active now, by code.", []string{"job", "code"}),
		alerts:   c("roomtape_monitor_alerts_total", "Alert raises and clears, by code and state.", []string{"code", "state"}),
		last:     map[string]counterMark{},
	}
	for _, col := range []prometheus.Collector{m.bitrate, m.loss, m.jitter, m.fps, m.level, m.frozen, m.speaking, m.packets, m.lost, m.active, m.alerts} {
		reg.MustRegister(col)
	}
	return m
}

// observe sets the gauges from a sample and advances the counters.
func (m *Metrics) observe(job string, s Sample) {
	type agg struct {
		bitrate, loss, jitter, fps, frozen float64
		level                              *float64
	}
	per := map[[2]string]*agg{}
	m.mu.Lock()
	for _, t := range s.Tracks {
		k := [2]string{t.Peer, t.Kind}
		a := per[k]
		if a == nil {
			a = &agg{}
			per[k] = a
		}
		a.bitrate += t.BitrateBps
		a.loss = max(a.loss, t.LossPct/100)
		a.jitter = max(a.jitter, t.JitterMs/1000)
		a.fps = max(a.fps, t.FPS)
		if t.Frozen {
			a.frozen = 1
		}
		if t.Level != nil && (a.level == nil || *t.Level > *a.level) {
			a.level = t.Level
		}
		id := job + "\x00" + t.Peer + "\x00" + t.Track + "\x00" + t.Session + "\x00" + t.TrackID
		prev := m.last[id]
		if t.Packets > prev.packets {
			m.packets.WithLabelValues(job, t.Peer, t.Kind).Add(float64(t.Packets - prev.packets))
		}
		if t.Lost > prev.lost {
			m.lost.WithLabelValues(job, t.Peer, t.Kind).Add(float64(t.Lost - prev.lost))
		}
		m.last[id] = counterMark{packets: max(t.Packets, prev.packets), lost: max(t.Lost, prev.lost)}
	}
	m.mu.Unlock()
	for k, a := range per {
		l := []string{job, k[0], k[1]}
		m.bitrate.WithLabelValues(l...).Set(a.bitrate)
		m.loss.WithLabelValues(l...).Set(a.loss)
		m.jitter.WithLabelValues(l...).Set(a.jitter)
		m.frozen.WithLabelValues(l...).Set(a.frozen)
		if k[1] == "video" {
			m.fps.WithLabelValues(l...).Set(a.fps)
		}
		if a.level != nil {
			m.level.WithLabelValues(l...).Set(*a.level)
		}
	}
	for _, p := range s.Peers {
		v := 0.0
		if p.Speaking {
			v = 1
		}
		m.speaking.WithLabelValues(job, p.Peer).Set(v)
	}
}

func (m *Metrics) alert(job string, a recorder.Alert) {
	m.alerts.WithLabelValues(a.Code, a.State).Inc()
	g := m.active.WithLabelValues(job, a.Code)
	if a.State == recorder.AlertRaised {
		g.Inc()
	} else {
		g.Dec()
	}
}

// Forget deletes every series of a job (call it when the job ends).
func (m *Metrics) Forget(job string) {
	l := prometheus.Labels{"job": job}
	for _, v := range []*prometheus.GaugeVec{m.bitrate, m.loss, m.jitter, m.fps, m.level, m.frozen, m.speaking, m.active} {
		v.DeletePartialMatch(l)
	}
	m.packets.DeletePartialMatch(l)
	m.lost.DeletePartialMatch(l)
	m.mu.Lock()
	for k := range m.last {
		if len(k) > len(job) && k[:len(job)+1] == job+"\x00" {
			delete(m.last, k)
		}
	}
	m.mu.Unlock()
}
