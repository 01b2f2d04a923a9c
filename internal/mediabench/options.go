package mediabench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Options configures RunRecord and RunBot.
type Options struct {
	// Exe is the roomtape binary run as the children (`roomtape record`, `roomtape bench receiver`).
	Exe string
	// Participants are the fleet sizes measured, in order (publishers with one Opus and one VP8 track
	// each). Defaults: 10, 50, 100 (record); 10, 25, 50, 100, 150 (bot).
	Participants []int
	// Duration is the measured window of each receiver. Default 20s.
	Duration time.Duration
	// Warmup runs after every track is receiving and before the window. Default 5s.
	Warmup time.Duration
	// ConnectTimeout bounds the wait for every track to receive; the window is measured anyway
	// with the tracks that made it (reported). Default 30s + 300ms per participant.
	ConnectTimeout time.Duration
	// Video is an IVF (VP8) clip to send; empty generates ~1 Mbps 640x480 VP8 with ffmpeg.
	Video string
	// Repeat measures every receiver this many times per size, alternating their order; the
	// report shows the median run. Default 1.
	Repeat int
	// Baseline also measures the bare pion receiver at every size (default true in the CLI).
	Baseline bool
	// Monitor (record benchmark) also measures `roomtape record --mode both` (recording plus call
	// monitoring) next to `--mode record`, for the cost of monitoring.
	Monitor bool
	// MinRecvRatio is the share of sent packets a receiver must get in the window to count as
	// keeping up (bot capacity). Default 0.95.
	MinRecvRatio float64
	// KeepGoing measures every size even after the bot failed one (bot benchmark; default: stop
	// after the first size at which neither receiver kept up).
	KeepGoing bool
	// TempDir is where the clip, configs and recordings go (a fresh folder inside it, removed at
	// the end). Default os.TempDir().
	TempDir string
	// Progress receives one line per step (nil: silent).
	Progress io.Writer
	Logger   *slog.Logger
}

// defaults fills zero fields; bench is "record" or "bot".
func (o *Options) defaults(bench string) {
	if len(o.Participants) == 0 {
		o.Participants = []int{10, 50, 100}
		if bench == "bot" {
			o.Participants = []int{10, 25, 50, 100, 150}
		}
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if o.Warmup == 0 {
		o.Warmup = 5 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		maxN := 0
		for _, n := range o.Participants {
			maxN = max(maxN, n)
		}
		o.ConnectTimeout = 30*time.Second + time.Duration(maxN)*300*time.Millisecond
	}
	if o.Repeat <= 0 {
		o.Repeat = 1
	}
	if o.MinRecvRatio <= 0 {
		o.MinRecvRatio = 0.95
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the options after defaults.
func (o *Options) Validate() error {
	var errs []error
	if o.Exe == "" {
		errs = append(errs, errors.New("bench: the roomtape binary (Exe) is required"))
	}
	for _, n := range o.Participants {
		if n < 1 || n > 1000 {
			errs = append(errs, fmt.Errorf("bench: participants %d: want 1..1000", n))
		}
	}
	if o.Duration < time.Second {
		errs = append(errs, fmt.Errorf("bench: duration %s: want at least 1s", o.Duration))
	}
	if o.Repeat > 20 {
		errs = append(errs, fmt.Errorf("bench: repeat %d: want at most 20", o.Repeat))
	}
	if o.MinRecvRatio > 1 {
		errs = append(errs, fmt.Errorf("bench: min receive ratio %.2f: want at most 1", o.MinRecvRatio))
	}
	return errors.Join(errs...)
}
