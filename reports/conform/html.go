package conform

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/internal/page"
)

// htmlMaxLines is the number of transcript lines per connection that the
// HTML report shows. The probe keeps up to 1 MiB per connection, so a
// server that floods the suite could otherwise make the page too large to
// open. The JSON result keeps every line.
const htmlMaxLines = 400

// htmlMaxLineLength is the number of bytes of one transcript line that
// the HTML report shows, for the same reason: one event of a transcript
// may hold 64 KiB without a line break.
const htmlMaxLineLength = 2000

//go:embed report.html.tmpl
var reportTemplate string

//go:embed filter.js
var filterJS string

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"percent":       percentText,
	"add1":          func(i int) int { return i + 1 },
	"verdictOrNone": verdictOrNone,
}).Parse(reportTemplate))

// HTMLOptions are the settings of an HTML report.
type HTMLOptions struct {
	// InterpretationsURL is the link to the interpretations page. Empty
	// selects InterpretationsURL; a relative path such as
	// "../docs/interpretations.md" suits a report kept in the repository.
	InterpretationsURL string
	// Baseline, when set, is the comparison of the result with a baseline,
	// which the page shows after the headline. BaselineName names the
	// baseline, such as its file.
	Baseline     *Diff
	BaselineName string
}

type htmlReport struct {
	Result      *result.Result
	Headline    Headline
	StatusClass string
	Scores      []LevelScore
	Verdicts    []verdictCount
	Levels      []string
	Bar         []barSegment
	// Problems are the clauses with a fail, error or warn verdict, in
	// that order, for the list at the top of the page.
	Problems           []result.Clause
	Baseline           *htmlBaseline
	Sections           []htmlSection
	InterpretationsURL string
	CSS                template.CSS
	Script             template.JS
	PrintScript        template.JS
}

// htmlBaseline is the comparison with a baseline, as the page shows it.
type htmlBaseline struct {
	Name        string
	Environment []string
	Counts      string
	Groups      []changeGroup
}

type verdictCount struct {
	Verdict result.Verdict
	Count   int
}

// barSegment is one verdict's part of the stacked bar, in percent of the
// bar's width.
type barSegment struct {
	Verdict result.Verdict
	Count   int
	X, W    float64
}

type htmlSection struct {
	Key     string
	Anchor  string
	Counts  []verdictCount
	Clauses []htmlClause
}

type htmlClause struct {
	result.Clause
	Sentence    string
	Connections []htmlConnection
}

type htmlConnection struct {
	Label   string
	TLS     string
	Lines   []Line
	Omitted int
}

// WriteHTML writes r as one HTML page that needs no other file: the
// headline verdict, the changes against a baseline if opts has one, the
// scores per level, a list of the failed, errored
// and warned clauses that link to their rows, and a table per section
// whose rows open to the clause's sentence, evidence, wire transcript and
// rerun command. Everything from the result is escaped by html/template.
func WriteHTML(w io.Writer, r *result.Result, opts HTMLOptions) error {
	if opts.InterpretationsURL == "" {
		opts.InterpretationsURL = InterpretationsURL
	}
	headline := HeadlineOf(r)
	data := htmlReport{
		Result:             r,
		Headline:           headline,
		StatusClass:        statusClass(headline.Status),
		Scores:             LevelScores(r),
		Levels:             Levels(r),
		InterpretationsURL: opts.InterpretationsURL,
		CSS:                page.CSS,
		Script:             template.JS(filterJS),
		PrintScript:        page.PrintScript,
	}
	data.Verdicts = countList(r.Summary.Verdicts)
	data.Bar = stackedBar(data.Verdicts, r.Summary.Clauses)
	for _, v := range []result.Verdict{result.Fail, result.Error, result.Warn} {
		data.Problems = append(data.Problems, clausesWith(r, v)...)
	}
	if d := opts.Baseline; d != nil {
		data.Baseline = &htmlBaseline{Name: opts.BaselineName, Environment: d.Environment, Counts: d.counts(), Groups: d.groups()}
	}

	for i, section := range Sections(r) {
		hs := htmlSection{Key: section.Key, Anchor: fmt.Sprintf("section-%d", i+1), Counts: countList(section.Counts)}
		for _, c := range section.Clauses {
			hs.Clauses = append(hs.Clauses, htmlClauseOf(c))
		}
		data.Sections = append(data.Sections, hs)
	}

	if err := reportPage.Execute(w, data); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}

func htmlClauseOf(c result.Clause) htmlClause {
	hc := htmlClause{Clause: c, Sentence: c.Sentence()}
	for _, e := range c.Transcript {
		lines := Lines(e)
		conn := htmlConnection{Label: e.Label, TLS: tlsSummary(e.TLS)}
		if len(lines) > htmlMaxLines {
			conn.Omitted = len(lines) - htmlMaxLines
			lines = lines[:htmlMaxLines]
		}
		for i, line := range lines {
			if len(line.Text) > htmlMaxLineLength {
				cut := htmlMaxLineLength
				for cut > 0 && !utf8.RuneStart(line.Text[cut]) {
					cut--
				}
				lines[i].Text = fmt.Sprintf("%s… (%d more bytes in the JSON result)", line.Text[:cut], len(line.Text)-cut)
			}
		}
		conn.Lines = lines
		hc.Connections = append(hc.Connections, conn)
	}
	return hc
}

// tlsSummary describes a connection's TLS in one line.
func tlsSummary(facts *probe.TLSFacts) string {
	if facts == nil || !facts.Enabled {
		return "plain TCP"
	}
	parts := []string{}
	if facts.Version != "" {
		parts = append(parts, facts.Version)
	}
	if facts.CipherSuite != "" {
		parts = append(parts, facts.CipherSuite)
	}
	if facts.Resumed {
		parts = append(parts, "resumed")
	}
	if facts.ClientCertificate != nil {
		parts = append(parts, "client certificate "+facts.ClientCertificate.CommonName)
	}
	if facts.HandshakeError != "" {
		parts = append(parts, "handshake error: "+facts.HandshakeError)
	}
	if facts.Alert != nil {
		parts = append(parts, fmt.Sprintf("alert %d %s", facts.Alert.Code, facts.Alert.Name))
	}
	if len(parts) == 0 {
		return "TLS, handshake not complete"
	}
	return strings.Join(parts, ", ")
}

func countList(counts result.Counts) []verdictCount {
	var list []verdictCount
	for _, v := range result.Verdicts() {
		if counts[v] > 0 {
			list = append(list, verdictCount{v, counts[v]})
		}
	}
	return list
}

func stackedBar(counts []verdictCount, total int) []barSegment {
	if total == 0 {
		return nil
	}
	var segments []barSegment
	x := 0.0
	for _, vc := range counts {
		width := 100 * float64(vc.Count) / float64(total)
		segments = append(segments, barSegment{Verdict: vc.Verdict, Count: vc.Count, X: x, W: width})
		x += width
	}
	return segments
}

func statusClass(s Status) string {
	switch s {
	case StatusFail:
		return "status-fail"
	case StatusIncomplete:
		return "status-incomplete"
	case StatusWarn:
		return "status-warn"
	default:
		return "status-pass"
	}
}
