package result

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Threshold is a parsed --threshold expression such as "p99(handshake)<50ms"
// or "errors<0.1%". The grammar is METRIC OP VALUE with OP one of <, <=, >
// and >=, and METRIC one of:
//
//   - pN(PHASE), mean(PHASE), min(PHASE) or max(PHASE): a latency of a
//     phase (see Phases), with a duration VALUE such as 50ms; N is a
//     percentile from 0 to 100 such as 50, 99 or 99.9;
//   - errors: failed units, as a count ("errors<10") or as a share of
//     the started units ("errors<0.1%");
//   - throughput: completed units per second over the run, such as
//     "throughput>=200" or "throughput>=200/s";
//   - resumed: the share of offered session tickets the server accepted,
//     as a percentage ("resumed>=90%").
type Threshold struct {
	Expression string
	metric     string
	phase      string
	percentile float64
	op         string
	limit      float64
	unit       string
}

var thresholdPattern = regexp.MustCompile(`^\s*([a-z_]+|p[0-9]+(?:\.[0-9]+)?)(?:\(([a-z_]+)\))?\s*(<=|>=|<|>)\s*(\S+)\s*$`)

// ParseThreshold parses one threshold expression.
func ParseThreshold(expr string) (Threshold, error) {
	m := thresholdPattern.FindStringSubmatch(expr)
	if m == nil {
		return Threshold{}, fmt.Errorf("threshold %q is invalid; write METRIC OP VALUE such as 'p99(handshake)<50ms', 'errors<0.1%%' or 'throughput>=100/s'", expr)
	}
	t := Threshold{Expression: strings.TrimSpace(expr), metric: m[1], phase: m[2], op: m[3]}
	value := m[4]

	switch {
	case t.metric == "mean" || t.metric == "min" || t.metric == "max" || strings.HasPrefix(t.metric, "p"):
		return t.parseLatency(value)
	case t.phase != "":
		return Threshold{}, fmt.Errorf("threshold %q: %s takes no phase; only pN, mean, min and max do", expr, t.metric)
	case t.metric == "errors":
		return t.parseShareOrCount(value, true)
	case t.metric == "resumed":
		if !strings.HasSuffix(value, "%") {
			return Threshold{}, fmt.Errorf("threshold %q: resumed needs a percentage such as 90%%", expr)
		}
		return t.parseShareOrCount(value, false)
	case t.metric == "throughput":
		limit, err := strconv.ParseFloat(strings.TrimSuffix(value, "/s"), 64)
		if err != nil || limit < 0 {
			return Threshold{}, fmt.Errorf("threshold %q: throughput needs a rate in units per second such as 100 or 100/s, not %q", expr, value)
		}
		t.limit, t.unit = limit, "per_second"
		return t, nil
	}
	return Threshold{}, fmt.Errorf("threshold %q has the unknown metric %q; use pN(PHASE), mean(PHASE), min(PHASE), max(PHASE), errors, throughput or resumed", expr, t.metric)
}

func (t Threshold) parseLatency(value string) (Threshold, error) {
	if t.phase == "" {
		return Threshold{}, fmt.Errorf("threshold %q: %s needs a phase in brackets, such as %s(handshake)", t.Expression, t.metric, t.metric)
	}
	if !slices.Contains(Phases(), t.phase) {
		return Threshold{}, fmt.Errorf("threshold %q has the unknown phase %q; phases are %s", t.Expression, t.phase, strings.Join(Phases(), ", "))
	}

	if p, ok := strings.CutPrefix(t.metric, "p"); ok {
		percentile, err := strconv.ParseFloat(p, 64)
		if err != nil || percentile < 0 || percentile > 100 {
			return Threshold{}, fmt.Errorf("threshold %q: percentile %q must be a number from 0 to 100", t.Expression, p)
		}
		t.percentile = percentile
	}

	d, err := time.ParseDuration(value)
	if err != nil || d < 0 {
		return Threshold{}, fmt.Errorf("threshold %q: latency limit %q must be a duration such as 50ms or 1.5s", t.Expression, value)
	}
	t.limit, t.unit = float64(d.Microseconds()), "us"
	return t, nil
}

func (t Threshold) parseShareOrCount(value string, countAllowed bool) (Threshold, error) {
	if share, ok := strings.CutSuffix(value, "%"); ok {
		percent, err := strconv.ParseFloat(share, 64)
		if err != nil || percent < 0 || percent > 100 {
			return Threshold{}, fmt.Errorf("threshold %q: %q must be a percentage from 0%% to 100%%", t.Expression, value)
		}
		t.limit, t.unit = percent/100, "ratio"
		return t, nil
	}

	count, err := strconv.ParseFloat(value, 64)
	if !countAllowed || err != nil || count < 0 {
		return Threshold{}, fmt.Errorf("threshold %q: %q must be a count such as 10 or a percentage such as 0.1%%", t.Expression, value)
	}
	t.limit, t.unit = count, "count"
	return t, nil
}

// Evaluate checks the threshold against r. A threshold on something the
// run did not measure (a phase with no samples, a share of zero units)
// fails, so that a CI check never passes on missing data.
func (t Threshold) Evaluate(r *Result) ThresholdOutcome {
	out := ThresholdOutcome{Expression: t.Expression, Limit: t.limit, Unit: t.unit}

	observed, detail := t.observe(r)
	if detail != "" {
		out.Detail = detail
		return out
	}
	out.Observed = observed

	switch t.op {
	case "<":
		out.Passed = observed < t.limit
	case "<=":
		out.Passed = observed <= t.limit
	case ">":
		out.Passed = observed > t.limit
	case ">=":
		out.Passed = observed >= t.limit
	}
	if !out.Passed {
		out.Detail = fmt.Sprintf("observed %s, limit %s %s", formatValue(observed, t.unit), t.op, formatValue(t.limit, t.unit))
	}
	return out
}

// observe returns the measured value, or a reason why there is none.
func (t Threshold) observe(r *Result) (float64, string) {
	switch t.metric {
	case "errors":
		if t.unit == "count" {
			return float64(r.Counts.Failed), ""
		}
		if r.Counts.Started == 0 {
			return 0, "no units started"
		}
		return float64(r.Counts.Failed) / float64(r.Counts.Started), ""
	case "resumed":
		if r.Counts.ResumeOffered == 0 {
			return 0, "no handshake offered a session ticket"
		}
		return float64(r.Counts.Resumed) / float64(r.Counts.ResumeOffered), ""
	case "throughput":
		seconds := r.Duration().Seconds()
		if seconds <= 0 {
			return 0, "the run has no duration"
		}
		return float64(r.Counts.Completed) / seconds, ""
	}

	h := r.Phase(t.phase)
	if h.Count() == 0 {
		return 0, fmt.Sprintf("no samples in phase %s", t.phase)
	}
	var d time.Duration
	switch t.metric {
	case "mean":
		d = h.Mean()
	case "min":
		d = h.Min()
	case "max":
		d = h.Max()
	default:
		d = h.Quantile(t.percentile / 100)
	}
	return float64(d.Microseconds()), ""
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "us":
		return (time.Duration(v) * time.Microsecond).String()
	case "ratio":
		return strconv.FormatFloat(v*100, 'g', 4, 64) + "%"
	case "per_second":
		return strconv.FormatFloat(v, 'f', 1, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// EvaluateAll parses and evaluates each expression against r.
func EvaluateAll(r *Result, exprs []string) ([]ThresholdOutcome, error) {
	var out []ThresholdOutcome
	for _, expr := range exprs {
		t, err := ParseThreshold(expr)
		if err != nil {
			return nil, err
		}
		out = append(out, t.Evaluate(r))
	}
	return out, nil
}

// ThresholdsPassed reports whether every threshold outcome of r passed.
func (r *Result) ThresholdsPassed() bool {
	for _, o := range r.Thresholds {
		if !o.Passed {
			return false
		}
	}
	return true
}
