package mediabench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/recorder"
	"github.com/roomtape/roomtape/signalling/loadtest"
)

// Targets of the recorder issue.
const (
	TargetCoresPerParticipant = 0.01 // cores per audio+video participant
	TargetRatio               = 1.3  // recorder CPU / bare pion save-to-disk CPU
	TargetMonitorOverhead     = 0.10 // monitoring: at most 10 % more CPU and heap than recording alone
)

// runner holds what a whole run shares: the temporary folder, the clip, the signalling server and
// the publishers' transport with its send counter.
type runner struct {
	o     Options
	bench string // "record" or "bot"
	dir   string
	clip  Clip
	srv   *server
	tr    *bot.Transport
	sent  *sendCounter
	// fleetLog is for the publishers: errors only.
	fleetLog *slog.Logger
}

func (r *runner) progress(format string, args ...any) {
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// setup fills in o's defaults for bench ("record" or "bot"), validates it and prepares a run;
// the returned function releases everything (temporary folder included).
func setup(ctx context.Context, o *Options, bench string) (*runner, func() error, error) {
	o.defaults(bench)
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(o.TempDir, "roomtape-mediabench-")
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	r := &runner{o: *o, bench: bench, dir: dir, sent: &sendCounter{}}
	var cleanups []func() error
	cleanup := func() error {
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		return errors.Join(append(errs, os.RemoveAll(dir))...)
	}
	fail := func(err error) (*runner, func() error, error) { return nil, nil, errors.Join(err, cleanup()) }
	if r.clip, err = prepareClip(ctx, dir, o.Video); err != nil {
		return fail(err)
	}
	r.progress("clip: %s, VP8 %dx%d %.0f fps %.0f kbps + Opus 20 ms", r.clip.Video, r.clip.Width, r.clip.Height, r.clip.VideoFPS, r.clip.VideoKbps)
	if r.srv, err = startServer(o.Logger); err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, r.srv.close)
	r.fleetLog = slog.New(errorsOnly{o.Logger.Handler()})
	if r.tr, err = bot.NewTransport(bot.NetworkConfig{IncludeLoopback: true, IPs: loopbackOnly}, r.fleetLog, r.sent); err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, r.tr.Close)
	return r, cleanup, nil
}

// point starts a fleet of n publishers and measures each receiver against it, Repeat times,
// alternating the order (A B, B A, A B, …) so that drifting load on the machine hits both alike.
func (r *runner) point(ctx context.Context, n int, specs func(channel string, run int) []receiverSpec) ([]*Phase, error) {
	channel := fmt.Sprintf("bench-%d-%d", n, time.Now().UnixNano())
	r.progress("N=%d: starting %d publishers in %s", n, n, channel)
	f, err := startFleet(ctx, r.srv.url, channel, n, r.tr, r.clip, r.fleetLog, r.o.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	defer func() {
		if ferr := f.close(); ferr != nil {
			r.o.Logger.Warn("publishers ended with errors", "err", ferr)
		}
	}()
	var phases []*Phase
	for run := range r.o.Repeat {
		order := specs(channel, run)
		if run%2 == 1 {
			slices.Reverse(order)
		}
		for _, spec := range order {
			ph, err := r.measure(ctx, spec, n)
			if spec.cleanup != nil {
				spec.cleanup()
			}
			if ph == nil {
				ph = &Phase{Name: spec.name, Receiver: spec.desc, Participants: n}
			}
			if err != nil {
				ph.Problems = append(ph.Problems, err.Error())
			}
			phases = append(phases, ph)
			if ctx.Err() != nil {
				return phases, ctx.Err()
			}
			// The next receiver starts once the publishers have seen this one leave.
			if werr := f.waitReceiversGone(ctx, 15*time.Second); werr != nil {
				ph.Problems = append(ph.Problems, werr.Error())
			}
		}
	}
	return phases, nil
}

func (r *runner) report() *Report {
	return &Report{
		Bench: r.bench, Command: "roomtape " + strings.Join(os.Args[1:], " "),
		Env:  loadtest.CurrentEnvironment("child process"),
		Clip: r.clip, Duration: r.o.Duration.String(), Warmup: r.o.Warmup.String(),
	}
}

// RunRecord measures `roomtape record` (and the bare pion save-to-disk loop) at every size.
func RunRecord(ctx context.Context, o Options) (rep *Report, err error) {
	r, cleanup, err := setup(ctx, &o, "record")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, cleanup()) }()
	cfg, err := writeRecordConfig(r.dir)
	if err != nil {
		return nil, err
	}
	// recorderSpec is `roomtape record --mode mode` into dir, its counters read from the manifest.
	recorderSpec := func(name, desc, channel, dir, mode string) receiverSpec {
		manifest := manifestCounters(filepath.Join(dir, "bench", recorder.ManifestName))
		return receiverSpec{
			name: name, desc: desc,
			args: []string{"record", "--config", cfg, "--signal-url", r.srv.url, "--channel", channel, "--loopback",
				"--out", dir, "--id", "bench", "--mode", mode},
			probe: manifest, final: manifest,
			cleanup: func() { _ = os.RemoveAll(dir) },
		}
	}
	rep = r.report()
	for _, n := range o.Participants {
		specs := func(channel string, run int) []receiverSpec {
			var out []receiverSpec
			if o.Baseline {
				dir := filepath.Join(r.dir, fmt.Sprintf("bare-%d-%d", n, run))
				out = append(out, receiverSpec{
					name: "bare-pion-save", desc: "bare pion answerer (pion defaults), ReadRTP → pion oggwriter/ivfwriter behind bufio, no jitter buffer",
					args:  receiverArgs(r.srv.url, channel, "~bench-bare", StackPion, SinkDisk, dir),
					probe: childCounters, final: childFinal,
					// Recordings are large (≈ 0.5 MB/s per participant): drop each once measured.
					cleanup: func() { _ = os.RemoveAll(dir) },
				})
			}
			out = append(out, recorderSpec("recorder",
				"roomtape record --mode record (bot + recorder: jitter buffer, keyframe gate, timeline, Ogg/IVF, manifest)",
				channel, filepath.Join(r.dir, fmt.Sprintf("rec-%d-%d", n, run)), "record"))
			if o.Monitor {
				out = append(out, recorderSpec("recorder+monitor",
					"roomtape record --mode both (the recorder plus call monitoring: stats, alerts, stats.jsonl, report.html)",
					channel, filepath.Join(r.dir, fmt.Sprintf("mon-%d-%d", n, run)), "both"))
			}
			return out
		}
		phases, perr := r.point(ctx, n, specs)
		pt := makePoint(n, "bare-pion-save", "recorder", phases, o.MinRecvRatio)
		if o.Monitor {
			pt.Monitored, _ = summarize(phases, "recorder+monitor", o.MinRecvRatio)
			if m, s := pt.Monitored, pt.Subject; m != nil && s != nil && s.Cores > 0 && s.HeapMB > 0 {
				pt.MonitorCPU, pt.MonitorHeap = m.Cores/s.Cores, m.HeapMB/s.HeapMB
			}
		}
		rep.Points = append(rep.Points, pt)
		if perr != nil {
			return rep, perr
		}
	}
	rep.Checks = recordChecks(rep.Points)
	return rep, nil
}

// RunBot measures how many publishers one bot process (read-and-discard consumer) keeps connected
// and receiving, next to a bare pion receiver (pion defaults, read-and-discard).
func RunBot(ctx context.Context, o Options) (rep *Report, err error) {
	r, cleanup, err := setup(ctx, &o, "bot")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, cleanup()) }()
	rep = r.report()
	capa := &Capacity{Criterion: fmt.Sprintf("every track receiving, ≥ %.0f%% of sent packets received in the window, loss < 1%%", o.MinRecvRatio*100)}
	rep.Capacity = capa
	for _, n := range o.Participants {
		specs := func(channel string, _ int) []receiverSpec {
			var out []receiverSpec
			if o.Baseline {
				out = append(out, receiverSpec{
					name: "bare-pion-discard", desc: "bare pion answerer (pion defaults), TrackRemote.Read and discard",
					args:  receiverArgs(r.srv.url, channel, "~bench-bare", StackPion, SinkDiscard, ""),
					probe: childCounters, final: childFinal,
				})
			}
			out = append(out, receiverSpec{
				name: "bot-discard", desc: "roomtape bot (package bot, its transport) with a read-and-discard consumer",
				args:  receiverArgs(r.srv.url, channel, "~bench-bot", StackBot, SinkDiscard, ""),
				probe: childCounters, final: childFinal,
			})
			return out
		}
		phases, perr := r.point(ctx, n, specs)
		pt := makePoint(n, "bare-pion-discard", "bot-discard", phases, o.MinRecvRatio)
		rep.Points = append(rep.Points, pt)
		if perr != nil {
			return rep, perr
		}
		if pt.SubjectOK && capa.Subject < n {
			capa.Subject = n
		}
		if pt.BaselineOK && capa.Baseline < n {
			capa.Baseline = n
		}
		if !pt.SubjectOK && !pt.BaselineOK && !o.KeepGoing {
			r.progress("N=%d: neither receiver kept up; stopping the ramp", n)
			break
		}
	}
	if len(rep.Points) > 0 {
		last := rep.Points[len(rep.Points)-1]
		capa.SubjectAtLeast = capa.Subject == last.Participants
		capa.BaselineAtLeast = o.Baseline && capa.Baseline == last.Participants
	}
	return rep, nil
}

func receiverArgs(url, channel, peer, stack, sink, out string) []string {
	args := []string{"bench", "receiver", "--signal-url", url, "--channel", channel, "--peer-id", peer,
		"--stack", stack, "--sink", sink, "--log-level", "warn"}
	if out != "" {
		args = append(args, "--out", out)
	}
	return args
}

// makePoint summarizes the runs of one size: for each receiver the run with the median CPU
// (with the range of all runs), the CPU ratio of the medians, and whether every run kept up.
func makePoint(n int, baseline, subject string, phases []*Phase, minRatio float64) Point {
	pt := Point{Participants: n, AllRuns: phases}
	pt.Baseline, pt.BaselineOK = summarize(phases, baseline, minRatio)
	pt.Subject, pt.SubjectOK = summarize(phases, subject, minRatio)
	if pt.Baseline != nil && pt.Subject != nil && pt.Baseline.Cores > 0 {
		pt.CPURatio = pt.Subject.Cores / pt.Baseline.Cores
	}
	return pt
}

// summarize returns a copy of the median-CPU run named name and whether every such run was healthy.
func summarize(phases []*Phase, name string, minRatio float64) (*Phase, bool) {
	var runs []*Phase
	healthy := true
	for _, p := range phases {
		if p.Name == name {
			runs = append(runs, p)
			healthy = healthy && p.Healthy(minRatio)
		}
	}
	if len(runs) == 0 {
		return nil, false
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b *Phase) int { return cmp.Compare(a.Cores, b.Cores) })
	median := *sorted[(len(sorted)-1)/2]
	median.Runs, median.CoresMin, median.CoresMax = len(runs), sorted[0].Cores, sorted[len(sorted)-1].Cores
	return &median, healthy
}

// recordChecks compares every size with the recorder issue's targets.
func recordChecks(points []Point) []loadtest.Check {
	var cs []loadtest.Check
	for _, pt := range points {
		s := pt.Subject
		if s == nil || s.Cores == 0 {
			continue
		}
		cs = append(cs, loadtest.Check{
			Name:     fmt.Sprintf("N=%d recorder CPU per audio+video participant", pt.Participants),
			Target:   fmt.Sprintf("≤ %.2f core", TargetCoresPerParticipant),
			Measured: fmt.Sprintf("%.4f core (%d receiving)", s.CoresPerParticipant, s.Peers),
			Pass:     s.CoresPerParticipant <= TargetCoresPerParticipant && s.Peers == pt.Participants,
		})
		if pt.CPURatio > 0 {
			cs = append(cs, loadtest.Check{
				Name:     fmt.Sprintf("N=%d recorder CPU / bare pion save-to-disk CPU", pt.Participants),
				Target:   fmt.Sprintf("≤ %.1fx", TargetRatio),
				Measured: fmt.Sprintf("%.2fx", pt.CPURatio),
				Pass:     pt.CPURatio <= TargetRatio,
			})
		}
		if pt.MonitorCPU > 0 {
			cs = append(cs, loadtest.Check{
				Name:     fmt.Sprintf("N=%d monitoring CPU over recording alone", pt.Participants),
				Target:   fmt.Sprintf("< %.0f%% extra", TargetMonitorOverhead*100),
				Measured: fmt.Sprintf("%+.1f%% (%.4f vs %.4f cores)", (pt.MonitorCPU-1)*100, pt.Monitored.Cores, s.Cores),
				Pass:     pt.MonitorCPU < 1+TargetMonitorOverhead,
			}, loadtest.Check{
				Name:     fmt.Sprintf("N=%d monitoring heap over recording alone", pt.Participants),
				Target:   fmt.Sprintf("< %.0f%% extra", TargetMonitorOverhead*100),
				Measured: fmt.Sprintf("%+.1f%% (%.1f vs %.1f MB)", (pt.MonitorHeap-1)*100, pt.Monitored.HeapMB, s.HeapMB),
				Pass:     pt.MonitorHeap < 1+TargetMonitorOverhead,
			})
		}
		measured := fmt.Sprintf("lost %d, dropped %d of %d packets", s.Lost, s.Dropped, s.Packets)
		if b := pt.Baseline; b != nil {
			measured += fmt.Sprintf(" (bare loop lost %d of %d)", b.Lost, b.Packets)
		}
		cs = append(cs, loadtest.Check{
			Name: fmt.Sprintf("N=%d packets lost or dropped at the recorder", pt.Participants), Target: "0",
			Measured: measured, Pass: s.Lost == 0 && s.Dropped == 0,
		})
	}
	return cs
}
