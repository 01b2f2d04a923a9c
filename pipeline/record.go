// Package pipeline runs recordings: one bot joined to a channel feeding one recorder.Recording,
// with the stop rules a job asks for (maximum duration, empty channel), progress reporting, and
// (in worker.go) jobs pulled from a NATS JetStream queue.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/logattr"
	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/recorder"
	"github.com/roomtape/roomtape/report"
	"github.com/roomtape/roomtape/signalling"
)

// RecordSpec is one recording to make now.
type RecordSpec struct {
	Bot      bot.Config       // channel, signalling connection, announce, grace periods
	Recorder recorder.Options // output folder, recording id, jitter latency…
	// MaxDuration stops the recording after this long (0 = until ctx ends).
	MaxDuration time.Duration
	// StopWhenEmpty stops once no other participant has been in the channel for this long (0 = never).
	StopWhenEmpty time.Duration
	// Progress, when set, receives a snapshot about once a second and once at the end.
	Progress func(Progress)
	// Events, when set, receives the bot's events too (after the recorder's own handlers).
	Events bot.Events
	// Mode is record, monitor or both (empty: both). Monitor writes no media files.
	Mode string
	// Monitor configures monitoring (interval, thresholds, metrics) in monitor and both modes.
	Monitor monitor.Config
	// OnSample and OnAlert, when set, receive the monitor's samples and alert raises/clears.
	OnSample func(monitor.Sample)
	OnAlert  func(recorder.Alert)
	// OnOpen, when set, is called with the recording once its folder and manifest exist (before
	// the bot joins), e.g. to watch rec.Snapshot for the first keyframe.
	OnOpen func(rec *recorder.Recording)
	Logger *slog.Logger
}

// Progress is a live view of a recording.
type Progress struct {
	Elapsed      time.Duration
	Participants int // currently present
	Tracks       int // currently recording
	Files        int
	Bytes        uint64
	Done         bool
}

// Stop reasons reported in the manifest's attempt.
const (
	ReasonMaxDuration = "max_duration"
	ReasonEmpty       = "channel_empty"
	ReasonStopped     = "stopped"
)

// Record joins the channel and records until ctx ends, the maximum duration passes or the
// channel stays empty; the manifest is final when it returns. A signalling failure (e.g. invalid
// credentials) fails the recording with that error. When ctx ends with the cause ErrInterrupted
// (context.WithCancelCause), the attempt is finalized as "interrupted" instead of "finished": its
// files are closed and valid, and a later Record of the same id continues the recording.
func Record(ctx context.Context, spec RecordSpec, t *bot.Transport) (*recorder.Manifest, error) {
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mode, err := ParseMode(spec.Mode)
	if err != nil {
		return nil, err
	}
	spec.Recorder.Channel = spec.Bot.Channel
	spec.Recorder.Logger = log
	spec.Recorder.Mode, spec.Recorder.NoMedia = mode, mode == ModeMonitor
	spec.Recorder.Stats, spec.Recorder.Report = mode != ModeRecord, true
	spec.Bot.Logger = log.With(logattr.Job, spec.Recorder.ID)
	rec, err := recorder.Open(spec.Recorder)
	if err != nil {
		return nil, err
	}
	var consumer bot.Consumer = rec
	var mon *monitor.Monitor
	if mode != ModeRecord {
		mc := spec.Monitor
		mc.Job, mc.Logger = spec.Recorder.ID, log
		if mc.RecoveryWindow == 0 {
			mc.RecoveryWindow = spec.Recorder.JitterLatency
		}
		mon = monitor.New(mc, monitor.Outputs{
			Sample: func(s monitor.Sample) {
				if err := rec.AppendStats(s); err != nil {
					log.Warn("stats not written", logattr.Err, err)
				}
				if spec.OnSample != nil {
					spec.OnSample(s)
				}
			},
			Alert: func(a recorder.Alert) {
				rec.AddAlert(a)
				if spec.OnAlert != nil {
					spec.OnAlert(a)
				}
			},
			Quality: rec.SetQuality,
		}, rec.StartedAt())
		consumer = teeConsumer{rec: rec, mon: mon, log: log}
		if mc.Metrics != nil {
			defer mc.Metrics.Forget(mc.Job)
		}
	}
	if spec.OnOpen != nil {
		spec.OnOpen(rec)
	}
	var (
		mu       sync.Mutex
		present  = map[string]bool{}
		tracks   int
		emptyAt  = time.Now()
		stopOnce sync.Once
		reason   = ReasonStopped
	)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	finish := func(r string) {
		stopOnce.Do(func() {
			mu.Lock()
			reason = r
			mu.Unlock()
			stop()
		})
	}
	events := rec.Events().Merge(bot.Events{
		PeerJoined: func(id string, _ json.RawMessage) {
			mu.Lock()
			present[id] = true
			mu.Unlock()
		},
		PeerLeft: func(id string) {
			mu.Lock()
			delete(present, id)
			if len(present) == 0 {
				emptyAt = time.Now()
			}
			mu.Unlock()
		},
		TrackStarted: func(bot.TrackInfo) { mu.Lock(); tracks++; mu.Unlock() },
		TrackEnded:   func(bot.TrackInfo, bot.EndReason) { mu.Lock(); tracks--; mu.Unlock() },
	})
	if mon != nil {
		events = events.Merge(mon.Events())
	}
	events = events.Merge(spec.Events)
	b, err := bot.New(spec.Bot, t, consumer, events)
	if err != nil {
		_, _ = rec.Close(recorder.StatusFailed, err.Error())
		return nil, err
	}
	started := time.Now()
	progress := func(done bool) {
		if spec.Progress == nil {
			return
		}
		m := rec.Snapshot()
		p := Progress{Elapsed: time.Since(started), Done: done}
		for _, f := range m.Files() {
			p.Files++
			p.Bytes += f.File.Bytes
		}
		mu.Lock()
		p.Participants, p.Tracks = len(present), tracks
		mu.Unlock()
		spec.Progress(p)
	}
	var wg sync.WaitGroup
	monCtx, stopMon := context.WithCancel(context.Background())
	defer stopMon()
	var monDone sync.WaitGroup
	if mon != nil {
		monDone.Add(1)
		go func() { defer monDone.Done(); mon.Run(monCtx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
				if spec.MaxDuration > 0 && time.Since(started) >= spec.MaxDuration {
					finish(ReasonMaxDuration)
				}
				mu.Lock()
				empty := len(present) == 0 && time.Since(emptyAt) >= spec.StopWhenEmpty
				mu.Unlock()
				if spec.StopWhenEmpty > 0 && empty {
					finish(ReasonEmpty)
				}
				progress(false)
			}
		}
	}()
	runErr := b.Run(runCtx)
	stop()
	wg.Wait()
	// Every track has ended: the monitor's last sample carries their final figures.
	stopMon()
	monDone.Wait()
	status := recorder.StatusFinished
	mu.Lock()
	why := reason
	mu.Unlock()
	if cause := context.Cause(ctx); runErr == nil && ctx.Err() != nil && errors.Is(cause, ErrInterrupted) {
		status, why = recorder.StatusInterrupted, cause.Error()
	}
	if runErr != nil {
		status, why = recorder.StatusFailed, runErr.Error()
		var ce *signalling.CloseError
		if errors.As(runErr, &ce) {
			why = fmt.Sprintf("signalling closed %d: %s", ce.Code, ce.Reason)
		}
	}
	m, cerr := rec.Close(status, why)
	if err := report.WriteFile(rec.Dir()); err != nil {
		log.Error("report not written", logattr.Err, err)
	}
	progress(true)
	if runErr != nil {
		return m, fmt.Errorf("record %s: %w", spec.Bot.Channel, runErr)
	}
	return m, cerr
}
