package conform

import (
	"fmt"
	"io"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/result"
)

// markdownMaxListed is the number of clauses per verdict that a Markdown
// summary lists one by one. GitHub rejects a step summary larger than
// 1 MiB, and a run whose baseline session failed has hundreds of clauses
// with one shared reason.
const markdownMaxListed = 100

// WriteMarkdown writes a summary of r for a CI job summary, such as
// GitHub's $GITHUB_STEP_SUMMARY: the headline, a table per level, the
// failed clauses with their reasons, and the harness errors, warnings and
// skips in collapsed sections. Text from the result is escaped, so a reply
// line from the server cannot add Markdown or HTML.
func WriteMarkdown(w io.Writer, r *result.Result) error {
	var out strings.Builder
	headline := HeadlineOf(r)
	env := r.Environment

	fmt.Fprintf(&out, "## AMTP conformance: %s\n\n", statusLabel(headline.Status))
	fmt.Fprintf(&out, "%s.\n\n", escapeMarkdown(headline.Text))
	fmt.Fprintf(&out, "Draft `%s`, suite %s, %s clauses, %.2f s, started %s.\n\n",
		codeSafe(env.Draft), escapeMarkdown(env.SuiteVersion), fmt.Sprint(r.Summary.Clauses),
		env.DurationSeconds, formatTime(env.Start))
	for _, problem := range env.Problems {
		fmt.Fprintf(&out, "- problem: %s\n", escapeMarkdown(problem))
	}
	if env.Baseline != nil && !env.Baseline.OK {
		fmt.Fprintf(&out, "- the first session with the valid client certificate failed: %s\n\n", escapeMarkdown(env.Baseline.Reason))
	}

	writeLevelTable(&out, r)

	failed := clausesWith(r, result.Fail)
	if len(failed) > 0 {
		fmt.Fprintf(&out, "### Failed clauses (%d)\n\n", len(failed))
		writeClauseList(&out, failed)
	}
	for _, group := range []struct {
		title   string
		verdict result.Verdict
	}{
		{"Harness errors", result.Error},
		{"Warnings", result.Warn},
		{"Skipped", result.Skip},
	} {
		clauses := clausesWith(r, group.verdict)
		if len(clauses) == 0 {
			continue
		}
		fmt.Fprintf(&out, "<details><summary>%s (%d)</summary>\n\n", group.title, len(clauses))
		writeClauseList(&out, clauses)
		out.WriteString("</details>\n\n")
	}

	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("write Markdown summary: %w", err)
	}
	return nil
}

// writeLevelTable writes the counts per level and verdict as a table.
func writeLevelTable(out *strings.Builder, r *result.Result) {
	out.WriteString("| Level | Passed | Score |")
	for _, v := range result.Verdicts() {
		fmt.Fprintf(out, " %s |", v)
	}
	out.WriteString("\n| --- | ---: | ---: |")
	for range result.Verdicts() {
		out.WriteString(" ---: |")
	}
	out.WriteString("\n")
	for _, score := range LevelScores(r) {
		fmt.Fprintf(out, "| %s | %d of %d | %s |", escapeMarkdown(score.Level), score.Passed, score.Checked, percentText(score))
		for _, v := range result.Verdicts() {
			fmt.Fprintf(out, " %d |", score.Counts[v])
		}
		out.WriteString("\n")
	}
	out.WriteString("\nThe score is the share of passes among the clauses with a pass, fail, warn or error verdict.\n\n")
}

// writeClauseList writes one bullet per clause, up to markdownMaxListed.
func writeClauseList(out *strings.Builder, clauses []result.Clause) {
	for i, c := range clauses {
		if i == markdownMaxListed {
			fmt.Fprintf(out, "- and %d more; the HTML report and the JSON result list them all\n", len(clauses)-i)
			break
		}
		fmt.Fprintf(out, "- `%s` (%s, %s): %s\n", codeSafe(c.ID), escapeMarkdown(c.Level), escapeMarkdown(c.Role), escapeMarkdown(c.Reason))
	}
	out.WriteString("\n")
}

func clausesWith(r *result.Result, v result.Verdict) []result.Clause {
	var clauses []result.Clause
	for _, c := range r.Clauses {
		if c.Verdict == v {
			clauses = append(clauses, c)
		}
	}
	return clauses
}

func statusLabel(s Status) string {
	switch s {
	case StatusFail:
		return "❌ fail"
	case StatusIncomplete:
		return "⚠️ incomplete"
	case StatusWarn:
		return "✅ pass with warnings"
	default:
		return "✅ pass"
	}
}

func percentText(s LevelScore) string {
	if s.Percent() < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", s.Percent())
}

// markdownEscaper escapes the characters that start Markdown or HTML
// syntax in GitHub Flavored Markdown, and turns line breaks into spaces
// so that a value stays on its list item or table row.
var markdownEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", "&lt;", ">", "&gt;", "&", "&amp;", "|", `\|`, "#", `\#`,
	"~", `\~`, "!", `\!`, "\r", " ", "\n", " ",
)

func escapeMarkdown(s string) string {
	return markdownEscaper.Replace(s)
}

// codeSafe prepares s for a code span: backticks and line breaks cannot
// appear inside one.
func codeSafe(s string) string {
	return strings.NewReplacer("`", "'", "\r", " ", "\n", " ").Replace(s)
}
