package pipeline

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/logattr"
	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/recorder"
)

// Recording modes (job option mode).
const (
	ModeRecord  = "record"  // media files and the manifest, no monitoring
	ModeMonitor = "monitor" // quality, alerts, stats.jsonl and the manifest; no media files
	ModeBoth    = "both"    // files and monitoring (the default)
)

// ParseMode checks a mode name; empty is ModeBoth.
func ParseMode(s string) (string, error) {
	switch s {
	case "":
		return ModeBoth, nil
	case ModeRecord, ModeMonitor, ModeBoth:
		return s, nil
	}
	return "", fmt.Errorf("mode %q: want record, monitor or both", s)
}

// teeConsumer registers every track with the recording (files, or only the manifest in monitor
// mode) and hands its packets to the monitor too.
type teeConsumer struct {
	rec *recorder.Recording
	mon *monitor.Monitor
	log *slog.Logger
}

func (c teeConsumer) TrackStarted(info bot.TrackInfo, ctrl bot.TrackControl) bot.TrackSink {
	sink, key := c.rec.StartTrack(info, ctrl)
	if key == "" {
		return sink // the recording is closing
	}
	ms := c.mon.Track(info, key)
	if sink == nil {
		return ms
	}
	return &teeSink{sinks: [2]bot.TrackSink{sink, ms}, names: [2]string{"recorder", "monitor"},
		log: c.log.With(logattr.Peer, info.PeerID, logattr.Track, info.TrackID)}
}

// teeSink feeds two sinks; a panic in one detaches only that one (the recording survives a
// monitor bug and the other way round).
type teeSink struct {
	sinks [2]bot.TrackSink
	names [2]string
	log   *slog.Logger
}

func (t *teeSink) call(i int, what string, f func(bot.TrackSink)) {
	s := t.sinks[i]
	if s == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("panic in track sink; detaching it", "sink", t.names[i], "call", what, "panic", r)
			t.sinks[i] = nil
		}
	}()
	f(s)
}

func (t *teeSink) WriteRTP(p *rtp.Packet, at time.Time) {
	t.call(0, "WriteRTP", func(s bot.TrackSink) { s.WriteRTP(p, at) })
	t.call(1, "WriteRTP", func(s bot.TrackSink) { s.WriteRTP(p, at) })
}

func (t *teeSink) WriteRTCP(p []rtcp.Packet, at time.Time) {
	t.call(0, "WriteRTCP", func(s bot.TrackSink) { s.WriteRTCP(p, at) })
	t.call(1, "WriteRTCP", func(s bot.TrackSink) { s.WriteRTCP(p, at) })
}

func (t *teeSink) Reconnected() {
	t.call(0, "Reconnected", bot.TrackSink.Reconnected)
	t.call(1, "Reconnected", bot.TrackSink.Reconnected)
}

func (t *teeSink) End(reason bot.EndReason) {
	t.call(0, "End", func(s bot.TrackSink) { s.End(reason) })
	t.call(1, "End", func(s bot.TrackSink) { s.End(reason) })
}
