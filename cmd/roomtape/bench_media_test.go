package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/internal/mediabench"
	"github.com/roomtape/roomtape/internal/testenv"
)

// runMediaBenchBinary runs `roomtape bench <args> --json` as a process (its children are the same
// binary) and decodes the report.
func runMediaBenchBinary(t *testing.T, bin string, args ...string) *mediabench.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"bench"}, args...), "--json", "--tmp", t.TempDir())...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\nstderr: %s", cmd.Args, err, errOut.String())
	}
	var rep mediabench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not a JSON report: %v\n%s", err, out.String())
	}
	return &rep
}

// checkPhase asserts that a measured receiver got every track and sane numbers (no timing limits).
func checkPhase(t *testing.T, name string, ph *mediabench.Phase, participants int) {
	t.Helper()
	if ph == nil {
		t.Fatalf("%s: not measured", name)
	}
	if len(ph.Problems) > 0 {
		t.Errorf("%s: problems %q", name, ph.Problems)
	}
	if !ph.AllConnected || ph.Peers != participants || ph.Tracks != 2*participants {
		t.Errorf("%s: %d peers, %d tracks receiving (all %v); want %d and %d", name, ph.Peers, ph.Tracks, ph.AllConnected, participants, 2*participants)
	}
	if ph.Cores <= 0 || ph.CoresPerParticipant <= 0 || ph.LifetimeCPUSeconds <= 0 {
		t.Errorf("%s: CPU %.4f cores (%.4f/participant), lifetime %.2f s", name, ph.Cores, ph.CoresPerParticipant, ph.LifetimeCPUSeconds)
	}
	if ph.Packets == 0 || ph.RecvPPS <= 0 || ph.SentPPS <= 0 || ph.RecvRatio <= 0 {
		t.Errorf("%s: packets %d, recv %.0f pps, sent %.0f pps", name, ph.Packets, ph.RecvPPS, ph.SentPPS)
	}
	if ph.RSSMB <= 0 || ph.PeakRSSMB < ph.RSSMB {
		t.Errorf("%s: RSS %.1f MB, peak %.1f MB", name, ph.RSSMB, ph.PeakRSSMB)
	}
}

// `roomtape bench record` and `roomtape bench bot` run end to end with two publishers: every
// child receives every track and reports CPU, memory and packet counts; the recorder is compared
// with the bare pion loop. No timing or performance assertion.
func TestBenchRecordAndBotEndToEnd(t *testing.T) {
	testenv.RequireTools(t) // the record benchmark generates its VP8 clip with ffmpeg
	bin := buildBinary(t)
	t.Run("record", func(t *testing.T) {
		t.Parallel()
		rep := runMediaBenchBinary(t, bin, "record", "--participants", "2", "--duration", "3s", "--warmup", "1s")
		if rep.Bench != "record" || len(rep.Points) != 1 || !rep.Clip.Generated || rep.Clip.VideoKbps <= 0 {
			t.Fatalf("report: %+v", rep)
		}
		pt := rep.Points[0]
		checkPhase(t, "bare-pion-save", pt.Baseline, 2)
		checkPhase(t, "recorder", pt.Subject, 2)
		checkPhase(t, "recorder+monitor", pt.Monitored, 2)
		// Checks: CPU per participant, ratio to bare, monitoring CPU and heap, loss.
		if pt.Subject.Name != "recorder" || pt.CPURatio <= 0 || pt.MonitorCPU <= 0 || pt.MonitorHeap <= 0 || len(rep.Checks) != 5 {
			t.Errorf("point %+v, checks %+v", pt, rep.Checks)
		}
	})
	t.Run("bot", func(t *testing.T) {
		t.Parallel()
		video := filepath.Join(fixtures.Dir(t), fixtures.Camera)
		rep := runMediaBenchBinary(t, bin, "bot", "--participants", "2", "--duration", "3s", "--warmup", "1s", "--video", video)
		if rep.Bench != "bot" || len(rep.Points) != 1 || rep.Clip.Generated || rep.Capacity == nil {
			t.Fatalf("report: %+v", rep)
		}
		pt := rep.Points[0]
		checkPhase(t, "bare-pion-discard", pt.Baseline, 2)
		checkPhase(t, "bot-discard", pt.Subject, 2)
	})
}
