package load

import (
	"fmt"
	"math"
	"strconv"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// percentileTicks are the quantiles of a percentile distribution plot.
// The x axis shows 1/(1-q) on a log scale, as HdrHistogram's plots do, so
// the tail gets as much room as the median.
func distributionPoints(h *result.Histogram) []Point {
	if h.Count() == 0 {
		return nil
	}
	// The last point is the quantile of the highest value: beyond
	// 1 - 1/count the distribution has no more resolution.
	limit := math.Min(float64(h.Count()), 1e6)
	var points []Point
	for i := 0; ; i++ {
		x := math.Pow(10, float64(i)/20)
		if x > limit {
			break
		}
		q := 1 - 1/x
		points = append(points, Point{X: x, Y: ms(h.Quantile(q))})
	}
	points = append(points, Point{X: limit, Y: ms(h.Max())})
	return points
}

func percentileTick(x float64) string {
	if x <= 1 {
		return "0%"
	}
	q := 100 * (1 - 1/x)
	return strconv.FormatFloat(q, 'f', -1, 64) + "%"
}

func secondsTick(v float64) string {
	switch {
	case v >= 3600:
		return fmt.Sprintf("%.1fh", v/3600)
	case v >= 120:
		return fmt.Sprintf("%.0fm", v/60)
	default:
		return fmt.Sprintf("%.0fs", v)
	}
}

func numberTick(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func msTick(v float64) string {
	return strconv.FormatFloat(v, 'g', 4, 64) + " ms"
}

// throughputChart plots units started, completed and failed, and messages
// accepted, per second over time.
func throughputChart(intervals []Interval) LineChart {
	series := []struct {
		name, class string
		value       func(Interval) int64
	}{
		{"started/s", "s1", func(iv Interval) int64 { return iv.Started }},
		{"completed/s", "s2", func(iv Interval) int64 { return iv.Completed }},
		{"failed/s", "s3", func(iv Interval) int64 { return iv.Failed }},
		{"messages accepted/s", "s4", func(iv Interval) int64 { return iv.Accepted }},
	}
	chart := LineChart{Title: "Throughput over time", XLabel: "time since start", YLabel: "per second",
		XTick: secondsTick, YTick: numberTick}
	for _, s := range series {
		line := Series{Name: s.name, Class: s.class}
		for _, iv := range intervals {
			line.Points = append(line.Points, Point{X: iv.Offset, Y: iv.Rate(s.value(iv))})
		}
		chart.Series = append(chart.Series, line)
	}
	return chart
}

// latencyChart plots percentiles of the total latency of the units that
// finished in each interval.
func latencyChart(intervals []Interval) LineChart {
	chart := LineChart{Title: "Latency percentiles over time", XLabel: "time since start", YLabel: "latency of a unit",
		XTick: secondsTick, YTick: msTick}
	for i, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"max", 1}} {
		line := Series{Name: q.name, Class: fmt.Sprintf("s%d", i+1)}
		for _, iv := range intervals {
			line.Points = append(line.Points, Point{X: iv.Offset, Y: quantileLatency(iv.Latency, q.q)})
		}
		chart.Series = append(chart.Series, line)
	}
	return chart
}

// distributionChart plots the percentile distribution of the named
// histograms.
func distributionChart(title string, named []namedHistogram) LineChart {
	chart := LineChart{Title: title, XLabel: "percentile", YLabel: "latency", XTick: percentileTick, YTick: msTick, LogX: true}
	for i, n := range named {
		chart.Series = append(chart.Series, Series{Name: n.name, Class: fmt.Sprintf("s%d", i+1), Points: distributionPoints(n.histogram)})
	}
	return chart
}

type namedHistogram struct {
	name      string
	histogram *result.Histogram
}

// phaseChart draws the median of each phase over its 99th percentile.
// The total and the generator's lag are left out: they span the phases.
func phaseChart(rows []PhaseRow) BarChart {
	chart := BarChart{Title: "Latency per phase: p50 over p99", Class: "p99", OverlayClass: "p50"}
	for _, row := range rows {
		if row.Name == result.PhaseTotal || row.Name == result.PhaseLag {
			continue
		}
		chart.Bars = append(chart.Bars, Bar{
			Label: row.Name, Value: ms(row.P99), Overlay: ms(row.P50),
			Text: "p50 " + formatDuration(row.P50) + ", p99 " + formatDuration(row.P99),
		})
	}
	return chart
}

// errorChart draws the error counts of the given classes.
func errorChart(title string, errors []result.ErrorCount, classes ...string) BarChart {
	chart := BarChart{Title: title, Class: "errors"}
	for _, e := range errors {
		for _, class := range classes {
			if e.Class == class {
				chart.Bars = append(chart.Bars, Bar{Group: e.Phase, Label: e.Key, Value: float64(e.Count), Text: strconv.FormatInt(e.Count, 10)})
			}
		}
	}
	return chart
}
