package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/logattr"
	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/recorder"
)

// JobDefaults fill what a job leaves out, and bound what it may ask for (config section jobs).
type JobDefaults struct {
	// Profile is used by jobs that name none.
	Profile string `mapstructure:"profile" json:"profile"`
	// MaxDuration is used by jobs that set no maxDuration.
	MaxDuration time.Duration `mapstructure:"max_duration" json:"max_duration"`
	// MaxDurationLimit: jobs asking for longer are rejected as invalid.
	MaxDurationLimit time.Duration `mapstructure:"max_duration_limit" json:"max_duration_limit"`
	// StopWhenEmpty is used by jobs that set no stopWhenEmpty (0 = never).
	StopWhenEmpty time.Duration `mapstructure:"stop_when_empty" json:"stop_when_empty"`
	// Mode is used by jobs that set no mode: record, monitor or both (default).
	Mode string `mapstructure:"mode" json:"mode"`
}

// Defaults fills unset fields.
func (d *JobDefaults) Defaults() {
	if d.Profile == "" {
		d.Profile = "default"
	}
	if d.MaxDuration <= 0 {
		d.MaxDuration = 4 * time.Hour
	}
	if d.MaxDurationLimit <= 0 {
		d.MaxDurationLimit = 24 * time.Hour
	}
	if d.StopWhenEmpty < 0 {
		d.StopWhenEmpty = 0
	}
	if d.Mode == "" {
		d.Mode = ModeBoth
	}
}

// Validate checks the defaults.
func (d JobDefaults) Validate() error {
	var errs []error
	if _, err := ParseMode(d.Mode); err != nil {
		errs = append(errs, fmt.Errorf("jobs.mode: %w", err))
	}
	if d.MaxDurationLimit > MaxJobDuration {
		errs = append(errs, fmt.Errorf("jobs.max_duration_limit: %s, at most %s", d.MaxDurationLimit, MaxJobDuration))
	}
	if d.MaxDuration < time.Second || d.MaxDuration > d.MaxDurationLimit {
		errs = append(errs, fmt.Errorf("jobs.max_duration: %s, want 1s to max_duration_limit (%s)", d.MaxDuration, d.MaxDurationLimit))
	}
	return errors.Join(errs...)
}

// WorkerConfig configures a Worker. Bot and Recorder are templates: each job fills in its
// channel, signalling connection, recording id and output folder.
type WorkerConfig struct {
	// ID names the worker in job states, events and manifests (default hostname-<random>).
	ID string
	// Capacity is how many jobs run at once (default: the CPU count).
	Capacity int
	// DrainTimeout: on shutdown, running jobs get this long to finish; then they are finalized
	// (files closed, manifest written) and handed back to the queue. Default 30s.
	DrainTimeout time.Duration
	// PullWait bounds one pull request (default 2s): how quickly a shutdown stops pulling.
	PullWait time.Duration
	// NakDelay is the redelivery delay of a job handed back (full, shutting down). Default 1s.
	NakDelay time.Duration
	// RetryDelay is the first redelivery delay after a transient failure, doubled per delivery.
	RetryDelay time.Duration
	// Heartbeat is how often InProgress is sent while a job runs (default AckWait/3).
	Heartbeat time.Duration
	// NoKeyframeAfter and SilenceAfter raise warning events (defaults 10s and 60s).
	NoKeyframeAfter time.Duration
	SilenceAfter    time.Duration

	Profiles map[string]Profile
	Jobs     JobDefaults
	// PeerID and PeerMetadata are the bot's identity (defaults ~roomtape-recorder, {"roomtape":"recorder"});
	// each job joins as <PeerID>-<job id> (JobPeerID).
	PeerID       string
	PeerMetadata map[string]any
	Bot          bot.Config       // Announce, LeftGrace, DeadSessionTimeout, MaxTracksPerPeer
	Recorder     recorder.Options // Dir (out_dir), JitterLatency, FlushInterval, CaptureMessages
	// Monitor configures monitoring of jobs in monitor and both modes (Job, Logger and Metrics
	// are set per job by the worker).
	Monitor monitor.Config
	Network bot.NetworkConfig
	// Transport, when set, is used for jobs without a codecs option (and Network is ignored
	// for them); it is not closed by the worker.
	Transport *bot.Transport
	Logger    *slog.Logger
}

func (c *WorkerConfig) defaults(q NATSConfig) {
	if c.ID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		c.ID = host + "-" + uuid.NewString()[:8]
	}
	if c.Capacity <= 0 {
		c.Capacity = runtime.NumCPU()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DrainTimeout, 30*time.Second)
	def(&c.PullWait, 2*time.Second)
	def(&c.NakDelay, time.Second)
	def(&c.RetryDelay, 5*time.Second)
	def(&c.Heartbeat, max(q.AckWait/3, 100*time.Millisecond))
	def(&c.NoKeyframeAfter, 10*time.Second)
	def(&c.SilenceAfter, 60*time.Second)
	c.Jobs.Defaults()
	if c.PeerID == "" {
		c.PeerID = "~roomtape-recorder"
	}
	if c.PeerMetadata == nil {
		c.PeerMetadata = map[string]any{"roomtape": "recorder"}
	}
	if c.Recorder.Dir == "" {
		c.Recorder.Dir = "recordings"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Worker pulls jobs from the queue, one pull at a time and only while it has capacity, and
// records them. Run until its context ends, then it drains.
type Worker struct {
	cfg     WorkerConfig
	q       *Queue
	log     *slog.Logger
	metrics *workerMetrics

	slots      chan struct{} // one token per running job
	wg         sync.WaitGroup
	advisories sync.WaitGroup // max-deliveries handlers
	started    atomic.Bool
	pulling    atomic.Bool // false before Run and once draining

	mu         sync.Mutex
	jobs       map[*jobRun]struct{}
	transports map[string]*bot.Transport
	advClosed  bool // no more advisory handlers
}

// NewWorker checks the configuration and builds a worker on q.
func NewWorker(q *Queue, cfg WorkerConfig) (*Worker, error) {
	cfg.defaults(q.cfg)
	if err := cfg.Jobs.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Network.Validate(); err != nil {
		return nil, err
	}
	if ValidateJobID(strings.ReplaceAll(cfg.ID, ".", "-")) != nil {
		return nil, fmt.Errorf("worker.id %q: use 1-64 of A-Z a-z 0-9 . _ -", cfg.ID)
	}
	w := &Worker{
		cfg: cfg, q: q, metrics: newWorkerMetrics(cfg.Capacity),
		log:   cfg.Logger.With("worker", cfg.ID),
		slots: make(chan struct{}, cfg.Capacity),
		jobs:  map[*jobRun]struct{}{}, transports: map[string]*bot.Transport{},
	}
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Capacity is how many jobs the worker runs at once.
func (w *Worker) Capacity() int { return w.cfg.Capacity }

// Running is the number of jobs the worker holds now.
func (w *Worker) Running() int { return len(w.slots) }

// notReady says why the worker should not receive traffic ("" when ready).
func (w *Worker) notReady() string {
	switch {
	case !w.pulling.Load():
		return "not pulling jobs (starting or draining)"
	case w.q.nc.Status() != nats.CONNECTED:
		return "NATS " + w.q.nc.Status().String()
	}
	return ""
}

// Run pulls and records jobs until ctx ends, then drains: it stops pulling, gives running jobs
// DrainTimeout to finish, finalizes the rest (files closed, manifest written) and hands them
// back to the queue with a Nak so another worker resumes them. It returns once every job has
// let go of its message.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrDraining
	}
	w.log.Info("worker started", "capacity", w.cfg.Capacity, "stream", w.q.cfg.Stream, "consumer", w.q.cfg.Consumer)
	adv, err := w.watchExhausted()
	if err != nil {
		return fmt.Errorf("subscribe to max-deliveries advisories: %w", err)
	}
	w.pulling.Store(true)
	w.pull(ctx)
	w.pulling.Store(false)
	_ = adv.Unsubscribe()
	w.mu.Lock()
	w.advClosed = true
	w.mu.Unlock()
	w.drain()
	w.advisories.Wait()
	w.closeTransports()
	w.log.Info("worker stopped")
	return nil
}

// pull is the admission loop: wait for a free slot, then ask for exactly one job.
func (w *Worker) pull(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case w.slots <- struct{}{}:
		}
		msg, err := w.q.cons.Next(jetstream.FetchMaxWait(w.cfg.PullWait))
		if err != nil {
			<-w.slots
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
				backoff = 100 * time.Millisecond
				continue
			}
			w.metrics.pullErrors.Inc()
			w.log.Debug("pull failed", logattr.Err, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if ctx.Err() != nil {
			// Shutting down: hand it straight back.
			_ = msg.NakWithDelay(w.cfg.NakDelay)
			<-w.slots
			return
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer func() { <-w.slots }()
			w.handle(msg)
		}()
	}
}

// drain waits for running jobs, up to DrainTimeout, then interrupts the rest.
func (w *Worker) drain() {
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	n := w.Running()
	if n > 0 {
		w.log.Info("draining", "jobs", n, "timeout", w.cfg.DrainTimeout)
	}
	select {
	case <-done:
		return
	case <-time.After(w.cfg.DrainTimeout):
	}
	w.mu.Lock()
	for j := range w.jobs {
		j.cancel(ErrInterrupted)
	}
	w.mu.Unlock()
	<-done
}

// transport returns the WebRTC transport for a codec set ("" = the worker's default).
func (w *Worker) transport(codecs []string) (*bot.Transport, error) {
	key := strings.Join(codecs, ",")
	if key == "" && w.cfg.Transport != nil {
		return w.cfg.Transport, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.transports[key]; ok {
		return t, nil
	}
	nc := w.cfg.Network
	if key != "" {
		if nc.UDPMuxPort != 0 {
			return nil, Permanent(fmt.Errorf("options.codecs: this worker serves every job on one UDP mux port and cannot negotiate a per-job codec set"))
		}
		nc.Codecs = codecs
	}
	t, err := bot.NewTransport(nc, w.cfg.Logger)
	if err != nil {
		return nil, err
	}
	w.transports[key] = t
	return t, nil
}

func (w *Worker) closeTransports() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, t := range w.transports {
		_ = t.Close()
		delete(w.transports, k)
	}
}
