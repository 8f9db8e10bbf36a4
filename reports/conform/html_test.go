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
