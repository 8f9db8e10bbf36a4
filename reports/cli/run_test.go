package cli_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/cli"
)

var (
	conformanceExample = filepath.Join("..", "conform", "testdata", "result.json")
	loadExample        = filepath.Join("..", "load", "testdata", "run.json")
)

// run runs amtpkit report with args and returns its stdout, stderr and
// error.
func run(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := cli.Run(args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// writeChanged writes a copy of the conformance example changed by edit
// into dir and returns its path.
func writeChanged(dir, name string, edit func(*result.Result)) string {
	r, err := result.Load(conformanceExample)
	Expect(err).NotTo(HaveOccurred())
	edit(r)
	r.Summary = result.Summarize(r.Clauses)
	path := filepath.Join(dir, name)
	Expect(r.Write(path)).To(Succeed())
	return path
}

// setVerdict returns an edit that gives clause id verdict v.
func setVerdict(id string, v result.Verdict) func(*result.Result) {
	return func(r *result.Result) {
		for i := range r.Clauses {
			if r.Clauses[i].ID == id {
				r.Clauses[i].Verdict = v
			}
		}
	}
}

func expectUsageError(err error, text string) {
	var usage *cli.UsageError
	Expect(errors.As(err, &usage)).To(BeTrue(), "expected a usage error, got %v", err)
	Expect(usage.Message).To(ContainSubstring(text))
}

var _ = Describe("Run", func() {
	var dir string

	BeforeEach(func() {
		dir = GinkgoT().TempDir()
	})

	Describe("options among the result files", func() {
		It("reads an option after the result file", func() {
			page := filepath.Join(dir, "r.html")
			_, _, err := run(conformanceExample, "--html", page)
			Expect(err).NotTo(HaveOccurred())
			Expect(page).To(BeAnExistingFile())
		})

		It("reads options after the files of compare", func() {
			other := writeChanged(dir, "other.json", setVerdict("4.2-tls-required", result.Fail))
			page, markdown := filepath.Join(dir, "cmp.html"), filepath.Join(dir, "cmp.md")
			_, _, err := run("compare", "amtpd="+conformanceExample, "--markdown", markdown, "strict="+other, "--html", page)
			Expect(err).NotTo(HaveOccurred())
			Expect(page).To(BeAnExistingFile())
			data, err := os.ReadFile(markdown)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring("| Clause | Level | amtpd | strict |"))
		})

		It("reads --baseline after the result file", func() {
			next := writeChanged(dir, "next.json", setVerdict("4.2-tls-required", result.Fail))
			stdout, _, err := run(next, "--baseline", conformanceExample, "--fail-on-regression")
			Expect(errors.Is(err, cli.ErrRegression)).To(BeTrue(), "got %v", err)
			Expect(stdout).To(ContainSubstring("1 regression"))
		})

		It("takes everything after -- as files", func() {
			named := filepath.Join(dir, "--html")
			data, err := os.ReadFile(conformanceExample)
			Expect(err).NotTo(HaveOccurred())
			Expect(os.WriteFile(named, data, 0o644)).To(Succeed())

			stdout, _, err := run("--markdown", "-", "--", named)
			Expect(err).NotTo(HaveOccurred())
			Expect(stdout).To(HavePrefix("## AMTP conformance: "))

			_, _, err = run("--", conformanceExample, "--html", filepath.Join(dir, "x.html"))
			expectUsageError(err, `unexpected argument "--html"`)
		})

		It("rejects an unknown option after the files", func() {
			_, _, err := run("compare", conformanceExample, conformanceExample, "--htlm", "x.html")
			expectUsageError(err, "flag provided but not defined: -htlm")
		})
	})

	Describe("writing reports", func() {
		It("names the given path when the folder is missing", func() {
			for _, example := range []string{conformanceExample, loadExample} {
				page := filepath.Join(dir, "missing", "x.html")
				_, _, err := run("--html", page, example)
				Expect(err).To(MatchError(HavePrefix("write report "+page+": ")), example)
				Expect(err).To(MatchError(ContainSubstring("check that the folder "+filepath.Dir(page)+" exists")), example)
				Expect(err.Error()).NotTo(ContainSubstring(".x.html."), example)
				Expect(errors.Is(err, os.ErrNotExist)).To(BeTrue(), example)
			}
		})

		It("names the given path when it is a folder", func() {
			page := filepath.Join(dir, "x.html")
			Expect(os.Mkdir(page, 0o755)).To(Succeed())
			_, _, err := run("--html", page, conformanceExample)
			Expect(err).To(MatchError(HavePrefix("write report " + page + ": ")))
			Expect(err.Error()).NotTo(ContainSubstring(".x.html."))
		})
	})

	Describe("compare", func() {
		It("names the kind of each file in a mix", func() {
			_, _, err := run("compare", loadExample, conformanceExample)
			expectUsageError(err, "compare takes results of one kind, but "+loadExample+" is a load result, "+conformanceExample+" is a conformance result")
		})

		It("checks the kinds before the load options", func() {
			_, _, err := run("compare", conformanceExample, loadExample, "--html", filepath.Join(dir, "c.html"))
			expectUsageError(err, "is a load result")
			Expect(filepath.Join(dir, "c.html")).NotTo(BeAnExistingFile())
		})

		It("names two runs of one target after their files", func() {
			first := writeChanged(dir, "monday.json", func(*result.Result) {})
			second := writeChanged(dir, "tuesday.json", setVerdict("4.2-tls-required", result.Fail))
			stdout, _, err := run("compare", first, second)
			Expect(err).NotTo(HaveOccurred())
			Expect(stdout).To(ContainSubstring("| Clause | Level | monday.json | tuesday.json |"))
		})

		It("gives one load result twice two names", func() {
			page := filepath.Join(dir, "load.html")
			_, _, err := run("compare", loadExample, loadExample, "--html", page)
			Expect(err).NotTo(HaveOccurred())
			data, err := os.ReadFile(page)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring("<th>" + loadExample + "</th><th>" + loadExample + " (2)</th>"))
		})

		It("gives the same file twice two names", func() {
			stdout, _, err := run("compare", conformanceExample, conformanceExample)
			Expect(err).NotTo(HaveOccurred())
			Expect(stdout).To(ContainSubstring("| Clause | Level | result.json | result.json (2) |"))
		})
	})

	Describe("--baseline", func() {
		It("fails on a pass that became an error", func() {
			next := writeChanged(dir, "next.json", setVerdict("rfc5321-4.1.1.1-ehlo-reply", result.Error))
			stdout, _, err := run("--baseline", conformanceExample, "--fail-on-regression", next)
			Expect(errors.Is(err, cli.ErrRegression)).To(BeTrue(), "got %v", err)
			Expect(stdout).To(ContainSubstring("rfc5321-4.1.1.1-ehlo-reply [MUST]: pass -> error"))
		})

		It("warns about differences in what ran", func() {
			next := writeChanged(dir, "next.json", func(r *result.Result) {
				r.Environment.Options.Strict = true
				r.Environment.Draft = "draft-weinman-amtp-04"
			})
			markdown := filepath.Join(dir, "summary.md")
			_, stderr, err := run("--baseline", conformanceExample, "--markdown", markdown, next)
			Expect(err).NotTo(HaveOccurred())
			Expect(stderr).To(ContainSubstring("warning: the baseline " + conformanceExample + " and the new result differ in draft (baseline draft-weinman-amtp-03, now draft-weinman-amtp-04)"))
			Expect(stderr).To(ContainSubstring("differ in strict (baseline false, now true)"))

			data, err := os.ReadFile(markdown)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring("> - strict (baseline false, now true)"))
		})

		It("puts the changes into the HTML report", func() {
			next := writeChanged(dir, "next.json", func(r *result.Result) {
				setVerdict("4.2-tls-required", result.Fail)(r)
				r.Environment.Options.Strict = true
			})
			page := filepath.Join(dir, "next.html")
			_, _, err := run("--baseline", conformanceExample, next, "--html", page)
			Expect(err).NotTo(HaveOccurred())

			data, err := os.ReadFile(page)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring(`<section id="baseline">`))
			Expect(string(data)).To(ContainSubstring(`<li>strict (baseline false, now true)</li>`))
			Expect(string(data)).To(ContainSubstring(`<a href="#clause-4.2-tls-required">`))
		})

		It("warns about nothing for equal runs", func() {
			_, stderr, err := run("--baseline", conformanceExample, conformanceExample)
			Expect(err).NotTo(HaveOccurred())
			Expect(stderr).To(BeEmpty())
		})
	})
})
