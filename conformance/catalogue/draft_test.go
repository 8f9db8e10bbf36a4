package catalogue_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// draftPath is the path of a verbatim copy of the IETF Internet-Draft, kept
// in testdata so that the tests need nothing outside this package.
var draftPath = filepath.Join("testdata", "draft-weinman-amtp-03.txt")

// draftSentence is one sentence of the draft with the number of the section
// it is in.
type draftSentence struct {
	Section string
	Text    string
}

var (
	// The page footer and header lines that the draft repeats at each page
	// break, for example "Weinman  Expires October 23, 2004  [Page 7]" and
	// "Internet-Draft  AMTP  April 2004".
	pageFooter = regexp.MustCompile(`^Weinman\s+Expires .*\[Page \d+\]\s*$`)
	pageHeader = regexp.MustCompile(`^Internet-Draft\s+AMTP\s+April 2004\s*$`)

	// A numbered section heading starts in column 0: "4.4.1 Hello Command".
	sectionHeading = regexp.MustCompile(`^(\d+(?:\.\d+)*)\.?\s+\S`)

	// A list item starts with an indented "o" and two spaces.
	listItem = regexp.MustCompile(`^(\s+o\s+)\S`)

	// A sentence ends at ".", "!" or "?" followed by white space and a
	// capital letter or an opening quote. "e.g.," and "etc.," are followed
	// by a comma, so they do not end a sentence.
	sentenceEnd = regexp.MustCompile(`[.!?]\s+["A-Z]`)

	// The RFC 2119 key words in capitals. "REQUIRES" is not one of them,
	// but section 4.2 uses it for REQUIRED.
	capitalKeyWord = regexp.MustCompile(`\b(MUST|REQUIRED|REQUIRES|SHALL|SHOULD|RECOMMENDED|MAY|OPTIONAL)\b`)
)

// normalizeSpace collapses every run of white space to one space.
func normalizeSpace(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// draftUnit is a run of lines of one layout block: a paragraph, a list item,
// a definition term or a display such as ABNF. Sentences never cross units.
type draftUnit struct {
	Section string
	Text    string
}

// readDraftUnits reads the draft and splits it into layout blocks. It drops
// page footers, headers, form feeds and blank lines, so a sentence broken by
// a page break is joined again. A block ends at a section heading, at the
// start of a list item, and where the indentation of the text changes
// (the indentation of a list item's text counts its "o" marker).
func readDraftUnits(path string) ([]draftUnit, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}

	var (
		units   []draftUnit
		section string
		lines   []string
		indent  = -1
	)
	flush := func() {
		if len(lines) > 0 {
			units = append(units, draftUnit{Section: section, Text: normalizeSpace(strings.Join(lines, " "))})
		}
		lines = nil
	}

	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(strings.ReplaceAll(line, "\f", ""), " \r")
		if line == "" || pageFooter.MatchString(line) || pageHeader.MatchString(line) {
			continue
		}
		if m := sectionHeading.FindStringSubmatch(line); m != nil {
			flush()
			section, indent = m[1], -1
			continue
		}
		if !strings.HasPrefix(line, " ") {
			// Another heading in column 0, such as "Normative References",
			// ends the numbered sections.
			flush()
			section, indent = "", -1
			continue
		}

		if m := listItem.FindStringSubmatch(line); m != nil {
			flush()
			indent = len(m[1])
			lines = append(lines, line[len(m[1]):])
			continue
		}
		lineIndent := len(line) - len(strings.TrimLeft(line, " "))
		if lineIndent != indent {
			flush()
			indent = lineIndent
		}
		lines = append(lines, strings.TrimSpace(line))
	}
	flush()
	return units, nil
}

// splitSentences splits one layout block into sentences.
func splitSentences(text string) []string {
	var sentences []string
	start := 0
	for _, m := range sentenceEnd.FindAllStringIndex(text, -1) {
		end := m[0] + 1
		sentences = append(sentences, strings.TrimSpace(text[start:end]))
		start = end
	}
	if rest := strings.TrimSpace(text[start:]); rest != "" {
		sentences = append(sentences, rest)
	}
	return sentences
}

// draftSentences returns every sentence of the draft, in order.
func draftSentences(units []draftUnit) []draftSentence {
	var sentences []draftSentence
	for _, u := range units {
		for _, s := range splitSentences(u.Text) {
			sentences = append(sentences, draftSentence{Section: u.Section, Text: s})
		}
	}
	return sentences
}

// draftSectionTexts joins the blocks of each section into one normalized
// string, keyed by section number.
func draftSectionTexts(units []draftUnit) map[string]string {
	texts := make(map[string]string)
	for _, u := range units {
		if u.Section == "" {
			continue
		}
		if texts[u.Section] != "" {
			texts[u.Section] += " "
		}
		texts[u.Section] += u.Text
	}
	return texts
}

// inCatalogueScope reports whether a section is one of 1.2 to 8, the
// sections whose key-word sentences the catalogue must cover.
func inCatalogueScope(section string) bool {
	if section == "1.2" || strings.HasPrefix(section, "1.2.") {
		return true
	}
	top, _, _ := strings.Cut(section, ".")
	switch top {
	case "2", "3", "4", "5", "6", "7", "8":
		return true
	default:
		return false
	}
}
