package pipeline

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomtape/roomtape/monitor"
)

// Job results counted by roomtape_worker_jobs_total{result}. Labels are bounded: no job ids.
const (
	ResultDone      = "done"       // finished and acked
	ResultFailed    = "failed"     // permanent failure or deliveries exhausted: terminated
	ResultInvalid   = "invalid"    // undecodable or invalid job: terminated
	ResultRetried   = "retried"    // transient failure: handed back with a delay
	ResultHandedOff = "handed_off" // shutdown: finalized and handed back
	ResultLost      = "lost"       // another delivery took the job over
	ResultSkipped   = "skipped"    // already finished or stopped before it started
)

var results = []string{ResultDone, ResultFailed, ResultInvalid, ResultRetried, ResultHandedOff, ResultLost, ResultSkipped}

// workerMetrics are one worker's Prometheus metrics, in their own registry (tests run several
// workers in one process).
type workerMetrics struct {
	reg           *prometheus.Registry
	jobs          *prometheus.GaugeVec
	results       *prometheus.CounterVec
	tracks        prometheus.Gauge
	bytes         prometheus.Counter
	lost          prometheus.Counter
	keyframeWaits prometheus.Counter
	redeliveries  prometheus.Counter
	pullErrors    prometheus.Counter
	capacity      prometheus.Gauge
	firstKeyframe prometheus.Histogram
	monitor       *monitor.Metrics
}

func newWorkerMetrics(capacity int) *workerMetrics {
	m := &workerMetrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "roomtape_worker_jobs",
			Help: "Jobs held by this worker, by state (starting, recording, finishing)."}, []string{"state"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomtape_worker_jobs_total",
			Help: "Jobs this worker let go of, by result."}, []string{"result"}),
		tracks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roomtape_worker_active_tracks",
			Help: "Tracks being recorded now."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomtape_worker_bytes_written_total",
			Help: "Media bytes written to recording files."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomtape_worker_packets_lost_total",
			Help: "RTP packets never received (after retransmissions)."}),
		keyframeWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomtape_worker_keyframe_waits_total",
			Help: "Times a video track dropped frames while waiting for a keyframe."}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomtape_worker_redeliveries_total",
			Help: "Jobs received that had been delivered before (crashed worker, hand-off, retry)."}),
		pullErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomtape_worker_pull_errors_total",
			Help: "Failed pull requests (NATS unavailable, leader election)."}),
		capacity: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roomtape_worker_capacity",
			Help: "Jobs this worker runs at once (worker.capacity)."}),
		firstKeyframe: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roomtape_worker_first_keyframe_seconds",
			Help:    "Time from job submission to the first video keyframe written.",
			Buckets: []float64{0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30}}),
	}
	m.capacity.Set(float64(capacity))
	for _, s := range []string{StateStarting, StateRecording, StateFinishing} {
		m.jobs.WithLabelValues(s)
	}
	for _, r := range results {
		m.results.WithLabelValues(r)
	}
	m.reg.MustRegister(m.jobs, m.results, m.tracks, m.bytes, m.lost, m.keyframeWaits, m.redeliveries,
		m.pullErrors, m.capacity, m.firstKeyframe,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.monitor = monitor.NewMetrics(m.reg)
	return m
}

// setState moves one job between the state gauges ("" = none).
func (m *workerMetrics) setState(from, to string) {
	if from != "" {
		m.jobs.WithLabelValues(from).Dec()
	}
	if to != "" {
		m.jobs.WithLabelValues(to).Inc()
	}
}

// Handler serves /healthz (the process is up), /readyz (connected to NATS and pulling jobs)
// and /metrics (Prometheus).
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if why := w.notReady(); why != "" {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = rw.Write([]byte(why + "\n"))
			return
		}
		_, _ = rw.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}
