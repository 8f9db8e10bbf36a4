package specs

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/mpcsyntax"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// exampleValue is the MPC value of the first MAIL example of draft section
// 4.4.3, which the example shows accepted although section 4.5 defines no
// role "individual".
const exampleValue = "individual/confirmed"

// section4_5 checks draft section 4.5, MPC Syntax: only defined values
// are accepted, "mpc" goes only with "individual", and mpc/individual is
// always accepted and delivered.
func section4_5() {
	Describe("4.5 MPC Syntax", func() {
		clause("4.5-undefined-values-rejected", nil, func(c *Check) {
			c.expectValuesRejected("biz/individual", "per/bulk", exampleValue)
		})

		clause("4.5-mpc-individual-accepted", nil, func(c *Check) {
			s := c.open("message with MPC=mpc/individual")
			if s == nil {
				return
			}
			decls := ehloDeclarations(s)
			c.Observe("EHLO declarations: %s; they %s", declarationList(decls), describeDenials(decls))
			tx, err := s.send("mpc/individual", c.newMessage().data())
			switch {
			case err != nil:
				c.Error("no reply to %s: %s", tx.stage, describe(err))
			case tx.accepted:
				c.Pass("MAIL, RCPT for %s and the end of data each got 250 for MPC=mpc/individual", current().Recipient)
			default:
				c.Broken("the server rejected MPC=mpc/individual for %s: %s", current().Recipient, tx)
			}
		})

		clause("4.5-mpc-individual-delivered", []string{"maildir"}, func(c *Check) {
			if c.watcher() == nil || !c.dependsOn("4.5-mpc-individual-accepted") {
				return
			}
			s := c.open("message with MPC=mpc/individual")
			if s == nil {
				return
			}
			m := c.newMessage()
			tx, err := s.send("mpc/individual", m.data())
			switch {
			case err != nil:
				c.Error("no reply to %s: %s", tx.stage, describe(err))
				return
			case !tx.accepted:
				c.Skip("the server did not accept the message (%s), so its delivery cannot be checked; see 4.5-mpc-individual-accepted", tx)
				return
			}
			copies, err := c.waitDelivered(m.token)
			if err != nil {
				c.Broken("the server accepted the mpc/individual message but did not deliver it: %v", err)
				return
			}
			for _, delivered := range copies {
				if problem := mpcFieldProblem(delivered, "mpc/individual"); problem != "" {
					c.Broken("%s: %s", delivered.Path, problem)
					return
				}
			}
			c.Pass("the mpc/individual message reached %s with the MPC header field mpc/individual", copies[0].Path)
		})

		clause("4.5-mpc-role-only-individual", nil, func(c *Check) {
			c.expectValuesRejected("mpc/optin")
		})
	})
}

// describeDenials describes whether the declarations deny any defined value
// other than mpc/individual.
func describeDenials(decls []mpcsyntax.Declaration) string {
	var denied []string
	for _, value := range mpcsyntax.DefinedValues() {
		if value != "mpc/individual" && !mpcsyntax.Allowed(decls, value) {
			denied = append(denied, value)
		}
	}
	if len(denied) == 0 {
		return "deny no other value, so this check shows only that mpc/individual is accepted, not that it overrides a policy"
	}
	return "deny " + result.Count(len(denied), "other value", "other values")
}

// expectValuesRejected sends a message with each value, each in its own
// session, and records whether the server rejected them all. A 5yz reply
// at MAIL, RCPT, DATA or the end of data passes; --strict demands 550.
// Without --strict, accepting the example value individual/confirmed is
// noted but not held against the server.
func (c *Check) expectValuesRejected(values ...string) {
	var rejections []string
	for _, value := range values {
		s := c.open("message with MPC=" + value)
		if s == nil {
			return
		}
		tx, err := s.send(value, c.newMessage().data())
		s.Close()
		if err != nil {
			c.Error("MPC=%s: no reply to %s: %s", value, tx.stage, describe(err))
			return
		}

		code := tx.reply.Code
		switch {
		case tx.accepted && value == exampleValue && !c.Strict():
			c.Observe("the server accepted MPC=%s, the example value of section 4.4.3; section 4.5 defines no role %q, and --strict demands a rejection", value, "individual")
		case tx.accepted:
			c.Broken("the server accepted a message with the undefined value MPC=%s: %s", value, tx)
			return
		case code >= 500 && code != 550 && c.Strict():
			c.Broken("--strict: MPC=%s got %s; section 4.4.3 says 550 SHALL be used to reject mail based on the MPC parameter", value, tx)
			return
		case code >= 500:
			rejections = append(rejections, fmt.Sprintf("MPC=%s: %s", value, tx))
		default:
			c.Broken("MPC=%s got %s, not a permanent rejection", value, tx)
			return
		}
	}
	if len(rejections) == 0 {
		c.Pass("the only value sent was accepted under the lenient reading; see the observations")
		return
	}
	c.Pass("the server rejected %s", strings.Join(rejections, "; "))
}
