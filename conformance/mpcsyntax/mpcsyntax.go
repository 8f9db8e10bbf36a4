// Package mpcsyntax is the conformance suite's own reading of the Mail
// Policy Code (MPC) grammar of draft-weinman-amtp-03: the values of
// section 4.5 and the EHLO declaration line of section 4.4.2. It shares no
// code with the reference implementation, so that a bug there cannot hide
// the same bug in the suite.
package mpcsyntax

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Roles are the mpc-role values that section 4.5 defines.
var Roles = []string{"per", "com", "ngo", "net", "gov", "pol", "mpc"}

// Classes are the mpc-class values that section 4.5 defines.
var Classes = []string{"individual", "autoresponse", "customer", "optout", "optin", "confirmed"}

// token is the grammar of mpc-role and mpc-class:
// (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
const token = `[A-Za-z0-9][A-Za-z0-9-]*`

var valuePattern = regexp.MustCompile(`^(` + token + `)/(` + token + `)$`)

// WellFormed reports whether value matches mpc-value = mpc-role "/"
// mpc-class, whether or not its parts are defined.
func WellFormed(value string) bool {
	return valuePattern.MatchString(value)
}

// Defined reports whether value is well formed, its role and class are
// defined in section 4.5, and a role of "mpc" comes with the class
// "individual". Roles and classes match without regard to case, as ABNF
// string literals do (RFC 5234 section 2.3).
func Defined(value string) bool {
	parts := valuePattern.FindStringSubmatch(value)
	if parts == nil {
		return false
	}
	role, class := strings.ToLower(parts[1]), strings.ToLower(parts[2])
	if !slices.Contains(Roles, role) || !slices.Contains(Classes, class) {
		return false
	}
	return role != "mpc" || class == "individual"
}

// DefinedValues returns every defined value in lower case: each role but
// "mpc" with each class, then "mpc/individual".
func DefinedValues() []string {
	var values []string
	for _, role := range Roles {
		if role == "mpc" {
			continue
		}
		for _, class := range Classes {
			values = append(values, role+"/"+class)
		}
	}
	return append(values, "mpc/individual")
}

// Keywords of an MPC declaration.
const (
	Allow = "ALLOW"
	Deny  = "DENY"
)

// Declaration is one mpc-declaration of an EHLO reply. Role and Class are
// "*" for a wildcard.
type Declaration struct {
	Keyword string
	Role    string
	Class   string
}

func (d Declaration) String() string {
	return d.Keyword + "=" + d.Role + "/" + d.Class
}

// Matches reports whether value falls under the declaration.
func (d Declaration) Matches(value string) bool {
	role, class, ok := strings.Cut(value, "/")
	if !ok {
		return false
	}
	return (d.Role == "*" || strings.EqualFold(d.Role, role)) && (d.Class == "*" || strings.EqualFold(d.Class, class))
}

// Form is the way an MPC line is written.
type Form string

// The forms of an MPC line. Section 4.4.2 gives the grammar, and the
// examples of section 4.4.2.1 use the two other forms.
const (
	// FormGrammar is the ABNF of section 4.4.2: "MPC DENY=com/* ALLOW=com/individual".
	FormGrammar Form = "grammar"
	// FormSpaced separates keyword and value with a space, as the first
	// two examples of section 4.4.2.1 do: "MPC DENY com/* ALLOW com/individual".
	FormSpaced Form = "spaced"
	// FormHyphen joins "MPC" and one keyword with a hyphen, as the last
	// example of section 4.4.2.1 does: "MPC-ALLOW */individual".
	FormHyphen Form = "hyphen"
)

var (
	wildValue      = `(` + token + `|\*)/(` + token + `|\*)`
	grammarLine    = regexp.MustCompile(`^(?i:MPC)((?: (?i:ALLOW|DENY)=` + wildValue + `)+)$`)
	grammarDecl    = regexp.MustCompile(` ((?i:ALLOW|DENY))=` + wildValue)
	spacedLine     = regexp.MustCompile(`^(?i:MPC)((?: (?i:ALLOW|DENY) ` + wildValue + `)+)$`)
	spacedDecl     = regexp.MustCompile(` ((?i:ALLOW|DENY)) ` + wildValue)
	hyphenLine     = regexp.MustCompile(`^(?i:MPC)-((?i:ALLOW|DENY))((?: ` + wildValue + `)+)$`)
	hyphenValue    = regexp.MustCompile(` ` + wildValue)
	mpcLinePattern = regexp.MustCompile(`^(?i:MPC)(?:[ =-]|$)`)
)

// IsMPCLine reports whether the text of an EHLO reply line is meant as an
// MPC line: its first word is "MPC" or starts with "MPC-".
func IsMPCLine(text string) bool {
	return mpcLinePattern.MatchString(text)
}

// ParseLine parses the text of one EHLO reply line (without the reply code
// and separator) that IsMPCLine accepts. It returns the declarations in
// order and the form the line uses, or an error that describes how the
// line breaks every form.
func ParseLine(text string) ([]Declaration, Form, error) {
	if m := grammarLine.FindStringSubmatch(text); m != nil {
		return declarations(grammarDecl.FindAllStringSubmatch(m[1], -1)), FormGrammar, nil
	}
	if m := spacedLine.FindStringSubmatch(text); m != nil {
		return declarations(spacedDecl.FindAllStringSubmatch(m[1], -1)), FormSpaced, nil
	}
	if m := hyphenLine.FindStringSubmatch(text); m != nil {
		keyword := strings.ToUpper(m[1])
		var decls []Declaration
		for _, v := range hyphenValue.FindAllStringSubmatch(m[2], -1) {
			decls = append(decls, Declaration{Keyword: keyword, Role: v[1], Class: v[2]})
		}
		return decls, FormHyphen, nil
	}
	return nil, "", fmt.Errorf(`%q does not match "MPC" 1*(SP mpc-declaration) with mpc-declaration = ("ALLOW" / "DENY") "=" mpc-value`, text)
}

func declarations(matches [][]string) []Declaration {
	decls := make([]Declaration, 0, len(matches))
	for _, m := range matches {
		decls = append(decls, Declaration{Keyword: strings.ToUpper(m[1]), Role: m[2], Class: m[3]})
	}
	return decls
}

// Allowed evaluates declarations for value in the order presented
// (section 4.4.2): the last declaration that matches decides, after an
// implied first declaration of "DENY */*" when the list starts with ALLOW
// and "ALLOW */*" otherwise, also for an empty list.
func Allowed(decls []Declaration, value string) bool {
	allowed := len(decls) == 0 || decls[0].Keyword != Allow
	for _, d := range decls {
		if d.Matches(value) {
			allowed = d.Keyword == Allow
		}
	}
	return allowed
}

// DeniedByAny reports whether value matches any DENY declaration, the
// literal reading of the last paragraph of section 4.4.2.
func DeniedByAny(decls []Declaration, value string) bool {
	for _, d := range decls {
		if d.Keyword == Deny && d.Matches(value) {
			return true
		}
	}
	return false
}
