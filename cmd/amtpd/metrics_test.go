package main_test

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*`)
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// series returns the sample's name and labels as one key, with the labels
// sorted, such as `requests_total{code="200",method="get"}`.
func (s sample) series() string {
	if len(s.labels) == 0 {
		return s.name
	}
	var pairs []string
	for k, v := range s.labels {
		pairs = append(pairs, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(pairs)
	return s.name + "{" + strings.Join(pairs, ",") + "}"
}

// exposition is a parsed scrape in the Prometheus text format 0.0.4.
type exposition struct {
	types   map[string]string  // metric family name to TYPE
	values  map[string]float64 // sample.series() to value
	samples []sample
}

// parseExposition checks text against the Prometheus text format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/) and
// returns the samples and every problem found, each naming its line. It is
// stricter than the format, which ignores empty lines, allows any run of
// blanks between tokens and makes HELP and TYPE optional. Here each family
// needs HELP and TYPE lines before its first sample, tokens are separated
// by one space, and an empty line is a problem.
func parseExposition(text string) (*exposition, []string) {
	e := &exposition{types: map[string]string{}, values: map[string]float64{}}
	var problems []string
	addProblem := func(n int, line, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("line %d %q: %s", n, line, fmt.Sprintf(format, args...)))
	}
	if !strings.HasSuffix(text, "\n") {
		problems = append(problems, "the text does not end with a line feed")
	}

	helped := map[string]bool{}
	finished := map[string]bool{} // families followed by another family
	current := ""
	enterFamily := func(n int, line, family string) {
		if family == current {
			return
		}
		if finished[family] {
			addProblem(n, line, "family %s appears again after other families", family)
		}
		if current != "" {
			finished[current] = true
		}
		current = family
	}

	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		if line == "" {
			addProblem(n, line, "empty line")
			continue
		}
		if strings.HasPrefix(line, "#") {
			fields := strings.Fields(line)
			if len(fields) < 3 || fields[1] != "HELP" && fields[1] != "TYPE" {
				continue // a plain comment
			}
			family := fields[2]
			if !metricName.MatchString(family) || metricName.FindString(family) != family {
				addProblem(n, line, "invalid metric name %q", family)
				continue
			}
			enterFamily(n, line, family)
			if fields[1] == "HELP" {
				if helped[family] {
					addProblem(n, line, "second HELP line for %s", family)
				}
				helped[family] = true
				continue
			}
			if _, ok := e.types[family]; ok {
				addProblem(n, line, "second TYPE line for %s", family)
			}
			if len(fields) != 4 || !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, fields[3]) {
				addProblem(n, line, "invalid TYPE line")
				continue
			}
			if slices.ContainsFunc(e.samples, func(s sample) bool { return familyOf(s.name, e.types) == family }) {
				addProblem(n, line, "TYPE line after samples of %s", family)
			}
			e.types[family] = fields[3]
			continue
		}

		s, err := parseSample(line)
		if err != nil {
			addProblem(n, line, "%v", err)
			continue
		}
		family := familyOf(s.name, e.types)
		enterFamily(n, line, family)
		if _, ok := e.types[family]; !ok {
			addProblem(n, line, "sample before the TYPE line of %s", family)
		}
		if !helped[family] {
			addProblem(n, line, "sample before the HELP line of %s", family)
		}
		if _, dup := e.values[s.series()]; dup {
			addProblem(n, line, "series %s appears twice", s.series())
		}
		if e.types[family] == "counter" && !(s.value >= 0) {
			addProblem(n, line, "counter %s is %g", s.name, s.value)
		}
		e.values[s.series()] = s.value
		e.samples = append(e.samples, s)
	}

	for family, typ := range e.types {
		if typ == "histogram" {
			problems = append(problems, checkHistogram(e, family)...)
		}
	}
	return e, problems
}

// familyOf returns the metric family of a sample name: the name itself, or
// for the _bucket, _sum and _count series the histogram or summary that
// declared them.
func familyOf(name string, types map[string]string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch types[base] {
		case "histogram":
			return base
		case "summary":
			if suffix != "_bucket" {
				return base
			}
		}
	}
	return name
}

// parseSample parses `name{label="value",...} value [timestamp]`.
func parseSample(line string) (sample, error) {
	s := sample{name: metricName.FindString(line), labels: map[string]string{}}
	if s.name == "" {
		return s, fmt.Errorf("no metric name")
	}
	rest := line[len(s.name):]

	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			name := labelName.FindString(rest)
			if name == "" {
				return s, fmt.Errorf("invalid label name at %q", rest)
			}
			rest = rest[len(name):]
			if !strings.HasPrefix(rest, `="`) {
				return s, fmt.Errorf("label %s: expected =\"", name)
			}
			value, after, err := readLabelValue(rest[2:])
			if err != nil {
				return s, fmt.Errorf("label %s: %w", name, err)
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("label %s given twice", name)
			}
			s.labels[name] = value
			rest = after
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return s, fmt.Errorf("expected , or } after label %s", name)
			}
		}
		rest = rest[1:]
	}

	fields := strings.Split(strings.TrimPrefix(rest, " "), " ")
	if !strings.HasPrefix(rest, " ") || len(fields) > 2 || fields[0] == "" {
		return s, fmt.Errorf("expected one space, the value and an optional timestamp")
	}
	value, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("invalid value %q", fields[0])
	}
	s.value = value
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("invalid timestamp %q", fields[1])
		}
	}
	return s, nil
}

// readLabelValue reads an escaped label value up to its closing quote and
// returns the value and the text after the quote. The format allows the
// escapes \\, \" and \n only.
func readLabelValue(text string) (string, string, error) {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '"':
			return b.String(), text[i+1:], nil
		case '\n':
			return "", "", fmt.Errorf("raw line feed in a label value")
		case '\\':
			if i+1 == len(text) {
				return "", "", fmt.Errorf("unfinished escape")
			}
			i++
			switch text[i] {
			case '\\':
				b.WriteByte('\\')
			case '"':
				b.WriteByte('"')
			case 'n':
				b.WriteByte('\n')
			default:
				return "", "", fmt.Errorf("invalid escape \\%c", text[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated label value")
}

// checkHistogram checks that the buckets of a histogram family grow with
// their upper bounds and end with +Inf, which equals _count.
func checkHistogram(e *exposition, family string) []string {
	var problems []string
	type bucket struct{ bound, count float64 }
	var buckets []bucket
	for _, s := range e.samples {
		if s.name != family+"_bucket" {
			continue
		}
		bound, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: invalid le label %q", s.series(), s.labels["le"]))
			continue
		}
		buckets = append(buckets, bucket{bound, s.value})
	}
	if len(buckets) == 0 || !math.IsInf(buckets[len(buckets)-1].bound, 1) {
		return append(problems, fmt.Sprintf("histogram %s has no last bucket le=\"+Inf\"", family))
	}
	for i := 1; i < len(buckets); i++ {
		if buckets[i].bound <= buckets[i-1].bound || buckets[i].count < buckets[i-1].count {
			problems = append(problems, fmt.Sprintf("histogram %s: bucket le=%g (count %g) after le=%g (count %g)",
				family, buckets[i].bound, buckets[i].count, buckets[i-1].bound, buckets[i-1].count))
		}
	}
	count, hasCount := e.values[family+"_count"]
	if _, hasSum := e.values[family+"_sum"]; !hasSum || !hasCount {
		return append(problems, fmt.Sprintf("histogram %s lacks _sum or _count", family))
	}
	if count != buckets[len(buckets)-1].count {
		problems = append(problems, fmt.Sprintf("histogram %s: _count %g differs from the +Inf bucket %g", family, count, buckets[len(buckets)-1].count))
	}
	return problems
}

var _ = Describe("Prometheus text format check", func() {
	const valid = "# HELP a_total Things.\n# TYPE a_total counter\na_total{kind=\"x\\\"y\"} 3\na_total{kind=\"z\"} 4 1700000000000\n" +
		"# HELP h Latency.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n"

	It("accepts a valid exposition", func() {
		e, problems := parseExposition(valid)
		Expect(problems).To(BeEmpty())
		Expect(e.values).To(HaveKeyWithValue(`a_total{kind="x\"y"}`, 3.0))
		Expect(e.values).To(HaveKeyWithValue("h_count", 2.0))
	})

	DescribeTable("rejects a broken exposition",
		func(text, want string) {
			_, problems := parseExposition(text)
			Expect(problems).To(ContainElement(ContainSubstring(want)))
		},
		Entry("no TYPE line", "# HELP a A.\na 1\n", "sample before the TYPE line"),
		Entry("no HELP line", "# TYPE a gauge\na 1\n", "sample before the HELP line"),
		Entry("TYPE after a sample", "# HELP a A.\na 1\n# TYPE a gauge\n", "TYPE line after samples"),
		Entry("unknown type", "# HELP a A.\n# TYPE a meter\na 1\n", "invalid TYPE line"),
		Entry("unquoted label", "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n", `expected ="`),
		Entry("bad escape", "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n", "invalid escape"),
		Entry("text value", "# HELP a A.\n# TYPE a gauge\na one\n", "invalid value"),
		Entry("two spaces", "# HELP a A.\n# TYPE a gauge\na  1\n", "expected one space"),
		Entry("same series twice", "# HELP a A.\n# TYPE a gauge\na 1\na 2\n", "appears twice"),
		Entry("interleaved families", "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\nb 1\na 1\n", "appears again"),
		Entry("negative counter", "# HELP a A.\n# TYPE a counter\na -1\n", "counter a is -1"),
		Entry("histogram without +Inf", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", `no last bucket le="+Inf"`),
		Entry("shrinking buckets", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "after le=1"),
		Entry("count off the +Inf bucket", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", "differs from the +Inf bucket"),
		Entry("no final line feed", "# HELP a A.\n# TYPE a gauge\na 1", "does not end with a line feed"),
	)
})

var metricsLine = regexp.MustCompile(`amtpd: metrics listener on (\S+)`)

// closedPort returns a loopback address where nothing listens right now.
func closedPort() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := l.Addr().String()
	Expect(l.Close()).To(Succeed())
	return addr
}

var _ = Describe("amtpd metrics", Ordered, func() {
	var (
		st      *stage
		srv     *amtpd
		metrics string // URL of /metrics
	)

	BeforeAll(func() {
		st = newStage("")
		rejecter := startSink("550 5.1.1 no such user here")
		srv = st.runAmtpd("metrics", st.customConfig("metrics", customServer{
			queue:   "retry_base = \"1h\"\nretry_max_interval = \"2h\"",
			routes:  gatewayRoute("r.example.test", rejecter.addr()) + gatewayRoute("stuck.example.test", closedPort()),
			metrics: "127.0.0.1:0",
		}), false, false)
		match := metricsLine.FindSubmatch(srv.session.Out.Contents())
		Expect(match).NotTo(BeNil(), "amtpd prints the metrics address")
		metrics = "http://" + string(match[1]) + "/metrics"
	})

	// scrape fetches /metrics and fails on any format problem.
	scrape := func() map[string]float64 {
		GinkgoHelper()
		client := &http.Client{Timeout: ioTimeout}
		resp, err := client.Get(metrics)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		Expect(resp.Header.Get("Content-Type")).To(HavePrefix("text/plain; version=0.0.4"))
		body, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())

		e, problems := parseExposition(string(body))
		Expect(problems).To(BeEmpty(), "exposition:\n%s", body)
		return e.values
	}

	send := func(from string, to string) {
		GinkgoHelper()
		c := srv.dialAs(pki.CertClient)
		c.greet(cnOf(st.manifest, pki.CertClient))
		Expect(c.sendMessage(from, "per/individual", []string{to}, testBody)).To(Equal(250))
	}

	It("serves the metrics of an empty queue", func() {
		values := scrape()
		Expect(values).To(HaveKeyWithValue("amtpd_queue_messages", 0.0))
		Expect(values).To(HaveKeyWithValue("amtpd_queue_deferred_messages", 0.0))
		Expect(values).To(HaveKeyWithValue(`amtpd_delivery_attempts_total{outcome="delivered"}`, 0.0))
		Expect(values).To(HaveKeyWithValue("amtpd_bounces_total", 0.0))
		Expect(values).To(HaveKeyWithValue("amtpd_queue_residence_seconds_count", 0.0))
	})

	It("counts a delivery", func() {
		send("sender@example.org", "alice@example.test")
		srv.waitDelivered("alice@example.test", 1)

		Eventually(scrape).Should(HaveKeyWithValue(`amtpd_delivery_attempts_total{outcome="delivered"}`, 1.0))
		values := scrape()
		Expect(values).To(HaveKeyWithValue("amtpd_queue_enqueued_total", 1.0))
		Expect(values).To(HaveKeyWithValue("amtpd_queue_residence_seconds_count", 1.0))
		Expect(values).To(HaveKeyWithValue("amtpd_bounces_total", 0.0))
	})

	It("counts a bounce", func() {
		send("bob@example.test", "nobody@r.example.test")
		srv.waitDelivered("bob@example.test", 1)

		Eventually(scrape).Should(HaveKeyWithValue("amtpd_bounces_total", 1.0))
		values := scrape()
		Expect(values).To(HaveKeyWithValue(`amtpd_delivery_attempts_total{outcome="failed"}`, 1.0))
		Expect(values).To(HaveKeyWithValue(`amtpd_delivery_attempts_total{outcome="delivered"}`, 2.0), "the bounce was delivered to bob")
		Expect(values).To(HaveKeyWithValue("amtpd_queue_enqueued_total", 3.0), "the message and its bounce")
	})

	It("counts a deferred message in the queue", func() {
		send("carol@example.test", "someone@stuck.example.test")

		Eventually(scrape, 10*time.Second).Should(HaveKeyWithValue(`amtpd_delivery_attempts_total{outcome="deferred"}`, 1.0))
		// The attempt is counted before its result is written to the spool,
		// which the queue gauges read, so they may lag one scrape behind.
		Eventually(scrape).Should(HaveKeyWithValue("amtpd_queue_deferred_messages", 1.0))
		values := scrape()
		Expect(values).To(HaveKeyWithValue("amtpd_queue_messages", 1.0))
		Expect(values).To(HaveKey("amtpd_queue_oldest_message_age_seconds"))
		Expect(values["amtpd_queue_oldest_message_age_seconds"]).To(BeNumerically(">", 0))
	})
})
