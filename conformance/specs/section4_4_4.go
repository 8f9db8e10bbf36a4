package specs

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/maildir"
	"github.com/amtp-toolkit/amtp/conformance/mpcsyntax"
)

// section4_4_4 checks draft section 4.4.4, MPC Value Propagation. For
// local delivery, the server adds one MPC header field with the value of
// the MAIL command, unchanged, and rejects a message that already has one.
// For a relay from the private listener to the suite's AMTP sink, the
// server passes the value on as the MPC parameter of MAIL, unchanged, and
// adds no MPC header field.
func section4_4_4() {
	Describe("4.4.4 MPC Value Propagation", func() {
		clause("4.4.4-mpc-value-preserved", []string{"private"}, checkValuePreserved)

		clause("4.4.4-header-inserted-on-delivery", []string{"maildir"}, func(c *Check) {
			if c.watcher() == nil {
				return
			}
			copies, ok := c.deliverOne("per/individual")
			if !ok {
				return
			}
			for _, m := range copies {
				if problem := mpcFieldProblem(m, "per/individual"); problem != "" {
					c.Broken("%s: %s", m.Path, problem)
					return
				}
			}
			c.Pass("the delivered message %s has exactly one MPC header field, per/individual", copies[0].Path)
		})

		clause("4.4.4-header-inserted-on-non-amtp-relay", []string{"gateway-sink"}, func(c *Check) {
			const value = "com/confirmed"
			tx, ok := c.relayByRoute(current().GatewaySink, "--gateway-sink", false, value)
			if !ok {
				return
			}
			relayed := maildir.Message{Path: "the message relayed to the plain SMTP sink " + current().GatewaySink.String(), Data: tx.Data}
			if problem := mpcFieldProblem(relayed, value); problem != "" {
				c.Broken("%s: %s", relayed.Path, problem)
				return
			}
			c.Pass("the message relayed to the plain SMTP sink %s carries exactly one MPC header field, %s", current().GatewaySink, value)
		})

		clause("4.4.4-existing-header-searched", nil, func(c *Check) {
			var last []string
			for i := 1; i <= 43; i++ {
				last = append(last, fmt.Sprintf("X-Filler-%02d: field %d of the header section", i, i))
			}
			// The message builder writes 6 fields of its own, so the MPC field
			// is the 50th.
			last = append(last, "MPC: per/individual")
			c.expectNotDelivered(
				c.unwantedMessage("MPC field as the last of 50 header fields", last...),
				c.unwantedMessage("folded MPC field", "MPC:", " per/individual"),
				c.unwantedMessage(`MPC field written "MPC :"`, "MPC : per/individual"),
			)
		})

		clause("4.4.4-existing-header-refused", nil, func(c *Check) {
			c.expectNotDelivered(c.unwantedMessage(`message with "MPC: per/individual"`, "MPC: per/individual"))
		})

		clause("4.4.4-header-token-case-insensitive", nil, func(c *Check) {
			c.expectNotDelivered(c.unwantedMessage(`message with "mPc: per/individual"`, "mPc: per/individual"))
		})

		clause("4.4.4-no-header-on-amtp-relay", []string{"private"}, func(c *Check) {
			tx, ok := c.relayToSink("com/confirmed")
			if !ok {
				return
			}
			fields := maildir.FieldsNamed(maildir.HeaderFields(tx.Data), "MPC")
			if len(fields) > 0 {
				c.Broken("the message relayed to the suite's AMTP sink carries %d MPC header field(s), the first with the value %q",
					len(fields), strings.TrimSpace(fields[0].Value))
				return
			}
			c.Pass("the message relayed to the suite's AMTP sink has no MPC header field")
		})

		clause("4.4.4-no-rewrite", []string{"maildir"}, checkNoRewrite)
	})
}

// checkValuePreserved relays a message with MPC=ngo/optin to the sink and
// compares the MPC parameter of the relayed MAIL command. With a Maildir,
// it also delivers one locally and compares its MPC header field.
func checkValuePreserved(c *Check) {
	const value = "ngo/optin"
	tx, ok := c.relayToSink(value)
	if !ok {
		return
	}
	got, found := tx.MailParameter("MPC")
	switch {
	case !found:
		c.Broken("the relayed MAIL command carries no MPC parameter: %q", tx.MailCommand)
		return
	case got != value:
		c.Broken("the relayed MAIL command carries MPC=%s, but the message was submitted with MPC=%s: %q", got, value, tx.MailCommand)
		return
	}

	if current().Maildir == nil {
		c.Pass("the relayed MAIL command carries MPC=%s as submitted; local delivery was not checked, because it needs --maildir", value)
		return
	}
	copies, ok := c.deliverOne(value)
	if !ok {
		return
	}
	for _, m := range copies {
		if problem := mpcFieldProblem(m, value); problem != "" {
			c.Broken("%s: %s", m.Path, problem)
			return
		}
	}
	c.Pass("the relayed MAIL command carries MPC=%s as submitted, and the delivered copy %s carries the MPC header field %s", value, copies[0].Path, value)
}

// unwantedMessage returns a message with the extra header lines, sent
// with MPC=per/individual, that the server must not deliver.
func (c *Check) unwantedMessage(label string, headers ...string) unwanted {
	return c.unwantedWith(label, "per/individual", headers...)
}

// deliverOne sends one message with mpcValue in a new session and waits
// for it in the Maildir tree. It returns ok false after it records a skip
// when the server rejects the message, or an error when the message gets
// no reply or does not arrive.
func (c *Check) deliverOne(mpcValue string) ([]maildir.Message, bool) {
	s := c.open("message with MPC=" + mpcValue)
	if s == nil {
		return nil, false
	}
	m := c.newMessage()
	tx, err := s.send(mpcValue, m.data())
	if err != nil {
		c.Error("no reply to %s: %s", tx.stage, describe(err))
		return nil, false
	}
	if !tx.accepted {
		c.skipRejectedTransaction(tx)
		return nil, false
	}
	copies, err := c.waitDelivered(m.token)
	if err != nil {
		c.Error("the server accepted the message but it did not reach the Maildir tree; check --maildir: %v", err)
		return nil, false
	}
	return copies, true
}

// mpcFieldProblem returns why the delivered message m does not carry
// exactly one MPC header field with value, octet for octet, or "".
func mpcFieldProblem(m maildir.Message, value string) string {
	fields := maildir.FieldsNamed(maildir.HeaderFields(m.Data), "MPC")
	switch len(fields) {
	case 0:
		return "the delivered message has no MPC header field"
	case 1:
	default:
		values := make([]string, len(fields))
		for i, f := range fields {
			values[i] = strings.TrimSpace(f.Value)
		}
		return fmt.Sprintf("the delivered message has %d MPC header fields: %s", len(fields), strings.Join(values, ", "))
	}
	got := strings.Trim(fields[0].Value, " \t")
	if got != value {
		return fmt.Sprintf("the MPC header field carries %q, but MAIL carried MPC=%s", got, value)
	}
	return ""
}

// checkNoRewrite delivers one message for each defined MPC value, plus one
// in mixed case, and compares the delivered MPC header fields with the
// values sent.
func checkNoRewrite(c *Check) {
	if c.watcher() == nil {
		return
	}
	s := c.open("one message per MPC value")
	if s == nil {
		return
	}

	values := append(mpcsyntax.DefinedValues(), "Ngo/Customer")
	tokens := map[string]string{}
	var order, rejected []string
	var firstRejection transaction
	reconnects := 0
	for i := 0; i < len(values); i++ {
		value := values[i]
		m := c.newMessage()
		tx, err := s.send(value, m.data())
		if err != nil && closedOrAlert(err) && reconnects < maxReconnects {
			reconnects++
			if s = c.open(fmt.Sprintf("one message per MPC value, session %d", reconnects+1)); s == nil {
				return
			}
			i--
			continue
		}
		if err != nil {
			c.Error("MPC=%s: no reply to %s: %s", value, tx.stage, describe(err))
			return
		}
		if !tx.accepted {
			if len(rejected) == 0 {
				firstRejection = tx
			}
			rejected = append(rejected, fmt.Sprintf("%s (%s)", value, tx))
			if tx.stage != "MAIL" {
				if err := s.reset(); err != nil {
					c.Error("%s", describe(err))
					return
				}
			}
			continue
		}
		tokens[value] = m.token
		order = append(order, value)
	}
	if len(rejected) > 0 {
		c.Observe("rejected by the server's policy, so not checked: %s", strings.Join(rejected, ", "))
	}
	if len(order) == 0 {
		// With every value rejected, the first rejection stands for them all.
		c.skipRejectedTransaction(firstRejection)
		return
	}

	for _, value := range order {
		copies, err := c.waitDelivered(tokens[value])
		if err != nil {
			c.Error("the message with MPC=%s was accepted but not delivered; check --maildir: %v", value, err)
			return
		}
		for _, m := range copies {
			if problem := mpcFieldProblem(m, value); problem != "" {
				c.Broken("%s: %s", m.Path, problem)
				return
			}
		}
	}
	c.Pass("each of the %d delivered messages carries the MPC value of its MAIL command, octet for octet: %s", len(order), strings.Join(order, ", "))
}
