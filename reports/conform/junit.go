package conform

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/conformance/result"
)

// JUnitOptions changes how verdicts map to JUnit elements.
type JUnitOptions struct {
	// WarnAsFailure files a warn verdict (a recommendation not met) as a
	// <failure>. Without it a warned clause is a passing testcase whose
	// system-out starts with "warning:".
	WarnAsFailure bool
}

// The JUnit XML elements that WriteJUnit writes. The element and attribute
// set is the one that the Jenkins xunit plugin's junit-10.xsd accepts:
// properties only on a testsuite, and a testcase holding only failure,
// error, skipped, system-out and system-err.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
	Skipped   *junitProblem `xml:"skipped"`
	SystemOut *junitText    `xml:"system-out"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// junitText is text kept readable in the XML file as a CDATA section.
type junitText struct {
	Text string `xml:",cdata"`
}

// WriteJUnit writes r as JUnit XML: one testsuite per section, named
// after the section, and one testcase per clause, with the clause ID as
// name and the section as classname. A fail verdict becomes <failure>, an
// error verdict <error> and skip and untestable <skipped> with the reason.
// Pass, info and (without WarnAsFailure) warn are passing testcases.
//
// junit-10.xsd allows no properties on a testcase, so the clause ID,
// level, section and role open each testcase's system-out, followed by
// the reason, the observations, the wire transcripts and the rerun
// command. Each testsuite's properties record the run's environment.
func WriteJUnit(w io.Writer, r *result.Result, opts JUnitOptions) error {
	doc := junitSuites{
		Name: "AMTP conformance of " + targetName(r),
		Time: seconds(r.Environment.DurationSeconds),
	}
	properties := environmentProperties(r)
	timestamp := ""
	if !r.Environment.Start.IsZero() {
		timestamp = r.Environment.Start.UTC().Format("2006-01-02T15:04:05")
	}

	for _, section := range Sections(r) {
		suite := junitSuite{
			Name:       sectionTitle(section),
			Timestamp:  timestamp,
			Properties: properties,
		}
		var total time.Duration
		for _, c := range section.Clauses {
			tc := junitTestcase(c, section.Key, opts)
			switch {
			case tc.Failure != nil:
				suite.Failures++
			case tc.Error != nil:
				suite.Errors++
			case tc.Skipped != nil:
				suite.Skipped++
			}
			total += time.Duration(c.DurationMS) * time.Millisecond
			suite.Cases = append(suite.Cases, tc)
		}
		suite.Tests = len(suite.Cases)
		suite.Time = seconds(total.Seconds())
		doc.Tests += suite.Tests
		doc.Failures += suite.Failures
		doc.Errors += suite.Errors
		doc.Suites = append(doc.Suites, suite)
	}

	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	encoder := xml.NewEncoder(w)
	encoder.Indent("", "  ")
	if err := encoder.Encode(doc); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	return nil
}

// junitTestcase maps one clause to a testcase.
func junitTestcase(c result.Clause, section string, opts JUnitOptions) junitCase {
	tc := junitCase{
		Name:      c.ID,
		Classname: section,
		Time:      seconds(float64(c.DurationMS) / 1000),
	}

	var out strings.Builder
	fmt.Fprintf(&out, "clause: %s\nlevel: %s\nsection: %s (%s)\nrole: %s\nverdict: %s\n",
		c.ID, c.Level, c.Section, c.Source, c.Role, c.Verdict)
	if c.Verdict == result.Warn && !opts.WarnAsFailure {
		fmt.Fprintf(&out, "warning: %s\n", c.Reason)
	} else {
		fmt.Fprintf(&out, "reason: %s\n", c.Reason)
	}
	writeEvidenceText(&out, c)
	tc.SystemOut = &junitText{xmlSafe(out.String())}

	problem := &junitProblem{Message: xmlSafe(c.Reason), Type: c.Level, Text: xmlSafe(problemText(c))}
	switch c.Verdict {
	case result.Fail:
		tc.Failure = problem
	case result.Warn:
		if opts.WarnAsFailure {
			tc.Failure = problem
		}
	case result.Error:
		problem.Type = "harness error"
		tc.Error = problem
	case result.Skip, result.Untestable:
		tc.Skipped = &junitProblem{Message: xmlSafe(string(c.Verdict) + ": " + c.Reason)}
	}
	return tc
}

// problemText is the body of a failure or error: the reason and the
// observations, so that a CI view that shows only the failure has them.
func problemText(c result.Clause) string {
	text := c.Reason
	for _, o := range c.Observations {
		text += "\n" + o
	}
	if c.Rerun != "" {
		text += "\nrerun: " + c.Rerun
	}
	return text
}

// writeEvidenceText writes the sentence, observations, transcripts and
// rerun command of c as plain text.
func writeEvidenceText(out *strings.Builder, c result.Clause) {
	if sentence := c.Sentence(); sentence != "" {
		fmt.Fprintf(out, "sentence: %s\n", sentence)
	}
	for _, o := range c.Observations {
		fmt.Fprintf(out, "observed: %s\n", o)
	}
	for i, e := range c.Transcript {
		fmt.Fprintf(out, "\nconnection %d: %s\n", i+1, e.Label)
		for _, line := range Lines(e) {
			fmt.Fprintln(out, line.String())
		}
	}
	if c.Rerun != "" {
		fmt.Fprintf(out, "\nrerun: %s\n", c.Rerun)
	}
}

// environmentProperties lists the run's environment as JUnit properties.
func environmentProperties(r *result.Result) []junitProperty {
	env := r.Environment
	props := []junitProperty{
		{"suite_version", env.SuiteVersion},
		{"draft", env.Draft},
		{"target", env.Target},
		{"start", formatTime(env.Start)},
		{"strict", strconv.FormatBool(env.Options.Strict)},
	}
	if env.TLS != nil {
		props = append(props,
			junitProperty{"tls_version", env.TLS.Version},
			junitProperty{"tls_cipher_suite", env.TLS.CipherSuite})
	}
	return props
}

func sectionTitle(s Section) string {
	if strings.HasPrefix(s.Key, "RFC ") {
		return s.Key
	}
	return result.Draft + " " + s.Key
}

// seconds formats a duration in seconds as junit-10.xsd's SUREFIRE_TIME
// type expects: digits, a dot and digits, with no exponent.
func seconds(s float64) string {
	return strconv.FormatFloat(s, 'f', 3, 64)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// xmlSafe replaces the characters that XML 1.0 forbids, such as most
// control characters, with \xNN escapes. Transcript lines are escaped
// already, but reasons and observations may quote server bytes.
func xmlSafe(s string) string {
	if strings.IndexFunc(s, invalidXMLChar) < 0 {
		return s
	}
	var out strings.Builder
	for _, r := range s {
		if invalidXMLChar(r) {
			fmt.Fprintf(&out, `\x%02x`, r)
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

// invalidXMLChar reports whether XML 1.0 (production 2, Char) forbids r.
// Invalid UTF-8 decodes to U+FFFD, which XML allows.
func invalidXMLChar(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return false
	case r < 0x20:
		return true
	case r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
		return true
	default:
		return false
	}
}
