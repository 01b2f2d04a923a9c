package pipeline_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

// waitRecorded polls a recording's manifest on disk until every track of attempt n has a file
// holding at least d of media (the recorder rewrites the manifest every second).
func waitRecorded(t *testing.T, manifest string, attempt int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := recorder.ReadManifest(manifest)
		if err == nil {
			kinds := map[string]bool{}
			for _, ref := range m.Files() {
				if ref.File.Attempt == attempt && time.Duration(ref.File.DurationMs)*time.Millisecond >= d {
					kinds[ref.Track.Kind] = true
				}
			}
			if kinds["audio"] && kinds["video"] {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempt %d never recorded %s of audio and video (%v)", attempt, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkResumedManifest: two attempts of one recording, the first ended as wantFirst, the second
// finished; every track has a file from each attempt, the second after the first; files of
// the first attempt are readable (partial ones after a crash, clean ones after a hand-off) and
// files of the second decode cleanly.
func checkResumedManifest(t *testing.T, fin pipeline.Event, first, second string, partial bool) {
	t.Helper()
	m, err := recorder.ReadManifest(fin.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != recorder.StatusFinished || len(m.Attempts) != 2 {
		t.Fatalf("manifest status %s, attempts %+v", m.Status, m.Attempts)
	}
	a1, a2 := m.Attempts[0], m.Attempts[1]
	if a1.Worker != first || a1.Status != recorder.StatusInterrupted || a2.Worker != second || a2.Status != recorder.StatusFinished {
		t.Fatalf("attempts: %+v / %+v", a1, a2)
	}
	if len(m.Participants) != 1 {
		t.Fatalf("participants: %d", len(m.Participants))
	}
	dir := filepath.Dir(fin.ManifestPath)
	for _, tr := range m.Participants[0].Tracks {
		var f1, f2 *recorder.File
		for _, f := range tr.Files {
			switch {
			case f.Attempt == 1 && f1 == nil:
				f1 = f
			case f.Attempt == 2 && f2 == nil:
				f2 = f
			}
		}
		if f1 == nil || f2 == nil {
			t.Errorf("track %s/%s: files of attempts %v/%v", tr.Key, tr.Kind, f1 != nil, f2 != nil)
			continue
		}
		if f1.Partial != partial || strings.HasSuffix(f1.Path, ".part") != partial {
			t.Errorf("attempt 1 file %s: partial %v, want %v", f1.Path, f1.Partial, partial)
		}
		if f2.Partial || f2.StartOffsetMs < f1.StartOffsetMs+1000 {
			t.Errorf("attempt 2 file %s: partial %v, starts at %d ms (attempt 1 at %d ms)", f2.Path, f2.Partial, f2.StartOffsetMs, f1.StartOffsetMs)
		}
		p1 := filepath.Join(dir, f1.Path)
		if partial {
			// A crash may cut the last page or frame: the file must still demux ≥ 1.5 s.
			if n, last := decodedFrames(t, p1); n == 0 || last < 1500*time.Millisecond {
				t.Errorf("%s: %d frames, %s after the crash", f1.Path, n, last)
			}
		} else {
			decodesCleanly(t, p1)
		}
		decodesCleanly(t, filepath.Join(dir, f2.Path))
		if n, last := decodedFrames(t, filepath.Join(dir, f2.Path)); n == 0 || last < time.Second {
			t.Errorf("%s: %d frames, %s", f2.Path, n, last)
		}
	}
}

// A worker process killed with SIGKILL mid-recording loses its job to nobody: after AckWait the
// job is redelivered, another worker joins the channel and continues the same recording id
// within AckWait + 10 s; the manifest merges both attempts and the dead attempt's files are
// valid and listed as partial.
func TestKilledWorkerJobResumed(t *testing.T) {
	needFFmpeg(t)
	e := newJobEnv(t, 3*time.Second)
	e.publish("crash", "carol")
	j, log, manifest, doomed := e.recordOnProcess(t, "crash", "w-doomed", 20*time.Second)

	if err := doomed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := doomed.wait(t, 10*time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("worker process exit: %v", err)
	}
	killed := time.Now()
	e.startWorker(e.workerConfig("w-rescue", 2))
	resumed := log.wait(t, e.cfg.AckWait+10*time.Second+5*time.Second, "started on w-rescue", func(ev pipeline.Event) bool {
		return ev.Type == pipeline.EventStarted && ev.Worker == "w-rescue"
	})
	if took := time.Since(killed); took > e.cfg.AckWait+10*time.Second || resumed.Attempt < 2 {
		t.Fatalf("resumed after %s (AckWait %s), attempt %d", took, e.cfg.AckWait, resumed.Attempt)
	}
	t.Logf("resumed %s after the kill (attempt %d)", resumed.Time.Sub(killed).Round(time.Millisecond), resumed.Attempt)
	st, err := e.q.Status(context.Background(), j.ID)
	if err != nil || st.Worker != "w-rescue" || st.Attempt != resumed.Attempt {
		t.Fatalf("state after resume: %v %+v", err, st)
	}
	waitRecorded(t, manifest, 2, 2*time.Second)
	if _, err := e.q.Stop(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	fin := log.waitType(t, 15*time.Second, pipeline.EventFinished)
	if fin.Worker != "w-rescue" {
		t.Fatalf("finished by %s", fin.Worker)
	}
	checkResumedManifest(t, fin, "w-doomed", "w-rescue", true)
	waitConsumerIdle(t, e)
}

// SIGTERM drains: the worker process stops pulling, and a job that outlasts worker.drain_timeout
// is finalized (files closed cleanly, manifest written) and handed back with a Nak; another
// worker resumes it at once (no AckWait) as a new attempt of the same recording. The process
// exits 0.
func TestSIGTERMHandsOffJob(t *testing.T) {
	needFFmpeg(t)
	e := newJobEnv(t, 30*time.Second) // a long AckWait: the hand-off must not depend on it
	e.publish("handoff", "dave")
	j, log, manifest, leaving := e.recordOnProcess(t, "handoff", "w-leaving", time.Second)

	if err := leaving.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if err := leaving.wait(t, 20*time.Second); err != nil {
		t.Fatalf("worker process exit after SIGTERM: %v", err)
	}
	off := log.wait(t, time.Second, "handed_off warning", func(ev pipeline.Event) bool { return ev.Warning == pipeline.WarnHandedOff })
	if took := off.Time.Sub(sent); took > 5*time.Second {
		t.Errorf("handed off %s after SIGTERM (drain timeout 1s)", took)
	}
	st, err := e.q.Status(context.Background(), j.ID)
	if err != nil || st.State != pipeline.StateQueued || st.Worker != "" {
		t.Fatalf("state after hand-off: %v %+v", err, st)
	}
	e.startWorker(e.workerConfig("w-next", 2))
	resumed := log.wait(t, 15*time.Second, "started on w-next", func(ev pipeline.Event) bool {
		return ev.Type == pipeline.EventStarted && ev.Worker == "w-next"
	})
	if resumed.Attempt != 2 {
		t.Errorf("resumed as attempt %d", resumed.Attempt)
	}
	waitRecorded(t, manifest, 2, 2*time.Second)
	if _, err := e.q.Stop(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	fin := log.waitType(t, 15*time.Second, pipeline.EventFinished)
	checkResumedManifest(t, fin, "w-leaving", "w-next", false)
	waitConsumerIdle(t, e)
}

// recordOnProcess starts a worker process, submits job <channel>-1 (2 min) and waits until the
// process has written the first keyframe and 2 s of media; it returns the job, its event log,
// the manifest path and the process.
func (e *jobEnv) recordOnProcess(t *testing.T, channel, worker string, drain time.Duration) (pipeline.Job, *eventLog, string, *workerProc) {
	t.Helper()
	proc := e.startWorkerProcess(worker, drain)
	j := job(channel+"-1", channel, 2*time.Minute)
	log := e.follow(j.ID)
	e.submit(j)
	log.wait(t, 30*time.Second, "first keyframe on "+worker, func(ev pipeline.Event) bool {
		return ev.Type == pipeline.EventFirstKeyframe && ev.Worker == worker
	})
	manifest := filepath.Join(e.out, j.ID, recorder.ManifestName)
	waitRecorded(t, manifest, 1, 2*time.Second)
	return j, log, manifest, proc
}
