package loadgen

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// WriteSummary writes a human-readable summary of r: the run, the phase
// percentiles, the counts, the errors, the steps, the thresholds and the
// warnings.
func WriteSummary(w io.Writer, r *result.Result) error {
	var b strings.Builder
	run := r.Run
	shard := ""
	if run.Shard != nil {
		shard = ", shard " + run.Shard.String()
	}
	if len(r.Shards) > 0 {
		shard = fmt.Sprintf(", merged from %d shards", len(r.Shards))
	}
	fmt.Fprintf(&b, "%s against %s, %s loop, %s%s, stopped by %s\n",
		run.Scenario, run.Target, run.Options.Mode, r.Duration().Round(time.Millisecond), shard, run.StopReason)
	if run.TLS.Version != "" {
		fmt.Fprintf(&b, "TLS: %s\n", joinNonEmpty(", ", run.TLS.Version, run.TLS.CipherSuite, run.TLS.Group, "server "+run.TLS.ServerCN))
	}

	b.WriteString("\n")
	table := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(table, "phase\tcount\tp50\tp90\tp99\tp99.9\tmax\t")
	for _, name := range result.Phases() {
		h := r.Phase(name)
		if h.Count() == 0 {
			continue
		}
		fmt.Fprintf(table, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, h.Count(),
			formatLatency(h.Quantile(0.5)), formatLatency(h.Quantile(0.9)), formatLatency(h.Quantile(0.99)),
			formatLatency(h.Quantile(0.999)), formatLatency(h.Max()))
	}
	table.Flush()

	c := r.Counts
	seconds := r.Duration().Seconds()
	fmt.Fprintf(&b, "\nunits: %d started, %d completed (%.1f/s), %d failed, %d never started\n",
		c.Started, c.Completed, float64(c.Completed)/max(seconds, 1e-9), c.Failed, c.Unstarted)
	if c.ResumeOffered > 0 || c.Resumed > 0 {
		fmt.Fprintf(&b, "resumption: %d offered a session ticket, %d resumed, %d full handshakes\n", c.ResumeOffered, c.Resumed, c.FullHandshakes)
	}
	if c.MessagesSent > 0 {
		fmt.Fprintf(&b, "messages: %d sent, %d accepted (%.1f/s), %d rejected",
			c.MessagesSent, c.MessagesAccepted, float64(c.MessagesAccepted)/max(seconds, 1e-9), c.MessagesRejected)
		// Only the relay scenario runs a sink that counts deliveries.
		if run.Scenario == result.ScenarioRelay {
			fmt.Fprintf(&b, ", %d delivered to the sink", c.MessagesDelivered)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "generator CPU: %.2fs user, %.2fs system, %.0f µs per handshake, %.0f µs per message, %.0f%% of its cores\n",
		r.CPU.UserSeconds, r.CPU.SystemSeconds, r.CPU.PerHandshakeUS, r.CPU.PerMessageUS, r.CPU.Utilization*100)

	if len(r.Errors) > 0 {
		b.WriteString("\nerrors:\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "  %6d  %s at %s: %s (%s)\n", e.Count, e.Class, e.Phase, e.Key, e.Example)
		}
	}
	for _, s := range r.Steps {
		verdict := ""
		if s.Passed != nil && *s.Passed {
			verdict = ", passed"
		} else if s.Passed != nil {
			verdict = ", failed: " + s.Reason
		}
		fmt.Fprintf(&b, "step %d: %.1f/s, %d started, %d failed, p99 %s, lag p99 %s%s\n",
			s.Index+1, s.Rate, s.Started, s.Failed, formatLatency(s.Latency.Quantile(0.99)), formatLatency(s.Lag.Quantile(0.99)), verdict)
	}
	if fm := r.FindMax; fm != nil {
		fmt.Fprintf(&b, "find-max: highest sustainable rate %.1f/s (%s)\n", fm.MaxSustainableRate, fm.Reason)
	}
	if len(r.Thresholds) > 0 {
		b.WriteString("\nthresholds:\n")
		for _, t := range r.Thresholds {
			verdict := "pass"
			if !t.Passed {
				verdict = "FAIL: " + t.Detail
			}
			fmt.Fprintf(&b, "  %s: %s\n", t.Expression, verdict)
		}
	}
	for _, warning := range run.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", warning)
	}

	_, err := io.WriteString(w, b.String())
	return err
}

func formatLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}
