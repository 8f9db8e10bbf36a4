package conform_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/conform"
	"github.com/amtp-toolkit/amtp/reports/internal/browser"
)

func htmlOf(r *result.Result) string {
	var out bytes.Buffer
	Expect(conform.WriteHTML(&out, r, conform.HTMLOptions{})).To(Succeed())
	return out.String()
}

// fetchAttribute matches the attributes through which HTML loads a
// resource: src, a stylesheet or icon link, and CSS url().
var fetchAttribute = regexp.MustCompile(`(?i)\ssrc\s*=|<link\b|url\(|@import|@font-face`)

var _ = Describe("WriteHTML", func() {
	It("escapes text from the wire", func() {
		page := htmlOf(fixture())
		Expect(page).NotTo(ContainSubstring("<script>alert('wire')</script>"))
		Expect(page).To(ContainSubstring("&lt;script&gt;alert(&#39;wire&#39;)&lt;/script&gt;"))
		Expect(page).NotTo(ContainSubstring("<b>ok</b>"))
		Expect(page).To(ContainSubstring(`\x1b[31m \xff`))
	})

	It("loads nothing from elsewhere", func() {
		page := htmlOf(fixture())
		Expect(fetchAttribute.FindAllString(page, -1)).To(BeEmpty())
		Expect(page).To(ContainSubstring(`Content-Security-Policy" content="default-src 'none'`))
	})

	It("shows the verdict, scores and evidence", func() {
		page := htmlOf(fixture())
		Expect(page).To(ContainSubstring(`data-status="fail"`))
		Expect(page).To(ContainSubstring(`<table id="scores">`))
		Expect(page).To(ContainSubstring(`id="clause-4.4.1-helo-rejected" data-verdict="fail" data-level="MUST"`))
		Expect(page).To(ContainSubstring(`<blockquote class="sentence">A server MUST reject HELO with a 504 reply.</blockquote>`))
		Expect(page).To(ContainSubstring(`amtpkit conform --target 127.0.0.1:4025 --pki pki --focus 4.4.1-helo-rejected`))
		Expect(page).To(ContainSubstring(`<span class="line client"><span class="t">&#43;2.500ms</span> <span class="d">C:</span> HELO client.example.test</span>`))
		Expect(page).To(ContainSubstring(`href="` + conform.InterpretationsURL + `"`))
	})

	It("counts errors in a fail headline", func() {
		Expect(conform.HeadlineOf(fixture()).Text).To(Equal("127.0.0.1:4025: 1 MUST-class clause failed and 1 could not be checked (error)"))

		noErrors := withVerdict(fixture(), "4.4.3-mpc-parameter-required", result.Pass)
		Expect(conform.HeadlineOf(noErrors).Text).To(Equal("127.0.0.1:4025: 1 MUST-class clause failed"))
	})

	It("lists failed, errored and warned clauses first", func() {
		page := htmlOf(fixture())
		list := regexp.MustCompile(`(?s)<section id="problems">.*?</section>`).FindString(page)
		Expect(list).NotTo(BeEmpty(), "the page has no failed and errored clauses list")
		Expect(list).To(ContainSubstring("<h2>Failed and errored clauses</h2>"))

		links := regexp.MustCompile(`href="#(clause-[^"]+)"`).FindAllStringSubmatch(list, -1)
		var targets []string
		for _, link := range links {
			targets = append(targets, link[1])
		}
		Expect(targets).To(Equal([]string{
			"clause-4.4.1-helo-rejected", "clause-4.4.3-mpc-parameter-required", "clause-rfc5321-4.2.4-unknown-command-500",
		}))
		Expect(strings.Index(page, `<section id="problems">`)).To(BeNumerically(">", strings.Index(page, `<table id="scores">`)))
		Expect(strings.Index(page, `<section id="problems">`)).To(BeNumerically("<", strings.Index(page, `<section class="clauses"`)))
	})

	It("leaves out the list when nothing failed", func() {
		r := withVerdict(fixture(), "4.4.1-helo-rejected", result.Pass)
		r = withVerdict(r, "4.4.3-mpc-parameter-required", result.Pass)
		r = withVerdict(r, "rfc5321-4.2.4-unknown-command-500", result.Pass)
		Expect(htmlOf(r)).NotTo(ContainSubstring(`<section id="problems">`))
	})

	It("shows a clause's reason once in its row", func() {
		page := htmlOf(fixture())
		row := regexp.MustCompile(`(?s)<tr class="clause" id="clause-4.4.1-helo-rejected".*?</tr>`).FindString(page)
		Expect(row).NotTo(BeEmpty())
		Expect(strings.Count(row, "HELO got 250 &lt;b&gt;ok&lt;/b&gt;, expected 504")).To(Equal(1))
	})

	It("shows the changes against a baseline", func() {
		next := withVerdict(fixture(), "rfc5321-4.1.1.1-ehlo-reply", result.Error)
		next.Environment.Options.Strict = true
		d := conform.CompareBaseline(fixture(), next)

		var out bytes.Buffer
		Expect(conform.WriteHTML(&out, next, conform.HTMLOptions{Baseline: &d, BaselineName: "old.json"})).To(Succeed())
		section := regexp.MustCompile(`(?s)<section id="baseline">.*?</section>`).FindString(out.String())
		Expect(section).To(ContainSubstring(`old.json`))
		Expect(section).To(ContainSubstring(`<li>strict (baseline false, now true)</li>`))
		Expect(section).To(ContainSubstring("1 regression, 0 fixes, 0 other changes."))
		Expect(section).To(ContainSubstring("<h3>Regressions (new fail, or pass to error)</h3>"))
		Expect(section).To(ContainSubstring(`<a href="#clause-rfc5321-4.1.1.1-ehlo-reply"><code>rfc5321-4.1.1.1-ehlo-reply</code></a></td><td>MUST</td><td>pass</td><td>error</td>`))
		Expect(section).NotTo(ContainSubstring("<h3>Fixed</h3>"))
	})

	It("shows no baseline section without a baseline", func() {
		Expect(htmlOf(fixture())).NotTo(ContainSubstring(`<section id="baseline">`))
	})

	It("links a relative interpretations path", func() {
		var out bytes.Buffer
		Expect(conform.WriteHTML(&out, fixture(), conform.HTMLOptions{InterpretationsURL: "../docs/interpretations.md"})).To(Succeed())
		Expect(out.String()).To(ContainSubstring(`href="../docs/interpretations.md"`))
	})

	It("cuts long lines", func() {
		r := fixture()
		r.Clauses[1].Transcript[0].Record.Note("%s", strings.Repeat("é", 3000))
		page := htmlOf(r)
		Expect(page).To(ContainSubstring("é… (4000 more bytes in the JSON result)"))
	})

	It("cuts long transcripts", func() {
		r := fixture()
		record := r.Clauses[1].Transcript[0].Record
		for i := 0; i < 1000; i++ {
			record.Note("line %d", i)
		}
		page := htmlOf(r)
		Expect(page).To(ContainSubstring("more lines are in the JSON result"))
		Expect(page).NotTo(ContainSubstring("line 999"))
	})
})

var _ = Describe("HTML report in Chromium", Label("browser"), func() {
	It("renders without network requests", func() {
		chromium, err := browser.Find()
		Expect(err).NotTo(HaveOccurred())

		dir := GinkgoT().TempDir()
		path := filepath.Join(dir, "report.html")
		Expect(os.WriteFile(path, []byte(htmlOf(fixture())), 0o644)).To(Succeed())

		page, err := browser.Open(context.Background(), chromium, path, dir, 1280, 2000)
		Expect(err).NotTo(HaveOccurred())
		keepScreenshot(page.Screenshot, "conformance.png")

		Expect(page.Requests).To(BeEmpty())
		Expect(page.DOM).To(ContainSubstring(`id="headline"`))
		Expect(page.DOM).To(ContainSubstring(`<table id="scores">`))
		Expect(strings.Count(page.DOM, `<tr class="clause`)).To(Equal(8))
		Expect(page.DOM).To(MatchRegexp(`<span id="shown">8</span>`), "the filter script ran and counted the rows")

		info, err := os.Stat(page.Screenshot)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Size()).To(BeNumerically(">", 10000), "the screenshot should show a rendered page")
	})

	It("renders the failed clauses list with links to rows", func() {
		page := openFixture("")
		list := regexp.MustCompile(`(?s)<section id="problems">.*?</section>`).FindString(page.DOM)
		Expect(list).NotTo(BeEmpty(), "the failed and errored clauses list did not render")

		links := regexp.MustCompile(`href="#([^"]+)"`).FindAllStringSubmatch(list, -1)
		Expect(links).To(HaveLen(3))
		for _, link := range links {
			Expect(page.DOM).To(ContainSubstring(`<tr class="clause" id="`+link[1]+`"`), "the link #%s has no row", link[1])
		}
	})

	It("opens the row that the fragment names", func() {
		page := openFixture("#clause-4.4.3-mpc-parameter-required")
		Expect(page.Requests).To(BeEmpty())

		target := regexp.MustCompile(`(?s)<tr class="clause" id="clause-4.4.3-mpc-parameter-required".*?</tr>`).FindString(page.DOM)
		Expect(target).To(ContainSubstring("<details open"))
		other := regexp.MustCompile(`(?s)<tr class="clause" id="clause-4.4.1-helo-rejected".*?</tr>`).FindString(page.DOM)
		Expect(other).NotTo(BeEmpty())
		Expect(other).NotTo(ContainSubstring("<details open"))
	})

	It("prints every clause opened", func() {
		chromium, err := browser.Find()
		Expect(err).NotTo(HaveOccurred())
		dir := GinkgoT().TempDir()
		page := htmlOf(fixture())

		// The same page without its print support: the script that opens
		// every <details> and the CSS rule that shows their contents.
		bare := regexp.MustCompile(`(?s)<script>\(function \(\) \{\n  var opened.*?</script>`).ReplaceAllString(page, "")
		bare = strings.Replace(bare, "details::details-content { content-visibility: visible; display: block; }", "", 1)
		Expect(len(bare)).To(BeNumerically("<", len(page)-200), "the print support was not found in the page")

		pages := map[string]int{}
		for name, html := range map[string]string{"full": page, "bare": bare} {
			path := filepath.Join(dir, name+".html")
			Expect(os.WriteFile(path, []byte(html), 0o644)).To(Succeed())
			n, err := browser.PrintPages(context.Background(), chromium, path, filepath.Join(dir, name))
			Expect(err).NotTo(HaveOccurred())
			pages[name] = n
		}
		Expect(pages["bare"]).To(BeNumerically(">", 0))
		Expect(pages["full"]).To(BeNumerically(">", pages["bare"]), "opened clauses take more pages")
	})

	It("sees a request of a page that makes one", func() {
		chromium, err := browser.Find()
		Expect(err).NotTo(HaveOccurred())

		dir := GinkgoT().TempDir()
		path := filepath.Join(dir, "fetching.html")
		Expect(os.WriteFile(path, []byte(`<!DOCTYPE html><img src="http://127.0.0.1:9/probe.png">`), 0o644)).To(Succeed())

		page, err := browser.Open(context.Background(), chromium, path, dir, 400, 300)
		Expect(err).NotTo(HaveOccurred())
		Expect(page.Requests).To(ContainElement("http://127.0.0.1:9/probe.png"))
	})
})

// openFixture writes the HTML report of the fixture into a temporary
// folder and opens it in headless Chromium, at the URL fragment when one
// is given.
func openFixture(fragment string) *browser.Page {
	chromium, err := browser.Find()
	Expect(err).NotTo(HaveOccurred())

	dir := GinkgoT().TempDir()
	path := filepath.Join(dir, "report.html")
	Expect(os.WriteFile(path, []byte(htmlOf(fixture())), 0o644)).To(Succeed())

	page, err := browser.Open(context.Background(), chromium, path+fragment, dir, 1280, 2000)
	Expect(err).NotTo(HaveOccurred())
	return page
}

// keepScreenshot copies a screenshot to the folder named by
// AMTP_SCREENSHOTS, so that a person or a CI artifact can look at it.
func keepScreenshot(path, name string) {
	dir := os.Getenv("AMTP_SCREENSHOTS")
	if dir == "" {
		return
	}
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(dir, name), data, 0o644)).To(Succeed())
}
