package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/logattr"
	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/recorder"
)

// errLost is the cause used when another delivery takes the job over: the attempt is
// finalized as interrupted (ErrInterrupted) and the message is left alone (ErrLost).
var errLost = fmt.Errorf("%w (%w)", ErrLost, ErrInterrupted)

// Claim outcomes that end a job before it runs.
var (
	errSkip  = errors.New("job already finished")
	errStale = errors.New("a newer delivery holds the job")
)

// progressEvery is how often a running job's progress is written to its state.
const progressEvery = 5 * time.Second

// jobRun is one delivery of one job on this worker.
type jobRun struct {
	w       *Worker
	q       *Queue
	msg     jetstream.Msg
	job     Job
	attempt int
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc

	events    chan Event
	eventsOut sync.WaitGroup

	mu          sync.Mutex
	lastRev     uint64 // KV revision of this run's last state write
	seen        map[string]fileCounts
	metricState string
	submitted   time.Time
	tracks      map[string]*liveTrack // by peer/session/track id
	stopSeen    bool
}

// liveTrack is what the job watches of one track for warnings.
type liveTrack struct {
	info     bot.TrackInfo
	lastSeen time.Time // last time its packet/frame count moved (or the track started)
	count    uint64
	warned   bool
}

// handle runs one delivered message to completion: it always acks, terminates or naks the
// message, unless another delivery has taken the job over.
func (w *Worker) handle(msg jetstream.Msg) {
	attempt := 1
	if meta, err := msg.Metadata(); err == nil {
		attempt = int(meta.NumDelivered)
	}
	if attempt > 1 {
		w.metrics.redeliveries.Inc()
	}
	job, err := DecodeJob(msg.Data())
	if err != nil {
		w.reject(msg, attempt, err)
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &jobRun{
		w: w, q: w.q, msg: msg, job: job, attempt: attempt, ctx: ctx, cancel: cancel,
		log:    w.log.With(logattr.Job, job.ID, logattr.Channel, job.Channel, "attempt", attempt),
		events: make(chan Event, 256), tracks: map[string]*liveTrack{},
	}
	defer cancel(nil)
	w.mu.Lock()
	w.jobs[r] = struct{}{}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.jobs, r)
		w.mu.Unlock()
		r.setMetricState("")
	}()
	r.run()
}

// reject terminates an undecodable or invalid job with a failed event.
func (w *Worker) reject(msg jetstream.Msg, attempt int, cause error) {
	id := jobIDOf(msg.Data(), msg.Headers().Get(nats.MsgIdHdr))
	reason := cause.Error()
	w.log.Warn("invalid job terminated", logattr.Job, id, logattr.Err, cause)
	ctx := context.Background()
	ev := Event{Type: EventFailed, JobID: id, Worker: w.cfg.ID, Attempt: attempt, Reason: reason}
	if id != "" {
		// Record the failure only for an unknown id: never clobber a real job's state, nor tell
		// the followers of a real job that it failed.
		created := false
		_, err := w.q.update(ctx, id, func(s *JobState) error {
			if s.Revision != 0 {
				created = s.State == StateFailed && s.Reason == reason // an earlier delivery of this message
				return errNoChange
			}
			now := time.Now().UTC()
			s.State, s.Reason, s.Worker, s.Attempt, s.EndedAt = StateFailed, reason, w.cfg.ID, attempt, &now
			created = true
			return nil
		})
		if err != nil {
			w.log.Warn("recording the invalid job's state failed", logattr.Job, id, logattr.Err, err)
		}
		if !created && err == nil {
			ev.JobID, ev.Reason = "", fmt.Sprintf("message with the id of existing job %s: %s", id, reason)
		}
	}
	w.q.publishEvent(ctx, ev)
	if err := msg.TermWithReason(truncate(reason, 256)); err != nil {
		w.log.Warn("term failed", logattr.Job, id, logattr.Err, err)
	}
	w.metrics.results.WithLabelValues(ResultInvalid).Inc()
}

func (r *jobRun) setMetricState(s string) {
	r.mu.Lock()
	from := r.metricState
	r.metricState = s
	r.mu.Unlock()
	if from != s {
		r.w.metrics.setState(from, s)
	}
}

// owned wraps a state change so that it applies only while this delivery holds the job.
func (r *jobRun) owned(fn func(*JobState)) func(*JobState) error {
	return func(s *JobState) error {
		r.mu.Lock()
		stale := s.Revision < r.lastRev
		r.mu.Unlock()
		if stale {
			return errStaleRead
		}
		if s.Worker != r.w.cfg.ID || s.Attempt != r.attempt || s.Terminal() {
			return errLost
		}
		fn(s)
		return nil
	}
}

// update changes the job's state as this run, remembering the revision it wrote.
func (r *jobRun) update(ctx context.Context, fn func(*JobState) error) (JobState, error) {
	st, err := r.q.update(ctx, r.job.ID, fn)
	if err == nil {
		r.mu.Lock()
		r.lastRev = max(r.lastRev, st.Revision)
		r.mu.Unlock()
	}
	return st, err
}

func (r *jobRun) run() {
	w, q, job := r.w, r.q, r.job
	stoppedEarly := false
	st, err := r.update(r.ctx, func(s *JobState) error {
		switch {
		case s.Terminal():
			return errSkip
		case s.Attempt > r.attempt:
			return errStale
		}
		now := time.Now().UTC()
		s.Channel, s.Profile, s.Labels = job.Channel, job.Profile, job.Labels
		s.Worker, s.Attempt, s.Reason = w.cfg.ID, r.attempt, ""
		if s.StopRequested {
			s.State, s.Reason, s.EndedAt = StateDone, "stopped before it started", &now
			stoppedEarly = true
			return nil
		}
		s.State = StateStarting
		if s.StartedAt == nil {
			s.StartedAt = &now
		}
		return nil
	})
	switch {
	case errors.Is(err, errSkip):
		r.log.Info("job already finished: acknowledging the extra delivery", "state", st.State)
		r.settle(ResultSkipped, r.ack)
		return
	case errors.Is(err, errStale):
		r.log.Info("a newer delivery holds this job: leaving the message alone", "holder", st.Worker, "holder_attempt", st.Attempt)
		w.metrics.results.WithLabelValues(ResultLost).Inc()
		return
	case err != nil:
		r.log.Warn("claiming the job failed: retrying later", logattr.Err, err)
		r.settle(ResultRetried, func() error { return r.msg.NakWithDelay(w.cfg.RetryDelay) })
		return
	case stoppedEarly:
		q.publishEvent(r.ctx, r.event(EventFinished, func(e *Event) { e.Reason = st.Reason }))
		r.settle(ResultSkipped, r.ack)
		return
	}
	r.submitted = st.SubmittedAt
	r.setMetricState(StateStarting)

	spec, tr, err := r.spec(st)
	if err != nil {
		r.finish(nil, err)
		return
	}

	var bg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(context.Background())
	bg.Add(2)
	go func() { defer bg.Done(); r.heartbeat(bgCtx) }()
	go func() { defer bg.Done(); r.watch(bgCtx) }()
	r.eventsOut.Add(1)
	events := r.events
	go func() { defer r.eventsOut.Done(); r.publishEvents(events) }()

	var watching sync.WaitGroup
	spec.OnOpen = func(rec *recorder.Recording) {
		if _, err := r.update(r.ctx, r.owned(func(s *JobState) {
			s.State = StateRecording
			s.Recording = rec.Dir()
			s.Manifest = filepath.Join(rec.Dir(), recorder.ManifestName)
		})); err != nil {
			r.log.Warn("state update failed", logattr.Err, err)
			if errors.Is(err, errLost) {
				r.cancel(errLost)
			}
		}
		r.setMetricState(StateRecording)
		r.emit(r.event(EventStarted, func(e *Event) {
			e.ManifestPath = filepath.Join(rec.Dir(), recorder.ManifestName)
			e.ElapsedMs = time.Since(r.submitted).Milliseconds()
			if r.attempt > 1 {
				e.Reason = "resumed after redelivery"
			}
		}))
		watching.Add(1)
		go func() { defer watching.Done(); r.watchFiles(bgCtx, rec) }()
	}
	spec.Events = r.botEvents()
	m, err := Record(r.ctx, spec, tr)
	stopBG()
	watching.Wait()
	bg.Wait()
	r.endTracks()
	r.finish(m, err)
}

// spec builds the recording of this job from the worker's templates and the job's options.
func (r *jobRun) spec(st JobState) (RecordSpec, *bot.Transport, error) {
	w, job := r.w, r.job
	d := w.cfg.Jobs
	profName := job.Profile
	if profName == "" {
		profName = d.Profile
	}
	prof, ok := w.cfg.Profiles[profName]
	if !ok {
		return RecordSpec{}, nil, Permanent(fmt.Errorf("profile %q is not configured on worker %s", profName, w.cfg.ID))
	}
	cc, err := prof.ClientConfig(JobPeerID(w.cfg.PeerID, job.ID), w.cfg.PeerMetadata, job.Channel)
	if err != nil {
		return RecordSpec{}, nil, Permanent(fmt.Errorf("profile %s: %w", profName, err))
	}
	maxDur := job.Options.MaxDuration.D()
	if maxDur == 0 {
		maxDur = d.MaxDuration
	}
	if maxDur > d.MaxDurationLimit {
		return RecordSpec{}, nil, &JobError{Field: "options.maxDuration", Msg: fmt.Sprintf("%s exceeds this worker's limit of %s", maxDur, d.MaxDurationLimit)}
	}
	// maxDuration counts from the first attempt's start, so a resumed job ends on time.
	remaining := maxDur
	if st.StartedAt != nil {
		remaining = maxDur - time.Since(*st.StartedAt)
	}
	remaining = max(remaining, time.Second)
	empty := d.StopWhenEmpty
	if job.Options.StopWhenEmpty != nil {
		empty = job.Options.StopWhenEmpty.D()
	}
	tr, err := w.transport(job.Options.Codecs)
	if err != nil {
		return RecordSpec{}, nil, err
	}
	bc := w.cfg.Bot
	bc.Channel, bc.Signalling = job.Channel, cc
	if job.Options.Announce != nil {
		bc.Announce = *job.Options.Announce
	}
	ro := w.cfg.Recorder
	ro.Dir = filepath.Join(ro.Dir, filepath.FromSlash(job.Options.OutputPrefix))
	ro.ID, ro.Worker = job.ID, w.cfg.ID
	if job.Options.CaptureMessages != nil {
		ro.CaptureMessages = *job.Options.CaptureMessages
	}
	mode := d.Mode
	if job.Options.Mode != "" {
		mode = job.Options.Mode
	}
	mc := w.cfg.Monitor
	mc.Metrics = w.metrics.monitor
	// Record and the recorder add the job and channel attributes themselves.
	return RecordSpec{Bot: bc, Recorder: ro, MaxDuration: remaining, StopWhenEmpty: empty, Logger: w.log.With("attempt", r.attempt),
		Mode: mode, Monitor: mc,
		OnSample: func(s monitor.Sample) { r.emit(r.event(EventStats, func(e *Event) { e.Stats = &s })) },
		OnAlert: func(a recorder.Alert) {
			r.emit(r.event(EventAlert, func(e *Event) { e.Alert, e.Peer = &a, a.Peer }))
		},
	}, tr, nil
}

// JobPeerID is the bot's peer id for a job: <base>-<job id>. Every job has its own identity, so
// concurrent jobs never supersede each other's signalling connection, and a resumed job joins as
// the same peer as the attempt it continues (browsers replace the dead connection).
func JobPeerID(base, jobID string) string {
	const maxLen = 128
	if len(base)+1+len(jobID) > maxLen {
		base = base[:maxLen-1-len(jobID)]
	}
	return base + "-" + jobID
}

// requeue hands the job back to the queue: its state goes back to queued with reason, a warning
// event says why, and the message is redelivered after delay. logDone logs the outcome.
func (r *jobRun) requeue(ctx context.Context, progress func(*JobState), warning, reason, result string, delay time.Duration, logDone func()) {
	_, uerr := r.update(ctx, r.owned(func(s *JobState) {
		progress(s)
		s.State, s.Worker, s.Reason = StateQueued, "", reason
	}))
	r.closeEvents()
	r.q.publishEvent(ctx, r.event(EventWarning, func(e *Event) { e.Warning, e.Reason = warning, reason }))
	if uerr != nil {
		r.log.Warn("state update failed", logattr.Err, uerr)
	}
	logDone()
	r.settle(result, func() error { return r.msg.NakWithDelay(delay) })
}

// finish settles the message according to how the recording ended.
func (r *jobRun) finish(m *recorder.Manifest, err error) {
	w, q := r.w, r.q
	cause := context.Cause(r.ctx)
	ctx := context.Background()
	if m != nil {
		r.account(m)
	}
	progress := func(s *JobState) {
		if m != nil {
			fillProgress(s, m)
		}
	}
	switch {
	case errors.Is(cause, ErrLost):
		r.log.Warn("job taken over by another delivery: attempt finalized, message left alone")
		w.metrics.results.WithLabelValues(ResultLost).Inc()
	case errors.Is(cause, ErrInterrupted) && err == nil:
		reason := fmt.Sprintf("handed back by worker %s (shutting down)", w.cfg.ID)
		r.requeue(ctx, progress, WarnHandedOff, reason, ResultHandedOff, w.cfg.NakDelay, func() {
			r.log.Info("job handed back to the queue")
		})
	case err != nil && !IsPermanent(err) && r.attempt < q.cfg.MaxDeliver:
		delay := w.cfg.RetryDelay << min(r.attempt-1, 6)
		reason := fmt.Sprintf("attempt %d failed, retrying in %s: %v", r.attempt, delay, err)
		r.requeue(ctx, progress, WarnRetrying, reason, ResultRetried, delay, func() {
			r.log.Warn("job failed, will be retried", logattr.Err, err, "delay", delay)
		})
	case err != nil:
		reason := err.Error()
		now := time.Now().UTC()
		_, uerr := r.update(ctx, r.owned(func(s *JobState) {
			progress(s)
			s.State, s.Reason, s.EndedAt = StateFailed, reason, &now
		}))
		r.closeEvents()
		q.publishEvent(ctx, r.event(EventFailed, func(e *Event) {
			e.Reason = reason
			if m != nil {
				e.ManifestPath = r.manifestPath(m)
			}
		}))
		if uerr != nil {
			r.log.Warn("state update failed", logattr.Err, uerr)
		}
		r.log.Error("job failed", logattr.Err, err, "permanent", IsPermanent(err))
		r.settle(ResultFailed, func() error { return r.msg.TermWithReason(truncate(reason, 256)) })
	default:
		r.setMetricState(StateFinishing)
		now := time.Now().UTC()
		reason := ""
		if len(m.Attempts) > 0 {
			reason = m.Attempts[len(m.Attempts)-1].Reason
		}
		_, uerr := r.update(ctx, r.owned(func(s *JobState) {
			progress(s)
			s.State, s.Reason, s.EndedAt = StateDone, reason, &now
			s.Manifest = r.manifestPath(m)
		}))
		r.closeEvents()
		if errors.Is(uerr, errLost) {
			r.log.Warn("job taken over while finishing: leaving the message alone")
			w.metrics.results.WithLabelValues(ResultLost).Inc()
			return
		}
		if uerr != nil {
			r.log.Warn("state update failed", logattr.Err, uerr)
		}
		q.publishEvent(ctx, r.event(EventFinished, func(e *Event) {
			e.Reason, e.Manifest, e.ManifestPath = reason, m, r.manifestPath(m)
		}))
		r.log.Info("job finished", "reason", reason, "files", len(m.Files()))
		r.settle(ResultDone, r.ack)
	}
	r.closeEvents()
}

func (r *jobRun) manifestPath(m *recorder.Manifest) string {
	dir := filepath.Join(r.w.cfg.Recorder.Dir, filepath.FromSlash(r.job.Options.OutputPrefix), m.RecordingID)
	return filepath.Join(dir, recorder.ManifestName)
}

// ack confirms the job with the server (bounded), so a finished job is not redelivered.
func (r *jobRun) ack() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.q.cfg.RequestTimeout)
	defer cancel()
	return r.msg.DoubleAck(ctx)
}

// settle acknowledges the message one way and counts the result.
func (r *jobRun) settle(result string, fn func() error) {
	if err := fn(); err != nil {
		// The job will be redelivered; the next delivery sees the state and acts on it.
		r.log.Warn("acknowledging the job failed", "result", result, logattr.Err, err)
	}
	r.w.metrics.results.WithLabelValues(result).Inc()
}

// heartbeat tells the server the job is alive every Heartbeat, so AckWait can stay short.
func (r *jobRun) heartbeat(ctx context.Context) {
	t := time.NewTicker(r.w.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.msg.InProgress(); err != nil {
				r.log.Debug("heartbeat failed", logattr.Err, err)
			}
		}
	}
}

// watch follows the job's state: a stop request ends the recording, and a newer delivery
// holding the job means this one lost it.
func (r *jobRun) watch(ctx context.Context) {
	check := func(s JobState) {
		if s.StopRequested {
			r.mu.Lock()
			first := !r.stopSeen
			r.stopSeen = true
			r.mu.Unlock()
			if first {
				r.log.Info("stop requested")
				r.emit(r.event(EventStopping, func(e *Event) { e.Reason = "stop requested" }))
				r.cancel(ErrStopRequested)
			}
		}
		if s.Attempt > r.attempt || (s.Attempt == r.attempt && s.Worker != "" && s.Worker != r.w.cfg.ID) {
			r.cancel(errLost)
		}
	}
	for ctx.Err() == nil {
		kw, err := r.q.kv.Watch(ctx, r.job.ID)
		if err != nil {
			r.log.Debug("watching the job state failed; polling", logattr.Err, err)
			if s, err := r.q.Status(ctx, r.job.ID); err == nil {
				check(s)
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		for e := range kw.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if s, err := decodeState(e); err == nil {
				check(s)
			}
		}
		_ = kw.Stop()
	}
}

// event builds an event of this job.
func (r *jobRun) event(typ string, fill func(*Event)) Event {
	e := Event{Type: typ, JobID: r.job.ID, Worker: r.w.cfg.ID, Attempt: r.attempt, Labels: r.job.Labels, Time: time.Now().UTC()}
	if fill != nil {
		fill(&e)
	}
	return e
}

// emit queues an event without blocking the caller (bot callbacks); a full queue drops it, and
// so does a closed one (events after the final one).
func (r *jobRun) emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		return
	}
	select {
	case r.events <- e:
	default:
		r.log.Warn("event queue full: event dropped", "type", e.Type)
	}
}

func (r *jobRun) publishEvents(ch <-chan Event) {
	for e := range ch {
		r.q.publishEvent(context.Background(), e)
	}
}

// closeEvents flushes queued events (so the final event comes last). Idempotent.
func (r *jobRun) closeEvents() {
	r.mu.Lock()
	ch := r.events
	r.events = nil
	r.mu.Unlock()
	if ch != nil {
		close(ch)
		r.eventsOut.Wait()
	}
}

// botEvents turns bot callbacks into job events and track bookkeeping.
func (r *jobRun) botEvents() bot.Events {
	key := func(i bot.TrackInfo) string { return i.PeerID + "/" + i.SessionID + "/" + i.TrackID }
	track := func(i bot.TrackInfo) *EventTrack {
		return &EventTrack{ID: i.TrackID, Kind: i.Kind, Role: i.Role(), Codec: i.MimeType}
	}
	return bot.Events{
		PeerJoined: func(id string, _ json.RawMessage) {
			r.emit(r.event(EventParticipantJoined, func(e *Event) { e.Peer = id }))
		},
		PeerLeft: func(id string) {
			r.emit(r.event(EventParticipantLeft, func(e *Event) { e.Peer = id }))
		},
		TrackStarted: func(i bot.TrackInfo) {
			r.mu.Lock()
			r.tracks[key(i)] = &liveTrack{info: i, lastSeen: time.Now()}
			r.mu.Unlock()
			r.w.metrics.tracks.Inc()
			r.emit(r.event(EventTrackStarted, func(e *Event) { e.Peer, e.Track = i.PeerID, track(i) }))
		},
		TrackEnded: func(i bot.TrackInfo, why bot.EndReason) {
			r.mu.Lock()
			_, ok := r.tracks[key(i)]
			delete(r.tracks, key(i))
			r.mu.Unlock()
			if ok {
				r.w.metrics.tracks.Dec()
			}
			r.emit(r.event(EventTrackEnded, func(e *Event) { e.Peer, e.Track, e.Reason = i.PeerID, track(i), string(why) }))
		},
	}
}

// endTracks forgets tracks whose end was never reported (active-track gauge).
func (r *jobRun) endTracks() {
	r.mu.Lock()
	n := len(r.tracks)
	r.tracks = map[string]*liveTrack{}
	r.mu.Unlock()
	r.w.metrics.tracks.Sub(float64(n))
}

// watchFiles watches the recording's files: the first keyframe on disk (polled every 50 ms until seen),
// stalled tracks (warnings), byte/loss/keyframe-wait counters, and progress in the job state.
func (r *jobRun) watchFiles(ctx context.Context, rec *recorder.Recording) {
	var (
		keyframe  bool
		lastWrite time.Time
	)
	interval := 50 * time.Millisecond
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		m := rec.Snapshot()
		if len(m.Attempts) == 0 {
			t.Reset(interval)
			continue
		}
		counts := map[string]uint64{}
		for _, ref := range m.Files() {
			f := ref.File
			if f.Attempt != m.Attempts[len(m.Attempts)-1].N {
				continue
			}
			if !keyframe && ref.Track.Kind == "video" {
				keyframe = true
				elapsed := time.Since(r.submitted)
				r.w.metrics.firstKeyframe.Observe(elapsed.Seconds())
				r.emit(r.event(EventFirstKeyframe, func(e *Event) {
					e.Peer = ref.Participant.PeerID
					e.Track = &EventTrack{ID: f.TrackID, Kind: ref.Track.Kind, Role: ref.Track.Role, Codec: ref.Track.Codec, Path: f.Path}
					e.ElapsedMs = elapsed.Milliseconds()
				}))
			}
			if ref.Track.Kind == "video" {
				counts[f.TrackID+"/"+f.Session] = f.Frames
			} else {
				counts[f.TrackID+"/"+f.Session] = f.Packets
			}
		}
		r.account(m)
		r.checkStalls(now, counts)
		if keyframe {
			interval = time.Second
		}
		if now.Sub(lastWrite) >= progressEvery {
			lastWrite = now
			if _, err := r.update(ctx, r.owned(func(s *JobState) { fillProgress(s, m) })); errors.Is(err, errLost) {
				r.cancel(errLost)
			}
		}
		t.Reset(interval)
	}
}

// account adds what the files of the current attempt wrote, lost and waited since the last
// call to the worker's counters.
func (r *jobRun) account(m *recorder.Manifest) {
	if len(m.Attempts) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]fileCounts{}
	}
	for _, ref := range m.Files() {
		f := ref.File
		if f.Attempt != m.Attempts[len(m.Attempts)-1].N {
			continue
		}
		key := strings.TrimSuffix(f.Path, ".part")
		prev := r.seen[key]
		if f.Bytes > prev.bytes {
			r.w.metrics.bytes.Add(float64(f.Bytes - prev.bytes))
		}
		if f.Lost > prev.lost {
			r.w.metrics.lost.Add(float64(f.Lost - prev.lost))
		}
		if n := len(f.KeyframeWaits); n > prev.waits {
			r.w.metrics.keyframeWaits.Add(float64(n - prev.waits))
		}
		r.seen[key] = fileCounts{bytes: max(f.Bytes, prev.bytes), lost: max(f.Lost, prev.lost), waits: max(len(f.KeyframeWaits), prev.waits)}
	}
}

// fileCounts is what account has already counted of one file.
type fileCounts struct {
	bytes, lost uint64
	waits       int
}

// checkStalls raises a warning for a video track with no new frame for NoKeyframeAfter (it is
// waiting for a keyframe) and an audio track with no packet for SilenceAfter.
func (r *jobRun) checkStalls(now time.Time, counts map[string]uint64) {
	var warn []Event
	r.mu.Lock()
	for _, lt := range r.tracks {
		c := counts[lt.info.TrackID+"/"+lt.info.SessionID]
		if c != lt.count {
			lt.count, lt.lastSeen, lt.warned = c, now, false
			continue
		}
		limit, code := r.w.cfg.SilenceAfter, WarnSilence
		if lt.info.Kind == "video" {
			limit, code = r.w.cfg.NoKeyframeAfter, WarnNoKeyframe
		}
		if !lt.warned && now.Sub(lt.lastSeen) >= limit {
			lt.warned = true
			i := lt.info
			warn = append(warn, r.event(EventWarning, func(e *Event) {
				e.Warning, e.Peer = code, i.PeerID
				e.Track = &EventTrack{ID: i.TrackID, Kind: i.Kind, Role: i.Role(), Codec: i.MimeType}
				e.Reason = fmt.Sprintf("nothing recorded for %s", now.Sub(lt.lastSeen).Round(time.Second))
			}))
		}
	}
	r.mu.Unlock()
	for _, e := range warn {
		r.emit(e)
	}
}

// fillProgress copies a manifest's counts of the current attempt into a job state.
func fillProgress(s *JobState, m *recorder.Manifest) {
	s.Participants, s.Files, s.Bytes, s.Tracks = len(m.Participants), 0, 0, 0
	for _, ref := range m.Files() {
		s.Files++
		s.Bytes += ref.File.Bytes
		if ref.File.Partial && ref.File.EndReason == "" && len(m.Attempts) > 0 && ref.File.Attempt == m.Attempts[len(m.Attempts)-1].N {
			s.Tracks++
		}
	}
}
