package load

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/amtp-toolkit/amtp/loadgen/result"
	"github.com/amtp-toolkit/amtp/reports/internal/page"
)

//go:embed load.html.tmpl
var loadTemplate string

var funcs = template.FuncMap{
	"duration": formatDuration,
	"percent":  func(f float64) string { return fmt.Sprintf("%.2f %%", 100*f) },
	"rate":     func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"seconds":  func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) },
	"us":       func(f float64) string { return formatDuration(time.Duration(f * float64(time.Microsecond))) },
	"mulf":     func(f float64) float64 { return 100 * f },
	"threshold": func(o result.ThresholdOutcome, v float64) string {
		return formatThreshold(o.Unit, v)
	},
}

var loadPage = template.Must(template.New("load").Funcs(funcs).Parse(loadTemplate))

type loadReport struct {
	R          *result.Result
	Summary    Summary
	Phases     []PhaseRow
	Throughput template.HTML
	Latency    template.HTML
	PhaseBars  template.HTML
	Percentile template.HTML
	Replies    template.HTML
	Alerts     template.HTML
	Others     template.HTML
	Passed     bool
	// HasSink is true for the relay scenario, the only one with a sink
	// that counts deliveries.
	HasSink bool
	CSS     template.CSS
	Print   template.JS
}

// WriteHTML writes r as one self-contained HTML page with the run's
// fingerprint, headline figures and thresholds. Its plots show throughput
// and latency percentiles over time, latency per phase, the percentile
// distribution and the errors by reply code and TLS alert, and tables
// give the same figures.
func WriteHTML(w io.Writer, r *result.Result) error {
	intervals := Intervals(r)
	phases := PhaseRows(r)
	data := loadReport{
		R:          r,
		Summary:    Summarize(r),
		Phases:     phases,
		Throughput: throughputChart(intervals).SVG(),
		Latency:    latencyChart(intervals).SVG(),
		PhaseBars:  phaseChart(phases).SVG(),
		Percentile: distributionChart("Percentile distribution", distributionSeries(r)).SVG(),
		Replies:    errorChart("Errors by reply code", r.Errors, result.ErrorReply).SVG(),
		Alerts:     errorChart("Errors by TLS alert", r.Errors, result.ErrorTLSAlert).SVG(),
		Others:     errorChart("Other errors", r.Errors, result.ErrorTLS, result.ErrorNetwork, result.ErrorProtocol).SVG(),
		Passed:     r.ThresholdsPassed(),
		HasSink:    r.Run.Scenario == result.ScenarioRelay,
		CSS:        page.CSS,
		Print:      page.PrintScript,
	}
	if err := loadPage.Execute(w, data); err != nil {
		return fmt.Errorf("write HTML load report: %w", err)
	}
	return nil
}

// distributionSeries returns the total latency and, when the run has
// them, the handshake and delivery latencies.
func distributionSeries(r *result.Result) []namedHistogram {
	var named []namedHistogram
	for _, phase := range []string{result.PhaseTotal, result.PhaseHandshake, result.PhaseResumedHandshake, result.PhaseDelivery} {
		if h := r.Phase(phase); h.Count() > 0 {
			named = append(named, namedHistogram{phase, h})
		}
	}
	return named
}

// formatThreshold prints a threshold value in its unit.
func formatThreshold(unit string, v float64) string {
	switch unit {
	case "us":
		return formatDuration(time.Duration(v * float64(time.Microsecond)))
	case "ratio":
		return fmt.Sprintf("%.3g %%", 100*v)
	case "per_second":
		return fmt.Sprintf("%.1f/s", v)
	default:
		return fmt.Sprintf("%g", v)
	}
}
