// Package mpc implements Mail Policy Codes as draft-weinman-amtp-03 defines
// them: the value syntax and registry of section 4.5, the ALLOW/DENY
// declarations a server advertises in its EHLO reply (section 4.4.2), and
// the ordered evaluation of such declarations.
//
// Role and class names are matched without regard to case, because the
// registry spells them as ABNF literals, which RFC 5234 section 2.3 makes
// case-insensitive. A Value keeps the spelling it was parsed from, so a
// relay passes it on unchanged (section 5.2 forbids rewriting).
package mpc

import (
	"errors"
	"fmt"
	"strings"
)

// Roles lists every mpc-role of section 4.5.
var Roles = []string{"per", "com", "ngo", "net", "gov", "pol", "mpc"}

// Classes lists every mpc-class of section 4.5.
var Classes = []string{"individual", "autoresponse", "customer", "optout", "optin", "confirmed"}

// Errors returned by Parse. ErrSyntax means the text does not match the
// mpc-value grammar; ErrUndefined means it matches the grammar but names a
// role or class that section 4.5 does not define, or pairs the "mpc" role
// with a class other than "individual".
var (
	ErrSyntax    = errors.New("MPC value syntax error")
	ErrUndefined = errors.New("MPC value not defined by draft-weinman-amtp-03 section 4.5")
)

// Value is a parsed Mail Policy Code such as per/individual.
type Value struct {
	Role  string
	Class string
}

// Individual is mpc/individual, which every server must accept and deliver.
var Individual = Value{Role: "mpc", Class: "individual"}

// Bounce is net/autoresponse, the value of every bounce message (section 6.4).
var Bounce = Value{Role: "net", Class: "autoresponse"}

// String returns the value as role/class, in the spelling it was parsed from.
func (v Value) String() string {
	return v.Role + "/" + v.Class
}

// Equal reports whether v and w name the same role and class.
func (v Value) Equal(w Value) bool {
	return strings.EqualFold(v.Role, w.Role) && strings.EqualFold(v.Class, w.Class)
}

// IsIndividualMPC reports whether v is mpc/individual, which section 4.5
// requires every system to accept and deliver whatever its policy says.
func (v Value) IsIndividualMPC() bool {
	return v.Equal(Individual)
}

// Parse parses an mpc-value (section 4.5) and checks it against the
// registry. The error wraps ErrSyntax or ErrUndefined and names the value.
func Parse(s string) (Value, error) {
	role, class, ok := strings.Cut(s, "/")
	if !ok || !isToken(role) || !isToken(class) {
		return Value{}, fmt.Errorf("%w: %q is not role/class, for example per/individual", ErrSyntax, s)
	}

	v := Value{Role: role, Class: class}
	if !contains(Roles, role) {
		return Value{}, fmt.Errorf("%w: unknown role %q in %q; defined roles: %s", ErrUndefined, role, s, strings.Join(Roles, ", "))
	}
	if !contains(Classes, class) {
		return Value{}, fmt.Errorf("%w: unknown class %q in %q; defined classes: %s", ErrUndefined, class, s, strings.Join(Classes, ", "))
	}
	if strings.EqualFold(role, "mpc") && !strings.EqualFold(class, "individual") {
		return Value{}, fmt.Errorf("%w: %q: the mpc role is valid only with the individual class", ErrUndefined, s)
	}
	return v, nil
}

// isToken reports whether s matches (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"),
// the grammar of both mpc-role and mpc-class.
func isToken(s string) bool {
	if s == "" || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if strings.EqualFold(item, s) {
			return true
		}
	}
	return false
}
