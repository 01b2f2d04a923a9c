package report

import (
	"fmt"
	"math"
	"strings"
)

// Plot geometry: the time axis is the timeline's (x0 to x1).
const (
	plotH    = 230.0
	plotTop  = 14.0
	plotBot  = plotH - 30.0 // the x axis
	plotTick = 5            // about this many value ticks
)

type plotView struct {
	ID       string
	Title    string
	Unit     string
	Note     string
	W, H     int
	X0, X1   string
	Top, Bot string
	XTicks   []tick
	YTicks   []ytick
	Series   []seriesView
	Legend   []legendItem
	Styles   []legendStyle // line styles explained under the legend (loss plot)
	Empty    string        // no series: why
}

type ytick struct {
	Y     string
	Label string
}

type seriesView struct {
	Peer, Track, Kind string
	Metric            string
	Color             string
	Dashed            bool
	D                 string // SVG path
	Points            int    // plotted points (after downsampling)
	Title             string
}

type legendItem struct {
	Peer, Track, Kind string
	Color             string
	Label             string
}

type legendStyle struct {
	Dashed bool
	Label  string
}

// metric picks one value of a track's sample; ok false means no value (a break in the line).
type metric struct {
	name   string
	dashed bool
	value  func(trackSample) (float64, bool)
}

// seriesOf builds the points of one metric of tm: a break where the track is missing from the
// samples or the value is unknown.
func seriesOf(tm *trackModel, mt metric) []point {
	var pts []point
	for k, ts := range tm.stats {
		if k > 0 && !continues(tm.stats[k-1], ts) {
			pts = append(pts, brk(tm.stats[k-1].at))
		}
		v, ok := mt.value(ts)
		if !ok {
			pts = append(pts, brk(ts.at))
			continue
		}
		pts = append(pts, point{T: ts.at, V: v})
	}
	return tidyBreaks(pts)
}

type plotSpec struct {
	id, title, unit, note string
	metrics               []metric
	include               func(*trackModel) bool
	floor                 bool // the value axis starts at 0 (else at the data's minimum)
	ceil                  float64
	minSpan               float64 // the smallest value range shown
	empty                 string
}

func (md *model) plots() []plotView {
	if len(md.samples) == 0 {
		return nil
	}
	withStats := func(tm *trackModel) bool { return len(tm.stats) > 0 }
	specs := []plotSpec{
		{
			id: "plot-bitrate", title: "Bitrate", unit: "kbps", note: "RTP payload per interval",
			metrics: []metric{{name: "bitrate", value: func(s trackSample) (float64, bool) { return s.bitrateBps / 1000, true }}},
			include: withStats, floor: true, minSpan: 10, empty: "No track has stats.",
		},
		{
			id: "plot-loss", title: "Packet loss", unit: "%", note: "of expected packets per interval",
			metrics: []metric{
				{name: "loss", value: func(s trackSample) (float64, bool) { return s.lossPct, true }},
				{name: "loss-before-recovery", dashed: true, value: func(s trackSample) (float64, bool) { return s.lossBRPct, true }},
			},
			include: withStats, floor: true, minSpan: 1, empty: "No track has stats.",
		},
		{
			id: "plot-level", title: "Audio level", unit: "dBov", note: "loudest per interval; 0 = full scale",
			metrics: []metric{{name: "level", value: func(s trackSample) (float64, bool) {
				if s.level == nil {
					return 0, false
				}
				return *s.level, true
			}}},
			include: func(tm *trackModel) bool {
				if tm.ref.kind != "audio" {
					return false
				}
				for _, s := range tm.stats {
					if s.level != nil {
						return true
					}
				}
				return false
			},
			ceil: 0, minSpan: 20, empty: "No audio track carried audio levels (the RFC 6464 header extension).",
		},
	}
	var out []plotView
	for _, sp := range specs {
		out = append(out, md.plot(sp))
	}
	return out
}

func (md *model) plot(sp plotSpec) plotView {
	s := scale{md.endMs}
	pv := plotView{ID: sp.id, Title: sp.title, Unit: sp.unit, Note: sp.note, W: chartW, H: int(plotH),
		X0: f1(x0), X1: f1(x1), Top: f1(plotTop), Bot: f1(plotBot), XTicks: timeTicks(s)}

	type built struct {
		tm  *trackModel
		mt  metric
		pts []point
	}
	var series []built
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, tm := range md.tracks {
		if !sp.include(tm) {
			continue
		}
		pv.Legend = append(pv.Legend, legendItem{Peer: tm.ref.peer, Track: tm.ref.key, Kind: tm.ref.kind, Color: tm.color,
			Label: ellipsis(tm.ref.peer, 24) + " / " + ellipsis(tm.ref.key, 20) + " · " + tm.ref.kind})
		for _, mt := range sp.metrics {
			pts := downsample(seriesOf(tm, mt), MaxPlotPoints)
			for _, p := range pts {
				if !p.isBreak() {
					lo, hi = min(lo, p.V), max(hi, p.V)
				}
			}
			series = append(series, built{tm, mt, pts})
		}
	}
	if len(sp.metrics) > 1 {
		for _, mt := range sp.metrics {
			pv.Styles = append(pv.Styles, legendStyle{Dashed: mt.dashed, Label: metricText(mt.name)})
		}
	}
	if len(series) == 0 {
		pv.Empty = sp.empty
		return pv
	}
	if math.IsInf(lo, 0) { // only breaks
		lo, hi = 0, 0
	}
	// The value axis: from 0 (or the data's minimum) to the data's maximum, at least minSpan wide,
	// rounded out to nice ticks.
	var vlo, vhi float64
	if sp.floor {
		vlo, vhi = 0, max(hi, sp.minSpan)
	} else {
		vhi = sp.ceil
		vlo = min(lo, vhi-sp.minSpan)
	}
	step := niceStep((vhi - vlo) / plotTick)
	vlo, vhi = math.Floor(vlo/step)*step, math.Ceil(vhi/step)*step
	if vhi <= vlo {
		vhi = vlo + step
	}
	y := func(v float64) float64 { return plotBot - (plotBot-plotTop)*(v-vlo)/(vhi-vlo) }
	for k := 0; vlo+float64(k)*step <= vhi+step/1e6; k++ {
		v := vlo + float64(k)*step
		pv.YTicks = append(pv.YTicks, ytick{Y: f1(y(v)), Label: fmtNum(v, decimals(step))})
	}

	for _, b := range series {
		sv := seriesView{Peer: b.tm.ref.peer, Track: b.tm.ref.key, Kind: b.tm.ref.kind, Metric: b.mt.name,
			Color: b.tm.color, Dashed: b.mt.dashed}
		var d strings.Builder
		var sum, peak float64
		n, segStart := 0, true
		for i, p := range b.pts {
			if p.isBreak() {
				segStart = true
				continue
			}
			x, yy := f1(s.x(p.T)), f1(y(p.V))
			if segStart {
				fmt.Fprintf(&d, "M%s %s", x, yy)
				// A lone point between breaks: a dot (round caps draw it).
				if i+1 >= len(b.pts) || b.pts[i+1].isBreak() {
					d.WriteString("h0.1")
				}
				segStart = false
			} else {
				fmt.Fprintf(&d, "L%s %s", x, yy)
			}
			if n == 0 || p.V > peak {
				peak = p.V
			}
			sum += p.V
			n++
		}
		sv.D, sv.Points = d.String(), n
		what := metricText(b.mt.name)
		sv.Title = fmt.Sprintf("%s / %s (%s): %s", b.tm.ref.peer, b.tm.ref.key, b.tm.ref.kind, what)
		if n > 0 {
			sv.Title += fmt.Sprintf("\nmax %s %s · mean of the plotted points %s %s", fmtNum(peak, 1), sp.unit, fmtNum(sum/float64(n), 1), sp.unit)
		}
		pv.Series = append(pv.Series, sv)
	}
	return pv
}

func metricText(name string) string {
	switch name {
	case "loss":
		return "lost (never recovered)"
	case "loss-before-recovery":
		return "lost before recovery (NACK/reorder)"
	case "level":
		return "audio level"
	}
	return name
}

// niceStep rounds a raw tick step up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// decimals is how many decimals tick labels of step need.
func decimals(step float64) int {
	for d := 0; d < 6; d++ {
		if math.Abs(step*math.Pow(10, float64(d))-math.Round(step*math.Pow(10, float64(d)))) < 1e-9 {
			return d
		}
	}
	return 6
}
