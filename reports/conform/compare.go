package conform

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
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

	differing := 0
	for _, pass := range []bool{true, false} {
		for _, row := range m.Rows {
			if row.Differs != pass {
				continue
			}
			if row.Differs {
				differing++
			}
			fmt.Fprintf(&out, "| `%s` | %s |", codeSafe(row.ID), escapeMarkdown(row.Level))
			for _, cell := range row.Cells {
				fmt.Fprintf(&out, " %s |", cell.Label())
			}
			out.WriteString("\n")
		}
	}
	fmt.Fprintf(&out, "\n%d of %d clauses have different verdicts; they come first.\n", differing, len(m.Rows))

	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("write Markdown comparison: %w", err)
	}
	return nil
}

//go:embed compare.html.tmpl
var compareTemplate string

var comparePage = template.Must(template.New("compare").Parse(compareTemplate))

// WriteCompareHTML writes the matrix as one self-contained HTML page with
// a filter that shows only the clauses whose verdicts differ.
func WriteCompareHTML(w io.Writer, m Matrix) error {
	data := struct {
		Matrix
		Differing   int
		CSS         template.CSS
		PrintScript template.JS
	}{Matrix: m, CSS: page.CSS, PrintScript: page.PrintScript}
	for _, row := range m.Rows {
		if row.Differs {
			data.Differing++
		}
	}
	if err := comparePage.Execute(w, data); err != nil {
		return fmt.Errorf("write HTML comparison: %w", err)
	}
	return nil
}
