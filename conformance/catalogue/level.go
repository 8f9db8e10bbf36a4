package catalogue

import "slices"

// Level is an RFC 2119 key word, spelt as RFC 2119 spells it.
type Level string

// The key words of RFC 2119.
const (
	Must        Level = "MUST"
	MustNot     Level = "MUST NOT"
	Required    Level = "REQUIRED"
	Shall       Level = "SHALL"
	ShallNot    Level = "SHALL NOT"
	Should      Level = "SHOULD"
	ShouldNot   Level = "SHOULD NOT"
	Recommended Level = "RECOMMENDED"
	May         Level = "MAY"
	Optional    Level = "OPTIONAL"
)

// Levels returns every level, strongest first.
func Levels() []Level {
	return []Level{Must, MustNot, Required, Shall, ShallNot, Should, ShouldNot, Recommended, May, Optional}
}

// Strength is the group of RFC 2119 key words that a level belongs to.
type Strength string

// The three groups of RFC 2119: absolute requirements and prohibitions
// (sections 1 to 3), recommendations (sections 3 and 4) and permissions
// (section 5).
const (
	StrengthAbsolute       Strength = "absolute"
	StrengthRecommendation Strength = "recommendation"
	StrengthPermission     Strength = "permission"
)

// Strength returns the group of the level, or "" for a string that is not a
// key word.
func (l Level) Strength() Strength {
	switch l {
	case Must, MustNot, Required, Shall, ShallNot:
		return StrengthAbsolute
	case Should, ShouldNot, Recommended:
		return StrengthRecommendation
	case May, Optional:
		return StrengthPermission
	default:
		return ""
	}
}

// Valid reports whether l is one of the RFC 2119 key words.
func (l Level) Valid() bool {
	return l.Strength() != ""
}

// Verdict is the result the suite reports for a clause that the server
// under test breaks.
type Verdict string

// Verdicts for a broken clause.
const (
	VerdictFail Verdict = "fail"
	VerdictWarn Verdict = "warn"
	VerdictInfo Verdict = "info"
)

// Verdict returns the verdict for breaking a clause of this strength: fail
// for an absolute requirement, warn for a recommendation, info for a
// permission (which a server cannot break, so the suite only reports what
// it observed). It returns "" for an invalid strength.
func (s Strength) Verdict() Verdict {
	switch s {
	case StrengthAbsolute:
		return VerdictFail
	case StrengthRecommendation:
		return VerdictWarn
	case StrengthPermission:
		return VerdictInfo
	default:
		return ""
	}
}

// Verdict returns the verdict for breaking a clause of this level:
// l.Strength().Verdict().
func (l Level) Verdict() Verdict {
	return l.Strength().Verdict()
}

// Role is the party that a clause binds.
type Role string

// The parties that the draft's sentences bind.
const (
	// RoleServer is the server MTA, the party the suite tests directly. It
	// also stands for "an MTA", "every MTA" and "all systems" where the
	// server under test is the one checked.
	RoleServer Role = "server MTA"
	// RoleClient is the client MTA. The suite observes it when a server
	// under test relays to the suite's sink and so acts as a client.
	RoleClient Role = "client MTA"
	// RoleMUA is the mail user agent. It also stands for the originator
	// that assigns the MPC value to a new message.
	RoleMUA Role = "MUA"
	// RoleLDA is a list delivery agent (draft-weinman-amtp-03 section 6.3).
	RoleLDA Role = "LDA"
	// RoleAutoresponder is an autoresponder service (section 6.4).
	RoleAutoresponder Role = "autoresponder"
	// RoleOperator is the system operator: DNS zones, CA trust and the
	// services an email service provider runs.
	RoleOperator Role = "operator"
)

// Roles returns every role, the server first.
func Roles() []Role {
	return []Role{RoleServer, RoleClient, RoleMUA, RoleLDA, RoleAutoresponder, RoleOperator}
}

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool {
	return slices.Contains(Roles(), r)
}
