package conform

import (
	"fmt"
	"io"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/result"
)

// Change is one clause whose verdict differs between a baseline and a new
// result.
type Change struct {
	ID    string
	Level string
	// Old is the baseline's verdict, or "" when the baseline lacks the
	// clause; New is the new result's verdict, or "" when it lacks it.
	Old, New result.Verdict
	// Reason is the new result's reason, or the baseline's when the new
	// result lacks the clause.
	Reason string
}

// Diff is the comparison of a new result with a baseline.
type Diff struct {
	// Regressions are the clauses that fail now and did not fail in the
	// baseline, including clauses that the baseline lacks.
	Regressions []Change
	// Fixes are the clauses that failed in the baseline and now pass, or
	// get warn or info.
	Fixes []Change
	// Other lists every other change of verdict, such as a new warning, a
	// harness error, or a failed clause that is now skipped.
	Other []Change
}

// CompareBaseline compares next with the baseline old, clause by clause.
// A fail verdict that was already in the baseline is no regression, so a
// vendor can adopt the suite before passing every clause.
func CompareBaseline(old, next *result.Result) Diff {
	var d Diff
	before := map[string]result.Clause{}
	for _, c := range old.Clauses {
		before[c.ID] = c
	}
	seen := map[string]bool{}

	for _, c := range next.Clauses {
		seen[c.ID] = true
		prior, ok := before[c.ID]
		change := Change{ID: c.ID, Level: c.Level, New: c.Verdict, Reason: c.Reason}
		if ok {
			change.Old = prior.Verdict
		}
		switch {
		case change.Old == change.New:
		case change.New == result.Fail:
			d.Regressions = append(d.Regressions, change)
		case change.Old == result.Fail && isMet(change.New):
			d.Fixes = append(d.Fixes, change)
		default:
			d.Other = append(d.Other, change)
		}
	}
	for _, c := range old.Clauses {
		if !seen[c.ID] {
			d.Other = append(d.Other, Change{ID: c.ID, Level: c.Level, Old: c.Verdict, Reason: c.Reason})
		}
	}
	return d
}

// isMet reports whether v means that the server met the clause: pass, or
// a verdict that records a fact or a recommendation without a failure.
func isMet(v result.Verdict) bool {
	return v == result.Pass || v == result.Warn || v == result.Info
}

// WriteBaselineText writes the diff for a terminal or a CI log.
func WriteBaselineText(w io.Writer, d Diff) error {
	var out strings.Builder
	fmt.Fprintf(&out, "%s, %s, %s against the baseline\n",
		plural(len(d.Regressions), "regression"), plural(len(d.Fixes), "fix"), plural(len(d.Other), "other change"))
	for _, group := range []struct {
		title   string
		changes []Change
	}{
		{"new failures", d.Regressions},
		{"fixed", d.Fixes},
		{"other changes", d.Other},
	} {
		if len(group.changes) == 0 {
			continue
		}
		fmt.Fprintf(&out, "%s:\n", group.title)
		for _, c := range group.changes {
			fmt.Fprintf(&out, "  %s [%s]: %s -> %s: %s\n", c.ID, c.Level, verdictOrNone(c.Old), verdictOrNone(c.New), c.Reason)
		}
	}
	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("write baseline comparison: %w", err)
	}
	return nil
}

// WriteBaselineMarkdown writes the diff for a CI job summary.
func WriteBaselineMarkdown(w io.Writer, d Diff) error {
	var out strings.Builder
	status := "✅ no regressions"
	if len(d.Regressions) > 0 {
		status = fmt.Sprintf("❌ %s", plural(len(d.Regressions), "regression"))
	}
	fmt.Fprintf(&out, "## AMTP conformance against the baseline: %s\n\n", status)
	fmt.Fprintf(&out, "%s, %s, %s.\n\n", plural(len(d.Regressions), "new failure"), plural(len(d.Fixes), "fix"), plural(len(d.Other), "other change"))
	for _, group := range []struct {
		title   string
		changes []Change
	}{
		{"New failures", d.Regressions},
		{"Fixed", d.Fixes},
		{"Other changes", d.Other},
	} {
		if len(group.changes) == 0 {
			continue
		}
		fmt.Fprintf(&out, "### %s\n\n| Clause | Level | Baseline | Now | Reason |\n| --- | --- | --- | --- | --- |\n", group.title)
		for _, c := range group.changes {
			fmt.Fprintf(&out, "| `%s` | %s | %s | %s | %s |\n", codeSafe(c.ID), escapeMarkdown(c.Level),
				verdictOrNone(c.Old), verdictOrNone(c.New), escapeMarkdown(c.Reason))
		}
		out.WriteString("\n")
	}
	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("write Markdown baseline comparison: %w", err)
	}
	return nil
}

func verdictOrNone(v result.Verdict) string {
	if v == "" {
		return "(absent)"
	}
	return string(v)
}
