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
	// baseline, including clauses that the baseline lacks. They also
	// include the clauses that passed in the baseline and now get error,
	// because the suite can no longer confirm the pass.
	Regressions []Change
	// Fixes are the clauses that failed in the baseline and now pass, or
	// get warn or info.
	Fixes []Change
	// Other lists every other change of verdict, such as a new warning, a
	// skipped clause that now gets error, or a failed clause that is now
	// skipped.
	Other []Change
	// Environment describes each difference in what ran, such as the
	// target or --strict, as "strict (baseline false, now true)". A
	// comparison of runs that differ there may show changes that no
	// change of the server caused.
	Environment []string
}

// CompareBaseline compares next with the baseline old, clause by clause.
// A fail verdict that was already in the baseline is no regression, so a
// vendor can adopt the suite before passing every clause. A pass that
// became fail or error is one.
func CompareBaseline(old, next *result.Result) Diff {
	d := Diff{Environment: environmentChanges(old.Environment, next.Environment)}
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
		case change.New == result.Fail, change.Old == result.Pass && change.New == result.Error:
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

// environmentChanges lists the differences between two runs in the facts
// that decide what a clause's verdict means: the target, the draft, the
// suite version and the options that select or judge clauses. Paths and
// addresses that only locate files, such as the PKI folder or the DNS
// listener, are left out because they change from one CI job to the
// next. For the Maildir and the sinks only whether they were set counts,
// because that decides whether the delivery checks ran.
func environmentChanges(old, next result.Environment) []string {
	type fact struct {
		name          string
		before, after string
	}
	setOrNot := func(s string) string {
		if s == "" {
			return "not set"
		}
		return "set"
	}
	o, n := old.Options, next.Options
	facts := []fact{
		{"target", old.Target, next.Target},
		{"draft", old.Draft, next.Draft},
		{"suite version", old.SuiteVersion, next.SuiteVersion},
		{"strict", fmt.Sprint(o.Strict), fmt.Sprint(n.Strict)},
		{"target6", o.Target6, n.Target6},
		{"private_target", o.PrivateTarget, n.PrivateTarget},
		{"server_name", o.ServerName, n.ServerName},
		{"dns_mode", o.DNSMode, n.DNSMode},
		{"recipient", o.Recipient, n.Recipient},
		{"maildir", setOrNot(o.Maildir), setOrNot(n.Maildir)},
		{"gateway_sink", setOrNot(o.GatewaySink), setOrNot(n.GatewaySink)},
		{"private_sink", setOrNot(o.PrivateSink), setOrNot(n.PrivateSink)},
		{"server_timeout", o.ServerTimeout, n.ServerTimeout},
		{"step_timeout", o.StepTimeout, n.StepTimeout},
		{"focus", strings.Join(o.Focus, " "), strings.Join(n.Focus, " ")},
		{"skip", strings.Join(o.Skip, " "), strings.Join(n.Skip, " ")},
		{"label_filter", o.LabelFilter, n.LabelFilter},
	}

	var changes []string
	for _, f := range facts {
		if f.before != f.after {
			changes = append(changes, fmt.Sprintf("%s (baseline %s, now %s)", f.name, valueOrNone(f.before), valueOrNone(f.after)))
		}
	}
	return changes
}

func valueOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// changeGroup is one kind of change in a Diff, with its heading.
type changeGroup struct {
	Title   string
	Changes []Change
}

// groups returns the regressions, fixes and other changes of d, in the
// order in which every report lists them.
func (d Diff) groups() []changeGroup {
	return []changeGroup{
		{"Regressions (new fail, or pass to error)", d.Regressions},
		{"Fixed", d.Fixes},
		{"Other changes", d.Other},
	}
}

// counts returns the number of changes of each kind, such as
// "1 regression, 0 fixes, 2 other changes".
func (d Diff) counts() string {
	return fmt.Sprintf("%s, %s, %s", plural(len(d.Regressions), "regression"), plural(len(d.Fixes), "fix"), plural(len(d.Other), "other change"))
}

// WriteBaselineText writes the diff for a terminal or a CI log.
func WriteBaselineText(w io.Writer, d Diff) error {
	var out strings.Builder
	fmt.Fprintf(&out, "%s against the baseline\n", d.counts())
	for _, group := range d.groups() {
		if len(group.Changes) == 0 {
			continue
		}
		fmt.Fprintf(&out, "%s:\n", strings.ToLower(group.Title[:1])+group.Title[1:])
		for _, c := range group.Changes {
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
	fmt.Fprintf(&out, "%s.\n\n", d.counts())
	if len(d.Environment) > 0 {
		out.WriteString("> [!WARNING]\n> The baseline and this run differ in what ran, so some changes may not come from the server:\n")
		for _, change := range d.Environment {
			fmt.Fprintf(&out, "> - %s\n", escapeMarkdown(change))
		}
		out.WriteString("\n")
	}
	for _, group := range d.groups() {
		if len(group.Changes) == 0 {
			continue
		}
		fmt.Fprintf(&out, "### %s\n\n| Clause | Level | Baseline | Now | Reason |\n| --- | --- | --- | --- | --- |\n", group.Title)
		for _, c := range group.Changes {
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
