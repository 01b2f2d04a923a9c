package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomtape/roomtape/pipeline"
)

// BenchmarkJobFirstKeyframe measures, one job at a time with embedded NATS, the latency from
// Submit to the first_keyframe event (the first VP8 keyframe of the publisher written to disk,
// as seen by the submitting client), and reports its p50/p95. The Go publisher sends a keyframe
// every second and ignores PLI (browsers answer it), so up to 1 s of that latency is the wait for
// the next keyframe; jobs are submitted at a random phase of the keyframe interval, and the
// latency to track_started (media flowing, before the keyframe wait) is reported too.
//
//	go test -run '^$' -bench BenchmarkJobFirstKeyframe -benchtime 50x ./pipeline/
func BenchmarkJobFirstKeyframe(b *testing.B) {
	e := newJobEnv(b, 30*time.Second)
	e.publish("bench", "alice")
	e.startWorker(e.workerConfig("bench-w", 4))
	// Warm up: the first job also pays for the publisher's first connection.
	warm := job("bench-warm", "bench", time.Minute)
	l := e.follow(warm.ID)
	e.submit(warm)
	l.waitType(b, 30*time.Second, pipeline.EventFirstKeyframe)
	if _, err := e.q.Stop(context.Background(), warm.ID); err != nil {
		b.Fatal(err)
	}
	l.waitType(b, 10*time.Second, pipeline.EventFinished)

	var client, server, media []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second)))) // random keyframe phase
		j := job(fmt.Sprintf("bench-%d", i), "bench", time.Minute)
		l := e.follow(j.ID)
		b.StartTimer()
		start := time.Now()
		e.submit(j)
		ev := l.waitType(b, 30*time.Second, pipeline.EventFirstKeyframe)
		client = append(client, float64(time.Since(start).Microseconds())/1000)
		server = append(server, float64(ev.ElapsedMs))
		b.StopTimer()
		ts := l.wait(b, time.Second, "video track_started", func(ev pipeline.Event) bool {
			return ev.Type == pipeline.EventTrackStarted && ev.Track != nil && ev.Track.Kind == "video"
		})
		media = append(media, float64(ts.Time.Sub(start).Microseconds())/1000)
		if _, err := e.q.Stop(context.Background(), j.ID); err != nil {
			b.Fatal(err)
		}
		l.waitType(b, 10*time.Second, pipeline.EventFinished)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(percentile(client, 50), "p50-ms")
	b.ReportMetric(percentile(client, 95), "p95-ms")
	b.ReportMetric(percentile(client, 100), "max-ms")
	b.ReportMetric(percentile(server, 95), "p95-worker-ms")
	b.ReportMetric(percentile(media, 50), "p50-track-ms")
	b.ReportMetric(percentile(media, 95), "p95-track-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkWorkerAccept measures how many jobs per second one worker accepts: b.N jobs are
// queued, then a worker with room for all of them starts, and the clock runs until every job
// has been pulled, claimed in the KV bucket and has its recording open (started event).
//
//	go test -run '^$' -bench BenchmarkWorkerAccept -benchtime 200x ./pipeline/
func BenchmarkWorkerAccept(b *testing.B) {
	e := newJobEnv(b, 30*time.Second)
	var started atomic.Int64
	all := make(chan struct{})
	sub, err := e.q.Conn().Subscribe(pipeline.EventsPrefix+".>", func(m *nats.Msg) {
		var ev pipeline.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.Type == pipeline.EventStarted {
			if started.Add(1) == int64(b.N) {
				close(all)
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	var ids []string
	for i := 0; i < b.N; i++ {
		j := job(fmt.Sprintf("accept-%d", i), fmt.Sprintf("accept-room-%d", i), time.Minute)
		e.submit(j)
		ids = append(ids, j.ID)
	}
	cfg := e.workerConfig("accept-w", b.N)
	b.ResetTimer()
	t0 := time.Now()
	w := e.startWorker(cfg)
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d jobs started", started.Load(), b.N)
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(0, "ns/op")
	for _, id := range ids {
		if _, err := e.q.Stop(context.Background(), id); err != nil {
			b.Fatal(err)
		}
	}
	w.stop()
}

// percentile of values (nearest rank), p in (0, 100].
func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
