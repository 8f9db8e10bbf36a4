package catalogue_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
)

var (
	// A draft ID is "<section>-<kebab name>", and an inherited one has
	// "rfc5321-" before that.
	draftID   = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)*)-([a-z0-9]+(?:-[a-z0-9]+)*)$`)
	rfc5321ID = regexp.MustCompile(`^rfc5321-([0-9]+(?:\.[0-9]+)*)-([a-z0-9]+(?:-[a-z0-9]+)*)$`)

	// A name that ends in a one- or two-digit part ("-1", "-12") looks like
	// a list position. Reply codes have three digits and are allowed.
	positionSuffix = regexp.MustCompile(`-[0-9]{1,2}$`)

	lowerCaseModal = regexp.MustCompile(`\b(must|should|may)\b`)
)

// sourceName is how Notes name the source after LowerCaseNote and
// NoKeyWordNote.
func sourceName(source string) string {
	if source == catalogue.SourceDraft {
		return "the draft"
	}
	return source
}

// containsKeyWord reports whether text contains the key word of level in
// capitals. MUST, SHALL and SHOULD count only where "NOT" does not follow,
// and REQUIRED is also found as "REQUIRES".
func containsKeyWord(text string, level catalogue.Level) bool {
	switch level {
	case catalogue.Must, catalogue.Shall, catalogue.Should:
		withoutNegated := strings.ReplaceAll(text, string(level)+" NOT", "")
		return regexp.MustCompile(`\b` + string(level) + `\b`).MatchString(withoutNegated)
	case catalogue.Required:
		return regexp.MustCompile(`\bREQUIRE[DS]\b`).MatchString(text)
	default:
		return regexp.MustCompile(`\b` + string(level) + `\b`).MatchString(text)
	}
}

var _ = Describe("clause entries", func() {
	all := catalogue.All()

	It("has entries", func() {
		Expect(all).NotTo(BeEmpty())
	})

	It("has unique IDs", func() {
		seen := make(map[string]bool)
		var duplicates []string
		for _, c := range all {
			if seen[c.ID] {
				duplicates = append(duplicates, c.ID)
			}
			seen[c.ID] = true
		}
		Expect(duplicates).To(BeEmpty())
	})

	It("has IDs that start with their section", func() {
		for _, c := range all {
			pattern := draftID
			if c.Source == catalogue.SourceRFC5321 {
				pattern = rfc5321ID
			}
			m := pattern.FindStringSubmatch(c.ID)
			Expect(m).NotTo(BeNil(), "ID %q is not <section>-<kebab-name>", c.ID)
			Expect(m[1]).To(Equal(c.Section), "ID %q does not start with its section", c.ID)
			Expect(c.ID).NotTo(MatchRegexp(positionSuffix.String()), "ID %q ends like a list position", c.ID)
		}
	})

	It("sets exactly one of Wire and Untestable", func() {
		for _, c := range all {
			Expect(c.Wire == "").NotTo(Equal(c.Untestable == ""), "%s must set exactly one of Wire and Untestable", c.ID)
		}
	})

	It("writes Wire and Untestable as one sentence", func() {
		for _, c := range all {
			description := c.Wire + c.Untestable
			Expect(description).To(HaveSuffix("."), c.ID)
			Expect(splitSentences(description)).To(HaveLen(1), "%s: %q", c.ID, description)
		}
	})

	It("uses valid levels and roles", func() {
		for _, c := range all {
			Expect(c.Level.Valid()).To(BeTrue(), "%s: level %q", c.ID, c.Level)
			Expect(c.Role.Valid()).To(BeTrue(), "%s: role %q", c.ID, c.Role)
		}
	})

	It("sets Source and Inherited together", func() {
		for _, c := range all {
			Expect(c.Source).To(BeElementOf(catalogue.SourceDraft, catalogue.SourceRFC5321), c.ID)
			Expect(c.Inherited).To(Equal(c.Source == catalogue.SourceRFC5321), c.ID)
		}
	})

	It("has a title, a section and normalized text", func() {
		for _, c := range all {
			Expect(c.Title).NotTo(BeEmpty(), c.ID)
			Expect(c.Section).NotTo(BeEmpty(), c.ID)
			Expect(c.Text).NotTo(BeEmpty(), c.ID)
			Expect(c.Text).To(Equal(normalizeSpace(c.Text)), "%s: text has stray white space", c.ID)
		}
	})

	It("quotes the key word of its level or says why not", func() {
		for _, c := range all {
			switch {
			case c.StatedInLowerCase():
				Expect(c.Notes).To(HavePrefix(catalogue.LowerCaseNote+sourceName(c.Source)+":"), c.ID)
				Expect(c.Text).To(MatchRegexp(lowerCaseModal.String()), "%s is marked lower-case but has no lower-case modal", c.ID)
				Expect(c.Text).NotTo(MatchRegexp(capitalKeyWord.String()), "%s is marked lower-case but has a key word", c.ID)
			case c.StatedWithoutKeyWord():
				Expect(c.Notes).To(HavePrefix(catalogue.NoKeyWordNote+sourceName(c.Source)+":"), c.ID)
				Expect(c.Text).NotTo(MatchRegexp(capitalKeyWord.String()), "%s is marked as having no key word but has one", c.ID)
			default:
				Expect(containsKeyWord(c.Text, c.Level)).To(BeTrue(), "%s: text lacks %s", c.ID, c.Level)
			}
		}
	})
})

var _ = Describe("clause quotes from the draft", func() {
	var (
		sentences    []draftSentence
		sectionTexts map[string]string
		draftClauses []catalogue.Clause
	)

	BeforeEach(func() {
		units, err := readDraftUnits(draftPath)
		Expect(err).NotTo(HaveOccurred())
		sentences = draftSentences(units)
		sectionTexts = draftSectionTexts(units)

		draftClauses = nil
		for _, c := range catalogue.All() {
			if c.Source == catalogue.SourceDraft {
				draftClauses = append(draftClauses, c)
			}
		}
	})

	It("occur verbatim in their section", func() {
		for _, c := range draftClauses {
			Expect(sectionTexts).To(HaveKey(c.Section), "%s: no section %s in the draft", c.ID, c.Section)
			Expect(sectionTexts[c.Section]).To(ContainSubstring(c.Text), c.ID)
		}
	})

	It("each lie within one sentence", func() {
		for _, c := range draftClauses {
			found := slices.ContainsFunc(sentences, func(s draftSentence) bool {
				return s.Section == c.Section && strings.Contains(s.Text, c.Text)
			})
			Expect(found).To(BeTrue(), "%s: %q is not within one sentence of section %s", c.ID, c.Text, c.Section)
		}
	})

	It("cover every key-word sentence of sections 1.2 to 8", func() {
		var uncovered []string
		for _, s := range sentences {
			if !inCatalogueScope(s.Section) || !capitalKeyWord.MatchString(s.Text) {
				continue
			}
			covered := slices.ContainsFunc(draftClauses, func(c catalogue.Clause) bool {
				return c.Section == s.Section && strings.Contains(s.Text, c.Text)
			})
			if !covered {
				uncovered = append(uncovered, s.Section+": "+s.Text)
			}
		}
		Expect(uncovered).To(BeEmpty(), "sentences that no clause quotes:\n%s", strings.Join(uncovered, "\n"))
	})
})

var _ = Describe("draft sentence splitter", func() {
	var sentences []draftSentence

	BeforeEach(func() {
		units, err := readDraftUnits(draftPath)
		Expect(err).NotTo(HaveOccurred())
		sentences = draftSentences(units)
	})

	// 72 is the number of key-word sentences in sections 1.2 to 8, checked
	// by reading the list. A splitter that merged or lost sentences would let
	// the coverage spec pass without checking them.
	It("finds the 72 key-word sentences of sections 1.2 to 8", func() {
		count := 0
		for _, s := range sentences {
			if inCatalogueScope(s.Section) && capitalKeyWord.MatchString(s.Text) {
				count++
			}
		}
		Expect(count).To(Equal(72))
	})

	DescribeTable("finds a known sentence in its section",
		func(section, text string) {
			Expect(sentences).To(ContainElement(draftSentence{Section: section, Text: text}))
		},
		Entry("a sentence broken by a page break", "4.3.1",
			"When a client MTA delivers mail to a server MTA, it MUST perform a DNS query for an SRV RR using the host part of the envelope recipient address."),
		Entry("a list item", "4.2",
			"Equivalent tests SHALL apply to connections using IPv6 or other non-IPv4 protocols."),
		Entry("a sentence with etc., before a key word", "6.4",
			`Any message triggered by a user action, including but not limited to out-of-office messages, vacation messages, purchase confirmations, subscription confirmations, etc.,MUST use the mpc-class value, "autoresponder".`),
		Entry("a definition after its term", "1.2",
			"A CA that is trusted outside of the private network MUST NOT be trusted as a private CA."),
		Entry("a sentence after a list of definitions", "4.5",
			`The "net" mpc-role value MUST NOT be used to solicit or prospect for new business or donations.`),
	)

	DescribeTable("splits a block into sentences",
		func(text string, expected []string) {
			Expect(splitSentences(text)).To(Equal(expected))
		},
		Entry("two sentences", "One MUST. Two MAY.", []string{"One MUST.", "Two MAY."}),
		Entry("an abbreviation before a comma", "Use e.g., a name. Next.", []string{"Use e.g., a name.", "Next."}),
		Entry("a sentence that starts with a quote", `In Section 4.5. "MPC:" is a token.`, []string{"In Section 4.5.", `"MPC:" is a token.`}),
		Entry("a dotted number", "See X.509 certificates.", []string{"See X.509 certificates."}),
	)
})

var _ = Describe("catalogue API", func() {
	It("returns the draft's clauses before RFC 5321's, in section order", func() {
		all := catalogue.All()
		firstInherited := slices.IndexFunc(all, func(c catalogue.Clause) bool { return c.Inherited })
		Expect(firstInherited).To(BeNumerically(">", 0))
		for _, c := range all[firstInherited:] {
			Expect(c.Inherited).To(BeTrue(), c.ID)
		}

		sections := catalogue.Sections()
		Expect(sections).To(HaveLen(len(slices.Compact(slices.Clone(sections)))), "Sections has duplicates")
		Expect(sections).To(ContainElements("1.2", "4.4.1", "4.4.4", "4.5", "8", "RFC 5321 4.1.1.4", "RFC 5321 4.5.3.1.10"))
		Expect(slices.Index(sections, "4.4.4")).To(BeNumerically("<", slices.Index(sections, "4.5")))
		Expect(slices.Index(sections, "RFC 5321 4.5.3.1.9")).To(BeNumerically("<", slices.Index(sections, "RFC 5321 4.5.3.1.10")))
		Expect(slices.Index(sections, "8")).To(BeNumerically("<", slices.Index(sections, "RFC 5321 2.3.8")))
	})

	It("returns a copy from All", func() {
		first := catalogue.All()
		first[0].ID = "changed"
		Expect(catalogue.All()[0].ID).NotTo(Equal("changed"))
	})

	It("finds every clause by ID", func() {
		for _, c := range catalogue.All() {
			found, ok := catalogue.ByID(c.ID)
			Expect(ok).To(BeTrue(), c.ID)
			Expect(found).To(Equal(c))
		}
		_, ok := catalogue.ByID("4.4.1-no-such-clause")
		Expect(ok).To(BeFalse())
	})

	It("counts every clause once per level and once per role", func() {
		total := len(catalogue.All())
		sumLevels, sumRoles := 0, 0
		for _, n := range catalogue.Count() {
			sumLevels += n
		}
		for _, n := range catalogue.CountByRole() {
			sumRoles += n
		}
		Expect(sumLevels).To(Equal(total))
		Expect(sumRoles).To(Equal(total))

		summary := catalogue.Summary()
		Expect(summary).To(HavePrefix(fmt.Sprintf("%d clauses:", total)))
		AddReportEntry("clause counts", summary)
		fmt.Fprint(GinkgoWriter, summary)
	})

	DescribeTable("gives the verdict for a broken clause by level",
		func(level catalogue.Level, expected catalogue.Verdict) {
			Expect(level.Verdict()).To(Equal(expected))
		},
		Entry("MUST", catalogue.Must, catalogue.VerdictFail),
		Entry("MUST NOT", catalogue.MustNot, catalogue.VerdictFail),
		Entry("REQUIRED", catalogue.Required, catalogue.VerdictFail),
		Entry("SHALL", catalogue.Shall, catalogue.VerdictFail),
		Entry("SHALL NOT", catalogue.ShallNot, catalogue.VerdictFail),
		Entry("SHOULD", catalogue.Should, catalogue.VerdictWarn),
		Entry("SHOULD NOT", catalogue.ShouldNot, catalogue.VerdictWarn),
		Entry("RECOMMENDED", catalogue.Recommended, catalogue.VerdictWarn),
		Entry("MAY", catalogue.May, catalogue.VerdictInfo),
		Entry("OPTIONAL", catalogue.Optional, catalogue.VerdictInfo),
		Entry("not a key word", catalogue.Level("must"), catalogue.Verdict("")),
	)

	It("rejects levels and roles that are not defined", func() {
		Expect(catalogue.Level("MUSTN'T").Valid()).To(BeFalse())
		Expect(catalogue.Role("gateway").Valid()).To(BeFalse())
		for _, l := range catalogue.Levels() {
			Expect(l.Valid()).To(BeTrue(), string(l))
		}
		for _, r := range catalogue.Roles() {
			Expect(r.Valid()).To(BeTrue(), string(r))
		}
	})
})
