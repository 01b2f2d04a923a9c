package signalling

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series. Label values are bounded: message types, error
// codes and close codes come from fixed protocol sets, never from client input.
type metrics struct {
	registry    *prometheus.Registry
	messagesIn  *prometheus.CounterVec
	messagesOut *prometheus.CounterVec
	errors      *prometheus.CounterVec
	closes      *prometheus.CounterVec
	accepted    *prometheus.CounterVec
	// inByType and outByType hold the counters of every known frame type, resolved once: the
	// per-frame path then skips WithLabelValues' label hashing. Read-only after newMetrics.
	inByType  map[string]prometheus.Counter
	outByType map[string]prometheus.Counter
}

// frameTypes are every label value of messages_in_total and messages_out_total.
var frameTypes = []string{TypeSubscribe, TypeUnsubscribe, TypePublish, TypeSend, TypePing, "unknown", "malformed", "binary",
	TypeWelcome, TypeAck, TypeError, TypeMessage, TypeDirect, TypePresence, TypeGoingAway, TypePong}

// in counts an inbound frame of type typ.
func (m *metrics) in(typ string) {
	if c, ok := m.inByType[typ]; ok {
		c.Inc()
		return
	}
	m.messagesIn.WithLabelValues(typ).Inc()
}

// out counts an outbound frame of type typ.
func (m *metrics) out(typ string) {
	if c, ok := m.outByType[typ]; ok {
		c.Inc()
		return
	}
	m.messagesOut.WithLabelValues(typ).Inc()
}

func newMetrics(b Broker) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		messagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "roomtape", Subsystem: "signal", Name: "messages_in_total",
			Help: "Inbound frames by type (subscribe, publish, send, ping, unsubscribe, unknown, malformed, binary).",
		}, []string{"type"}),
		messagesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "roomtape", Subsystem: "signal", Name: "messages_out_total",
			Help: "Outbound frames by type.",
		}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "roomtape", Subsystem: "signal", Name: "errors_total",
			Help: "Error frames sent, by protocol error code.",
		}, []string{"code"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "roomtape", Subsystem: "signal", Name: "closes_total",
			Help: "Closed connections by close code (or reaped / abnormal).",
		}, []string{"code"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "roomtape", Subsystem: "signal", Name: "connections_accepted_total",
			Help: "Connections that received a welcome, by credential kind (key, token).",
		}, []string{"credential"}),
	}
	m.inByType, m.outByType = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, t := range frameTypes {
		m.inByType[t] = m.messagesIn.WithLabelValues(t)
		m.outByType[t] = m.messagesOut.WithLabelValues(t)
	}
	m.registry.MustRegister(m.messagesIn, m.messagesOut, m.errors, m.closes, m.accepted,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "roomtape", Subsystem: "signal", Name: "connections",
			Help: "Open, registered connections.",
		}, func() float64 { n, _ := b.Counts(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "roomtape", Subsystem: "signal", Name: "channels",
			Help: "Channels with at least one subscriber.",
		}, func() float64 { _, n := b.Counts(); return float64(n) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func closeLabel(code int) string { return strconv.Itoa(code) }
