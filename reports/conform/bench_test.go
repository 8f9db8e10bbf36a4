package conform_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/conform"
)

// largeResult returns a result of n clauses, made by repeating the
// fixture's clauses with new IDs. Each clause that has a transcript
// keeps the fixture's connection of six to nine lines.
func largeResult(n int) *result.Result {
	base := fixture()
	r := *base
	r.Clauses = nil
	for i := 0; i < n; i++ {
		c := base.Clauses[i%len(base.Clauses)]
		c.ID = fmt.Sprintf("%s-%d", c.ID, i)
		c.Section = fmt.Sprintf("%s.%d", c.Section, i/20)
		r.Clauses = append(r.Clauses, c)
	}
	r.Summary = result.Summarize(r.Clauses)
	return &r
}

// BenchmarkRender500 renders a result of 500 clauses; the figures are in
// docs/benchmarks.md. Run it with
// go test -run='^$' -bench=BenchmarkRender500 ./reports/conform/
func BenchmarkRender500(b *testing.B) {
	RegisterTestingT(b)
	r := largeResult(500)
	data, err := r.Marshal()
	if err != nil {
		b.Fatal(err)
	}

	for _, format := range []struct {
		name   string
		render func(io.Writer) error
	}{
		{"html", func(w io.Writer) error { return conform.WriteHTML(w, r, conform.HTMLOptions{}) }},
		{"junit", func(w io.Writer) error { return conform.WriteJUnit(w, r, conform.JUnitOptions{}) }},
		{"markdown", func(w io.Writer) error { return conform.WriteMarkdown(w, r) }},
		{"parse-and-html", func(w io.Writer) error {
			parsed, err := result.Parse(data)
			if err != nil {
				return err
			}
			return conform.WriteHTML(w, parsed, conform.HTMLOptions{})
		}},
	} {
		b.Run(format.name, func(b *testing.B) {
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				if err := format.render(&out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.Len()), "bytes/report")
			b.ReportMetric(float64(len(data)), "bytes/json")
		})
	}
}
