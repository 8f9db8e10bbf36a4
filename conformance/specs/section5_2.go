package specs

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/mpcsyntax"
)

// undefinedValue is a well-formed MPC value whose role section 4.5 does
// not define.
const undefinedValue = "biz/individual"

// section5_2 checks draft section 5.2, Rewriting MPC Values: a message
// that the server relays from its private listener to the suite's AMTP
// sink keeps its MPC value, octet for octet, and a message whose MPC
// value is unacceptable is not delivered.
func section5_2() {
	Describe("5.2 Rewriting MPC Values", func() {
		clause("5.2-no-rewrite", []string{"private"}, func(c *Check) {
			checkRelayedMPCParameter(c, "ngo/customer")
		})

		clause("5.2-unacceptable-not-delivered", nil, checkUnacceptableNotDelivered)
	})
}

// checkUnacceptableNotDelivered sends messages with an undefined MPC
// value and, when the server's EHLO reply denies a defined value, with
// that value in lower case and in mixed case. None of them may reach the
// Maildir, whatever the server replies.
func checkUnacceptableNotDelivered(c *Check) {
	s := c.open("EHLO declarations")
	if s == nil {
		return
	}
	decls := ehloDeclarations(s)
	s.Close()

	messages := []unwanted{c.unwantedWith("message with the undefined value MPC="+undefinedValue, undefinedValue)}
	denied := deniedValue(decls)
	if denied == "" {
		c.Observe("the EHLO declarations (%s) deny no defined value, so only an undefined value was sent", declarationList(decls))
	} else {
		mixed := mixedCase(denied)
		messages = append(messages,
			c.unwantedWith("message with the denied value MPC="+denied, denied),
			c.unwantedWith("message with the denied value in mixed case, MPC="+mixed, mixed))
	}
	c.expectNotDelivered(messages...)
}

// unwantedWith returns a message with the extra header lines, sent with
// mpcValue, that the server must not deliver.
func (c *Check) unwantedWith(label, mpcValue string, headers ...string) unwanted {
	m := c.newMessage(headers...)
	return unwanted{label: label, mpc: mpcValue, data: m.data(), token: m.token}
}

// deniedValue returns the first defined value other than mpc/individual
// that decls deny when evaluated in order, or "".
func deniedValue(decls []mpcsyntax.Declaration) string {
	for _, value := range mpcsyntax.DefinedValues() {
		if value != "mpc/individual" && !mpcsyntax.Allowed(decls, value) {
			return value
		}
	}
	return ""
}

// mixedCase returns value with the first letter of its role and of its
// class in upper case, and the last letter of the class too: "com/optout"
// becomes "Com/OptouT". Roles and classes match without regard to case,
// as ABNF strings do, so the server's policy must deny it as well.
func mixedCase(value string) string {
	role, class, _ := strings.Cut(value, "/")
	upperFirst := func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	}
	class = upperFirst(class)
	if len(class) > 1 {
		class = class[:len(class)-1] + strings.ToUpper(class[len(class)-1:])
	}
	return upperFirst(role) + "/" + class
}
