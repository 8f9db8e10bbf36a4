// Package load renders a load result (package loadgen/result) as one
// self-contained HTML page with inline SVG plots, and two results side by
// side.
package load

import (
	"fmt"
	"math"
	"time"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// maxPoints is the number of points per series in the plots over time. A
// longer run is shown in intervals of several seconds each, whose
// histograms are merged exactly, so that an hour-long or day-long run
// still gives a page of a few hundred kilobytes.
const maxPoints = 720

// Interval is the activity of one point of the plots over time: one or
// several consecutive seconds of the timeline.
type Interval struct {
	// Offset is the time from the start of the run to the interval's
	// start, in seconds.
	Offset float64
	// Seconds is the length of the interval.
	Seconds float64
	result.Activity
	Latency *result.Histogram
}

// Rate returns n per second of the interval.
func (iv Interval) Rate(n int64) float64 {
	return float64(n) / iv.Seconds
}

// Intervals returns the timeline of r in at most maxPoints intervals of
// equal length, counted from the run's start. Seconds without activity
// are intervals with zero counts and no latency.
func Intervals(r *result.Result) []Interval {
	if len(r.Timeline) == 0 {
		return nil
	}
	first := r.Timeline[0].Unix
	if !r.Run.Start.IsZero() {
		first = min(first, r.Run.Start.Unix())
	}
	last := r.Timeline[len(r.Timeline)-1].Unix
	span := last - first + 1
	width := max((span+maxPoints-1)/maxPoints, 1)

	intervals := make([]Interval, (span+width-1)/width)
	latencies := make([][]*result.Histogram, len(intervals))
	for i := range intervals {
		intervals[i].Offset = float64(int64(i) * width)
		intervals[i].Seconds = float64(width)
	}
	for _, second := range r.Timeline {
		i := (second.Unix - first) / width
		intervals[i].Activity.Add(second.Activity)
		if second.Latency.Count() > 0 {
			latencies[i] = append(latencies[i], second.Latency)
		}
	}
	for i, list := range latencies {
		switch len(list) {
		case 0:
		case 1:
			intervals[i].Latency = list[0]
		default:
			intervals[i].Latency = result.MergeHistograms(list...)
		}
	}
	return intervals
}

// PhaseRow is the latency summary of one phase.
type PhaseRow struct {
	Name                                string
	Count                               int64
	Min, P50, P90, P99, P999, Max, Mean time.Duration
}

// PhaseRows returns one row per phase of r, in session order.
func PhaseRows(r *result.Result) []PhaseRow {
	var rows []PhaseRow
	for _, name := range result.Phases() {
		h := r.Phase(name)
		if h.Count() == 0 {
			continue
		}
		rows = append(rows, PhaseRow{
			Name: name, Count: h.Count(),
			Min: h.Min(), P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99),
			P999: h.Quantile(0.999), Max: h.Max(), Mean: h.Mean(),
		})
	}
	return rows
}

// Summary are the headline figures of a run.
type Summary struct {
	Duration time.Duration
	// Throughput is completed units per second of the run's duration.
	Throughput float64
	// MessageRate is accepted messages per second.
	MessageRate float64
	// ErrorRatio is failed units over finished units.
	ErrorRatio float64
	Total      PhaseRow
}

// Summarize computes the headline figures of r.
func Summarize(r *result.Result) Summary {
	s := Summary{Duration: r.Duration()}
	if seconds := s.Duration.Seconds(); seconds > 0 {
		s.Throughput = float64(r.Counts.Completed) / seconds
		s.MessageRate = float64(r.Counts.MessagesAccepted) / seconds
	}
	if finished := r.Counts.Completed + r.Counts.Failed; finished > 0 {
		s.ErrorRatio = float64(r.Counts.Failed) / float64(finished)
	}
	for _, row := range PhaseRows(r) {
		if row.Name == result.PhaseTotal {
			s.Total = row
		}
	}
	return s
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}

// formatDuration prints a latency with three significant digits.
func formatDuration(d time.Duration) string {
	value := ms(d)
	switch {
	case d == 0:
		return "0"
	case value < 1:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case value < 10:
		return fmt.Sprintf("%.2f ms", value)
	case value < 100:
		return fmt.Sprintf("%.1f ms", value)
	case value < 10000:
		return fmt.Sprintf("%.0f ms", value)
	default:
		return fmt.Sprintf("%.1f s", value/1000)
	}
}

// quantileLatency returns the latency at quantile q in milliseconds, or
// NaN for an empty histogram, which leaves a gap in a plot.
func quantileLatency(h *result.Histogram, q float64) float64 {
	if h.Count() == 0 {
		return math.NaN()
	}
	return ms(h.Quantile(q))
}
