package mediabench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/roomtape/roomtape/signalling/loadtest"
)

// Phase is one receiver measured against the fleet of one point.
type Phase struct {
	Name     string `json:"name"`     // e.g. "recorder", "bare-pion-save"
	Receiver string `json:"receiver"` // what ran, in words
	Args     string `json:"args"`     // child command line after the binary
	LoadAvg  string `json:"loadavg_at_start"`

	Participants   int     `json:"participants"`     // publishers in the channel
	Peers          int     `json:"peers_receiving"`  // at the end of the window
	Tracks         int     `json:"tracks_receiving"` // at the end of the window
	AllConnected   bool    `json:"all_connected"`    // every track was receiving before the warm-up
	ConnectSeconds float64 `json:"connect_seconds"`  // child start → every track receiving (or the timeout)
	WindowSeconds  float64 `json:"window_seconds"`

	// CPU, in cores (CPU seconds per second) averaged over the window.
	Cores               float64 `json:"cores"`                 // the child: utime+stime of every thread
	CoresPerParticipant float64 `json:"cores_per_participant"` // Cores / Peers
	MicrosPerPacket     float64 `json:"cpu_us_per_packet"`     // Cores / received packets per second
	BenchCores          float64 `json:"bench_cores"`           // this process: publishers + signalling
	SoftirqCores        float64 `json:"softirq_cores"`         // kernel softirq, machine-wide (loopback delivery)
	OtherCores          float64 `json:"other_cores"`           // the rest of the machine (other users)
	LifetimeCPUSeconds  float64 `json:"lifetime_cpu_seconds"`  // child rusage at exit (setup and shutdown included)

	SentPPS   float64 `json:"sent_pps"` // RTP packets the publishers sent (window)
	SentMbps  float64 `json:"sent_mbps"`
	ResentPPS float64 `json:"resent_pps"` // retransmissions (NACK answers) the publishers sent
	RecvPPS   float64 `json:"recv_pps"`   // RTP packets the child received (window)
	RecvMbps  float64 `json:"recv_mbps"`
	RecvRatio float64 `json:"recv_ratio"` // RecvPPS / SentPPS

	// Memory. Heap is the Go live heap after the largest collection of the window (gctrace, MB
	// resolution); RSS is the largest VmRSS sampled in the window; PeakRSS is VmHWM (whole life).
	HeapMB        float64 `json:"heap_mb"`
	HeapKBPerTrk  float64 `json:"heap_kib_per_track"`
	RSSMB         float64 `json:"rss_mb"`
	RSSKBPerTrack float64 `json:"rss_kib_per_track"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`

	// Packet totals over the child's whole run, from its final counters (recorder: manifest).
	Packets uint64  `json:"packets"`
	Lost    uint64  `json:"lost"`    // sequence numbers never received
	Dropped uint64  `json:"dropped"` // received but not written (recorder queue overflow, incomplete frames)
	LossPct float64 `json:"loss_pct"`
	// UDPRcvbufErrors are datagrams the kernel dropped machine-wide during the window because a
	// socket's receive buffer was full (Udp RcvbufErrors in /proc/net/snmp).
	UDPRcvbufErrors uint64 `json:"udp_rcvbuf_errors"`

	Problems []string `json:"problems,omitempty"`
	// ChildLog summarizes the child's own warnings (count, first and last line).
	ChildLog []string `json:"child_log,omitempty"`
	// Runs, CoresMin and CoresMax are set on a point's summary phase when it was measured more
	// than once: the summary is the run with the median CPU.
	Runs     int     `json:"runs,omitempty"`
	CoresMin float64 `json:"cores_min,omitempty"`
	CoresMax float64 `json:"cores_max,omitempty"`
}

// Healthy reports whether every participant stayed connected and received: all tracks up,
// at least minRatio of the sent packets received in the window, loss under 1 %.
func (p *Phase) Healthy(minRatio float64) bool {
	return p != nil && p.AllConnected && p.Tracks >= 2*p.Participants && p.RecvRatio >= minRatio && p.LossPct < 1
}

// Point is one fleet size with the receiver under test and its baseline.
type Point struct {
	Participants int     `json:"participants"`
	Baseline     *Phase  `json:"baseline,omitempty"`  // median run
	Subject      *Phase  `json:"subject"`             // median run
	CPURatio     float64 `json:"cpu_ratio,omitempty"` // Subject.Cores / Baseline.Cores
	// Monitored is the recorder with call monitoring (record benchmark with Monitor), median run;
	// MonitorCPU and MonitorHeap are its cores and heap over Subject's (recording alone).
	Monitored   *Phase  `json:"monitored,omitempty"`
	MonitorCPU  float64 `json:"monitor_cpu_ratio,omitempty"`
	MonitorHeap float64 `json:"monitor_heap_ratio,omitempty"`
	// BaselineOK and SubjectOK say every run kept up (Phase.Healthy; bot benchmark).
	BaselineOK bool `json:"baseline_ok"`
	SubjectOK  bool `json:"subject_ok"`
	// AllRuns lists every measurement of this size in the order taken.
	AllRuns []*Phase `json:"all_runs"`
}

// Capacity is the largest fleet each receiver kept connected and receiving (bot benchmark).
type Capacity struct {
	Criterion string `json:"criterion"`
	Subject   int    `json:"subject"`
	Baseline  int    `json:"baseline"`
	// Limited says the last size tried still passed: the capacity is at least this much.
	SubjectAtLeast  bool `json:"subject_at_least"`
	BaselineAtLeast bool `json:"baseline_at_least"`
}

// Report is the output of `roomtape bench record` and `roomtape bench bot`.
type Report struct {
	Bench    string               `json:"bench"` // "record" or "bot"
	Command  string               `json:"command,omitempty"`
	Env      loadtest.Environment `json:"environment"`
	Clip     Clip                 `json:"clip"`
	Duration string               `json:"duration"`
	Warmup   string               `json:"warmup"`
	Points   []Point              `json:"points"`
	Capacity *Capacity            `json:"capacity,omitempty"`
	Checks   []loadtest.Check     `json:"checks,omitempty"`
}

// WriteTable prints rep for humans: one row per receiver and fleet size.
func WriteTable(w io.Writer, rep *Report) error {
	if rep.Command != "" {
		fmt.Fprintf(w, "%s\n", rep.Command)
	}
	e := rep.Env
	fmt.Fprintf(w, "%s, %d CPUs (%s), %s, %s RAM, load average at start %s\n", e.Date, e.CPUs, e.CPUModel, e.GoVersion, e.MemTotal, e.LoadAvg)
	fmt.Fprintf(w, "clip: Opus 20 ms + VP8 %dx%d %.0f fps %.0f kbps; window %s after %s warm-up\n\n",
		rep.Clip.Width, rep.Clip.Height, rep.Clip.VideoFPS, rep.Clip.VideoKbps, rep.Duration, rep.Warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\treceiver\truns\tpeers\ttracks\tconnect s\tcores\tcores range\tcores/peer\tµs/pkt\tsent pps\tresent pps\trecv/sent\t"+
		"heap MB\theap KiB/trk\tRSS MB\tpeak RSS MB\tlost\tdropped\tudp drops\tbench cores\tsoftirq\tother cores\tload\t")
	for _, pt := range rep.Points {
		for _, ph := range []*Phase{pt.Baseline, pt.Subject, pt.Monitored} {
			if ph == nil {
				continue
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%.1f\t%.3f\t%.3f–%.3f\t%.4f\t%.1f\t%.0f\t%.0f\t%.3f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%s\t\n",
				pt.Participants, ph.Name, max(ph.Runs, 1), ph.Peers, ph.Tracks, ph.ConnectSeconds, ph.Cores, ph.CoresMin, ph.CoresMax,
				ph.CoresPerParticipant, ph.MicrosPerPacket, ph.SentPPS, ph.ResentPPS, ph.RecvRatio, ph.HeapMB, ph.HeapKBPerTrk,
				ph.RSSMB, ph.PeakRSSMB, ph.Lost, ph.Dropped, ph.UDPRcvbufErrors, ph.BenchCores, ph.SoftirqCores, ph.OtherCores,
				strings.Fields(ph.LoadAvg + " -")[0])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, pt := range rep.Points {
		if pt.Baseline != nil && pt.Subject != nil && pt.CPURatio > 0 {
			fmt.Fprintf(w, "N=%d: %s / %s CPU = %.2fx\n", pt.Participants, pt.Subject.Name, pt.Baseline.Name, pt.CPURatio)
		}
		if pt.Monitored != nil && pt.MonitorCPU > 0 {
			fmt.Fprintf(w, "N=%d: %s / %s CPU = %.3fx, heap = %.3fx\n", pt.Participants, pt.Monitored.Name, pt.Subject.Name, pt.MonitorCPU, pt.MonitorHeap)
		}
	}
	if c := rep.Capacity; c != nil {
		fmt.Fprintf(w, "capacity (%s): bot %s; bare pion %s\n", c.Criterion, capacityText(c.Subject, c.SubjectAtLeast), capacityText(c.Baseline, c.BaselineAtLeast))
	}
	for _, c := range rep.Checks {
		verdict := "MISS"
		if c.Pass {
			verdict = "ok"
		}
		fmt.Fprintf(w, "%-4s %s: %s (target %s)\n", verdict, c.Name, c.Measured, c.Target)
	}
	for _, pt := range rep.Points {
		for i, ph := range pt.AllRuns {
			for _, p := range ph.Problems {
				fmt.Fprintf(w, "problem (N=%d, %s, run %d): %s\n", pt.Participants, ph.Name, i+1, p)
			}
		}
	}
	return nil
}

// capacityText says n participants, "≥ n" when n was the largest size tried.
func capacityText(n int, atLeast bool) string {
	switch {
	case n == 0:
		return "none of the sizes tried"
	case atLeast:
		return fmt.Sprintf("≥ %d (the largest size tried)", n)
	}
	return fmt.Sprintf("%d participants", n)
}
