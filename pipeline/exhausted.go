package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomtape/roomtape/internal/logattr"
)

// exhaustedGroup is the queue group of workers handling max-deliveries advisories: one worker
// handles each advisory.
const exhaustedGroup = "roomtape-exhausted"

// maxDeliveriesAdvisory is the part of JetStream's max_deliver advisory that we read.
type maxDeliveriesAdvisory struct {
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// watchExhausted subscribes to JetStream's advisory for jobs delivered nats.max_deliver times
// without being acknowledged (typically: the worker holding the last delivery crashed). Such a
// job is never delivered again, so a worker marks it failed, publishes the failed event and
// removes the message. Without this, its state would say "recording" forever.
func (w *Worker) watchExhausted() (*nats.Subscription, error) {
	c := w.q.cfg
	subject := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", c.Stream, c.Consumer)
	return w.q.nc.QueueSubscribe(subject, exhaustedGroup, func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			return
		}
		w.mu.Lock()
		closing := w.advClosed
		if !closing {
			w.advisories.Add(1)
		}
		w.mu.Unlock()
		if closing {
			return
		}
		go func() {
			defer w.advisories.Done()
			w.exhausted(adv)
		}()
	})
}

func (w *Worker) exhausted(adv maxDeliveriesAdvisory) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*w.q.cfg.RequestTimeout)
	defer cancel()
	stream, err := w.q.js.Stream(ctx, w.q.cfg.Stream)
	if err != nil {
		w.log.Warn("max deliveries: stream lookup failed", logattr.Err, err)
		return
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		w.log.Debug("max deliveries: job message already gone", "seq", adv.StreamSeq, logattr.Err, err)
		return
	}
	id := jobIDOf(raw.Data, raw.Header.Get(nats.MsgIdHdr))
	reason := fmt.Sprintf("gave up after %d deliveries (nats.max_deliver): the worker holding the last one stopped without finishing", adv.Deliveries)
	if id != "" {
		var labels map[string]string
		failed := false
		_, err := w.q.update(ctx, id, func(s *JobState) error {
			if s.Terminal() {
				return errNoChange
			}
			now := time.Now().UTC()
			s.State, s.Reason, s.EndedAt = StateFailed, reason, &now
			labels, failed = s.Labels, true
			return nil
		})
		if err != nil {
			w.log.Warn("max deliveries: state update failed", logattr.Job, id, logattr.Err, err)
			return
		}
		if failed {
			w.log.Error("job failed: deliveries exhausted", logattr.Job, id, "deliveries", adv.Deliveries)
			w.q.publishEvent(ctx, Event{Type: EventFailed, JobID: id, Worker: w.cfg.ID, Attempt: int(adv.Deliveries), Labels: labels, Reason: reason})
			w.metrics.results.WithLabelValues(ResultFailed).Inc()
		}
	}
	if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil {
		w.log.Debug("max deliveries: removing the job message failed", "seq", adv.StreamSeq, logattr.Err, err)
	}
}
