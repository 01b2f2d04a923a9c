package report

import "math"

// MaxPlotPoints caps the points of one plotted line (one series of one plot). A plot is about
// 800 px wide, so more points cannot be seen; the cap keeps a report of hours of stats from
// 100 tracks at a few MB. A longer series is cut into MaxPlotPoints/2 equal time buckets, each
// keeping its lowest and highest point, so spikes and dips survive (see downsample).
const MaxPlotPoints = 1000

// point is one value of a series at T ms from the recording start. A NaN V is a break: the line
// stops there (the track was not live, or the value was unknown) and starts again at the next
// point.
type point struct {
	T int64
	V float64
}

func brk(t int64) point { return point{T: t, V: math.NaN()} }

func (p point) isBreak() bool { return math.IsNaN(p.V) }

// downsample returns pts (sorted by T) with at most max valid points.
//
// The rule (min/max buckets): a series with at most max valid points is kept as it is.
// Otherwise its time range is cut into max/2 buckets of equal duration and each bucket keeps two
// of its points, the lowest and the highest (in time order; one when they are the same point),
// so that a one-sample spike or dip survives at any zoom. A bucket that holds a break keeps the
// break after its points, so a hole in the data stays a hole in the line (it may look up to
// one bucket narrower or wider). Empty buckets add nothing: the line just spans them, unless
// a break was recorded there.
func downsample(pts []point, max int) []point {
	valid := 0
	for _, p := range pts {
		if !p.isBreak() {
			valid++
		}
	}
	if valid <= max {
		return tidyBreaks(pts)
	}
	if max < 2 {
		max = 2
	}
	buckets := max / 2
	t0, t1 := pts[0].T, pts[len(pts)-1].T
	span := t1 - t0 + 1
	out := make([]point, 0, max+buckets)
	i := 0
	for b := 0; b < buckets && i < len(pts); b++ {
		// Bucket b holds the points with t0 + span*b/buckets <= T < t0 + span*(b+1)/buckets.
		end := t0 + int64(float64(span)*float64(b+1)/float64(buckets))
		if b == buckets-1 {
			end = t1 + 1
		}
		lo, hi := -1, -1
		hasBreak := false
		var breakAt int64
		for ; i < len(pts) && pts[i].T < end; i++ {
			p := pts[i]
			if p.isBreak() {
				if !hasBreak {
					breakAt = p.T
				}
				hasBreak = true
				continue
			}
			if lo < 0 || p.V < pts[lo].V {
				lo = i
			}
			if hi < 0 || p.V > pts[hi].V {
				hi = i
			}
		}
		switch {
		case lo < 0:
		case lo == hi:
			out = append(out, pts[lo])
		case lo < hi:
			out = append(out, pts[lo], pts[hi])
		default:
			out = append(out, pts[hi], pts[lo])
		}
		if hasBreak {
			bt := breakAt
			if n := len(out); n > 0 && out[n-1].T > bt {
				bt = out[n-1].T
			}
			out = append(out, brk(bt))
		}
	}
	return tidyBreaks(out)
}

// tidyBreaks drops leading, trailing and repeated breaks.
func tidyBreaks(pts []point) []point {
	out := pts[:0:0]
	for _, p := range pts {
		if p.isBreak() && (len(out) == 0 || out[len(out)-1].isBreak()) {
			continue
		}
		out = append(out, p)
	}
	for len(out) > 0 && out[len(out)-1].isBreak() {
		out = out[:len(out)-1]
	}
	return out
}
