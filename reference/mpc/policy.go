package mpc

import (
	"fmt"
	"strings"
)

// Action is the outcome of a declaration that matches a value.
type Action int

// Actions. Allow and Deny are the mpc-keywords of section 4.4.2. Defer is
// local to this server: it replies 451 (section 4.4.3 "MPC temporary
// failure") and is never advertised in the EHLO reply.
const (
	Allow Action = iota
	Deny
	Defer
)

// String returns the keyword of the action as written in declarations.
func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	case Defer:
		return "DEFER"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Declaration is one mpc-declaration: an action and a pattern in which the
// role or the class may be the wildcard "*".
type Declaration struct {
	Action Action
	Role   string
	Class  string
}

// String returns the declaration in the ABNF form of section 4.4.2,
// for example DENY=com/*.
func (d Declaration) String() string {
	return d.Action.String() + "=" + d.Role + "/" + d.Class
}

// Matches reports whether the pattern of d matches v. The wildcard matches
// every defined role or class; values are compared without regard to case.
func (d Declaration) Matches(v Value) bool {
	roleOK := d.Role == "*" || strings.EqualFold(d.Role, v.Role)
	classOK := d.Class == "*" || strings.EqualFold(d.Class, v.Class)
	return roleOK && classOK
}

// Policy is an ordered list of declarations.
type Policy []Declaration

// Evaluate returns the action that p takes for v, as section 4.4.2 specifies:
// declarations are evaluated in order and the last one that matches
// decides, after an implied first declaration. That implied declaration is
// DENY */* when the first keyword is ALLOW, and ALLOW */* otherwise,
// including for an empty policy.
//
// Section 4.4.2 also says that a client must give up when the value
// "matches any DENY declaration"; read literally, that contradicts the
// ordered evaluation and the section's own first example (DENY com/*
// followed by ALLOW com/individual allows com/individual). Evaluate follows
// the ordered evaluation; docs/interpretations.md records the choice.
//
// Evaluate does not special-case mpc/individual; callers that enforce
// policy must accept it first (see Value.IsIndividualMPC).
func (p Policy) Evaluate(v Value) Action {
	action := Allow
	if len(p) > 0 && p[0].Action == Allow {
		action = Deny
	}

	for _, d := range p {
		if d.Matches(v) {
			action = d.Action
		}
	}
	return action
}

// Advertised reports whether p contains only ALLOW and DENY declarations,
// the only keywords an EHLO reply may carry.
func (p Policy) Advertised() bool {
	for _, d := range p {
		if d.Action == Defer {
			return false
		}
	}
	return true
}

// EHLOLine returns the MPC line of an EHLO reply in the ABNF form of
// section 4.4.2 ("MPC" 1*(SP mpc-keyword "=" mpc-value)), or "" for an
// empty policy, which advertises nothing and so implies ALLOW */*.
func (p Policy) EHLOLine() string {
	if len(p) == 0 {
		return ""
	}

	parts := make([]string, 0, len(p)+1)
	parts = append(parts, "MPC")
	for _, d := range p {
		parts = append(parts, d.String())
	}
	return strings.Join(parts, " ")
}

// String returns the policy as space-separated declarations.
func (p Policy) String() string {
	parts := make([]string, len(p))
	for i, d := range p {
		parts[i] = d.String()
	}
	return strings.Join(parts, " ")
}

// ParseDeclaration parses one declaration written either as KEYWORD=value
// (the ABNF of section 4.4.2) or as "KEYWORD value" (the form of the
// section's examples). The keyword is ALLOW, DENY or, when allowDefer is
// set, DEFER. The role and class must be "*" or defined in section 4.5.
func ParseDeclaration(s string, allowDefer bool) (Declaration, error) {
	keyword, pattern, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		keyword, pattern, ok = strings.Cut(strings.TrimSpace(s), " ")
	}
	if !ok {
		return Declaration{}, fmt.Errorf("invalid MPC declaration %q: want KEYWORD=role/class, for example DENY=*/optout", s)
	}
	keyword = strings.TrimSpace(keyword)
	pattern = strings.TrimSpace(pattern)

	var d Declaration
	switch strings.ToUpper(keyword) {
	case "ALLOW":
		d.Action = Allow
	case "DENY":
		d.Action = Deny
	case "DEFER":
		if !allowDefer {
			return Declaration{}, fmt.Errorf("invalid MPC declaration %q: DEFER cannot be advertised in EHLO; use it in a recipient policy", s)
		}
		d.Action = Defer
	default:
		return Declaration{}, fmt.Errorf("invalid MPC declaration %q: unknown keyword %q; use ALLOW or DENY", s, keyword)
	}

	role, class, ok := strings.Cut(pattern, "/")
	if !ok {
		return Declaration{}, fmt.Errorf("invalid MPC declaration %q: pattern %q is not role/class", s, pattern)
	}
	if role != "*" && (!isToken(role) || !contains(Roles, role)) {
		return Declaration{}, fmt.Errorf("invalid MPC declaration %q: unknown role %q; use * or one of %s", s, role, strings.Join(Roles, ", "))
	}
	if class != "*" && (!isToken(class) || !contains(Classes, class)) {
		return Declaration{}, fmt.Errorf("invalid MPC declaration %q: unknown class %q; use * or one of %s", s, class, strings.Join(Classes, ", "))
	}
	d.Role = role
	d.Class = class
	return d, nil
}

// ParsePolicy parses a list of declarations, each as ParseDeclaration
// accepts it.
func ParsePolicy(lines []string, allowDefer bool) (Policy, error) {
	p := make(Policy, 0, len(lines))
	for _, line := range lines {
		d, err := ParseDeclaration(line, allowDefer)
		if err != nil {
			return nil, err
		}
		p = append(p, d)
	}
	return p, nil
}

// ParseEHLO extracts the MPC declarations from the lines of an EHLO reply
// (the text after "250-" or "250 "). It accepts the three spellings found in
// draft-weinman-amtp-03 section 4.4.2: the ABNF form "MPC DENY=com/*", the
// example form "MPC DENY com/* ALLOW com/individual", and the
// "MPC-ALLOW */individual" lines of the third example and of
// draft-weinman-amtp-00. Lines that are not MPC lines are ignored. The
// declarations keep the order in which they appear.
func ParseEHLO(lines []string) (Policy, error) {
	var p Policy
	for _, line := range lines {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}

		keyword := strings.ToUpper(fields[0])
		switch {
		case keyword == "MPC":
			decls, err := parseMPCFields(fields[1:])
			if err != nil {
				return nil, fmt.Errorf("EHLO line %q: %w", line, err)
			}
			p = append(p, decls...)

		case keyword == "MPC-ALLOW" || keyword == "MPC-DENY":
			if len(fields) == 1 {
				return nil, fmt.Errorf("EHLO line %q: %s without a role/class", line, fields[0])
			}
			for _, pattern := range fields[1:] {
				d, err := ParseDeclaration(strings.TrimPrefix(keyword, "MPC-")+"="+pattern, false)
				if err != nil {
					return nil, fmt.Errorf("EHLO line %q: %w", line, err)
				}
				p = append(p, d)
			}
		}
	}
	return p, nil
}

// parseMPCFields parses the fields after "MPC": either KEYWORD=value tokens
// or KEYWORD value pairs, or a mix of both.
func parseMPCFields(fields []string) (Policy, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("MPC line without declarations")
	}

	var p Policy
	for i := 0; i < len(fields); i++ {
		token := fields[i]
		if !strings.Contains(token, "=") {
			if i+1 >= len(fields) {
				return nil, fmt.Errorf("keyword %q without a role/class", token)
			}
			token += "=" + fields[i+1]
			i++
		}

		d, err := ParseDeclaration(token, false)
		if err != nil {
			return nil, err
		}
		p = append(p, d)
	}
	return p, nil
}
