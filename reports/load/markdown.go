package load

import (
	"fmt"
	"io"
	"strings"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// WriteMarkdown writes a summary of r for a CI job summary: the headline
// figures, the thresholds, the latency per phase and the errors.
func WriteMarkdown(w io.Writer, r *result.Result) error {
	var out strings.Builder
	s := Summarize(r)
	status := "✅"
	if !r.ThresholdsPassed() {
		status = "❌ thresholds failed"
	}
	fmt.Fprintf(&out, "## AMTP load run against %s %s\n\n", inlineCode(r.Run.Target), status)
	fmt.Fprintf(&out, "%s scenario, %s loop, %.1f s: %d units completed, %d failed (%.2f %%), %.1f units/s, %.1f messages/s.\n\n",
		r.Run.Scenario, r.Run.Options.Mode, s.Duration.Seconds(), r.Counts.Completed, r.Counts.Failed,
		100*s.ErrorRatio, s.Throughput, s.MessageRate)

	if len(r.Thresholds) > 0 {
		out.WriteString("| Threshold | Outcome | Observed | Limit |\n| --- | --- | ---: | ---: |\n")
		for _, t := range r.Thresholds {
			outcome := "passed"
			if !t.Passed {
				outcome = "**failed**"
			}
			fmt.Fprintf(&out, "| %s | %s | %s | %s |\n", inlineCode(t.Expression), outcome, formatThreshold(t.Unit, t.Observed), formatThreshold(t.Unit, t.Limit))
		}
		out.WriteString("\n")
	}

	out.WriteString("| Phase | Count | p50 | p90 | p99 | p99.9 | Max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, row := range PhaseRows(r) {
		fmt.Fprintf(&out, "| %s | %d | %s | %s | %s | %s | %s |\n", row.Name, row.Count,
			formatDuration(row.P50), formatDuration(row.P90), formatDuration(row.P99), formatDuration(row.P999), formatDuration(row.Max))
	}
	out.WriteString("\n")

	if len(r.Errors) > 0 {
		out.WriteString("<details><summary>Errors</summary>\n\n| Class | Phase | Key | Count |\n| --- | --- | --- | ---: |\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&out, "| %s | %s | %s | %d |\n", e.Class, e.Phase, inlineCode(e.Key), e.Count)
		}
		out.WriteString("\n</details>\n")
	}

	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("write Markdown load summary: %w", err)
	}
	return nil
}

// inlineCode puts s in a code span, in which Markdown and HTML are not
// interpreted. Backticks, pipes and line breaks would end the span or
// the table row, so they are replaced.
func inlineCode(s string) string {
	return "`" + strings.NewReplacer("`", "'", "|", "¦", "\r", " ", "\n", " ").Replace(s) + "`"
}
