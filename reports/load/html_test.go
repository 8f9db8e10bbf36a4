package load_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/loadgen/result"
	"github.com/amtp-toolkit/amtp/reports/internal/browser"
	"github.com/amtp-toolkit/amtp/reports/load"
)

// update rewrites the golden files: go test ./reports/load -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func pageOf(r *result.Result) string {
	var out bytes.Buffer
	Expect(load.WriteHTML(&out, r)).To(Succeed())
	return out.String()
}

var _ = Describe("Intervals", func() {
	It("keeps one interval per second of a short run", func() {
		r := synthetic(30, 1)
		intervals := load.Intervals(r)
		Expect(intervals).To(HaveLen(30))
		Expect(intervals[0].Seconds).To(Equal(1.0))
		Expect(intervals[29].Offset).To(Equal(29.0))
	})

	It("merges the seconds of a long run exactly", func() {
		r := synthetic(3000, 2)
		intervals := load.Intervals(r)
		Expect(len(intervals)).To(BeNumerically("<=", 720))
		Expect(intervals[0].Seconds).To(Equal(5.0))

		var completed, latencies int64
		for _, iv := range intervals {
			completed += iv.Completed
			latencies += iv.Latency.Count()
		}
		Expect(completed).To(Equal(r.Counts.Completed))
		Expect(latencies).To(Equal(r.Phase(result.PhaseTotal).Count()))
	})

	It("leaves idle seconds empty", func() {
		r := synthetic(10, 3)
		r.Timeline = append(r.Timeline[:3], r.Timeline[6:]...)
		intervals := load.Intervals(r)
		Expect(intervals).To(HaveLen(10))
		Expect(intervals[4].Completed).To(BeZero())
		Expect(intervals[4].Latency).To(BeNil())
	})
})

var _ = Describe("WriteHTML", func() {
	It("escapes text from the server and the options", func() {
		page := pageOf(synthetic(20, 1))
		Expect(page).NotTo(ContainSubstring("<script>alert(1)</script>"))
		Expect(page).To(ContainSubstring("550 5.7.1 &lt;script&gt;alert(1)&lt;/script&gt; denied"))
		Expect(page).NotTo(ContainSubstring("<b>bold</b>"))
		Expect(page).NotTo(ContainSubstring("<script>x</script>"))
	})

	It("loads nothing from elsewhere", func() {
		page := pageOf(synthetic(20, 1))
		Expect(regexp.MustCompile(`(?i)\ssrc\s*=|<link\b|url\(|@import`).FindAllString(page, -1)).To(BeEmpty())
	})

	It("draws every plot", func() {
		page := pageOf(synthetic(60, 1))
		for _, id := range []string{"throughput-chart", "latency-chart", "phase-chart", "percentile-chart"} {
			Expect(page).To(MatchRegexp(`id="`+id+`"><svg class="chart"`), id)
		}
		Expect(page).To(MatchRegexp(`(?s)id="error-charts">.*<h3>By reply code</h3><svg class="chart"`))
		Expect(strings.Count(page, `<polyline class="line s1"`)).To(BeNumerically(">=", 3))
		Expect(page).To(ContainSubstring(`handshake: bad_certificate`))
		Expect(page).To(ContainSubstring(`rcpt: 550 5.7.1`))
		Expect(page).To(ContainSubstring(`data-passed="false"`))
	})

	It("reports a run without errors", func() {
		r := synthetic(5, 1)
		r.Errors = nil
		Expect(pageOf(r)).To(ContainSubstring("No errors."))
	})

	It("renders a real run", func() {
		r, err := result.Load(filepath.Join("testdata", "run.json"))
		Expect(err).NotTo(HaveOccurred())
		Expect(pageOf(r)).To(ContainSubstring(`data-passed="true"`))
	})

	It("names the total phase by its name", func() {
		page := pageOf(synthetic(5, 1))
		Expect(page).To(ContainSubstring("Latency of a whole unit of work (the phase <code>total</code>)"))
		Expect(page).NotTo(ContainSubstring("PhaseTotal"))
	})

	It("counts deliveries only with a sink", func() {
		r, err := result.Load(filepath.Join("testdata", "run.json"))
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Run.Scenario).To(Equal(result.ScenarioSession))
		Expect(pageOf(r)).To(ContainSubstring("<dt>accepted</dt>"))
		Expect(pageOf(r)).NotTo(ContainSubstring("delivered"))

		r.Run.Scenario = result.ScenarioRelay
		r.Counts.MessagesDelivered = 7
		Expect(pageOf(r)).To(ContainSubstring("<dt>delivered to the sink</dt><dd>7</dd>"))
	})
})

var _ = Describe("WriteMarkdown", func() {
	It("keeps the golden summary of a real run", func() {
		r, err := result.Load(filepath.Join("testdata", "run.json"))
		Expect(err).NotTo(HaveOccurred())
		var out bytes.Buffer
		Expect(load.WriteMarkdown(&out, r)).To(Succeed())

		path := filepath.Join("testdata", "run.golden.md")
		if *update {
			Expect(os.MkdirAll("testdata", 0o755)).To(Succeed())
			Expect(os.WriteFile(path, out.Bytes(), 0o644)).To(Succeed())
		}
		want, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred(), "create %s with go test ./reports/load -update", path)
		Expect(out.String()).To(Equal(string(want)))
	})

	It("marks failed thresholds", func() {
		var out bytes.Buffer
		Expect(load.WriteMarkdown(&out, synthetic(10, 1))).To(Succeed())
		Expect(out.String()).To(ContainSubstring("❌ thresholds failed"))
		Expect(out.String()).To(ContainSubstring("| `errors<0.1%` | **failed** |"))
	})
})

var _ = Describe("WriteCompareHTML", func() {
	It("shows both runs and the change", func() {
		a := synthetic(30, 1)
		b := synthetic(30, 2)
		b.Counts.Completed /= 2
		var out bytes.Buffer
		Expect(load.WriteCompareHTML(&out, load.Named{Name: "before", Result: a}, load.Named{Name: "<after>", Result: b})).To(Succeed())
		page := out.String()
		Expect(page).To(ContainSubstring("&lt;after&gt;"))
		Expect(page).NotTo(ContainSubstring("<after>"))
		Expect(page).To(MatchRegexp(`units completed per second</td><td class="num">[0-9.]+/s</td><td class="num">[0-9.]+/s</td><td class="num fail-text">-50\.[0-9] %`))
		Expect(strings.Count(page, `<polyline class="line s2"`)).To(BeNumerically(">=", 3))
	})
})

var _ = Describe("load reports in Chromium", Label("browser"), func() {
	open := func(name string, render func(*bytes.Buffer)) *browser.Page {
		chromium, err := browser.Find()
		Expect(err).NotTo(HaveOccurred())
		dir := GinkgoT().TempDir()
		var out bytes.Buffer
		render(&out)
		path := filepath.Join(dir, name+".html")
		Expect(os.WriteFile(path, out.Bytes(), 0o644)).To(Succeed())

		page, err := browser.Open(context.Background(), chromium, path, dir, 1280, 3600)
		Expect(err).NotTo(HaveOccurred())
		if shots := os.Getenv("AMTP_SCREENSHOTS"); shots != "" {
			data, err := os.ReadFile(page.Screenshot)
			Expect(err).NotTo(HaveOccurred())
			Expect(os.MkdirAll(shots, 0o755)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(shots, name+".png"), data, 0o644)).To(Succeed())
		}
		info, err := os.Stat(page.Screenshot)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Size()).To(BeNumerically(">", 10000))
		Expect(page.Requests).To(BeEmpty())
		return page
	}

	It("renders the load report", func() {
		page := open("load", func(out *bytes.Buffer) { Expect(load.WriteHTML(out, synthetic(300, 1))).To(Succeed()) })
		for _, id := range []string{"headline", "figures", "throughput-chart", "latency-chart", "phase-chart", "percentile-chart", "phases", "errors"} {
			Expect(page.DOM).To(ContainSubstring(`id="`+id+`"`), id)
		}
		Expect(page.DOM).To(ContainSubstring("<polyline"))
	})

	It("renders the comparison", func() {
		page := open("load-compare", func(out *bytes.Buffer) {
			Expect(load.WriteCompareHTML(out, load.Named{Name: "a", Result: synthetic(120, 1)}, load.Named{Name: "b", Result: synthetic(120, 2)})).To(Succeed())
		})
		Expect(page.DOM).To(ContainSubstring(`id="metrics"`))
		Expect(page.DOM).To(ContainSubstring(`id="phases"`))
	})
})
