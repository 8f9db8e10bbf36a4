package load

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"time"

	"github.com/amtp-toolkit/amtp/loadgen/result"
	"github.com/amtp-toolkit/amtp/reports/internal/page"
)

// Named is a load result with the name it has in a comparison.
type Named struct {
	Name   string
	Result *result.Result
}

// MetricRow is one figure of two runs.
type MetricRow struct {
	Name string
	A, B string
	// Change is B relative to A, such as "+12.5 %", or "" when A is zero.
	Change string
	// Worse is true when the change is for the worse by more than 5 %.
	Worse bool
}

//go:embed compare.html.tmpl
var compareTemplate string

var comparePage = template.Must(template.New("compare").Funcs(funcs).Parse(compareTemplate))

// WriteCompareHTML writes two load results side by side on one
// self-contained page. It shows the headline figures and the percentiles
// per phase of both runs with the change from the first to the second.
// Its plots of throughput, p99 latency over time and the percentile
// distribution have one line per run.
func WriteCompareHTML(w io.Writer, a, b Named) error {
	data := struct {
		A, B            Named
		Metrics, Phases []MetricRow
		Throughput      template.HTML
		Latency         template.HTML
		Percentile      template.HTML
		Errors          template.HTML
		CSS             template.CSS
		Print           template.JS
	}{A: a, B: b, CSS: page.CSS, Print: page.PrintScript}

	data.Metrics = compareMetrics(a.Result, b.Result)
	data.Phases = comparePhases(a.Result, b.Result)
	data.Throughput = overlayChart("Completed units per second", "per second", numberTick, a, b, func(iv Interval) float64 { return iv.Rate(iv.Completed) }).SVG()
	data.Latency = overlayChart("p99 latency of a unit over time", "latency", msTick, a, b, func(iv Interval) float64 { return quantileLatency(iv.Latency, 0.99) }).SVG()
	data.Percentile = distributionChart("Percentile distribution of a unit", []namedHistogram{
		{a.Name, a.Result.Phase(result.PhaseTotal)}, {b.Name, b.Result.Phase(result.PhaseTotal)},
	}).SVG()
	data.Errors = errorComparison(a, b).SVG()

	if err := comparePage.Execute(w, data); err != nil {
		return fmt.Errorf("write HTML load comparison: %w", err)
	}
	return nil
}

// overlayChart plots one value per interval of both runs, each against
// the time since its own start.
func overlayChart(title, yLabel string, yTick func(float64) string, a, b Named, value func(Interval) float64) LineChart {
	chart := LineChart{Title: title, XLabel: "time since start", YLabel: yLabel, XTick: secondsTick, YTick: yTick}
	for i, named := range []Named{a, b} {
		line := Series{Name: named.Name, Class: fmt.Sprintf("s%d", i+1)}
		for _, iv := range Intervals(named.Result) {
			line.Points = append(line.Points, Point{X: iv.Offset, Y: value(iv)})
		}
		chart.Series = append(chart.Series, line)
	}
	return chart
}

// errorComparison draws the error counts of both runs, one bar per run
// and error key.
func errorComparison(a, b Named) BarChart {
	chart := BarChart{Title: "Errors of both runs", Class: "errors"}
	for _, named := range []Named{a, b} {
		for _, e := range named.Result.Errors {
			chart.Bars = append(chart.Bars, Bar{Group: named.Name, Label: e.Class + " " + e.Key, Value: float64(e.Count), Text: fmt.Sprint(e.Count)})
		}
	}
	return chart
}

func compareMetrics(a, b *result.Result) []MetricRow {
	sa, sb := Summarize(a), Summarize(b)
	rate := func(f float64) string { return fmt.Sprintf("%.1f/s", f) }
	return []MetricRow{
		metricRow("units completed per second", sa.Throughput, sb.Throughput, rate, true),
		metricRow("messages accepted per second", sa.MessageRate, sb.MessageRate, rate, true),
		metricRow("failed units", sa.ErrorRatio, sb.ErrorRatio, func(f float64) string { return fmt.Sprintf("%.2f %%", 100*f) }, false),
		durationRow("p50 of a unit", sa.Total.P50, sb.Total.P50),
		durationRow("p99 of a unit", sa.Total.P99, sb.Total.P99),
		durationRow("max of a unit", sa.Total.Max, sb.Total.Max),
		metricRow("run length", sa.Duration.Seconds(), sb.Duration.Seconds(), func(f float64) string { return fmt.Sprintf("%.0f s", f) }, true),
	}
}

// comparePhases returns the p50 and p99 of each phase that either run
// has.
func comparePhases(a, b *result.Result) []MetricRow {
	var rows []MetricRow
	for _, phase := range result.Phases() {
		ha, hb := a.Phase(phase), b.Phase(phase)
		if ha.Count() == 0 && hb.Count() == 0 {
			continue
		}
		rows = append(rows,
			durationRow(phase+" p50", ha.Quantile(0.5), hb.Quantile(0.5)),
			durationRow(phase+" p99", ha.Quantile(0.99), hb.Quantile(0.99)))
	}
	return rows
}

func durationRow(name string, a, b time.Duration) MetricRow {
	return metricRow(name, ms(a), ms(b), func(f float64) string { return formatDuration(time.Duration(f * float64(time.Millisecond))) }, false)
}

// metricRow compares two values. higherIsBetter is true when a higher
// value is an improvement.
func metricRow(name string, a, b float64, format func(float64) string, higherIsBetter bool) MetricRow {
	row := MetricRow{Name: name, A: format(a), B: format(b)}
	if a == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return row
	}
	change := (b - a) / a
	row.Change = fmt.Sprintf("%+.1f %%", 100*change)
	if higherIsBetter {
		row.Worse = change < -0.05
	} else {
		row.Worse = change > 0.05
	}
	return row
}
