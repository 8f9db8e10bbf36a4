package result

import (
	"fmt"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
)

// Counts is the number of clauses per verdict. Verdicts with no clause
// are left out.
type Counts map[Verdict]int

// Summary counts the verdicts of a result in total, per level and per
// section.
type Summary struct {
	// Clauses is the number of clause entries.
	Clauses  int    `json:"clauses"`
	Verdicts Counts `json:"verdicts"`
	// ByLevel is keyed by the RFC 2119 key word, such as "MUST NOT".
	ByLevel map[string]Counts `json:"by_level"`
	// BySection is keyed by the section number; RFC 5321 sections carry
	// the prefix "RFC 5321 ".
	BySection map[string]Counts `json:"by_section"`
	// Failed lists the IDs with verdict fail, in catalogue order.
	Failed []string `json:"failed"`
	// Errors lists the IDs with verdict error, in catalogue order.
	Errors []string `json:"errors"`
}

// Summarize counts the verdicts of clauses.
func Summarize(clauses []Clause) Summary {
	s := Summary{
		Clauses:   len(clauses),
		Verdicts:  Counts{},
		ByLevel:   map[string]Counts{},
		BySection: map[string]Counts{},
		Failed:    []string{},
		Errors:    []string{},
	}
	for _, c := range clauses {
		s.Verdicts[c.Verdict]++
		addCount(s.ByLevel, c.Level, c.Verdict)
		addCount(s.BySection, SectionKey(c.Source, c.Section), c.Verdict)
		switch c.Verdict {
		case Fail:
			s.Failed = append(s.Failed, c.ID)
		case Error:
			s.Errors = append(s.Errors, c.ID)
		}
	}
	return s
}

// SectionKey is the key of a section in Summary.BySection: the bare number
// for the draft and "RFC 5321 <number>" for inherited clauses, as
// catalogue.Sections spells them.
func SectionKey(source, section string) string {
	if source == catalogue.SourceRFC5321 {
		return catalogue.SourceRFC5321 + " " + section
	}
	return section
}

func addCount(counts map[string]Counts, key string, v Verdict) {
	if counts[key] == nil {
		counts[key] = Counts{}
	}
	counts[key][v]++
}

// MustFailures returns the clauses of an absolute requirement (MUST, MUST
// NOT, REQUIRED, SHALL, SHALL NOT) whose verdict is fail.
func (r *Result) MustFailures() []Clause {
	var failed []Clause
	for _, c := range r.Clauses {
		if c.Verdict == Fail && catalogue.Level(c.Level).Strength() == catalogue.StrengthAbsolute {
			failed = append(failed, c)
		}
	}
	return failed
}

// HarnessErrors returns the clauses whose verdict is error.
func (r *Result) HarnessErrors() []Clause {
	var errs []Clause
	for _, c := range r.Clauses {
		if c.Verdict == Error {
			errs = append(errs, c)
		}
	}
	return errs
}

// Sentence returns the normative sentence of c: Text, or for results
// written without it, the sentence of the catalogue clause with the same
// ID. It returns "" when neither has one.
func (c Clause) Sentence() string {
	if c.Text != "" {
		return c.Text
	}
	if entry, ok := catalogue.ByID(c.ID); ok {
		return entry.Text
	}
	return ""
}

// Count returns n followed by the singular or the plural noun, such as
// "1 clause" or "3 clauses", for reasons and summaries.
func Count(n int, singular, plural string) string {
	if n == 1 {
		return "1 " + singular
	}
	return fmt.Sprintf("%d %s", n, plural)
}
