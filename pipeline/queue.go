package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Queue is the job queue on JetStream: a WorkQueue stream with one durable pull consumer shared
// by every worker, a KV bucket of job states and a stream of job events.
type Queue struct {
	cfg  NATSConfig
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
	kv   jetstream.KeyValue
	log  *slog.Logger
}

// OpenQueue creates or updates the stream, consumer, bucket and events stream with cfg (with
// the configured replicas) and returns the queue. Every command calls it, so submitting works
// before the first worker has started.
func OpenQueue(ctx context.Context, nc *nats.Conn, cfg NATSConfig, log *slog.Logger) (*Queue, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	q := &Queue{cfg: cfg, nc: nc, js: js, log: log}
	// Setup retries while a cluster elects its meta leader (a fresh cluster, a node restart).
	err = retry(ctx, cfg.RequestTimeout*4, func(ctx context.Context) error { return q.setup(ctx) })
	if err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Queue) setup(ctx context.Context) error {
	c := q.cfg
	ctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	defer cancel()
	_, err := q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: c.Stream, Description: "roomtape recording jobs",
		Subjects: []string{c.Subject}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		Replicas: c.Replicas, Duplicates: c.DedupeWindow, MaxMsgSize: MaxJobSize + 1024,
	})
	if err != nil {
		return fmt.Errorf("create jobs stream %s: %w", c.Stream, err)
	}
	q.cons, err = q.js.CreateOrUpdateConsumer(ctx, c.Stream, jetstream.ConsumerConfig{
		Durable: c.Consumer, Description: "roomtape workers (shared)",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: c.AckWait, MaxDeliver: c.MaxDeliver,
		MaxAckPending: c.MaxAckPending, FilterSubject: c.Subject, Replicas: c.Replicas,
		// One job per pull request: a worker asks only when it has room for one more.
		MaxRequestBatch: 1,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", c.Consumer, err)
	}
	q.kv, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: c.Bucket, Description: "roomtape job states", History: 8, TTL: c.StateTTL,
		Storage: jetstream.FileStorage, Replicas: c.Replicas,
	})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", c.Bucket, err)
	}
	_, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: c.EventsStream, Description: "roomtape job events",
		Subjects: []string{EventsPrefix + ".>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
		Replicas: c.Replicas, MaxAge: c.EventsMaxAge, MaxMsgsPerSubject: 10000, Discard: jetstream.DiscardOld,
		AllowMsgTTL: true, // stats events expire after StatsTTL
	})
	if err != nil {
		return fmt.Errorf("create events stream %s: %w", c.EventsStream, err)
	}
	return nil
}

// retry runs fn until it succeeds, ctx ends or total passes, backing off from 100 ms to 1 s.
func retry(ctx context.Context, total time.Duration, fn func(context.Context) error) error {
	deadline := time.Now().Add(total)
	wait := 100 * time.Millisecond
	for {
		err := fn(ctx)
		var fe *fnError
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) || isPermanentAPIError(err) ||
			errors.As(err, &fe) || errors.Is(err, ErrInvalidJob) || errors.Is(err, ErrNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

// isPermanentAPIError: a configuration the server refuses will not change by retrying.
func isPermanentAPIError(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.Code == 400
}

// Config is the queue's configuration, defaults applied.
func (q *Queue) Config() NATSConfig { return q.cfg }

// Conn is the NATS connection.
func (q *Queue) Conn() *nats.Conn { return q.nc }

// SubmitResult says what Submit did.
type SubmitResult struct {
	Job Job `json:"job"`
	// Duplicate: the id was submitted before; no new recording was started.
	Duplicate bool     `json:"duplicate"`
	State     JobState `json:"state"`
	// Sequence is the stream sequence of the job message (0 for duplicates).
	Sequence uint64 `json:"sequence"`
}

// Submit validates and enqueues a job. The job id is the idempotency key: a job whose id is
// already known (queued beyond the dedupe window, running, done or failed) is not enqueued
// again, and within the dedupe window JetStream itself drops the repeated message (Nats-Msg-Id),
// so retrying a submission whose answer was lost is safe.
func (q *Queue) Submit(ctx context.Context, j Job) (SubmitResult, error) {
	if j.Version == 0 {
		j.Version = JobVersion
	}
	data, err := j.Encode()
	if err != nil {
		return SubmitResult{}, err
	}
	var res SubmitResult
	err = retry(ctx, updateRetry, func(ctx context.Context) error {
		var err error
		res, err = q.submitOnce(ctx, j, data)
		return err
	})
	return res, err
}

func (q *Queue) submitOnce(ctx context.Context, j Job, data []byte) (SubmitResult, error) {
	now := time.Now().UTC()
	st := JobState{Version: 1, ID: j.ID, State: StateQueued, Channel: j.Channel, Profile: j.Profile, Labels: j.Labels,
		SubmittedAt: now, UpdatedAt: now}
	created := true
	err := q.bounded(ctx, func(ctx context.Context) error {
		b, _ := json.Marshal(st)
		rev, err := q.kv.Create(ctx, j.ID, b)
		st.Revision = rev
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrKeyExists):
		cur, gerr := q.Status(ctx, j.ID)
		if gerr != nil {
			return SubmitResult{}, gerr
		}
		if cur.State != StateQueued || now.Sub(cur.SubmittedAt) > q.cfg.DedupeWindow {
			return SubmitResult{Job: j, Duplicate: true, State: cur}, nil
		}
		// Still queued within the window: publish again (a lost publish is retried; a
		// delivered one is dropped by the stream's dedupe).
		st, created = cur, false
	default:
		return SubmitResult{}, fmt.Errorf("submit %s: record state: %w", j.ID, err)
	}
	var ack *jetstream.PubAck
	err = q.bounded(ctx, func(ctx context.Context) error {
		var err error
		ack, err = q.js.Publish(ctx, q.cfg.Subject, data, jetstream.WithMsgID(j.ID), jetstream.WithExpectStream(q.cfg.Stream),
			jetstream.WithRetryAttempts(10), jetstream.WithRetryWait(250*time.Millisecond))
		return err
	})
	if err != nil {
		if created {
			// Leave no queued state without a message, so the caller can simply retry.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.RequestTimeout)
			_ = q.kv.Delete(dctx, j.ID, jetstream.LastRevision(st.Revision))
			cancel()
		}
		return SubmitResult{}, fmt.Errorf("submit %s: publish: %w", j.ID, err)
	}
	if ack.Duplicate {
		return SubmitResult{Job: j, Duplicate: true, State: st}, nil
	}
	q.publishEvent(ctx, Event{Type: EventQueued, JobID: j.ID, Labels: j.Labels})
	return SubmitResult{Job: j, State: st, Sequence: ack.Sequence}, nil
}

// bounded runs fn with the request timeout.
func (q *Queue) bounded(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.RequestTimeout)
	defer cancel()
	return fn(ctx)
}

// Status reads a job's state.
func (q *Queue) Status(ctx context.Context, id string) (JobState, error) {
	if err := ValidateJobID(id); err != nil {
		return JobState{}, &JobError{Field: "id", Msg: err.Error()}
	}
	var e jetstream.KeyValueEntry
	err := q.bounded(ctx, func(ctx context.Context) error {
		var err error
		e, err = q.kv.Get(ctx, id)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return JobState{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return JobState{}, fmt.Errorf("job %s: %w", id, err)
	}
	return decodeState(e)
}

func decodeState(e jetstream.KeyValueEntry) (JobState, error) {
	var s JobState
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return s, fmt.Errorf("job %s: bad state record: %w", e.Key(), err)
	}
	s.Revision = e.Revision()
	return s, nil
}

// errNoChange makes update return without writing.
var errNoChange = errors.New("no change")

// errStaleRead, returned by an update function, makes update read again: KV reads may be
// served by a stream replica that lags behind (direct get on a cluster).
var errStaleRead = errors.New("stale read")

// fnError carries an error returned by an update function (never retried).
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

// updateRetry bounds how long update keeps retrying through NATS trouble (a cluster electing
// a new leader, a reconnect).
const updateRetry = 20 * time.Second

// update applies fn to the job's state with compare-and-set, re-reading and retrying on
// conflicts, and retrying transient NATS errors for up to updateRetry. A missing state is
// created (from a zero queued state). fn returning errNoChange skips the write; any other error
// from fn aborts and is returned as is.
func (q *Queue) update(ctx context.Context, id string, fn func(*JobState) error) (JobState, error) {
	var st JobState
	err := retry(ctx, updateRetry, func(ctx context.Context) error {
		var err error
		st, err = q.updateOnce(ctx, id, fn)
		return err
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return st, fe.err
	}
	return st, err
}

func (q *Queue) updateOnce(ctx context.Context, id string, fn func(*JobState) error) (JobState, error) {
	var last error
	for try := 0; try < 20; try++ {
		cur, err := q.Status(ctx, id)
		missing := errors.Is(err, ErrNotFound)
		switch {
		case missing:
			now := time.Now().UTC()
			cur = JobState{Version: 1, ID: id, State: StateQueued, SubmittedAt: now}
		case err != nil:
			return cur, err
		}
		if err := fn(&cur); err != nil {
			if errors.Is(err, errNoChange) {
				return cur, nil
			}
			if errors.Is(err, errStaleRead) && try < 19 {
				last = err
				time.Sleep(time.Duration(try+1) * 10 * time.Millisecond)
				continue
			}
			return cur, &fnError{err}
		}
		cur.UpdatedAt = time.Now().UTC()
		b, err := json.Marshal(cur)
		if err != nil {
			return cur, &fnError{err}
		}
		err = q.bounded(ctx, func(ctx context.Context) error {
			var rev uint64
			var err error
			if missing {
				rev, err = q.kv.Create(ctx, id, b)
			} else {
				rev, err = q.kv.Update(ctx, id, b, cur.Revision)
			}
			cur.Revision = rev
			return err
		})
		if err == nil {
			return cur, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return cur, fmt.Errorf("job %s: update state: %w", id, err)
		}
		last = err
	}
	return JobState{}, &fnError{fmt.Errorf("job %s: update state: too many conflicts: %w", id, last)}
}

// Stop asks for a job to end. A queued job is marked done at once (the worker that later pulls
// it skips it); a running one is stopped by its worker within 2 s. Stopping a finished job
// changes nothing.
func (q *Queue) Stop(ctx context.Context, id string) (JobState, error) {
	var stoppedQueued bool
	st, err := q.update(ctx, id, func(s *JobState) error {
		if s.Revision == 0 {
			return fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		if s.Terminal() || s.StopRequested {
			return errNoChange
		}
		s.StopRequested = true
		if s.State == StateQueued {
			now := time.Now().UTC()
			s.State, s.Reason, s.EndedAt, s.Worker = StateDone, "stopped before it started", &now, ""
			stoppedQueued = true
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if stoppedQueued {
		q.publishEvent(ctx, Event{Type: EventFinished, JobID: id, Labels: st.Labels, Reason: st.Reason})
	}
	return st, nil
}

// List returns the jobs in the bucket, most recently updated first (at most limit; 0 = all).
func (q *Queue) List(ctx context.Context, limit int) ([]JobState, error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.RequestTimeout*2)
	defer cancel()
	w, err := q.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []JobState
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list jobs: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("list jobs: watcher closed")
			}
			if e == nil { // all current values delivered
				sort.Slice(out, func(a, b int) bool { return out[a].UpdatedAt.After(out[b].UpdatedAt) })
				if limit > 0 && len(out) > limit {
					out = out[:limit]
				}
				return out, nil
			}
			if s, err := decodeState(e); err == nil {
				out = append(out, s)
			}
		}
	}
}

// Follow calls fn with every event of a job, from the first one stored (so nothing is missed
// by subscribing late), until fn returns false or ctx ends.
func (q *Queue) Follow(ctx context.Context, id string, fn func(Event) bool) error {
	if err := ValidateJobID(id); err != nil {
		return &JobError{Field: "id", Msg: err.Error()}
	}
	var cons jetstream.Consumer
	err := retry(ctx, q.cfg.RequestTimeout*2, func(ctx context.Context) error {
		var err error
		cctx, cancel := context.WithTimeout(ctx, q.cfg.RequestTimeout)
		defer cancel()
		cons, err = q.js.OrderedConsumer(cctx, q.cfg.EventsStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{EventsSubject(id)}, DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("follow %s: %w", id, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", id, err)
	}
	defer it.Stop()
	for {
		// Next watches ctx itself: Stop from another goroutine does not always wake a Next that
		// waits while the ordered consumer is being recreated (a cluster node went away).
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return err
			}
			continue
		}
		var ev Event
		if json.Unmarshal(m.Data(), &ev) != nil {
			continue
		}
		if !fn(ev) {
			return nil
		}
	}
}

// maxEventSize keeps events well below the server's max payload; larger manifests are left
// out of the event (ManifestPath still says where it is).
const maxEventSize = 512 << 10

// publishEvent stores an event on roomtape.events.<id> (bounded; failures are logged).
func (q *Queue) publishEvent(ctx context.Context, ev Event) {
	ev.Version = 1
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b, err := json.Marshal(ev)
	if err == nil && len(b) > maxEventSize && ev.Manifest != nil {
		ev.Manifest = nil
		b, err = json.Marshal(ev)
	}
	if err != nil {
		q.log.Error("encode event", "type", ev.Type, "err", err)
		return
	}
	err = q.bounded(context.WithoutCancel(ctx), func(ctx context.Context) error {
		subject := EventsSubject(ev.JobID)
		if ev.JobID == "" {
			subject = InvalidJobsSubject
		}
		opts := []jetstream.PublishOpt{jetstream.WithRetryAttempts(10), jetstream.WithRetryWait(200 * time.Millisecond)}
		if ev.Type == EventStats && q.cfg.StatsTTL < q.cfg.EventsMaxAge {
			opts = append(opts, jetstream.WithMsgTTL(q.cfg.StatsTTL))
		}
		_, err := q.js.Publish(ctx, subject, b, opts...)
		return err
	})
	if err != nil {
		q.log.Warn("publish event failed", "job", ev.JobID, "type", ev.Type, "err", err)
	}
}
