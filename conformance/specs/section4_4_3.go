package specs

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/mpcsyntax"
	"github.com/amtp-toolkit/amtp/conformance/probe"
)

// section4_4_3 checks draft section 4.4.3, Mail Policy Code (MPC)
// Parameter: exactly one MPC parameter per MAIL command, and the reply
// codes of MPC decisions.
func section4_4_3() {
	Describe("4.4.3 Mail Policy Code (MPC) Parameter", func() {
		clause("4.4.3-duplicate-mpc-rejected", nil, func(c *Check) {
			s := c.open("MAIL with two MPC parameters")
			if s == nil {
				return
			}
			reply, err := s.Cmd(mailCommand("MPC=per/individual MPC=per/individual"))
			if err != nil {
				c.Error("no reply to MAIL: %s", describe(err))
				return
			}
			c.judgeMPCRejection("MAIL with two MPC parameters", reply)
		})

		clause("4.4.3-mail-without-mpc-rejected", nil, func(c *Check) {
			s := c.open("MAIL without MPC")
			if s == nil {
				return
			}
			// With an empty MPC value, send leaves the parameter out, and it
			// carries on with RCPT and DATA only after a 250 reply to MAIL.
			tx, err := s.send("", c.newMessage().data())
			if err != nil {
				c.Error("no reply to %s: %s", tx.stage, describe(err))
				return
			}
			if tx.stage != "MAIL" {
				c.Broken("MAIL without an MPC parameter got 250; then %s", tx)
				return
			}

			// Even after a rejected MAIL, no message may be accepted in the
			// transaction that follows.
			after, err := s.sendAfterRejectedMail(c.newMessage().data())
			if err != nil {
				c.Error("%s: %s", after.stage, describe(err))
				return
			}
			if after.accepted {
				c.Broken("MAIL without MPC got %s, but RCPT, DATA and the message after it were accepted: %s", summarize(tx.reply), after)
				return
			}
			c.Observe("after the rejected MAIL, %s", after)
			c.judgeMPCRejection("MAIL without an MPC parameter", tx.reply)
		})

		clause("4.4.3-mpc-result-codes", nil, func(c *Check) {
			sweep, ok := c.sweepValues(mpcsyntax.DefinedValues())
			if !ok {
				return
			}
			var wrong []string
			for _, d := range sweep.decisions {
				if !resultCodeAllowed(d.stage, d.reply.Code) {
					wrong = append(wrong, fmt.Sprintf("MPC=%s got %d at %s", d.value, d.reply.Code, d.stage))
				}
			}
			if len(wrong) > 0 {
				c.Broken("MPC decisions must use 250, 451 or 550, but %s", strings.Join(wrong, "; "))
				return
			}
			c.Pass("every defined MPC value got 250, 451 or 550 at MAIL and RCPT: %s; the suite cannot configure a deferring policy, so 451 appears only if the server's own policy defers a value", sweep.tally())
		})

		clause("4.4.3-reject-at-mail-or-rcpt", nil, func(c *Check) {
			values := append(mpcsyntax.DefinedValues(), undefinedValues...)
			sweep, ok := c.sweepValues(values)
			if !ok {
				return
			}
			var atMail, atRCPT []string
			for _, d := range sweep.decisions {
				if d.reply.Code < 400 {
					continue
				}
				entry := fmt.Sprintf("%s (%d)", d.value, d.reply.Code)
				if d.stage == "MAIL" {
					atMail = append(atMail, entry)
				} else {
					atRCPT = append(atRCPT, entry)
				}
			}
			c.Info("rejected at MAIL: %s; rejected at RCPT: %s; the values accepted at RCPT were not sent on to the end of data here (4.4.4-no-rewrite delivers each of them)",
				listOrNone(atMail), listOrNone(atRCPT))
		})

		clause("4.4.3-reject-without-declaration", nil, func(c *Check) {
			sweep, ok := c.sweepValues(mpcsyntax.DefinedValues())
			if !ok {
				return
			}
			var undeclared []string
			for _, d := range sweep.decisions {
				if d.reply.Code == 550 && mpcsyntax.Allowed(sweep.declarations, d.value) && !mpcsyntax.DeniedByAny(sweep.declarations, d.value) {
					undeclared = append(undeclared, fmt.Sprintf("%s at %s", d.value, d.stage))
				}
			}
			if len(undeclared) == 0 {
				c.Info("the server rejected with 550 no value that its EHLO declarations (%s) allow, for the recipient %s", declarationList(sweep.declarations), current().Recipient)
				return
			}
			c.Info("the server rejected with 550 values that its EHLO declarations (%s) allow, for the recipient %s: %s",
				declarationList(sweep.declarations), current().Recipient, strings.Join(undeclared, ", "))
		})
	})
}

// undefinedValues are well-formed MPC values with a role or class that
// section 4.5 does not define.
var undefinedValues = []string{"biz/individual", "per/bulk", "individual/confirmed", "mpc/optin"}

// mailCommand returns a MAIL command from the suite's sender with params.
func mailCommand(params string) string {
	line := "MAIL FROM:<conformance@" + current().PKI.Domain + ">"
	if params != "" {
		line += " " + params
	}
	return line
}

// judgeMPCRejection records the verdict for a MAIL command that the
// server must reject because of its MPC parameters. Any 5yz reply passes;
// with --strict only 550, the MPC rejection code of section 4.4.3, does.
func (c *Check) judgeMPCRejection(what string, reply probe.Reply) {
	switch {
	case reply.Code == 550:
		c.Pass("%s got %s", what, summarize(reply))
	case reply.Code >= 500 && c.Strict():
		c.Broken("--strict: %s got %s; section 4.4.3 says 550 SHALL be used to reject mail based on the MPC parameter", what, summarize(reply))
	case reply.Code >= 500:
		c.Pass("%s got %s, a permanent rejection (--strict demands 550)", what, summarize(reply))
	default:
		c.Broken("%s got %s, not a 5yz rejection", what, summarize(reply))
	}
}

// sendAfterRejectedMail sends RCPT, DATA and data after a rejected MAIL and
// reports whether a message got accepted. It stops at the first rejection.
func (s *Session) sendAfterRejectedMail(data []byte) (transaction, error) {
	line := "RCPT TO:<" + current().Recipient + ">"
	reply, err := s.Cmd(line)
	if err != nil {
		return transaction{stage: "RCPT", command: line}, err
	}
	if reply.Code != 250 && reply.Code != 251 {
		return transaction{stage: "RCPT", command: line, reply: reply}, nil
	}
	return s.finishData(data)
}

// resultCodeAllowed reports whether code is a result code of section
// 4.4.3 for stage. RCPT may also get 251, which accepts a recipient to be
// forwarded.
func resultCodeAllowed(stage string, code int) bool {
	switch code {
	case 250, 451, 550:
		return true
	case 251:
		return stage == "RCPT"
	}
	return false
}

// decision is the server's decision on one MPC value: the reply to MAIL if
// it was not 250, or else the reply to RCPT.
type decision struct {
	value string
	stage string
	reply probe.Reply
}

// sweep is the outcome of sending MAIL and RCPT for a list of values.
type sweep struct {
	declarations []mpcsyntax.Declaration
	decisions    []decision
}

// tally counts the decisions by stage and code, such as "36 accepted, 1
// rejected with 550 at MAIL".
func (s sweep) tally() string {
	counts := map[string]int{}
	var order []string
	for _, d := range s.decisions {
		key := fmt.Sprintf("%d at %s", d.reply.Code, d.stage)
		if d.reply.Code == 250 || d.reply.Code == 251 {
			key = "accepted"
		}
		if counts[key] == 0 {
			order = append(order, key)
		}
		counts[key]++
	}
	parts := make([]string, len(order))
	for i, key := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[key], key)
	}
	return strings.Join(parts, ", ")
}

// maxReconnects bounds how often a sweep reopens a session that the
// server closed.
const maxReconnects = 3

// sweepValues sends MAIL with each value and, after a 250 reply, RCPT for
// the configured recipient, then RSET. It records an error and returns ok
// false when the sweep cannot finish.
func (c *Check) sweepValues(values []string) (sweep, bool) {
	s := c.open("MPC values at MAIL and RCPT")
	if s == nil {
		return sweep{}, false
	}
	result := sweep{declarations: ehloDeclarations(s)}
	reconnects := 0

	for i := 0; i < len(values); i++ {
		value := values[i]
		d, err := s.decide(value)
		if err != nil && closedOrAlert(err) && reconnects < maxReconnects {
			reconnects++
			c.Observe("the server closed the connection at MPC=%s (%s); opening a new session", value, describe(err))
			if s = c.open(fmt.Sprintf("MPC values, session %d", reconnects+1)); s == nil {
				return sweep{}, false
			}
			i--
			continue
		}
		if err != nil {
			c.Error("MPC=%s: no reply to %s: %s", value, d.stage, describe(err))
			return sweep{}, false
		}
		result.decisions = append(result.decisions, d)
	}
	return result, true
}

// decide sends MAIL with value and, after 250, RCPT, and returns the
// reply that decided; it ends the transaction with RSET.
func (s *Session) decide(value string) (decision, error) {
	reply, err := s.Cmd(mailCommand("MPC=" + value))
	if err != nil {
		return decision{value: value, stage: "MAIL"}, err
	}
	if reply.Code != 250 {
		return decision{value: value, stage: "MAIL", reply: reply}, nil
	}
	reply, err = s.Cmd("RCPT TO:<" + current().Recipient + ">")
	if err != nil {
		return decision{value: value, stage: "RCPT"}, err
	}
	d := decision{value: value, stage: "RCPT", reply: reply}
	if err := s.reset(); err != nil {
		return decision{value: value, stage: "RSET"}, err
	}
	return d, nil
}

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
