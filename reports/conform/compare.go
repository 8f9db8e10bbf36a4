package conform

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/internal/page"
)

// Named is a result with the name of its column in a comparison.
type Named struct {
	Name   string
	Result *result.Result
}

// Matrix is a comparison of several results: one row per clause and one
// column per result.
type Matrix struct {
	Columns []string
	// Headlines holds the overall verdict of each column.
	Headlines []Headline
	Rows      []MatrixRow
}

// MatrixRow is one clause across the compared results.
type MatrixRow struct {
	ID      string
	Section string
	Level   string
	Title   string
	// Cells holds one entry per column. A cell of a result that lacks the
	// clause has Missing set.
	Cells []MatrixCell
	// Differs is true when the columns do not all have the same verdict.
	Differs bool
}

// MatrixCell is one clause of one result.
type MatrixCell struct {
	Verdict result.Verdict
	Reason  string
	Missing bool
}

// Class returns the CSS class of the cell's verdict.
func (c MatrixCell) Class() string {
	if c.Missing {
		return "v-missing"
	}
	return "v-" + string(c.Verdict)
}

// Label returns the verdict, or "–" for a missing clause.
func (c MatrixCell) Label() string {
	if c.Missing {
		return "–"
	}
	return string(c.Verdict)
}

// Compare builds the matrix of results. Rows follow the clause order of
// the first result; clauses that only later results have follow in their
// order.
func Compare(results []Named) Matrix {
	var m Matrix
	index := map[string]int{}
	for col, named := range results {
		m.Columns = append(m.Columns, named.Name)
		m.Headlines = append(m.Headlines, HeadlineOf(named.Result))
		for _, c := range named.Result.Clauses {
			i, ok := index[c.ID]
			if !ok {
				i = len(m.Rows)
				index[c.ID] = i
				row := MatrixRow{ID: c.ID, Section: result.SectionKey(c.Source, c.Section), Level: c.Level, Title: c.Title,
					Cells: make([]MatrixCell, len(results))}
				for j := range row.Cells {
					row.Cells[j].Missing = true
				}
				m.Rows = append(m.Rows, row)
			}
			m.Rows[i].Cells[col] = MatrixCell{Verdict: c.Verdict, Reason: c.Reason}
		}
	}
	for i := range m.Rows {
		m.Rows[i].Differs = cellsDiffer(m.Rows[i].Cells)
	}
	return m
}

func cellsDiffer(cells []MatrixCell) bool {
	for _, cell := range cells[1:] {
		if cell.Missing != cells[0].Missing || cell.Verdict != cells[0].Verdict {
			return true
		}
	}
	return false
}

// ColumnName returns the name of a result's column: the given name when
// there is one, else the result's target, else the file path.
func ColumnName(given, path string, r *result.Result) string {
	switch {
	case given != "":
		return given
	case r.Environment.Target != "":
		return r.Environment.Target
	default:
		return path
	}
}

// Column is a result to compare, with the name the user gave it (or "")
// and the file it was read from.
type Column struct {
	Given  string
	Path   string
	Result *result.Result
}

// NameColumns names each column with ColumnName and makes the names
// unique. Columns without a given name whose targets collide, such as
// two runs against 127.0.0.1:4025, are named after their file's base
// name instead, and names that still collide get a suffix " (2)",
// " (3)" and so on.
func NameColumns(columns []Column) []Named {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = ColumnName(c.Given, c.Path, c.Result)
	}

	counts := map[string]int{}
	for _, name := range names {
		counts[name]++
	}
	for i, c := range columns {
		if c.Given == "" && counts[names[i]] > 1 {
			names[i] = filepath.Base(c.Path)
		}
	}

	names = UniqueNames(names)
	named := make([]Named, len(columns))
	for i, c := range columns {
		named[i] = Named{Name: names[i], Result: c.Result}
	}
	return named
}

// UniqueNames returns names with a suffix " (2)", " (3)" and so on added
// to each repeat of an earlier name, skipping suffixed names that are
// already taken.
func UniqueNames(names []string) []string {
	unique := make([]string, len(names))
	taken := map[string]bool{}
	for _, name := range names {
		taken[name] = true
	}

	used := map[string]bool{}
	for i, name := range names {
		candidate := name
		// At most 2*len(names) names are taken or used, so the loop ends.
		for n := 2; used[candidate] || (candidate != name && taken[candidate]); n++ {
			candidate = fmt.Sprintf("%s (%d)", name, n)
		}
		unique[i] = candidate
		used[candidate] = true
	}
	return unique
}

// DifferingFirst returns the rows whose verdicts differ, then the others,
// each group in the matrix's clause order.
func (m Matrix) DifferingFirst() []MatrixRow {
	rows := make([]MatrixRow, 0, len(m.Rows))
	for _, differs := range []bool{true, false} {
		for _, row := range m.Rows {
			if row.Differs == differs {
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// Differing returns the number of rows whose verdicts differ.
func (m Matrix) Differing() int {
	n := 0
	for _, row := range m.Rows {
		if row.Differs {
			n++
		}
	}
	return n
}

// differingText returns the sentences of the Markdown and the HTML page
// that count the clauses whose verdicts differ and state where they are
// listed.
func (m Matrix) differingText() string {
	switch n := m.Differing(); n {
	case 0:
		return "No clause has different verdicts."
	case 1:
		return fmt.Sprintf("1 of %s has different verdicts. It comes first, and the rest follow in catalogue order.", plural(len(m.Rows), "clause"))
	default:
		return fmt.Sprintf("%d of %d clauses have different verdicts. They come first, and the rest follow in catalogue order.", n, len(m.Rows))
	}
}

// WriteCompareMarkdown writes the matrix as a Markdown table, with the
// rows whose verdicts differ first, so that the differences lead.
func WriteCompareMarkdown(w io.Writer, m Matrix) error {
	var out strings.Builder
	out.WriteString("## AMTP conformance comparison\n\n")
	out.WriteString("| Clause | Level |")
	for _, name := range m.Columns {
		fmt.Fprintf(&out, " %s |", escapeMarkdown(name))
	}
	out.WriteString("\n| --- | --- |")
	for range m.Columns {
		out.WriteString(" --- |")
	}
	out.WriteString("\n| **overall** | |")
	for _, h := range m.Headlines {
		fmt.Fprintf(&out, " %s |", statusLabel(h.Status))
	}
	out.WriteString("\n")

	for _, row := range m.DifferingFirst() {
		fmt.Fprintf(&out, "| `%s` | %s |", codeSafe(row.ID), escapeMarkdown(row.Level))
		for _, cell := range row.Cells {
			fmt.Fprintf(&out, " %s |", cell.Label())
		}
		out.WriteString("\n")
	}
	fmt.Fprintf(&out, "\n%s\n", m.differingText())

	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("write Markdown comparison: %w", err)
	}
	return nil
}

//go:embed compare.html.tmpl
var compareTemplate string

var comparePage = template.Must(template.New("compare").Parse(compareTemplate))

// WriteCompareHTML writes the matrix as one self-contained HTML page with
// a filter that shows only the clauses whose verdicts differ. As in the
// Markdown, the differing rows come first.
func WriteCompareHTML(w io.Writer, m Matrix) error {
	data := struct {
		Matrix
		Ordered     []MatrixRow
		Sizes       string
		Differences string
		CSS         template.CSS
		PrintScript template.JS
	}{
		Matrix:      m,
		Ordered:     m.DifferingFirst(),
		Sizes:       plural(len(m.Rows), "clause") + ", " + plural(len(m.Columns), "implementation"),
		Differences: m.differingText(),
		CSS:         page.CSS,
		PrintScript: page.PrintScript,
	}
	if err := comparePage.Execute(w, data); err != nil {
		return fmt.Errorf("write HTML comparison: %w", err)
	}
	return nil
}
