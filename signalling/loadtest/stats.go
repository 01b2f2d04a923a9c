package loadtest

import (
	"math"
	"slices"
	"time"
)

// distribution summarises durations in milliseconds.
type distribution struct {
	P50, P90, P99, Max, Mean float64
}

// summarize sorts ds in place and returns nearest-rank percentiles in milliseconds.
func summarize(ds []time.Duration) distribution {
	if len(ds) == 0 {
		return distribution{}
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return ms(ds[max(i, 0)])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return distribution{
		P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(ds[len(ds)-1]),
		Mean: ms(sum / time.Duration(len(ds))),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
