package pipeline_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

// A submitted job is pulled, records a publisher's camera and microphone, and finishes with a
// complete manifest whose files decode cleanly; events tell the whole story with the labels.
func TestJobRecordsAndFinishes(t *testing.T) {
	needFFmpeg(t)
	e := newJobEnv(t, 5*time.Second)
	e.publish("standup", "alice")
	w := e.startWorker(e.workerConfig("w1", 2))
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)

	j := job("standup-1", "standup", 4*time.Second)
	log := e.follow(j.ID)
	res := e.submit(j)
	if res.Duplicate || res.State.State != pipeline.StateQueued {
		t.Fatalf("submit: %+v", res)
	}
	fin := log.waitType(t, 45*time.Second, pipeline.EventFinished)
	for _, typ := range []string{pipeline.EventQueued, pipeline.EventStarted, pipeline.EventParticipantJoined,
		pipeline.EventTrackStarted, pipeline.EventFirstKeyframe, pipeline.EventTrackEnded} {
		if log.count(typ) == 0 {
			t.Errorf("no %s event:\n%s", typ, log.dump())
		}
	}
	for _, ev := range log.all() {
		if ev.Labels["test"] != j.ID {
			t.Errorf("%s event without the job's labels: %v", ev.Type, ev.Labels)
		}
	}
	m := fin.Manifest
	if m == nil || m.Status != recorder.StatusFinished || fin.Reason != pipeline.ReasonMaxDuration || len(m.Attempts) != 1 ||
		m.Attempts[0].Worker != "w1" || len(m.Participants) != 1 || m.Participants[0].PeerID != "alice" {
		t.Fatalf("finished event: reason %q, manifest %+v", fin.Reason, m)
	}
	onDisk, err := recorder.ReadManifest(fin.ManifestPath)
	if err != nil || onDisk.Status != recorder.StatusFinished {
		t.Fatalf("manifest on disk: %v %+v", err, onDisk)
	}
	kinds := map[string]bool{}
	for _, ref := range onDisk.Files() {
		if ref.File.Partial {
			t.Errorf("%s is partial", ref.File.Path)
		}
		path := filepath.Join(filepath.Dir(fin.ManifestPath), ref.File.Path)
		decodesCleanly(t, path)
		if _, last := decodedFrames(t, path); last < 2*time.Second {
			t.Errorf("%s holds %s of media", ref.File.Path, last)
		}
		kinds[ref.Track.Kind] = true
	}
	if !kinds["audio"] || !kinds["video"] {
		t.Errorf("files for %v, want audio and video", kinds)
	}
	st, err := e.q.Status(context.Background(), j.ID)
	if err != nil || st.State != pipeline.StateDone || st.Worker != "w1" || st.Attempt != 1 || st.Manifest != fin.ManifestPath ||
		st.Files != len(onDisk.Files()) || st.Bytes == 0 || st.EndedAt == nil {
		t.Fatalf("state: %v %+v", err, st)
	}
	// The message is gone from the work queue and nothing waits for an ack.
	waitConsumerIdle(t, e)
	metrics := get(t, srv.URL+"/metrics")
	for _, want := range []string{`roomtape_worker_jobs_total{result="done"} 1`, "roomtape_worker_bytes_written_total",
		`roomtape_worker_first_keyframe_seconds_count 1`, "roomtape_worker_active_tracks 0", "roomtape_worker_capacity 2"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if body := get(t, srv.URL+"/healthz"); body != "ok\n" {
		t.Errorf("/healthz: %q", body)
	}
	if body := get(t, srv.URL+"/readyz"); body != "ready\n" {
		t.Errorf("/readyz: %q", body)
	}
	w.stop()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz after stop: %d", resp.StatusCode)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// waitConsumerIdle waits until the jobs consumer has nothing pending or unacknowledged and the
// work queue is empty.
func waitConsumerIdle(t *testing.T, e *jobEnv) {
	t.Helper()
	js, err := jetstream.New(e.q.Conn())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ci, err := js.Consumer(ctx, e.cfg.Stream, e.cfg.Consumer)
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = ci.Info(ctx)
		}
		var si *jetstream.StreamInfo
		if err == nil {
			var s jetstream.Stream
			if s, err = js.Stream(ctx, e.cfg.Stream); err == nil {
				si, err = s.Info(ctx)
			}
		}
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 && si.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer not idle: pending %d, ack pending %d, redelivered %d, stream msgs %d",
				info.NumPending, info.NumAckPending, info.NumRedelivered, si.State.Msgs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two workers with capacities 2 and 3 share ten jobs: each runs some, neither ever runs more
// than its capacity at once (checked from the started/finished events), and all ten finish.
func TestTwoWorkersShareTenJobs(t *testing.T) {
	e := newJobEnv(t, 5*time.Second)
	caps := map[string]int{"w-small": 2, "w-large": 3}
	for id, c := range caps {
		e.startWorker(e.workerConfig(id, c))
	}
	type span struct {
		worker     string
		start, end time.Time
	}
	var (
		mu    sync.Mutex
		spans []span
		wg    sync.WaitGroup
	)
	for i := range 10 {
		j := job("share-"+string(rune('a'+i)), "empty-"+string(rune('a'+i)), 2*time.Second)
		log := e.follow(j.ID)
		e.submit(j)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fin := log.waitType(t, 90*time.Second, pipeline.EventFinished)
			st := log.waitType(t, time.Second, pipeline.EventStarted)
			if fin.Worker != st.Worker || fin.Manifest == nil || fin.Manifest.Status != recorder.StatusFinished {
				t.Errorf("%s: started on %s, finished on %s, manifest %+v", j.ID, st.Worker, fin.Worker, fin.Manifest)
			}
			mu.Lock()
			spans = append(spans, span{st.Worker, st.Time, fin.Time})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	per := map[string]int{}
	for _, s := range spans {
		per[s.worker]++
		// Concurrency of this worker at the moment s started.
		n := 0
		for _, o := range spans {
			if o.worker == s.worker && !o.start.After(s.start) && o.end.After(s.start) {
				n++
			}
		}
		if n > caps[s.worker] {
			t.Errorf("%s ran %d jobs at once, capacity %d", s.worker, n, caps[s.worker])
		}
	}
	if len(spans) != 10 || per["w-small"] == 0 || per["w-large"] == 0 {
		t.Errorf("jobs per worker: %v", per)
	}
	t.Logf("jobs per worker: %v", per)
	waitConsumerIdle(t, e)
}

// Submitting the same job id again is ignored: while queued or running (the stream's dedupe
// window and the job state), and after it finished. One recording, one attempt.
func TestDuplicateSubmissionIgnored(t *testing.T) {
	e := newJobEnv(t, 5*time.Second)
	j := job("dup-1", "dup-room", 3*time.Second)
	log := e.follow(j.ID)
	if res := e.submit(j); res.Duplicate {
		t.Fatal("first submission reported as duplicate")
	}
	if res := e.submit(j); !res.Duplicate || res.Sequence != 0 {
		t.Fatalf("second submission: %+v", res)
	}
	// A raw publish of the same message id is dropped by the stream itself.
	js, err := jetstream.New(e.q.Conn())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := j.Encode()
	ack, err := js.Publish(context.Background(), e.cfg.Subject, data, jetstream.WithMsgID(j.ID))
	if err != nil || !ack.Duplicate {
		t.Fatalf("raw duplicate publish: %v %+v", err, ack)
	}
	e.startWorker(e.workerConfig("w1", 2))
	log.waitType(t, 30*time.Second, pipeline.EventStarted)
	if res := e.submit(j); !res.Duplicate || res.State.State == pipeline.StateQueued {
		t.Fatalf("submission while running: %+v", res)
	}
	fin := log.waitType(t, 30*time.Second, pipeline.EventFinished)
	if res := e.submit(j); !res.Duplicate || res.State.State != pipeline.StateDone {
		t.Fatalf("submission after it finished: %+v", res)
	}
	waitConsumerIdle(t, e)
	if n := log.count(pipeline.EventStarted); n != 1 || len(fin.Manifest.Attempts) != 1 {
		t.Fatalf("%d started events, %d attempts:\n%s", n, len(fin.Manifest.Attempts), log.dump())
	}
}

// Malformed jobs are terminated (never redelivered) with a failed event naming the problem,
// and the worker carries on with the next valid job.
func TestMalformedJobTerminated(t *testing.T) {
	e := newJobEnv(t, 2*time.Second)
	js, err := jetstream.New(e.q.Conn())
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct{ id, body, want string }{
		{"bad-field", `{"version":1,"id":"bad-field","channel":"room","colour":"red"}`, "colour: unknown field"},
		{"bad-json", `recording please`, "malformed JSON"},
		{"bad-duration", `{"version":1,"id":"bad-duration","channel":"room","options":{"maxDuration":"forever"}}`, "want a duration"},
	}
	logs := map[string]*eventLog{}
	for _, b := range bad {
		logs[b.id] = e.follow(b.id)
		if _, err := js.Publish(context.Background(), e.cfg.Subject, []byte(b.body), jetstream.WithMsgID(b.id)); err != nil {
			t.Fatal(err)
		}
	}
	// No usable id at all: the failed event goes to roomtape.events.~invalid.
	sub, err := e.q.Conn().SubscribeSync(pipeline.InvalidJobsSubject)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), e.cfg.Subject, []byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	good := job("good-after-bad", "room", time.Second)
	goodLog := e.follow(good.ID)
	e.submit(good)
	e.startWorker(e.workerConfig("w1", 1))
	for _, b := range bad {
		ev := logs[b.id].waitType(t, 15*time.Second, pipeline.EventFailed)
		if !strings.Contains(ev.Reason, b.want) || ev.Worker != "w1" || ev.Attempt != 1 {
			t.Errorf("%s: failed event %+v, want reason mentioning %q", b.id, ev, b.want)
		}
		st, err := e.q.Status(context.Background(), b.id)
		if err != nil || st.State != pipeline.StateFailed || !strings.Contains(st.Reason, b.want) {
			t.Errorf("%s: state %v %+v", b.id, err, st)
		}
	}
	msg, err := sub.NextMsg(15 * time.Second)
	if err != nil || !strings.Contains(string(msg.Data), "id: required; channel") {
		t.Errorf("event for the job without id: %v %s", err, msgData(msg))
	}
	goodLog.waitType(t, 30*time.Second, pipeline.EventFinished)
	waitConsumerIdle(t, e)
	// Terminated, not redelivered: the work queue is empty and nothing awaits an ack.
	for _, b := range bad {
		if n := logs[b.id].count(pipeline.EventFailed); n != 1 {
			t.Errorf("%s: %d failed events", b.id, n)
		}
	}
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// `roomtape stop` ends a running job within 2 s, with a finished manifest; a queued job that is
// stopped never starts.
func TestStopRequestEndsJob(t *testing.T) {
	needFFmpeg(t)
	e := newJobEnv(t, 5*time.Second)
	e.publish("stoppable", "bob")
	queued := job("stop-queued", "nobody", time.Minute)
	qlog := e.follow(queued.ID)
	e.submit(queued)
	if st, err := e.q.Stop(context.Background(), queued.ID); err != nil || st.State != pipeline.StateDone {
		t.Fatalf("stop queued: %v %+v", err, st)
	}
	qlog.waitType(t, 5*time.Second, pipeline.EventFinished)

	j := job("stop-1", "stoppable", time.Minute)
	log := e.follow(j.ID)
	e.submit(j)
	e.startWorker(e.workerConfig("w1", 2))
	log.waitType(t, 30*time.Second, pipeline.EventFirstKeyframe)
	asked := time.Now()
	if _, err := e.q.Stop(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	fin := log.waitType(t, 10*time.Second, pipeline.EventFinished)
	if took := time.Since(asked); took > 2*time.Second {
		t.Errorf("stop took %s, want < 2s", took)
	}
	if fin.Reason != pipeline.ReasonStopped || fin.Manifest.Status != recorder.StatusFinished {
		t.Fatalf("finished: reason %q status %s", fin.Reason, fin.Manifest.Status)
	}
	for _, ref := range fin.Manifest.Files() {
		decodesCleanly(t, filepath.Join(filepath.Dir(fin.ManifestPath), ref.File.Path))
	}
	waitConsumerIdle(t, e)
	if qlog.count(pipeline.EventStarted) != 0 {
		t.Errorf("the stopped queued job started:\n%s", qlog.dump())
	}
}

// A job naming a profile no worker has fails permanently: terminated at once, one failed event.
func TestUnknownProfileFailsPermanently(t *testing.T) {
	e := newJobEnv(t, 2*time.Second)
	e.startWorker(e.workerConfig("w1", 1))
	j := job("no-profile", "room", time.Second)
	j.Profile = "acme"
	log := e.follow(j.ID)
	e.submit(j)
	ev := log.waitType(t, 15*time.Second, pipeline.EventFailed)
	if !strings.Contains(ev.Reason, `profile "acme" is not configured`) {
		t.Errorf("reason %q", ev.Reason)
	}
	waitConsumerIdle(t, e)
	st, _ := e.q.Status(context.Background(), j.ID)
	if st.State != pipeline.StateFailed || st.Attempt != 1 {
		t.Errorf("state %+v", st)
	}
}

// On shutdown a worker stops pulling; a job that ends within worker.drain_timeout finishes
// normally, and Run returns afterwards.
func TestDrainFinishesRunningJob(t *testing.T) {
	e := newJobEnv(t, 5*time.Second)
	w := e.startWorker(e.workerConfig("w1", 2))
	j := job("drain-finish", "room-d", 3*time.Second)
	log := e.follow(j.ID)
	e.submit(j)
	log.waitType(t, 30*time.Second, pipeline.EventStarted)
	w.cancel() // SIGTERM
	later := job("drain-later", "room-l", time.Second)
	e.submit(later)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}
	fin := log.waitType(t, time.Second, pipeline.EventFinished)
	if fin.Reason != pipeline.ReasonMaxDuration {
		t.Errorf("reason %q", fin.Reason)
	}
	st, err := e.q.Status(context.Background(), later.ID)
	if err != nil || st.State != pipeline.StateQueued {
		t.Errorf("job submitted during the drain: %v %+v", err, st)
	}
}

// A job whose every delivery dies unacknowledged (nats.max_deliver reached; here two raw pulls
// that never ack stand in for crashed workers) is marked failed by a worker with a failed event,
// and its message is removed, instead of staying "queued" forever.
func TestExhaustedDeliveriesFail(t *testing.T) {
	e := newJobEnv(t, time.Second)
	e.cfg.MaxDeliver = 2
	e.q = e.queue("client-maxdeliver") // updates the consumer
	j := job("doomed-job", "room", time.Minute)
	log := e.follow(j.ID)
	e.submit(j)
	js, err := jetstream.New(e.q.Conn())
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(context.Background(), e.cfg.Stream, e.cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		if md, _ := m.Metadata(); md.NumDelivered != uint64(i) {
			t.Fatalf("delivery %d has NumDelivered %d", i, md.NumDelivered)
		}
	}
	e.startWorker(e.workerConfig("w1", 1))
	ev := log.waitType(t, 15*time.Second, pipeline.EventFailed)
	if !strings.Contains(ev.Reason, "gave up after 2 deliveries") || ev.Labels["test"] != j.ID {
		t.Errorf("failed event %+v", ev)
	}
	st, err := e.q.Status(context.Background(), j.ID)
	if err != nil || st.State != pipeline.StateFailed {
		t.Errorf("state %v %+v", err, st)
	}
	waitConsumerIdle(t, e)
}

// Tracks that go quiet raise warning events: a video track with no new frame (waiting for a
// keyframe) and an audio track with no packet. The publisher sends its 6 s clips once and keeps
// the tracks open; the thresholds are shortened from 10 s and 60 s.
func TestStalledTracksWarn(t *testing.T) {
	e := newJobEnv(t, 5*time.Second)
	e.publishClips("quiet", "erin", false)
	cfg := e.workerConfig("w1", 1)
	cfg.NoKeyframeAfter, cfg.SilenceAfter = 2*time.Second, 3*time.Second
	e.startWorker(cfg)
	j := job("quiet-1", "quiet", time.Minute)
	log := e.follow(j.ID)
	e.submit(j)
	for _, code := range []string{pipeline.WarnNoKeyframe, pipeline.WarnSilence} {
		ev := log.wait(t, 30*time.Second, code+" warning", func(ev pipeline.Event) bool { return ev.Warning == code })
		if ev.Peer != "erin" || ev.Track == nil || ev.Labels["test"] != j.ID {
			t.Errorf("%s warning: %+v", code, ev)
		}
	}
	if _, err := e.q.Stop(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	log.waitType(t, 10*time.Second, pipeline.EventFinished)
	if n := log.count(pipeline.EventWarning); n != 2 {
		t.Errorf("%d warnings, want one per track:\n%s", n, log.dump())
	}
}

// A job in monitor mode publishes stats events every interval and alert events on
// roomtape.events.<job>, exports per-participant metrics while it runs (deleted when it ends), and
// finishes with a manifest that has quality summaries, stats.jsonl and report.html but no media
// files. The publisher sends its clips once: when they end, the video freezes and the audio goes
// silent, which raises alerts.
func TestMonitorJobEventsAndMetrics(t *testing.T) {
	e := newJobEnv(t, 5*time.Second)
	e.cfg.StatsTTL = time.Second // stats events expire from the events stream; the rest stays
	e.publishClips("watched", "frank", false)
	cfg := e.workerConfig("w1", 1)
	cfg.Monitor.Interval = 500 * time.Millisecond
	cfg.Monitor.Thresholds.FrozenAfter = 2 * time.Second
	cfg.Monitor.Thresholds.SilentAfter = 2 * time.Second
	w := e.startWorker(cfg)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	j := job("watch-1", "watched", time.Minute)
	j.Options.Mode = pipeline.ModeMonitor
	log := e.follow(j.ID)
	e.submit(j)

	ev := log.wait(t, 30*time.Second, "a stats event with frank's audio and video", func(ev pipeline.Event) bool {
		if ev.Type != pipeline.EventStats || ev.Stats == nil {
			return false
		}
		kinds := map[string]bool{}
		for _, tr := range ev.Stats.Tracks {
			if tr.Peer == "frank" && tr.Packets > 0 {
				kinds[tr.Kind] = true
			}
		}
		return kinds["audio"] && kinds["video"]
	})
	if ev.Labels["test"] != j.ID || len(ev.Stats.Peers) == 0 {
		t.Errorf("stats event %+v", ev)
	}
	metrics := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`roomtape_monitor_bitrate_bps{job="watch-1",kind="video",peer="frank"}`,
		`roomtape_monitor_packets_received_total{job="watch-1",kind="audio",peer="frank"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, code := range []string{recorder.AlertFrozen, recorder.AlertSilent} {
		a := log.wait(t, 30*time.Second, code+" alert", func(ev pipeline.Event) bool {
			return ev.Type == pipeline.EventAlert && ev.Alert != nil && ev.Alert.Code == code
		})
		if a.Peer != "frank" || a.Alert.State != recorder.AlertRaised {
			t.Errorf("%s alert event %+v", code, a.Alert)
		}
	}
	if _, err := e.q.Stop(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	fin := log.waitType(t, 10*time.Second, pipeline.EventFinished)
	m := fin.Manifest
	if m == nil {
		t.Fatal("finished without a manifest")
	}
	if m.Mode != pipeline.ModeMonitor || len(m.Files()) != 0 || m.Stats != recorder.StatsName || m.Report != recorder.ReportName {
		t.Errorf("manifest mode %q, %d files, stats %q, report %q", m.Mode, len(m.Files()), m.Stats, m.Report)
	}
	quality := 0
	for _, p := range m.Participants {
		for _, tr := range p.Tracks {
			if tr.Quality != nil && tr.Quality.Packets > 0 {
				quality++
			}
		}
	}
	if quality != 2 || len(m.Alerts) < 2 {
		t.Errorf("%d tracks with quality, %d alerts in the manifest", quality, len(m.Alerts))
	}
	dir := filepath.Join(e.out, j.ID)
	for _, name := range []string{recorder.StatsName, recorder.ReportName, recorder.ManifestName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	if strings.Contains(get(t, srv.URL+"/metrics"), `job="watch-1"`) {
		t.Error("the job's monitor series outlived it")
	}
	// A second after the last one, no stats event is left in the stream; the others are.
	time.Sleep(2 * time.Second)
	stored := storedEventTypes(t, e, j.ID)
	if stored[pipeline.EventStats] != 0 || stored[pipeline.EventFinished] != 1 || stored[pipeline.EventAlert] < 2 {
		t.Errorf("events left in the stream after the stats TTL: %v", stored)
	}
}

// storedEventTypes counts the events of a job kept in the events stream, by type.
func storedEventTypes(t *testing.T, e *jobEnv, id string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(e.q.Conn())
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, e.cfg.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{pipeline.EventsSubject(id)}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range info.NumPending {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev pipeline.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		counts[ev.Type]++
	}
	return counts
}
