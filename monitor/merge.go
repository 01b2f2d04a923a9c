package monitor

import "github.com/roomtape/roomtape/recorder"

// Merge sums up two sessions of one logical track (b after a): counters add, means are weighted
// by active time, maxima take the larger, the size is b's (the latest).
func Merge(a, b recorder.Quality) recorder.Quality {
	if a.ActiveMs == 0 && a.Packets == 0 {
		return finishRates(b)
	}
	wa, wb := float64(a.ActiveMs), float64(b.ActiveMs)
	mean := func(x, y float64) float64 {
		if wa+wb == 0 {
			return (x + y) / 2
		}
		return (x*wa + y*wb) / (wa + wb)
	}
	q := recorder.Quality{
		Packets: a.Packets + b.Packets, Bytes: a.Bytes + b.Bytes, Expected: a.Expected + b.Expected,
		LostBeforeRecovery: a.LostBeforeRecovery + b.LostBeforeRecovery, Recovered: a.Recovered + b.Recovered,
		Lost: a.Lost + b.Lost, Late: a.Late + b.Late, Duplicates: a.Duplicates + b.Duplicates,
		JitterMeanMs: mean(a.JitterMeanMs, b.JitterMeanMs), JitterMaxMs: max(a.JitterMaxMs, b.JitterMaxMs),
		BitrateMaxBps: max(a.BitrateMaxBps, b.BitrateMaxBps), ActiveMs: a.ActiveMs + b.ActiveMs,
		Frames: a.Frames + b.Frames, Keyframes: a.Keyframes + b.Keyframes,
		KeyframeIntervalMeanMs: mean(a.KeyframeIntervalMeanMs, b.KeyframeIntervalMeanMs),
		Width:                  b.Width, Height: b.Height, MaxWidth: max(a.MaxWidth, b.MaxWidth), MaxHeight: max(a.MaxHeight, b.MaxHeight),
		Freezes: a.Freezes + b.Freezes, FrozenMs: a.FrozenMs + b.FrozenMs,
		AudioLevel: a.AudioLevel || b.AudioLevel, SpeechPct: mean(a.SpeechPct, b.SpeechPct),
		LevelMeanDBov: mean(a.LevelMeanDBov, b.LevelMeanDBov), SilentMs: a.SilentMs + b.SilentMs,
	}
	if q.Width == 0 {
		q.Width, q.Height = a.Width, a.Height
	}
	if a.KeyframeIntervalMeanMs == 0 || b.KeyframeIntervalMeanMs == 0 {
		q.KeyframeIntervalMeanMs = max(a.KeyframeIntervalMeanMs, b.KeyframeIntervalMeanMs)
	}
	return finishRates(q)
}

// finishRates derives the percentages and means that follow from the counters.
func finishRates(q recorder.Quality) recorder.Quality {
	q.LossPct = pct(q.Lost, q.Expected)
	q.LossBeforeRecoveryPct = pct(q.LostBeforeRecovery, q.Expected)
	if q.ActiveMs > 0 {
		s := float64(q.ActiveMs) / 1000
		q.BitrateMeanBps = float64(q.Bytes) * 8 / s
		if q.Frames > 0 {
			q.FPSMean = float64(q.Frames) / s
		}
	}
	return q
}
