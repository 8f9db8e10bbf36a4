// Package conform renders a conformance result (package
// conformance/result) as JUnit XML for CI test views, as one
// self-contained HTML page, and as a Markdown summary for CI job
// summaries. It also compares results of several implementations and
// checks a result against a baseline.
package conform

import (
	"fmt"
	"slices"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// InterpretationsURL is the default link to the page that explains how the
// suite reads the draft where it contradicts itself. It is the URL form of
// docs/interpretations.md, so that a report opened from any folder, or
// published, reaches it.
// NOTE: the URL assumes the repository is published at its module path.
const InterpretationsURL = "https://github.com/amtp-toolkit/amtp/blob/main/docs/interpretations.md"

// Status is the overall verdict of a run.
type Status string

// Statuses, in the order that amtpkit conform chooses its exit status:
// a failed MUST-class clause comes first, then harness errors.
const (
	StatusFail       Status = "fail"
	StatusIncomplete Status = "incomplete"
	StatusWarn       Status = "pass with warnings"
	StatusPass       Status = "pass"
)

// Headline is the overall verdict of a run in one line.
type Headline struct {
	Status Status
	Text   string
}

// HeadlineOf returns the overall verdict of r. It follows the exit status
// of amtpkit conform: fail when a MUST-class clause failed, incomplete when
// the harness could not check some clause or met a problem, and otherwise
// pass, with warnings when a recommendation was not met. A fail headline
// also counts the clauses that could not be checked, because each of them
// may hide another failure.
func HeadlineOf(r *result.Result) Headline {
	counts := r.Summary.Verdicts
	mustFailures := len(r.MustFailures())
	errored := len(r.HarnessErrors())
	harness := errored + len(r.Environment.Problems)
	switch {
	case mustFailures > 0 && errored > 0:
		return Headline{StatusFail, fmt.Sprintf("%s: %s failed and %d could not be checked (error)",
			targetName(r), plural(mustFailures, "MUST-class clause"), errored)}
	case mustFailures > 0:
		return Headline{StatusFail, fmt.Sprintf("%s: %s failed", targetName(r), plural(mustFailures, "MUST-class clause"))}
	case harness > 0:
		return Headline{StatusIncomplete, fmt.Sprintf("the suite could not check %s completely: %s", targetName(r), plural(harness, "harness error"))}
	case counts[result.Warn] > 0:
		return Headline{StatusWarn, fmt.Sprintf("%s passed every MUST-class clause that ran, with %s", targetName(r), plural(counts[result.Warn], "warning"))}
	default:
		return Headline{StatusPass, fmt.Sprintf("%s passed every clause that ran", targetName(r))}
	}
}

func targetName(r *result.Result) string {
	if r.Environment.Target == "" {
		return "the server"
	}
	return r.Environment.Target
}

// LevelScore is the outcome of the clauses of one requirement level.
type LevelScore struct {
	Level  string
	Counts result.Counts
	// Checked is the number of clauses with a judged verdict: pass, fail,
	// warn or error. Info, skip and untestable are not judged.
	Checked int
	Passed  int
}

// Percent returns Passed as a percentage of Checked, or -1 when no clause
// was checked.
func (s LevelScore) Percent() float64 {
	if s.Checked == 0 {
		return -1
	}
	return 100 * float64(s.Passed) / float64(s.Checked)
}

// Total returns the number of clauses of the level.
func (s LevelScore) Total() int {
	total := 0
	for _, n := range s.Counts {
		total += n
	}
	return total
}

// LevelScores returns one score per level present in r, strongest level
// first and unknown levels last in name order.
func LevelScores(r *result.Result) []LevelScore {
	var order []string
	for _, level := range catalogue.Levels() {
		order = append(order, string(level))
	}
	var unknown []string
	for level := range r.Summary.ByLevel {
		if !catalogue.Level(level).Valid() {
			unknown = append(unknown, level)
		}
	}
	slices.Sort(unknown)
	order = append(order, unknown...)

	var scores []LevelScore
	for _, level := range order {
		counts, ok := r.Summary.ByLevel[level]
		if !ok {
			continue
		}
		scores = append(scores, LevelScore{
			Level:   level,
			Counts:  counts,
			Checked: counts[result.Pass] + counts[result.Fail] + counts[result.Warn] + counts[result.Error],
			Passed:  counts[result.Pass],
		})
	}
	return scores
}

// Section is the clauses of one section, in result order.
type Section struct {
	// Key is the section as result.SectionKey spells it: "4.4.1" for the
	// draft, "RFC 5321 4.2.4" for inherited clauses.
	Key     string
	Clauses []result.Clause
	Counts  result.Counts
}

// Sections groups the clauses of r by section, in the order in which
// each section first appears.
func Sections(r *result.Result) []Section {
	index := map[string]int{}
	var sections []Section
	for _, c := range r.Clauses {
		key := result.SectionKey(c.Source, c.Section)
		i, ok := index[key]
		if !ok {
			i = len(sections)
			index[key] = i
			sections = append(sections, Section{Key: key, Counts: result.Counts{}})
		}
		sections[i].Clauses = append(sections[i].Clauses, c)
		sections[i].Counts[c.Verdict]++
	}
	return sections
}

// Levels returns the levels that clauses of r use, in LevelScores order.
func Levels(r *result.Result) []string {
	var levels []string
	for _, score := range LevelScores(r) {
		levels = append(levels, score.Level)
	}
	return levels
}

// plural returns "1 thing" or "n things", or "n fixes" for a word that
// ends in x.
func plural(n int, thing string) string {
	switch {
	case n == 1:
		return "1 " + thing
	case strings.HasSuffix(thing, "x"):
		return fmt.Sprintf("%d %ses", n, thing)
	default:
		return fmt.Sprintf("%d %ss", n, thing)
	}
}
