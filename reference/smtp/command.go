package smtp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Command is one parsed command line: the verb in upper case and the rest
// of the line after the first space.
type Command struct {
	Verb string
	Arg  string
}

// ParseCommand splits a command line into verb and argument. The verb is
// the text before the first space, compared without regard to case
// (RFC 5321 section 2.4).
func ParseCommand(line string) Command {
	verb, arg, _ := strings.Cut(line, " ")
	return Command{Verb: strings.ToUpper(verb), Arg: arg}
}

// Param is one ESMTP parameter of MAIL or RCPT (RFC 5321 section 4.1.2):
// a keyword, compared without regard to case, and an optional value.
type Param struct {
	Keyword  string // upper case
	Value    string
	HasValue bool
}

// Errors of the path parsers; each error returned wraps one of them.
var (
	ErrPathSyntax   = errors.New("invalid path syntax")
	ErrPathTooLong  = errors.New("path too long")
	ErrParamSyntax  = errors.New("invalid parameter syntax")
	ErrNonASCIIPath = errors.New("non-ASCII address")
)

// ParseMail parses the argument of a MAIL command, "FROM:<reverse-path>
// [SP params]", and returns the reverse-path without angle brackets ("" for
// the null reverse-path <>) and the parameters in order. A space after the
// colon is tolerated, as many clients send one.
func ParseMail(arg string) (string, []Param, error) {
	return parsePathArg(arg, "FROM:", true)
}

// ParseRcpt parses the argument of a RCPT command, "TO:<forward-path>
// [SP params]". The postmaster mailbox without a domain, <Postmaster>, is
// accepted as RFC 5321 section 4.1.1.3 requires.
func ParseRcpt(arg string) (string, []Param, error) {
	return parsePathArg(arg, "TO:", false)
}

func parsePathArg(arg, prefix string, nullAllowed bool) (string, []Param, error) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, fmt.Errorf("%w: expected %s<address>", ErrPathSyntax, prefix)
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")

	if !strings.HasPrefix(rest, "<") {
		return "", nil, fmt.Errorf("%w: the address must be enclosed in <>", ErrPathSyntax)
	}
	end := closingBracket(rest)
	if end < 0 {
		return "", nil, fmt.Errorf("%w: missing > after the address", ErrPathSyntax)
	}
	path := rest[1:end]
	if end+1 > MaxPath {
		return "", nil, fmt.Errorf("%w: %d octets, the maximum is %d", ErrPathTooLong, end+1, MaxPath)
	}

	params, err := ParseParams(rest[end+1:])
	if err != nil {
		return "", nil, err
	}

	path, ok := stripSourceRoute(path)
	if !ok {
		return "", nil, fmt.Errorf("%w: invalid source route in <%s>", ErrPathSyntax, rest[1:end])
	}
	switch {
	case path == "" && nullAllowed:
		return "", params, nil
	case path == "":
		return "", nil, fmt.Errorf("%w: empty forward-path", ErrPathSyntax)
	case !nullAllowed && strings.EqualFold(path, "postmaster"):
		return path, params, nil
	}

	if err := ValidateMailbox(path); err != nil {
		return "", nil, err
	}
	return path, params, nil
}

// closingBracket returns the index of the ">" that closes the path at the
// start of s, skipping quoted strings of the local part, or -1.
func closingBracket(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch {
		case quoted && s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case !quoted && s[i] == '>':
			return i
		}
	}
	return -1
}

// stripSourceRoute removes an obsolete source route ("@a,@b:") that RFC 5321
// section 4.1.1.3 says servers must accept and may ignore. It reports false
// when a domain of the route is invalid or no mailbox follows the route,
// so "<@a:>" is not taken for the null reverse-path.
func stripSourceRoute(path string) (string, bool) {
	if !strings.HasPrefix(path, "@") {
		return path, true
	}
	route, mailbox, ok := strings.Cut(path, ":")
	if !ok {
		return path, true
	}
	for _, hop := range strings.Split(route, ",") {
		domain, ok := strings.CutPrefix(hop, "@")
		if !ok || !IsDomain(domain) {
			return "", false
		}
	}
	return mailbox, mailbox != ""
}

// ParseParams parses the ESMTP parameters after a path: keywords of
// letters, digits and "-", each optionally followed by "=" and a value of
// printable ASCII other than "=" and space (RFC 5321 section 4.1.2).
func ParseParams(s string) ([]Param, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] != ' ' {
		return nil, fmt.Errorf("%w: expected a space after the address", ErrParamSyntax)
	}

	var params []Param
	for _, field := range strings.Split(s[1:], " ") {
		if field == "" {
			return nil, fmt.Errorf("%w: empty parameter (two spaces in a row)", ErrParamSyntax)
		}
		keyword, value, hasValue := strings.Cut(field, "=")
		if !isKeyword(keyword) {
			return nil, fmt.Errorf("%w: invalid keyword %q", ErrParamSyntax, keyword)
		}
		if hasValue && !isParamValue(value) {
			return nil, fmt.Errorf("%w: invalid value %q for %s", ErrParamSyntax, value, keyword)
		}
		params = append(params, Param{Keyword: strings.ToUpper(keyword), Value: value, HasValue: hasValue})
	}
	return params, nil
}

func isKeyword(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// isParamValue reports whether s is an esmtp-value: one or more of
// %d33-60 / %d62-126.
func isParamValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '=' {
			return false
		}
	}
	return true
}

// ValidateMailbox checks that s is a Mailbox of RFC 5321 section 4.1.2:
// a dot-string or quoted-string local part of at most MaxLocalPart octets,
// "@", and a domain name or address literal.
func ValidateMailbox(s string) error {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return fmt.Errorf("%w: %q has no local part and domain", ErrPathSyntax, s)
	}
	local, domain := s[:at], s[at+1:]

	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return fmt.Errorf("%w: %q; this server does not offer SMTPUTF8", ErrNonASCIIPath, s)
		}
	}
	if len(local) > MaxLocalPart {
		return fmt.Errorf("%w: local part of %q is %d octets, the maximum is %d", ErrPathTooLong, s, len(local), MaxLocalPart)
	}
	if !isDotString(local) && !isQuotedString(local) {
		return fmt.Errorf("%w: invalid local part %q", ErrPathSyntax, local)
	}
	if strings.HasPrefix(domain, "[") {
		if !IsAddressLiteral(domain) {
			return fmt.Errorf("%w: invalid address literal %q", ErrPathSyntax, domain)
		}
		return nil
	}
	if !IsDomain(domain) {
		return fmt.Errorf("%w: invalid domain %q", ErrPathSyntax, domain)
	}
	return nil
}

// isDotString reports whether s is Atom *("." Atom) of RFC 5321.
func isDotString(s string) bool {
	if s == "" {
		return false
	}
	for _, atom := range strings.Split(s, ".") {
		if atom == "" {
			return false
		}
		for i := 0; i < len(atom); i++ {
			if !isAtext(atom[i]) {
				return false
			}
		}
	}
	return true
}

func isAtext(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// isQuotedString reports whether s is a quoted-string of RFC 5321: DQUOTE,
// printable ASCII or backslash-escaped characters, DQUOTE.
func isQuotedString(s string) bool {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i >= len(s)-1 || s[i] < 32 || s[i] > 126 {
				return false
			}
		case c == '"' || c < 32 || c > 126:
			return false
		}
	}
	return true
}

// IsDomain reports whether s is a Domain of RFC 5321: dot-separated labels
// of letters, digits and inner hyphens, at most 63 octets each and
// MaxDomain in all, with no trailing dot.
func IsDomain(s string) bool {
	if s == "" || len(s) > MaxDomain {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !isLabel(label) {
			return false
		}
	}
	return true
}

func isLabel(label string) bool {
	if label == "" || len(label) > 63 {
		return false
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		if !isAlnum(label[i]) && label[i] != '-' {
			return false
		}
	}
	return true
}

// IsFQDN reports whether s is a fully qualified domain name for the
// purpose of the certificate checks of draft-weinman-amtp-03 section 4.2:
// a Domain of at least two labels whose last label is not all digits, so
// neither a single-label host name nor an IPv4 address qualifies.
func IsFQDN(s string) bool {
	if !IsDomain(s) {
		return false
	}
	dot := strings.LastIndexByte(s, '.')
	if dot < 0 {
		return false
	}
	tld := s[dot+1:]
	for i := 0; i < len(tld); i++ {
		if !('0' <= tld[i] && tld[i] <= '9') {
			return true
		}
	}
	return false
}

// IsAddressLiteral reports whether s is "[" IPv4 "]" or "[IPv6:" IPv6 "]".
// The "IPv6:" tag is matched without regard to case, as RFC 5234 strings
// are.
func IsAddressLiteral(s string) bool {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	inner := s[1 : len(s)-1]
	if len(inner) >= 5 && strings.EqualFold(inner[:5], "IPv6:") {
		addr, err := netip.ParseAddr(inner[5:])
		return err == nil && addr.Is6() && addr.Zone() == ""
	}
	addr, err := netip.ParseAddr(inner)
	return err == nil && addr.Is4()
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
