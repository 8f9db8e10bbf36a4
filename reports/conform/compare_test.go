package conform_test

import (
	"bytes"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/conform"
)

// withVerdict returns a copy of r in which clause id has verdict v.
func withVerdict(r *result.Result, id string, v result.Verdict) *result.Result {
	clauses := append([]result.Clause(nil), r.Clauses...)
	for i := range clauses {
		if clauses[i].ID == id {
			clauses[i].Verdict = v
			clauses[i].Reason = "now " + string(v)
		}
	}
	copied := *r
	copied.Clauses = clauses
	copied.Summary = result.Summarize(clauses)
	return &copied
}

var _ = Describe("Compare", func() {
	It("makes one row per clause and one column per result", func() {
		a := fixture()
		b := withVerdict(fixture(), "4.4.1-helo-rejected", result.Pass)
		b.Clauses = b.Clauses[:len(b.Clauses)-1]

		m := conform.Compare([]conform.Named{{Name: "amtpd", Result: a}, {Name: "other", Result: b}})
		Expect(m.Columns).To(Equal([]string{"amtpd", "other"}))
		Expect(m.Rows).To(HaveLen(8))

		Expect(m.Rows[1].ID).To(Equal("4.4.1-helo-rejected"))
		Expect(m.Rows[1].Cells[0].Verdict).To(Equal(result.Fail))
		Expect(m.Rows[1].Cells[1].Verdict).To(Equal(result.Pass))
		Expect(m.Rows[1].Differs).To(BeTrue())

		Expect(m.Rows[0].Differs).To(BeFalse())
		last := m.Rows[7]
		Expect(last.Cells[1].Missing).To(BeTrue())
		Expect(last.Cells[1].Label()).To(Equal("–"))
		Expect(last.Differs).To(BeTrue())
	})

	It("names a column after the target", func() {
		Expect(conform.ColumnName("", "a.json", fixture())).To(Equal("127.0.0.1:4025"))
		Expect(conform.ColumnName("vendor", "a.json", fixture())).To(Equal("vendor"))
	})

	It("makes column names unique", func() {
		a, b, c := fixture(), fixture(), fixture()
		named := conform.NameColumns([]conform.Column{
			{Path: "runs/monday.json", Result: a},
			{Path: "runs/tuesday.json", Result: b},
			{Given: "vendor", Path: "v.json", Result: c},
		})
		Expect([]string{named[0].Name, named[1].Name, named[2].Name}).To(Equal([]string{"monday.json", "tuesday.json", "vendor"}))
		Expect(named[1].Result).To(BeIdenticalTo(b))

		named = conform.NameColumns([]conform.Column{
			{Path: "a/run.json", Result: a},
			{Path: "b/run.json", Result: b},
		})
		Expect([]string{named[0].Name, named[1].Name}).To(Equal([]string{"run.json", "run.json (2)"}))
	})

	It("keeps a target name that is unique", func() {
		other := fixture()
		other.Environment.Target = "127.0.0.1:5025"
		named := conform.NameColumns([]conform.Column{{Path: "a.json", Result: fixture()}, {Path: "b.json", Result: other}})
		Expect([]string{named[0].Name, named[1].Name}).To(Equal([]string{"127.0.0.1:4025", "127.0.0.1:5025"}))
	})

	It("adds suffixes that are not taken", func() {
		Expect(conform.UniqueNames([]string{"a", "a", "a (2)", "b"})).To(Equal([]string{"a", "a (3)", "a (2)", "b"}))
	})

	It("renders HTML with differences first", func() {
		b := withVerdict(fixture(), "rfc5321-4.1.1.1-ehlo-reply", result.Fail)
		m := conform.Compare([]conform.Named{{Name: "a", Result: fixture()}, {Name: "b", Result: b}})
		var out bytes.Buffer
		Expect(conform.WriteCompareHTML(&out, m)).To(Succeed())
		Expect(out.String()).To(MatchRegexp(`(?s)data-clause="rfc5321-4.1.1.1-ehlo-reply".*data-clause="4.2-tls-required"`))
		Expect(out.String()).To(ContainSubstring("It comes first"))
	})

	It("renders Markdown with differences first", func() {
		b := withVerdict(fixture(), "rfc5321-4.1.1.1-ehlo-reply", result.Fail)
		m := conform.Compare([]conform.Named{{Name: "a", Result: fixture()}, {Name: "b", Result: b}})
		var out bytes.Buffer
		Expect(conform.WriteCompareMarkdown(&out, m)).To(Succeed())
		Expect(out.String()).To(ContainSubstring("| `rfc5321-4.1.1.1-ehlo-reply` | MUST | pass | fail |"))
		Expect(out.String()).To(MatchRegexp("(?s)overall.*rfc5321-4.1.1.1-ehlo-reply.*4.2-tls-required"))
		Expect(out.String()).To(ContainSubstring("1 of 8 clauses has different verdicts. It comes first"))
	})

	It("renders HTML with a cell per result", func() {
		b := withVerdict(fixture(), "rfc5321-4.1.1.1-ehlo-reply", result.Fail)
		m := conform.Compare([]conform.Named{{Name: "<a>", Result: fixture()}, {Name: "b", Result: b}})
		var out bytes.Buffer
		Expect(conform.WriteCompareHTML(&out, m)).To(Succeed())
		Expect(out.String()).To(ContainSubstring(`<tr class="differs" data-clause="rfc5321-4.1.1.1-ehlo-reply">`))
		Expect(out.String()).To(ContainSubstring(`&lt;a&gt;`))
		Expect(out.String()).NotTo(ContainSubstring(`<th class="cell"><a></th>`))
		Expect(out.String()).To(ContainSubstring("<p>8 clauses, 2 implementations. 1 of 8 clauses has different verdicts. It comes first"))
	})

	It("counts the differing clauses in words", func() {
		two := withVerdict(fixture(), "rfc5321-4.1.1.1-ehlo-reply", result.Fail)
		two = withVerdict(two, "4.2-tls-required", result.Fail)
		for _, c := range []struct {
			other *result.Result
			text  string
		}{
			{fixture(), "No clause has different verdicts."},
			{two, "2 of 8 clauses have different verdicts. They come first"},
		} {
			m := conform.Compare([]conform.Named{{Name: "a", Result: fixture()}, {Name: "b", Result: c.other}})
			var page, markdown bytes.Buffer
			Expect(conform.WriteCompareHTML(&page, m)).To(Succeed())
			Expect(conform.WriteCompareMarkdown(&markdown, m)).To(Succeed())
			Expect(page.String()).To(ContainSubstring(c.text))
			Expect(markdown.String()).To(ContainSubstring(c.text))
		}
	})
})

var _ = Describe("CompareBaseline", func() {
	It("finds regressions, fixes and other changes", func() {
		old := fixture()
		next := withVerdict(fixture(), "4.2-tls-required", result.Fail)
		next = withVerdict(next, "4.4.1-helo-rejected", result.Pass)
		next = withVerdict(next, "4.4.3-mpc-parameter-required", result.Pass)

		d := conform.CompareBaseline(old, next)
		Expect(d.Regressions).To(HaveLen(1))
		Expect(d.Regressions[0].ID).To(Equal("4.2-tls-required"))
		Expect(d.Regressions[0].Old).To(Equal(result.Pass))
		Expect(d.Fixes).To(HaveLen(1))
		Expect(d.Fixes[0].ID).To(Equal("4.4.1-helo-rejected"))
		Expect(d.Other).To(HaveLen(1))
		Expect(d.Other[0].ID).To(Equal("4.4.3-mpc-parameter-required"))
	})

	It("keeps an old failure out of the regressions", func() {
		d := conform.CompareBaseline(fixture(), fixture())
		Expect(d.Regressions).To(BeEmpty())
		Expect(d.Fixes).To(BeEmpty())
		Expect(d.Other).To(BeEmpty())
	})

	It("counts a new failing clause as a regression", func() {
		old := fixture()
		old.Clauses = old.Clauses[2:]
		d := conform.CompareBaseline(old, fixture())
		Expect(d.Regressions).To(HaveLen(1))
		Expect(d.Regressions[0].ID).To(Equal("4.4.1-helo-rejected"))
		Expect(d.Regressions[0].Old).To(BeEmpty())
	})

	It("counts a pass that became an error as a regression", func() {
		next := withVerdict(fixture(), "rfc5321-4.1.1.1-ehlo-reply", result.Error)
		d := conform.CompareBaseline(fixture(), next)
		Expect(d.Regressions).To(HaveLen(1))
		Expect(d.Regressions[0].ID).To(Equal("rfc5321-4.1.1.1-ehlo-reply"))
		Expect(d.Regressions[0].New).To(Equal(result.Error))
		Expect(d.Other).To(BeEmpty())
	})

	It("keeps a skip that became an error out of the regressions", func() {
		next := withVerdict(fixture(), "4.5-undefined-class-rejected", result.Error)
		d := conform.CompareBaseline(fixture(), next)
		Expect(d.Regressions).To(BeEmpty())
		Expect(d.Other).To(HaveLen(1))
	})

	It("names differences in what ran", func() {
		next := fixture()
		next.Environment.Target = "127.0.0.1:5025"
		next.Environment.Options.Strict = true
		next.Environment.Options.Maildir = "/tmp/maildir"
		next.Environment.Options.PKIDir = "/elsewhere/pki"

		d := conform.CompareBaseline(fixture(), next)
		Expect(d.Environment).To(Equal([]string{
			"target (baseline 127.0.0.1:4025, now 127.0.0.1:5025)",
			"strict (baseline false, now true)",
			"maildir (baseline not set, now set)",
		}))

		var markdown bytes.Buffer
		Expect(conform.WriteBaselineMarkdown(&markdown, d)).To(Succeed())
		Expect(markdown.String()).To(ContainSubstring("> [!WARNING]"))
		Expect(markdown.String()).To(ContainSubstring("> - strict (baseline false, now true)"))
	})

	It("finds no differences in what ran between equal runs", func() {
		d := conform.CompareBaseline(fixture(), fixture())
		Expect(d.Environment).To(BeEmpty())
		var markdown bytes.Buffer
		Expect(conform.WriteBaselineMarkdown(&markdown, d)).To(Succeed())
		Expect(markdown.String()).NotTo(ContainSubstring("WARNING"))
	})

	It("does not count a failure that became a skip as a fix", func() {
		next := withVerdict(fixture(), "4.4.1-helo-rejected", result.Skip)
		d := conform.CompareBaseline(fixture(), next)
		Expect(d.Fixes).To(BeEmpty())
		Expect(d.Other).To(HaveLen(1))
	})

	It("writes the changes as text and Markdown", func() {
		next := withVerdict(fixture(), "4.2-tls-required", result.Fail)
		d := conform.CompareBaseline(fixture(), next)
		var text, markdown bytes.Buffer
		Expect(conform.WriteBaselineText(&text, d)).To(Succeed())
		Expect(text.String()).To(ContainSubstring("regressions (new fail, or pass to error):\n  4.2-tls-required [REQUIRED]: pass -> fail: now fail"))
		Expect(conform.WriteBaselineMarkdown(&markdown, d)).To(Succeed())
		Expect(markdown.String()).To(ContainSubstring("❌ 1 regression"))
	})
})

var _ = Describe("WriteMarkdown", func() {
	It("escapes Markdown and HTML from the wire", func() {
		r := withVerdict(fixture(), "4.4.1-helo-rejected", result.Fail)
		r.Clauses[1].Reason = "got <img src=x> | *x* [a](http://h/) `code`\nnext"
		var out bytes.Buffer
		Expect(conform.WriteMarkdown(&out, r)).To(Succeed())
		Expect(out.String()).To(ContainSubstring("got &lt;img src=x&gt; \\| \\*x\\* \\[a\\](http://h/) \\`code\\` next"))
		Expect(out.String()).NotTo(ContainSubstring("<img"))
	})

	It("says pass when nothing failed", func() {
		r := fixture()
		var kept []result.Clause
		for _, c := range r.Clauses {
			if c.Verdict == result.Pass || c.Verdict == result.Skip {
				kept = append(kept, c)
			}
		}
		r.Clauses = kept
		r.Summary = result.Summarize(kept)
		Expect(conform.HeadlineOf(r).Status).To(Equal(conform.StatusPass))
		var out bytes.Buffer
		Expect(conform.WriteMarkdown(&out, r)).To(Succeed())
		Expect(out.String()).To(HavePrefix("## AMTP conformance: ✅ pass\n"))
	})
})
