package specs

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/maildir"
	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// rfc5321Specs checks the RFC 5321 server behaviour that AMTP inherits
// (draft section 3). The specs are grouped by RFC 5321 section.
func rfc5321Specs() {
	Describe("RFC 5321 (inherited)", func() {
		clause("rfc5321-2.3.8-crlf-only", nil, checkCRLFOnly)
		clause("rfc5321-3.3-rcpt-before-mail-503", nil, func(c *Check) {
			c.expectCode("RCPT before MAIL", []string{"RCPT TO:<" + current().Recipient + ">"}, 503)
		})
		clause("rfc5321-3.5.3-vrfy-no-unverified-250", nil, func(c *Check) {
			s := c.open("VRFY of an unknown mailbox")
			if s == nil {
				return
			}
			address := "no-such-user-" + current().RunID + "@" + current().PKI.Domain
			reply, err := s.Cmd("VRFY " + address)
			switch {
			case err != nil:
				c.Error("no reply to VRFY: %s", describe(err))
			case reply.Code == 250:
				c.Broken("VRFY %s, a mailbox that does not exist, got %s", address, summarize(reply))
			default:
				c.Pass("VRFY %s got %s", address, summarize(reply))
			}
		})
		clause("rfc5321-3.5.3-vrfy-reply-codes", nil, func(c *Check) {
			s := c.open("VRFY of an existing mailbox")
			if s == nil {
				return
			}
			reply, err := s.Cmd("VRFY " + current().Recipient)
			switch {
			case err != nil:
				c.Error("no reply to VRFY: %s", describe(err))
			case slices.Contains([]int{250, 251, 252, 502}, reply.Code):
				c.Pass("VRFY %s got %s", current().Recipient, summarize(reply))
			default:
				c.Broken("VRFY %s got %s, not 250, 251, 252 or 502", current().Recipient, summarize(reply))
			}
		})
		clause("rfc5321-3.6.2-relay-denied-550", nil, func(c *Check) {
			attempt, ok := c.publicRelayRCPT()
			reply := attempt.reply
			switch {
			case !ok:
			case reply.Code == 550:
				c.Pass("RCPT for %s got %s", attempt.recipient, summarize(reply))
			case reply.Code >= 400:
				c.Broken("RCPT for %s got %s, not 550", attempt.recipient, summarize(reply))
			default:
				c.Skip("the server accepted RCPT for %s (%s), so it did not decline to relay", attempt.recipient, summarize(reply))
			}
		})
		clause("rfc5321-3.8-no-close-except", nil, checkNoClose)
		clause("rfc5321-3.8-timeout-close-421", []string{"server-timeout"}, checkIdleClose)

		clause("rfc5321-4.1.1.4-end-of-data", nil, checkEndOfData)
		clause("rfc5321-4.1.1.4-no-bare-lf-lines", nil, checkBareLFLines)
		clause("rfc5321-4.1.1.4-no-bare-lf-end-of-data", nil, checkSmuggling)
		clause("rfc5321-4.1.1.5-rset-250", nil, checkRSET)
		clause("rfc5321-4.1.1.5-rset-clears-transaction", nil, checkRSETClears)
		clause("rfc5321-4.1.1.9-noop-250", nil, checkNOOP)
		clause("rfc5321-4.1.1.10-quit-221", nil, func(c *Check) {
			s := c.open("QUIT")
			if s == nil {
				return
			}
			reply, err := s.Cmd("QUIT")
			if err != nil {
				c.Broken("no reply to QUIT: %s", describe(err))
				return
			}
			if reply.Code != 221 {
				c.Broken("QUIT got %s, not 221", summarize(reply))
				return
			}
			closed, err := s.ExpectClose()
			switch {
			case err != nil:
				c.Error("%s", describe(err))
			case !closed:
				c.Broken("QUIT got %s, but the server kept the connection open for %s", summarize(reply), current().StepTimeout)
			default:
				c.Pass("QUIT got %s, and the server closed the connection", summarize(reply))
			}
		})
		clause("rfc5321-4.1.4-commands-before-ehlo", nil, checkCommandsBeforeEHLO)
		clause("rfc5321-4.1.4-data-before-rcpt-503", nil, checkDataBeforeRCPT)
		clause("rfc5321-4.1.4-nested-mail-503", nil, checkNestedMail)

		clause("rfc5321-4.2-one-reply-per-command", nil, checkOneReplyPerCommand)
		clause("rfc5321-4.2.1-multiline-format", nil, func(c *Check) {
			// The codes of the lines are rfc5321-4.2.1-multiline-same-code's
			// concern, so a reply with mixed codes can pass here.
			c.checkMultilineReplies("have a space or hyphen after each code and end each line in CRLF", func(r probe.Reply) string {
				for _, d := range r.Defects {
					if d.Kind == probe.DefectMissingSeparator || d.Kind == probe.DefectBareLF {
						return d.String()
					}
				}
				return ""
			})
		})
		clause("rfc5321-4.2.1-multiline-same-code", nil, func(c *Check) {
			c.checkMultilineReplies("carry one code on all their lines", func(r probe.Reply) string {
				for _, d := range r.Defects {
					if d.Kind == probe.DefectMixedCodes {
						return d.String()
					}
				}
				return ""
			})
		})
		clause("rfc5321-4.2.4-unknown-command-500", nil, func(c *Check) {
			c.expectCode("unknown command", []string{"XYZZY"}, 500)
		})
		clause("rfc5321-4.2.4-no-unimplemented-ehlo-keywords", nil, checkEHLOKeywordsImplemented)
		clause("rfc5321-4.3.1-greeting-220", nil, checkGreeting)
		clause("rfc5321-4.3.2-command-line-too-long-500", nil, func(c *Check) {
			line := "NOOP " + strings.Repeat("x", 2048-len("NOOP ")-2)
			c.expectCode("2048-octet command line", []string{line}, 500)
		})
		clause(replyCodeRangeClause, nil, checkReplyCodeRange)

		clause("rfc5321-4.5.2-dot-unstuffing", []string{"maildir"}, func(c *Check) {
			c.expectBodyDelivered("the message with dot-stuffed lines", []string{".hidden", "..", "plain"})
		})
		clause("rfc5321-4.5.3.1.4-command-line-limit", nil, func(c *Check) {
			line := "NOOP " + strings.Repeat("x", 512-len("NOOP ")-2)
			c.expectCode("512-octet NOOP", []string{line}, 250)
		})
		clause("rfc5321-4.5.3.1.6-text-line-limit", []string{"maildir"}, func(c *Check) {
			plain := strings.Repeat("a", 998)
			dotted := "." + strings.Repeat("b", 997)
			if !c.expectBodyDelivered("the message with a 1000-octet text line", []string{plain}) {
				return
			}
			c.resetVerdict()
			c.expectBodyDelivered("the message with a 1000-octet text line that starts with a dot", []string{dotted})
		})
		clause("rfc5321-4.5.3.1.7-message-content-64k", []string{"maildir"}, check64K)
		clause("rfc5321-4.5.3.1.8-hundred-recipients", nil, checkHundredRecipients)
		clause("rfc5321-4.5.3.1.9-limit-exceeded-reply", nil, func(c *Check) {
			s := c.open("4000-octet text line")
			if s == nil {
				return
			}
			m := c.newMessage()
			m.body = []string{strings.Repeat("c", 4000)}
			tx, err := s.send("per/individual", m.data())
			switch {
			case err != nil:
				c.Info("the message with a 4000-octet text line got no reply at %s: %s", tx.stage, describe(err))
			default:
				c.Info("the message with a 4000-octet text line: %s", tx)
			}
		})
		clause("rfc5321-4.5.3.1.10-too-many-recipients-452", nil, checkRecipientLimit)
		clause("rfc5321-4.5.3.2.7-server-timeout", []string{"server-timeout"}, checkCommandTimeout)
	})
}

// expectCode opens a session, sends commands and records whether the last
// one got want. The earlier commands must get a 2yz or 3yz reply. After
// the last command, NOOP must still get 250, so that the connection is
// known to survive the reply.
func (c *Check) expectCode(label string, commands []string, want int) {
	s := c.open(label)
	if s == nil {
		return
	}
	var reply probe.Reply
	for i, line := range commands {
		var err error
		reply, err = s.Cmd(line)
		if err != nil {
			c.Broken("no reply to %s: %s", verbOf(line), describe(err))
			return
		}
		if i < len(commands)-1 && reply.Code >= 400 {
			c.skipRejected(line, reply)
			return
		}
	}
	last := verbOf(commands[len(commands)-1])
	if reply.Code != want {
		c.Broken("%s got %s, not %d", last, summarize(reply), want)
		return
	}
	noop, err := s.Cmd("NOOP")
	if err != nil || noop.Code != 250 {
		c.Broken("%s got %s, but the session did not go on: NOOP after it got %s", last, summarize(reply), replyOrError(noop, err))
		return
	}
	c.Pass("%s got %s, and NOOP after it got 250", last, summarize(reply))
}

// verbOf returns the command verb of a command line, with the length of
// a long line.
func verbOf(line string) string {
	verb, _, _ := strings.Cut(line, " ")
	if len(line) > 100 {
		return fmt.Sprintf("%s (a %d-octet line with CRLF)", verb, len(line)+2)
	}
	return verb
}

func replyOrError(reply probe.Reply, err error) string {
	if err != nil {
		return describe(err)
	}
	return summarize(reply)
}

// resetVerdict clears a pass so that a check made of two parts can record
// the verdict of the second part. Other verdicts stay.
func (c *Check) resetVerdict() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done && c.outcome.Verdict == result.Pass {
		c.outcome.Observations = append(c.outcome.Observations, "first part: "+c.outcome.Reason)
		c.done = false
	}
}

// checkCRLFOnly sends "NOOP\nNOOP\r\n" in one write. A bare LF must not
// end a command line, so exactly one reply may arrive. Without --strict, a
// server also passes when it rejects the part before the bare LF with a
// 4yz or 5yz reply and then replies to the rest. Such a server executes
// nothing that ended in a bare LF and uses the LF only to read on.
func checkCRLFOnly(c *Check) {
	s := c.open(`"NOOP\nNOOP\r\n" in one write`)
	if s == nil {
		return
	}
	if err := s.Send([]byte("NOOP\nNOOP\r\n")); err != nil {
		c.Error("send failed: %s", describe(err))
		return
	}
	first, err := s.Read()
	if err != nil {
		c.Broken("no reply to the line: %s", describe(err))
		return
	}
	quiet, second, err := s.Quiet()
	switch {
	case err != nil:
		c.Error("%s", describe(err))
		return
	case !quiet && first.Code < 400:
		c.Broken("two replies arrived (%s, then %s), so the server executed a command line that ended in a bare LF", summarize(first), summarize(second))
		return
	case !quiet && c.Strict():
		c.Broken("--strict: two replies arrived (%s, then %s), so the bare LF ended a command line", summarize(first), summarize(second))
		return
	case !quiet:
		c.Observe("two replies arrived (%s, then %s): the server rejected the part before the bare LF and read on after it, which --strict does not accept", summarize(first), summarize(second))
	}
	for _, r := range s.Replies() {
		if !r.CRLF {
			c.Broken("the reply %s has a line that ends in a bare LF", summarize(r))
			return
		}
	}
	if quiet {
		c.Pass("exactly one reply arrived (%s), and every reply line ended in CRLF", summarize(first))
		return
	}
	c.Pass("the server rejected the line that ended in a bare LF (%s) and executed nothing from it; every reply line ended in CRLF", summarize(first))
}

// checkNoClose sends an unknown command, a RCPT out of sequence and RSET;
// the connection must stay open.
func checkNoClose(c *Check) {
	s := c.open("errors that must not close the connection")
	if s == nil {
		return
	}
	var steps []string
	for _, line := range []string{"XYZZY", "RCPT TO:<" + current().Recipient + ">", "RSET", "NOOP"} {
		reply, err := s.Cmd(line)
		if err != nil {
			c.Broken("after %s, %s got no reply: %s", strings.Join(steps, ", "), verbOf(line), describe(err))
			return
		}
		if reply.Code == 421 {
			c.Broken("%s got %s, which closes the connection", verbOf(line), summarize(reply))
			return
		}
		steps = append(steps, fmt.Sprintf("%s got %d", verbOf(line), reply.Code))
		if line == "NOOP" && reply.Code != 250 {
			c.Broken("%s; NOOP did not get 250", strings.Join(steps, ", "))
			return
		}
	}
	c.Pass("the connection stayed open: %s", strings.Join(steps, ", "))
}

// openData opens a session and sends MAIL, RCPT and DATA, leaving the
// server waiting for mail data. It returns nil after it records a skip
// when the server rejects a step, or an error when a step gets no reply.
func (c *Check) openData(label string) *Session {
	s := c.open(label)
	if s == nil {
		return nil
	}
	for _, step := range []struct {
		line string
		want int
	}{
		{mailCommand("MPC=per/individual"), 250},
		{"RCPT TO:<" + current().Recipient + ">", 250},
		{"DATA", 354},
	} {
		reply, err := s.Cmd(step.line)
		if err != nil {
			c.Error("no reply to %s: %s", verbOf(step.line), describe(err))
			return nil
		}
		if reply.Code != step.want {
			c.skipRejected(step.line, reply)
			return nil
		}
	}
	return s
}

// checkEndOfData sends lines that look like the end of data, pauses, and
// then sends the real end.
func checkEndOfData(c *Check) {
	s := c.openData("lines that resemble the end of data")
	if s == nil {
		return
	}
	m := c.newMessage()
	var b bytes.Buffer
	for _, line := range m.lines() {
		b.WriteString(line + "\r\n")
	}
	// These lines are sent as they are: a dot followed by more text, a dot
	// at the end, and a dot after a space.
	b.WriteString(". x\r\nx.\r\n .\r\n")
	if err := s.Send(b.Bytes()); err != nil {
		c.Error("send failed: %s", describe(err))
		return
	}
	quiet, early, err := s.Quiet()
	switch {
	case err != nil:
		c.Broken("the connection ended before the end of data: %s", describe(err))
		return
	case !quiet:
		c.Broken(`a reply arrived before the end of data: %s; one of ". x", "x." or " ." ended the data`, summarize(early))
		return
	}

	if err := s.Send([]byte(".\r\n")); err != nil {
		c.Error("send failed: %s", describe(err))
		return
	}
	reply, err := s.Read()
	if err != nil {
		c.Broken("no reply after CRLF.CRLF: %s", describe(err))
		return
	}
	quiet, extra, err := s.Quiet()
	switch {
	case err != nil && closedOrAlert(err):
		c.Pass("no reply before CRLF.CRLF and one after it (%s); then the server closed the connection", summarize(reply))
	case err != nil:
		c.Error("%s", describe(err))
	case !quiet:
		c.Broken("two replies arrived after CRLF.CRLF: %s, then %s", summarize(reply), summarize(extra))
	default:
		c.Pass("no reply before CRLF.CRLF, and exactly one after it: %s", summarize(reply))
	}
}

// checkBareLFLines sends a message whose lines end in bare LF, closed by
// CRLF.CRLF; the server must reject it with a 5yz reply.
func checkBareLFLines(c *Check) {
	s := c.openData("lines that end in a bare LF")
	if s == nil {
		return
	}
	m := c.newMessage()
	m.body = []string{"first body line", "second body line"}
	data := strings.Join(m.lines(), "\n") + "\r\n.\r\n"
	if err := s.Send([]byte(data)); err != nil {
		c.Error("send failed: %s", describe(err))
		return
	}
	reply, err := s.Read()
	switch {
	case err != nil:
		c.Broken("no reply to the end of data: %s", describe(err))
	case reply.Code >= 500:
		c.Pass("the message with bare LF line endings got %s", summarize(reply))
	case reply.Code == 250:
		c.Broken("the server accepted a message whose lines end in bare LF: %s", summarize(reply))
	default:
		c.Broken("the message with bare LF line endings got %s, not a 5yz reply", summarize(reply))
	}
}

// checkSmuggling sends "\n.\n" followed by a second transaction inside the
// data of the first. A server that ends the data at LF.LF runs the second
// transaction, so more than one reply arrives, or a second message with
// its own token reaches the Maildir tree.
func checkSmuggling(c *Check) {
	s := c.openData(`"\n.\n" followed by a smuggled transaction`)
	if s == nil {
		return
	}
	outer := c.newMessage()
	inner := c.newMessage()
	var b bytes.Buffer
	for _, line := range outer.lines() {
		b.WriteString(line + "\r\n")
	}
	b.WriteString("\n.\n")
	b.WriteString(mailCommand("MPC=per/individual") + "\r\n")
	b.WriteString("RCPT TO:<" + current().Recipient + ">\r\n")
	b.WriteString("DATA\r\n")
	b.Write(inner.data())

	if err := s.Send(b.Bytes()); err != nil {
		c.Error("send failed: %s", describe(err))
		return
	}
	first, err := s.Read()
	if err != nil {
		c.Broken("no reply after the final CRLF.CRLF: %s", describe(err))
		return
	}
	quiet, second, err := s.Quiet()
	switch {
	case err != nil && !closedOrAlert(err):
		c.Error("%s", describe(err))
		return
	case err == nil && !quiet:
		c.Broken(`more than one reply arrived (%s, then %s), so "\n.\n" ended the mail data and the smuggled commands ran`, summarize(first), summarize(second))
		return
	}

	if first.Code != 250 || current().Maildir == nil {
		c.Pass("exactly one reply arrived: %s", summarize(first))
		return
	}
	delivered, ok := c.deliveredAfterAll([]string{inner.token})
	if !ok {
		return
	}
	if len(delivered) > 0 {
		c.Broken("one reply arrived (%s), but the smuggled message %s reached the Maildir as a message of its own", summarize(first), inner.token)
		return
	}
	c.Pass("exactly one reply arrived (%s), and the smuggled message did not reach the Maildir as a message of its own", summarize(first))
}

// checkRSET sends RSET before MAIL and inside a transaction.
func checkRSET(c *Check) {
	s := c.open("RSET")
	if s == nil {
		return
	}
	var steps []string
	for _, step := range []struct {
		line string
		want int
	}{
		{"RSET", 250},
		{mailCommand("MPC=per/individual"), 250},
		{"RSET", 250},
		{"NOOP", 250},
	} {
		reply, err := s.Cmd(step.line)
		if err != nil {
			c.Broken("no reply to %s after %s: %s", verbOf(step.line), listOrNone(steps), describe(err))
			return
		}
		if reply.Code != step.want && strings.HasPrefix(step.line, "RSET") {
			c.Broken("%s got %s, not %d, after %s", verbOf(step.line), summarize(reply), step.want, listOrNone(steps))
			return
		}
		if reply.Code != step.want {
			c.skipRejected(step.line, reply)
			return
		}
		steps = append(steps, verbOf(step.line)+" got 250")
	}
	c.Pass("RSET got 250 before MAIL and inside a transaction: %s", strings.Join(steps, ", "))
}

// checkRSETClears sends MAIL, RCPT, RSET, MAIL and DATA: DATA must find no
// recipients. The second MAIL gives the transaction a sender again, so a
// 503 to DATA can only mean that RSET discarded the recipients.
func checkRSETClears(c *Check) {
	s := c.open("RSET inside a transaction")
	if s == nil {
		return
	}
	for _, step := range []struct {
		line string
		want int
	}{
		{mailCommand("MPC=per/individual"), 250},
		{"RCPT TO:<" + current().Recipient + ">", 250},
		{"RSET", 250},
	} {
		reply, err := s.Cmd(step.line)
		if err != nil {
			c.Error("no reply to %s: %s", verbOf(step.line), describe(err))
			return
		}
		if reply.Code != step.want {
			c.skipRejected(step.line, reply)
			return
		}
	}
	mailLine := mailCommand("MPC=per/individual")
	mail, err := s.Cmd(mailLine)
	switch {
	case err != nil:
		c.Broken("no reply to MAIL after RSET: %s", describe(err))
		return
	case mail.Code == 503:
		c.Broken("MAIL after MAIL, RCPT and RSET got %s: RSET did not end the transaction", summarize(mail))
		return
	case mail.Code != 250:
		c.skipRejected(mailLine, mail)
		return
	}
	reply, err := s.Cmd("DATA")
	switch {
	case err != nil:
		c.Broken("no reply to DATA after RSET: %s", describe(err))
	case reply.Code == 503 || reply.Code == 554:
		c.Pass("DATA after MAIL, RCPT, RSET and MAIL got %s, so RSET discarded the recipients", summarize(reply))
	case reply.Code == 354:
		c.Broken("DATA after MAIL, RCPT, RSET and MAIL got %s: the server kept the recipients across RSET", summarize(reply))
	default:
		c.Broken("DATA after RSET and MAIL got %s, not 503 or 554", summarize(reply))
	}
}

// checkNOOP sends NOOP before EHLO, after EHLO and inside a transaction.
func checkNOOP(c *Check) {
	if !c.requireBaseline() {
		return
	}
	s, id := c.dialValid("NOOP before and after EHLO")
	if s == nil {
		return
	}
	if !c.readGreeting(s) {
		return
	}
	steps := []struct {
		line    string
		isCheck bool
	}{
		{"NOOP", true},
		{"EHLO " + id.CN, false},
		{"NOOP", true},
		{mailCommand("MPC=per/individual"), false},
		{"NOOP", true},
	}
	var done []string
	for _, step := range steps {
		reply, err := s.Cmd(step.line)
		if err != nil {
			c.Broken("no reply to %s after %s: %s", verbOf(step.line), listOrNone(done), describe(err))
			return
		}
		if reply.Code != 250 {
			if step.isCheck {
				c.Broken("NOOP after %s got %s, not 250", listOrNone(done), summarize(reply))
			} else {
				c.skipRejected(step.line, reply)
			}
			return
		}
		done = append(done, verbOf(step.line))
	}
	c.Pass("NOOP got 250 before EHLO, after EHLO and inside a transaction")
}

// checkCommandsBeforeEHLO sends NOOP, RSET and VRFY right after the
// greeting.
func checkCommandsBeforeEHLO(c *Check) {
	if !c.requireBaseline() {
		return
	}
	s, _ := c.dialValid("commands before EHLO")
	if s == nil {
		return
	}
	if !c.readGreeting(s) {
		return
	}
	var rejected, steps []string
	for _, line := range []string{"NOOP", "RSET", "VRFY " + current().Recipient} {
		reply, err := s.Cmd(line)
		if err != nil {
			c.Error("no reply to %s before EHLO: %s", verbOf(line), describe(err))
			return
		}
		steps = append(steps, fmt.Sprintf("%s got %d", verbOf(line), reply.Code))
		if reply.Code == 503 {
			rejected = append(rejected, verbOf(line))
		}
	}
	if len(rejected) > 0 {
		c.Broken("before EHLO, %s got 503 (%s)", strings.Join(rejected, " and "), strings.Join(steps, ", "))
		return
	}
	c.Pass("before EHLO, %s", strings.Join(steps, ", "))
}

// checkDataBeforeRCPT sends DATA after MAIL without RCPT; the transaction
// must stay open.
func checkDataBeforeRCPT(c *Check) {
	s := c.open("DATA before RCPT")
	if s == nil {
		return
	}
	if !c.startTransaction(s) {
		return
	}
	data, err := s.Cmd("DATA")
	switch {
	case err != nil:
		c.Broken("no reply to DATA before RCPT: %s", describe(err))
		return
	case data.Code == 354:
		c.Broken("DATA before any RCPT got %s", summarize(data))
		return
	case data.Code != 503 && data.Code != 554:
		c.Broken("DATA before any RCPT got %s, not 503 (or 554)", summarize(data))
		return
	}
	rcpt, err := s.Cmd("RCPT TO:<" + current().Recipient + ">")
	if err != nil || (rcpt.Code != 250 && rcpt.Code != 251) {
		c.Broken("DATA got %s, but RCPT after it got %s, so the server left the transaction", summarize(data), replyOrError(rcpt, err))
		return
	}
	c.Pass("DATA before RCPT got %s, and RCPT after it got %s", summarize(data), summarize(rcpt))
}

// checkNestedMail sends MAIL twice; the first transaction must stay open.
func checkNestedMail(c *Check) {
	s := c.open("MAIL inside a transaction")
	if s == nil {
		return
	}
	if !c.startTransaction(s) {
		return
	}
	second, err := s.Cmd(mailCommand("MPC=per/individual"))
	switch {
	case err != nil:
		c.Broken("no reply to the second MAIL: %s", describe(err))
		return
	case second.Code != 503:
		c.Broken("the second MAIL of a transaction got %s, not 503", summarize(second))
		return
	}
	rcpt, err := s.Cmd("RCPT TO:<" + current().Recipient + ">")
	if err != nil || (rcpt.Code != 250 && rcpt.Code != 251) {
		c.Broken("the second MAIL got %s, but RCPT after it got %s, so the first transaction did not stay open", summarize(second), replyOrError(rcpt, err))
		return
	}
	c.Pass("the second MAIL got %s, and RCPT after it got %s", summarize(second), summarize(rcpt))
}

// checkOneReplyPerCommand runs a whole session, one command per write,
// and waits after each reply for an extra one. It sends the message text
// only after DATA got 354: a server that rejected DATA reads the text as
// commands, which would get replies of their own.
func checkOneReplyPerCommand(c *Check) {
	if !c.requireBaseline() {
		return
	}
	s, id := c.dialValid("one reply per command")
	if s == nil {
		return
	}
	m := c.newMessage()
	steps := []struct {
		name string
		data []byte
	}{
		{"greeting", nil},
		{"EHLO", []byte("EHLO " + id.CN + "\r\n")},
		{"NOOP", []byte("NOOP\r\n")},
		{"MAIL", []byte(mailCommand("MPC=per/individual") + "\r\n")},
		{"RCPT", []byte("RCPT TO:<" + current().Recipient + ">\r\n")},
		{"DATA", []byte("DATA\r\n")},
		{"end of data", m.data()},
		{"RSET", []byte("RSET\r\n")},
		{"QUIT", []byte("QUIT\r\n")},
	}
	var codes []string
	var dataReply probe.Reply
	for _, step := range steps {
		if step.name == "end of data" && dataReply.Code != 354 {
			s.Note("message text not sent, because DATA got %s", summarize(dataReply))
			codes = append(codes, fmt.Sprintf("no message text sent after DATA %d", dataReply.Code))
			continue
		}
		if step.data != nil {
			if err := s.Send(step.data); err != nil {
				c.Error("send of %s failed: %s", step.name, describe(err))
				return
			}
		}
		reply, err := s.Read()
		if err != nil {
			c.Broken("no reply to %s: %s", step.name, describe(err))
			return
		}
		codes = append(codes, fmt.Sprintf("%s %d", step.name, reply.Code))
		if step.name == "DATA" {
			dataReply = reply
		}
		if step.name == "QUIT" {
			break
		}
		quiet, extra, err := s.Quiet()
		switch {
		case err != nil:
			c.Broken("after %s (%s), the connection failed: %s", step.name, summarize(reply), describe(err))
			return
		case !quiet:
			c.Broken("a second reply to %s arrived: %s, then %s", step.name, summarize(reply), summarize(extra))
			return
		}
	}
	c.Pass("exactly one reply per command: %s", strings.Join(codes, ", "))
}

// checkMultilineReplies opens a session, collects its multiline replies
// (the EHLO reply and the reply to HELP) and records a break of the rule
// that defect returns for one reply.
func (c *Check) checkMultilineReplies(property string, defect func(probe.Reply) string) {
	s := c.open("multiline replies")
	if s == nil {
		return
	}
	if _, err := s.Cmd("HELP"); err != nil {
		c.Observe("no reply to HELP: %s", describe(err))
	}
	var multiline []string
	for _, r := range s.Replies() {
		if len(r.Lines) < 2 {
			continue
		}
		if problem := defect(r); problem != "" {
			c.Broken("the reply %s breaks the multiline format: %s", summarize(r), problem)
			return
		}
		multiline = append(multiline, describeLineCodes(r))
	}
	if len(multiline) == 0 {
		c.Skip("the server sent no multiline reply to EHLO or HELP")
		return
	}
	c.Pass("the multiline replies (%s) %s", strings.Join(multiline, "; "), property)
}

// describeLineCodes describes the lines of a reply by their codes, such as
// "5 lines with code 250" or "3 lines with codes 250, 251, 250".
func describeLineCodes(r probe.Reply) string {
	var codes []string
	for _, line := range r.Lines {
		codes = append(codes, line[:min(len(line), 3)])
	}
	if len(slices.Compact(slices.Clone(codes))) == 1 {
		return fmt.Sprintf("%s with code %s", result.Count(len(r.Lines), "line", "lines"), codes[0])
	}
	return fmt.Sprintf("%s with codes %s", result.Count(len(r.Lines), "line", "lines"), strings.Join(codes, ", "))
}

// commandKeywords maps EHLO keywords that name a command to a command
// line that uses it.
var commandKeywords = map[string]func() string{
	"VRFY": func() string { return "VRFY " + current().Recipient },
	"EXPN": func() string { return "EXPN postmaster" },
	"HELP": func() string { return "HELP" },
	"AUTH": func() string { return "AUTH" },
	"ETRN": func() string { return "ETRN " + current().PKI.Domain },
}

// checkEHLOKeywordsImplemented sends each command that the EHLO reply
// lists as a keyword.
func checkEHLOKeywordsImplemented(c *Check) {
	s := c.open("EHLO keywords that name commands")
	if s == nil {
		return
	}
	var sent []string
	for _, keyword := range keywords(ehloReply(s)) {
		command, ok := commandKeywords[keyword]
		if !ok {
			continue
		}
		line := command()
		reply, err := s.Cmd(line)
		if err != nil {
			c.Error("no reply to %s: %s", line, describe(err))
			return
		}
		if reply.Code == 500 || reply.Code == 502 {
			c.Broken("the EHLO reply lists %s, but %q got %s", keyword, line, summarize(reply))
			return
		}
		sent = append(sent, fmt.Sprintf("%s got %d", line, reply.Code))
		if keyword == "AUTH" {
			// An AUTH exchange may wait for a response line; "*" cancels it.
			if reply.Code == 334 {
				s.Cmd("*")
			}
		}
	}
	if len(sent) == 0 {
		c.Pass("the EHLO reply lists no keyword that names a command the suite knows (%s)", strings.Join(keywords(ehloReply(s)), " "))
		return
	}
	c.Pass("every command the EHLO reply lists is implemented: %s", strings.Join(sent, ", "))
}

// domainOrLiteral matches a domain or an address literal at the start of
// the greeting text.
var domainOrLiteral = regexp.MustCompile(`^([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[^\]]+\])(?: |$)`)

// checkGreeting reads the first reply of a session.
func checkGreeting(c *Check) {
	id, err := validClient()
	if err != nil {
		c.Error("%v", err)
		return
	}
	s, err := c.dial("greeting", dialOptions{target: current().Target, identity: id})
	if err != nil {
		c.Error("could not open a session: %s", describe(err))
		return
	}
	greeting, err := s.Read()
	switch {
	case err != nil:
		c.Broken("no greeting: %s", describe(err))
	case greeting.Code != 220:
		c.Broken("the first reply was %s, not 220", summarize(greeting))
	case !domainOrLiteral.MatchString(greeting.Texts()[0]):
		c.Broken("the greeting %s does not start with the server's domain", summarize(greeting))
	default:
		c.Pass("the greeting is %s", summarize(greeting))
	}
}

// checkReplyCodeRange runs a session with valid and invalid commands and
// checks the code of every reply line.
func checkReplyCodeRange(c *Check) {
	if c.invalidBaselineReplyCode() {
		return
	}
	s := c.open("reply codes")
	if s == nil {
		return
	}
	m := c.newMessage()
	for _, line := range []string{"NOOP", "XYZZY", "HELP", "VRFY " + current().Recipient, "RSET"} {
		if _, err := s.Cmd(line); err != nil {
			c.Error("no reply to %s: %s", verbOf(line), describe(err))
			return
		}
	}
	if _, err := s.send("per/individual", m.data()); err != nil {
		c.Error("the mail transaction failed: %s", describe(err))
		return
	}
	if _, err := s.Cmd("QUIT"); err != nil {
		c.Observe("no reply to QUIT: %s", describe(err))
	}

	lines := 0
	for _, r := range s.Replies() {
		if line, ok := invalidCodeLine(r); ok {
			c.Broken("the reply line %q does not start with three digits, the first of them 2 to 5", line)
			return
		}
		lines += len(r.Lines)
	}
	c.Pass("all %d reply lines of %d replies start with a code from 2xx to 5xx", lines, len(s.Replies()))
}

// invalidBaselineReplyCode records a broken clause and returns true when
// a baseline session ended at a reply line without a valid reply code,
// such as "999 what" to EHLO. The other checks skip on that reply, so
// this clause is the one that fails.
func (c *Check) invalidBaselineReplyCode() bool {
	kinds := []listenerKind{publicListener}
	if current().PrivateTarget != "" {
		kinds = append(kinds, privateListener)
	}

	for _, kind := range kinds {
		state := baseline(c, kind)
		if state.ok || state.reply == nil {
			continue
		}
		line, ok := invalidCodeLine(*state.reply)
		if !ok {
			continue
		}
		c.addEvidence(state.evidence...)
		c.Broken("the reply line %q to %s in the %s baseline session does not start with three digits, the first of them 2 to 5",
			line, describeStep(state.step), kind)
		return true
	}
	return false
}

// invalidCodeLine returns the first line of r that does not start with a
// valid reply code, and whether there is one.
func invalidCodeLine(r probe.Reply) (string, bool) {
	for _, line := range r.Lines {
		if !validReplyCode(line) {
			return line, true
		}
	}
	return "", false
}

// hasInvalidCode reports whether a line of r does not start with a valid
// reply code, which breaks rfc5321-4.3.2-reply-code-range.
func hasInvalidCode(r probe.Reply) bool {
	_, ok := invalidCodeLine(r)
	return ok
}

// replyCodeRangeClause is the clause that judges the reply code of every
// reply line.
const replyCodeRangeClause = "rfc5321-4.3.2-reply-code-range"

// validReplyCode reports whether line starts with three digits, the first
// of them 2, 3, 4 or 5 (RFC 5321 section 4.3.2).
func validReplyCode(line string) bool {
	if len(line) < 3 {
		return false
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return false
		}
	}
	return line[0] >= '2' && line[0] <= '5'
}

// expectBodyDelivered sends a message with body lines and records whether
// it reaches the Maildir with those lines unchanged. A rejection at the end
// of data breaks the clause, because the body is what it is about. A
// rejected MAIL, RCPT or DATA leaves it skipped. It returns true when it
// recorded a pass.
func (c *Check) expectBodyDelivered(label string, body []string) bool {
	if c.watcher() == nil {
		return false
	}
	s := c.open(label)
	if s == nil {
		return false
	}

	m := c.newMessage()
	m.body = body
	tx, err := s.send("per/individual", m.data())
	switch {
	case err != nil:
		c.Broken("%s: no reply to %s: %s", label, tx.stage, describe(err))
		return false
	case !tx.accepted && tx.command != endOfDataStep:
		c.skipRejectedTransaction(tx)
		return false
	case !tx.accepted:
		c.Broken("%s: %s", label, tx)
		return false
	}

	copies, err := c.waitDelivered(m.token)
	if err != nil {
		c.Error("%s was accepted but not delivered; check --maildir: %v", label, err)
		return false
	}

	want := strings.Join(body, "\n") + "\n"
	for _, delivered := range copies {
		got := normalizeLineEndings(maildir.Body(delivered.Data))
		if got != want {
			c.Broken("%s: the body in %s is %q, not %q", label, delivered.Path, cut(got, 120), cut(want, 120))
			return false
		}
	}
	c.Pass("%s got %s and arrived unchanged in %s", label, summarize(tx.reply), copies[0].Path)
	return true
}

// normalizeLineEndings turns CRLF into LF, because Maildir files often
// store lines with LF.
func normalizeLineEndings(data []byte) string {
	return strings.ReplaceAll(string(data), "\r\n", "\n")
}

func cut(text string, n int) string {
	if len(text) <= n {
		return text
	}
	return text[:n] + "..."
}

// check64K sends a message whose content is 65536 octets in lines of at
// most 1000 octets including CRLF.
func check64K(c *Check) {
	if c.watcher() == nil {
		return
	}
	m := c.newMessage()
	header := 0
	for _, line := range m.lines() {
		header += len(line) + 2
	}
	remaining := 65536 - header
	var body []string
	for i := 0; remaining > 0; i++ {
		size := min(remaining, 1000)
		if size < 3 {
			// A line needs at least one character and CRLF; widen the
			// previous line instead.
			body[len(body)-1] += strings.Repeat("z", size)
			break
		}
		body = append(body, fmt.Sprintf("%06d", i)+strings.Repeat("y", size-2-6))
		remaining -= size
	}
	c.expectBodyDelivered("the 64K-octet message", body)
}

// checkHundredRecipients sends 100 RCPT commands in one transaction.
func checkHundredRecipients(c *Check) {
	s := c.open("100 recipients")
	if s == nil {
		return
	}
	if !c.startTransaction(s) {
		return
	}
	c.Observe("each RCPT names %s, the one recipient the suite knows the server accepts", current().Recipient)
	for i := 1; i <= 100; i++ {
		reply, err := s.Cmd("RCPT TO:<" + current().Recipient + ">")
		if err != nil {
			c.Broken("RCPT number %d got no reply: %s", i, describe(err))
			return
		}
		if reply.Code != 250 && reply.Code != 251 {
			c.Broken("RCPT number %d got %s", i, summarize(reply))
			return
		}
	}
	c.Pass("100 RCPT commands in one transaction each got 250 or 251")
}

// maxRecipientProbe is how many RCPT commands the recipient limit check
// sends before it gives up looking for a limit.
const maxRecipientProbe = 1000

// checkRecipientLimit sends RCPT commands until one is rejected; the
// first rejection must be 452.
func checkRecipientLimit(c *Check) {
	s := c.open("recipients past the limit")
	if s == nil {
		return
	}
	if !c.startTransaction(s) {
		return
	}
	for i := 1; i <= maxRecipientProbe; i++ {
		reply, err := s.Cmd("RCPT TO:<" + current().Recipient + ">")
		if err != nil {
			c.Broken("RCPT number %d got no reply: %s", i, describe(err))
			return
		}
		switch {
		case reply.Code == 250 || reply.Code == 251:
			continue
		case reply.Code == 452:
			c.Pass("RCPT number %d, the first past the limit, got %s", i, summarize(reply))
		case i <= 100:
			c.Broken("RCPT number %d got %s, within the 100 recipients that RFC 5321 section 4.5.3.1.8 requires", i, summarize(reply))
		default:
			c.Broken("RCPT number %d, the first rejected, got %s, not 452; a server with a site-policy limit may use 5yz, which the suite cannot tell apart", i, summarize(reply))
		}
		return
	}
	c.Skip("the server accepted %d RCPT commands for %s without reaching a limit; a server that counts a repeated recipient once may have a limit this check cannot reach", maxRecipientProbe, current().Recipient)
}
