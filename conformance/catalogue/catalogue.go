// Package catalogue lists the normative statements of draft-weinman-amtp-03
// and the RFC 5321 server behaviour that AMTP inherits, as Clause values.
// The conformance suite labels each of its specs with a clause ID and
// reports a verdict per clause.
//
// The catalogue covers every sentence of draft-weinman-amtp-03 sections 1.2
// to 8 that contains an RFC 2119 key word in capitals, plus the sentences
// where the draft states a requirement in lower case. Each draft section has
// its own file, and section4_4.go holds 4.4.1 to 4.4.4. The inherited RFC
// 5321 clauses are in rfc5321.go. Draft section 3 incorporates "the most
// recent SMTP specification", which it names as RFC 2821. RFC 5321 has since
// obsoleted RFC 2821, so the inherited clauses quote RFC 5321.
//
// Every Text is a verbatim quote with whitespace collapsed to single
// spaces. The tests check each draft quote against
// testdata/draft-weinman-amtp-03.txt, but not the RFC 5321 quotes.
package catalogue

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Sources of clause text.
const (
	SourceDraft   = "draft-weinman-amtp-03"
	SourceRFC5321 = "RFC 5321"
)

// Clause is one normative statement and how the conformance suite checks it.
type Clause struct {
	// ID is a stable slug, "<section>-<short-kebab-name>" for the draft and
	// "rfc5321-<section>-<short-kebab-name>" for inherited clauses.
	ID string
	// Section is the section number in Source, such as "4.4.1".
	Section string
	// Title is a short human-readable name.
	Title string
	// Level is the RFC 2119 key word that the sentence uses, or the one it
	// would use where Notes mark it as stated in lower case or without a
	// key word.
	Level Level
	// Role is the party that the sentence binds.
	Role Role
	// Text is the normative sentence, or the clause of it that this entry
	// covers, quoted exactly with whitespace collapsed to single spaces.
	Text string
	// Source is SourceDraft or SourceRFC5321.
	Source string
	// Inherited is true for RFC 5321 behaviour that AMTP inherits.
	Inherited bool
	// Wire is the suite's check of the clause over the wire, in one
	// sentence. Exactly one of Wire and Untestable is set.
	Wire string
	// Untestable is the reason the clause cannot be checked on the wire
	// against a server, in one sentence.
	Untestable string
	// Notes is the interpretation applied, if any. It starts with
	// LowerCaseNote or NoKeyWordNote (followed by the source) when Text
	// lacks the key word of Level.
	Notes string
}

// Prefixes of Clause.Notes for a Text that does not contain the key word of
// its Level. The prefix is followed by "the draft:" or "RFC 5321:".
const (
	// LowerCaseNote marks a requirement stated with a lower-case "must",
	// "should" or "may".
	LowerCaseNote = "Lower-case in "
	// NoKeyWordNote marks a requirement stated without any modal verb, such
	// as a grammar, a condition in a list or a plain statement of fact.
	NoKeyWordNote = "No key word in "
)

// StatedInLowerCase reports whether the source states the clause with a
// lower-case "must", "should" or "may" instead of an RFC 2119 key word.
func (c Clause) StatedInLowerCase() bool {
	return strings.HasPrefix(c.Notes, LowerCaseNote)
}

// StatedWithoutKeyWord reports whether the source states the clause without
// any modal verb.
func (c Clause) StatedWithoutKeyWord() bool {
	return strings.HasPrefix(c.Notes, NoKeyWordNote)
}

// Testable reports whether the suite checks the clause over the wire.
func (c Clause) Testable() bool {
	return c.Wire != ""
}

// sectionLabel is the Sections entry of a clause: the bare section number
// for the draft, prefixed with "RFC 5321 " for inherited clauses.
func (c Clause) sectionLabel() string {
	if c.Source == SourceRFC5321 {
		return SourceRFC5321 + " " + c.Section
	}
	return c.Section
}

// clauses is the catalogue in All order, and byID maps each ID to its
// index in clauses.
var (
	clauses = sortClauses(slices.Concat(
		section1_2,
		section3,
		section4_1,
		section4_2,
		section4_3,
		section4_4,
		section4_5,
		section5,
		section6,
		section7,
		section8,
		rfc5321,
	))
	byID = indexByID(clauses)
)

// All returns a copy of every clause, the draft's first and then RFC 5321's,
// each group ordered by section number (compared numerically) and then ID.
func All() []Clause {
	return slices.Clone(clauses)
}

// ByID returns the clause with the given ID.
func ByID(id string) (Clause, bool) {
	i, ok := byID[id]
	if !ok {
		return Clause{}, false
	}
	return clauses[i], true
}

// Sections returns the sections that have clauses, in All order. Draft
// sections are bare numbers ("4.4.1"), and RFC 5321 sections are prefixed
// with "RFC 5321 " ("RFC 5321 4.1.1.4").
func Sections() []string {
	var sections []string
	for _, c := range clauses {
		label := c.sectionLabel()
		if len(sections) == 0 || sections[len(sections)-1] != label {
			sections = append(sections, label)
		}
	}
	return sections
}

// Count returns the number of clauses per level.
func Count() map[Level]int {
	counts := make(map[Level]int)
	for _, c := range clauses {
		counts[c.Level]++
	}
	return counts
}

// CountByRole returns the number of clauses per role.
func CountByRole() map[Role]int {
	counts := make(map[Role]int)
	for _, c := range clauses {
		counts[c.Role]++
	}
	return counts
}

// Summary formats the clause counts per level, per role and per source, and
// how many of them the suite checks on the wire, as a plain-text table.
func Summary() string {
	var b strings.Builder
	testable := 0
	bySource := make(map[string]int)
	for _, c := range clauses {
		bySource[c.Source]++
		if c.Testable() {
			testable++
		}
	}
	fmt.Fprintf(&b, "%d clauses: %d from %s, %d from %s; %d testable on the wire, %d untestable\n",
		len(clauses), bySource[SourceDraft], SourceDraft, bySource[SourceRFC5321], SourceRFC5321,
		testable, len(clauses)-testable)

	levels := Count()
	b.WriteString("per level:\n")
	for _, l := range Levels() {
		fmt.Fprintf(&b, "  %-12s %3d\n", l, levels[l])
	}

	roles := CountByRole()
	b.WriteString("per role:\n")
	for _, r := range Roles() {
		fmt.Fprintf(&b, "  %-14s %3d\n", r, roles[r])
	}
	return b.String()
}

func sortClauses(list []Clause) []Clause {
	slices.SortStableFunc(list, func(a, b Clause) int {
		return cmp.Or(
			cmp.Compare(sourceRank(a.Source), sourceRank(b.Source)),
			compareSections(a.Section, b.Section),
			strings.Compare(a.ID, b.ID),
		)
	})
	return list
}

func sourceRank(source string) int {
	switch source {
	case SourceDraft:
		return 0
	case SourceRFC5321:
		return 1
	default:
		return 2
	}
}

// compareSections orders dotted section numbers component by component, so
// that "4.5.3.1.10" sorts after "4.5.3.1.9". A component that is not a
// number sorts after every number.
func compareSections(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		an, aErr := strconv.Atoi(as[i])
		bn, bErr := strconv.Atoi(bs[i])
		switch {
		case aErr == nil && bErr == nil:
			if c := cmp.Compare(an, bn); c != 0 {
				return c
			}
		case aErr == nil:
			return -1
		case bErr == nil:
			return 1
		default:
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
		}
	}
	return cmp.Compare(len(as), len(bs))
}

// indexByID maps each ID to its position in list. With duplicate IDs the
// first one wins, and the tests reject duplicates.
func indexByID(list []Clause) map[string]int {
	index := make(map[string]int, len(list))
	for i, c := range list {
		if _, seen := index[c.ID]; !seen {
			index[c.ID] = i
		}
	}
	return index
}
