package main

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/cli"
)

// reportFixture is the fixed conformance result of the report tests.
var reportFixture = filepath.Join("..", "..", "reports", "conform", "testdata", "result.json")

// writeVariant writes a copy of the fixture in which clause id has
// verdict v, and returns its path.
func writeVariant(dir, name, id string, v result.Verdict) string {
	r, err := result.Load(reportFixture)
	Expect(err).NotTo(HaveOccurred())
	for i := range r.Clauses {
		if r.Clauses[i].ID == id {
			r.Clauses[i].Verdict = v
		}
	}
	r.Summary = result.Summarize(r.Clauses)
	path := filepath.Join(dir, name)
	Expect(r.Write(path)).To(Succeed())
	return path
}

var _ = Describe("amtpkit report", func() {
	var dir string

	BeforeEach(func() {
		dir = GinkgoT().TempDir()
	})

	It("writes JUnit, HTML and Markdown", func() {
		junit, page, markdown := filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.html"), filepath.Join(dir, "r.md")
		run := runPKICommand("report", "--junit", junit, "--html", page, "--markdown", markdown, reportFixture)
		Expect(run.code).To(Equal(0), run.stderr)

		data, err := os.ReadFile(junit)
		Expect(err).NotTo(HaveOccurred())
		var doc struct {
			Tests int `xml:"tests,attr"`
		}
		Expect(xml.Unmarshal(data, &doc)).To(Succeed())
		Expect(doc.Tests).To(Equal(8))

		data, err = os.ReadFile(page)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(data)).To(HavePrefix("<!DOCTYPE html>"))

		data, err = os.ReadFile(markdown)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(data)).To(HavePrefix("## AMTP conformance: ❌ fail"))
	})

	It("prints Markdown without options", func() {
		run := runPKICommand("report", reportFixture)
		Expect(run.code).To(Equal(0), run.stderr)
		Expect(run.stdout).To(ContainSubstring("### Failed clauses (1)"))
	})

	It("rejects a newer schema version", func() {
		path := filepath.Join(dir, "new.json")
		Expect(os.WriteFile(path, []byte(`{"schema_version": 99, "clauses": []}`), 0o644)).To(Succeed())
		run := runPKICommand("report", path)
		Expect(run.code).To(Equal(1))
		Expect(run.stderr).To(ContainSubstring("schema_version 99 is newer than version 1"))
		Expect(run.stderr).To(ContainSubstring("use a newer amtpkit"))
	})

	It("rejects a file that is no result", func() {
		path := filepath.Join(dir, "other.json")
		Expect(os.WriteFile(path, []byte(`{"schema_version": 1}`), 0o644)).To(Succeed())
		run := runPKICommand("report", path)
		Expect(run.code).To(Equal(1))
		Expect(run.stderr).To(ContainSubstring("not a result of amtpkit conform"))
	})

	It("rejects missing arguments", func() {
		run := runPKICommand("report")
		Expect(run.code).To(Equal(2))
		Expect(run.stderr).To(ContainSubstring("missing the result file"))

		run = runPKICommand("report", "--fail-on-regression", reportFixture)
		Expect(run.code).To(Equal(2))
		Expect(run.stderr).To(ContainSubstring("needs --baseline"))
	})

	// These run the binary, because the flag package writes to the
	// process's stderr rather than to runMain's.
	It("names an unknown option in one line", func() {
		for _, c := range []struct {
			command string
			args    []string
		}{
			{"report", []string{"report", "--htm", filepath.Join(dir, "x.html"), reportFixture}},
			{"report compare", []string{"report", "compare", reportFixture, reportFixture, "--htm", filepath.Join(dir, "x.html")}},
		} {
			args := c.args
			run := runConformCommand(builtBinary("amtpkit"), args...)
			Expect(run.code).To(Equal(2), "%v", args)
			Expect(run.stderr).To(ContainSubstring("flag provided but not defined: -htm; run 'amtpkit %s --help' for the options", c.command))
			Expect(run.stderr).NotTo(ContainSubstring("usage:"), "%v", args)
			Expect(strings.Count(strings.TrimSpace(run.stderr), "\n")).To(Equal(0), run.stderr)
		}
	})

	It("prints the help once", func() {
		run := runConformCommand(builtBinary("amtpkit"), "report", "--help")
		Expect(run.code).To(Equal(0), run.stderr)
		Expect(strings.Count(run.stdout+run.stderr, "usage: amtpkit report")).To(Equal(1))

		help := strings.Join(strings.Fields(run.stderr), " ")
		Expect(help).To(ContainSubstring("A column is named NAME when the argument is NAME=RESULT.json, else after the result's target (its path when it has none)."))
		Expect(help).To(ContainSubstring("Results without NAME that share a target are named after their file's base name instead"))
		Expect(help).To(ContainSubstring(`a name that still repeats gets a suffix such as " (2)"`))
	})

	It("names the report path when its folder is missing", func() {
		page := filepath.Join(dir, "missing", "x.html")
		run := runPKICommand("report", "--html", page, reportFixture)
		Expect(run.code).To(Equal(1))
		Expect(run.stderr).To(ContainSubstring(page))
		Expect(run.stderr).NotTo(ContainSubstring(".x.html."))
	})

	Describe("--baseline", func() {
		It("exits 0 with old failures only", func() {
			run := runPKICommand("report", "--baseline", reportFixture, "--fail-on-regression", reportFixture)
			Expect(run.code).To(Equal(0), run.stderr)
			Expect(run.stdout).To(ContainSubstring("0 regressions, 0 fixes, 0 other changes"))
		})

		It("exits 4 on a regression with --fail-on-regression", func() {
			next := writeVariant(dir, "next.json", "4.2-tls-required", result.Fail)
			run := runPKICommand("report", "--baseline", reportFixture, "--fail-on-regression", next)
			Expect(run.code).To(Equal(4), run.stderr)
			Expect(run.stdout).To(ContainSubstring("regressions (new fail, or pass to error):\n  4.2-tls-required"))
			Expect(run.stderr).To(ContainSubstring("regressions against the baseline"))
		})

		It("exits 0 on a regression without --fail-on-regression", func() {
			next := writeVariant(dir, "next.json", "4.2-tls-required", result.Fail)
			run := runPKICommand("report", "--baseline", reportFixture, next)
			Expect(run.code).To(Equal(0), run.stderr)
			Expect(run.stdout).To(ContainSubstring("1 regression, 0 fixes"))
		})

		It("exits 4 on a pass that became an error", func() {
			next := writeVariant(dir, "next.json", "rfc5321-4.1.1.1-ehlo-reply", result.Error)
			run := runPKICommand("report", "--baseline", reportFixture, "--fail-on-regression", next)
			Expect(run.code).To(Equal(4), run.stderr)
			Expect(run.stdout).To(ContainSubstring("rfc5321-4.1.1.1-ehlo-reply [MUST]: pass -> error"))
		})

		It("takes its options after the result file", func() {
			next := writeVariant(dir, "next.json", "4.2-tls-required", result.Fail)
			run := runPKICommand("report", next, "--baseline", reportFixture, "--fail-on-regression")
			Expect(run.code).To(Equal(4), run.stderr)
		})

		It("lists a fix", func() {
			next := writeVariant(dir, "next.json", "4.4.1-helo-rejected", result.Pass)
			markdown := filepath.Join(dir, "summary.md")
			run := runPKICommand("report", "--baseline", reportFixture, "--fail-on-regression", "--markdown", markdown, next)
			Expect(run.code).To(Equal(0), run.stderr)
			Expect(run.stdout).To(ContainSubstring("fixed:\n  4.4.1-helo-rejected [MUST]: fail -> pass"))
			data, err := os.ReadFile(markdown)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring("### Fixed"))
			Expect(string(data)).To(ContainSubstring("## AMTP conformance: "))
		})
	})

	Describe("a load result", func() {
		loadExample := filepath.Join("..", "..", "reports", "load", "testdata", "run.json")

		It("renders HTML and Markdown", func() {
			page := filepath.Join(dir, "load.html")
			run := runPKICommand("report", "--html", page, loadExample)
			Expect(run.code).To(Equal(0), run.stderr)
			data, err := os.ReadFile(page)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring("AMTP load run against"))

			run = runPKICommand("report", loadExample)
			Expect(run.code).To(Equal(0), run.stderr)
			Expect(run.stdout).To(HavePrefix("## AMTP load run against `127.0.0.1:24125`"))
		})

		It("rejects JUnit and a baseline", func() {
			run := runPKICommand("report", "--junit", filepath.Join(dir, "x.xml"), loadExample)
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring("is a load result"))
		})

		It("compares two runs", func() {
			page := filepath.Join(dir, "compare.html")
			run := runPKICommand("report", "compare", "--html", page, "before="+loadExample, "after="+loadExample)
			Expect(run.code).To(Equal(0), run.stderr)
			data, err := os.ReadFile(page)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring("<th>before</th><th>after</th>"))
		})

		It("refuses to mix kinds in compare", func() {
			run := runPKICommand("report", "compare", "--html", filepath.Join(dir, "c.html"), loadExample, reportFixture)
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring("results of one kind"))
			Expect(run.stderr).To(ContainSubstring(loadExample + " is a load result"))
			Expect(run.stderr).To(ContainSubstring(reportFixture + " is a conformance result"))
		})

		It("names the kinds of a mix without --html", func() {
			run := runPKICommand("report", "compare", loadExample, reportFixture)
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring(loadExample + " is a load result, " + reportFixture + " is a conformance result"))
			Expect(run.stderr).NotTo(ContainSubstring("needs --html"))
		})
	})

	Describe("compare", func() {
		It("names columns by name=path and by target", func() {
			other := writeVariant(dir, "other.json", "4.2-tls-required", result.Fail)
			page := filepath.Join(dir, "compare.html")
			run := runPKICommand("report", "compare", "--html", page, "vendor="+other, reportFixture)
			Expect(run.code).To(Equal(0), run.stderr)
			data, err := os.ReadFile(page)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring(`<th class="cell">vendor</th><th class="cell">127.0.0.1:4025</th>`))
		})

		It("takes --html after the result files", func() {
			strict := writeVariant(dir, "strict.json", "4.2-tls-required", result.Fail)
			page := filepath.Join(dir, "cmp.html")
			run := runPKICommand("report", "compare", "amtpd="+reportFixture, "strict="+strict, "--html", page)
			Expect(run.code).To(Equal(0), run.stderr)
			data, err := os.ReadFile(page)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring(`<th class="cell">amtpd</th><th class="cell">strict</th>`))
		})

		It("gives two results of one target distinct columns", func() {
			other := writeVariant(dir, "other.json", "4.2-tls-required", result.Fail)
			page := filepath.Join(dir, "compare.html")
			run := runPKICommand("report", "compare", "--html", page, reportFixture, other)
			Expect(run.code).To(Equal(0), run.stderr)
			data, err := os.ReadFile(page)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring(`<th class="cell">result.json</th><th class="cell">other.json</th>`))
		})

		It("prints a Markdown matrix", func() {
			other := writeVariant(dir, "other.json", "4.2-tls-required", result.Fail)
			run := runPKICommand("report", "compare", "a="+reportFixture, "b="+other)
			Expect(run.code).To(Equal(0), run.stderr)
			Expect(run.stdout).To(ContainSubstring("| `4.2-tls-required` | REQUIRED | pass | fail |"))
		})

		It("needs two results", func() {
			run := runPKICommand("report", "compare", reportFixture)
			Expect(run.code).To(Equal(2))
			Expect(strings.ToLower(run.stderr)).To(ContainSubstring("at least two"))
		})
	})
})

var _ = Describe("conform report options", func() {
	It("write the reports that conform names", func() {
		dir := GinkgoT().TempDir()
		r, err := result.Load(reportFixture)
		Expect(err).NotTo(HaveOccurred())

		flags := flag.NewFlagSet("conform", flag.ContinueOnError)
		out := addReportFlags(flags)
		junit, page := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "report.html")
		Expect(flags.Parse([]string{"--junit", junit, "--html", page})).To(Succeed())

		var stdout strings.Builder
		Expect(writeReports(&stdout, r, out)).To(Succeed())
		Expect(stdout.String()).To(ContainSubstring("JUnit XML: " + junit))
		Expect(stdout.String()).To(ContainSubstring("HTML report: " + page))
		Expect(junit).To(BeAnExistingFile())
		Expect(page).To(BeAnExistingFile())
	})

	It("report a folder that does not exist", func() {
		r, err := result.Load(reportFixture)
		Expect(err).NotTo(HaveOccurred())
		out := &cli.Outputs{HTML: filepath.Join(GinkgoT().TempDir(), "missing", "report.html")}
		var stdout strings.Builder
		Expect(writeReports(&stdout, r, out)).NotTo(Succeed())
		Expect(stdout.String()).To(ContainSubstring("reports not written"))
	})
})
