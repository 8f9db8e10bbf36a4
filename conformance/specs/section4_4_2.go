package specs

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/mpcsyntax"
)

// section4_4_2 checks draft section 4.4.2, Extended Hello Command (EHLO):
// the EHLO argument must agree with the certificate, and the syntax of
// the optional MPC declaration line.
func section4_4_2() {
	Describe("4.4.2 Extended Hello Command (EHLO)", func() {
		clause("4.4.2-ehlo-mismatch-rejected", nil, func(c *Check) {
			expectEHLOMismatchRejected(c)
		})

		clause("4.4.2-mpc-declaration-line", nil, func(c *Check) {
			lines, ok := c.mpcLines()
			if !ok {
				return
			}
			var facts []string
			for _, listener := range lines {
				if len(listener.lines) == 0 {
					facts = append(facts, fmt.Sprintf("the EHLO reply of the %s listener has no MPC line", listener.kind))
					continue
				}
				facts = append(facts, fmt.Sprintf("the EHLO reply of the %s listener has the MPC line %s", listener.kind, strings.Join(quoteAll(listener.lines), " and ")))
			}
			c.Info("%s", strings.Join(facts, "; "))
		})

		clause("4.4.2-mpc-declaration-syntax", nil, func(c *Check) {
			lines, ok := c.mpcLines()
			if !ok {
				return
			}
			var checked, exampleForms []string
			for _, listener := range lines {
				for _, line := range listener.lines {
					decls, form, err := mpcsyntax.ParseLine(line)
					if err != nil {
						c.Broken("the MPC line of the %s listener breaks the grammar of section 4.4.2: %v", listener.kind, err)
						return
					}
					c.Observe("%s listener: %q declares %s", listener.kind, line, declarationList(decls))
					if form != mpcsyntax.FormGrammar {
						exampleForms = append(exampleForms, fmt.Sprintf("%q (%s form)", line, form))
					}
					checked = append(checked, fmt.Sprintf("%q", line))
				}
			}
			switch {
			case len(checked) == 0:
				c.Skip("no EHLO reply has an MPC line, so there is no syntax to check")
			case len(exampleForms) > 0 && c.Strict():
				c.Broken("--strict: %s uses the form of the examples in section 4.4.2.1, not the ABNF of section 4.4.2 (KEYWORD=role/class)", strings.Join(exampleForms, ", "))
			case len(exampleForms) > 0:
				c.Pass("%s uses the form of the examples in section 4.4.2.1, which the suite accepts because the draft's examples contradict its ABNF; --strict demands the ABNF", strings.Join(exampleForms, ", "))
			default:
				c.Pass("every MPC line matches the ABNF of section 4.4.2: %s", strings.Join(checked, ", "))
			}
		})
	})
}

// listenerMPCLines are the MPC lines of the EHLO reply of one listener.
type listenerMPCLines struct {
	kind  listenerKind
	lines []string
}

// mpcLines opens a session on the public listener, and on the private one
// when configured, and returns the MPC lines of their EHLO replies. It
// records an error and returns ok false when a session fails.
func (c *Check) mpcLines() ([]listenerMPCLines, bool) {
	s := c.open("EHLO on the public listener")
	if s == nil {
		return nil, false
	}
	all := []listenerMPCLines{{kind: publicListener, lines: mpcLinesOf(ehloTexts(s))}}
	s.Close()

	if current().PrivateTarget == "" {
		c.Observe("private listener not checked: no --private-target")
		return all, true
	}
	private := c.openPrivate("EHLO on the private listener")
	if private == nil {
		return nil, false
	}
	all = append(all, listenerMPCLines{kind: privateListener, lines: mpcLinesOf(ehloTexts(private))})
	return all, true
}

func ehloTexts(s *Session) []string {
	return ehloReply(s).Texts()
}

// mpcLinesOf returns the lines of an EHLO reply, after the first, that are
// meant as MPC lines.
func mpcLinesOf(texts []string) []string {
	var lines []string
	for i, text := range texts {
		if i > 0 && mpcsyntax.IsMPCLine(text) {
			lines = append(lines, text)
		}
	}
	return lines
}

// ehloDeclarations returns the MPC declarations of an EHLO reply in every
// form the suite reads. Lines that parse in no form are left out.
func ehloDeclarations(s *Session) []mpcsyntax.Declaration {
	var decls []mpcsyntax.Declaration
	for _, line := range mpcLinesOf(ehloTexts(s)) {
		parsed, _, err := mpcsyntax.ParseLine(line)
		if err == nil {
			decls = append(decls, parsed...)
		}
	}
	return decls
}

func declarationList(decls []mpcsyntax.Declaration) string {
	if len(decls) == 0 {
		return "nothing"
	}
	parts := make([]string, len(decls))
	for i, d := range decls {
		parts[i] = d.String()
	}
	return strings.Join(parts, " ")
}

func quoteAll(items []string) []string {
	quoted := make([]string, len(items))
	for i, item := range items {
		quoted[i] = fmt.Sprintf("%q", item)
	}
	return quoted
}
