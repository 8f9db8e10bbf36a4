package specs

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/amtp-toolkit/amtp/conformance/maildir"
	"github.com/amtp-toolkit/amtp/conformance/probe"
)

// tokenCounter numbers the message tokens of a process.
var tokenCounter atomic.Int64

// newToken returns a message token unique to the run, such as
// "r3f9a1c.4.4.1-helo-rejected.12".
func (c *Check) newToken() string {
	return fmt.Sprintf("%s.%s.%d", current().RunID, c.Clause.ID, tokenCounter.Add(1))
}

// message is a message the suite sends.
type message struct {
	token string
	// headers are extra header lines without line endings, placed after
	// the suite's own fields.
	headers []string
	// body are the body lines without line endings, before dot-stuffing.
	body []string
}

// data returns the message as DATA content: CRLF line endings, dots
// stuffed (RFC 5321 section 4.5.2) and the final "." line.
func (m message) data() []byte {
	var b bytes.Buffer
	for _, line := range m.lines() {
		if strings.HasPrefix(line, ".") {
			b.WriteByte('.')
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// lines returns the header and body lines of the message as delivered,
// before dot-stuffing.
func (m message) lines() []string {
	cfg := current()
	lines := []string{
		"From: AMTP conformance suite <conformance@" + cfg.PKI.Domain + ">",
		"To: <" + cfg.Recipient + ">",
		"Subject: AMTP conformance check " + m.token,
		"Date: " + time.Now().Format(time.RFC1123Z),
		"Message-ID: <" + m.token + "@conformance.invalid>",
		maildir.TokenField + ": " + m.token,
	}
	lines = append(lines, m.headers...)
	lines = append(lines, "")
	return append(lines, m.body...)
}

// newMessage returns a message with a fresh token and a one-line body.
func (c *Check) newMessage(headers ...string) message {
	token := c.newToken()
	return message{token: token, headers: headers, body: []string{"Sent by the AMTP conformance suite to check " + c.Clause.ID + "."}}
}

// transaction is the outcome of one mail transaction.
type transaction struct {
	// stage is the last command sent: "MAIL", "RCPT", "DATA" or "end of
	// data".
	stage string
	// command is the command line sent at stage, or endOfDataStep.
	command string
	reply   probe.Reply
	// accepted is true when the end of data got 250.
	accepted bool
}

func (t transaction) String() string {
	return fmt.Sprintf("%s got %s", t.stage, summarize(t.reply))
}

// rejectedAt reports whether the server rejected the transaction with a
// 4yz or 5yz reply, and not because the connection failed.
func (t transaction) rejected() bool {
	return t.reply.Code >= 400
}

// send runs one mail transaction with the MPC parameter mpcValue to the
// configured recipient and sends data after a 354 reply. It stops at the
// first reply that is not a success.
func (s *Session) send(mpcValue string, data []byte) (transaction, error) {
	return s.sendTo(mpcValue, []string{current().Recipient}, data)
}

// sendTo is send for a list of recipients.
func (s *Session) sendTo(mpcValue string, recipients []string, data []byte) (transaction, error) {
	return s.sendFrom("conformance@"+current().PKI.Domain, mpcValue, recipients, data)
}

// sendFrom is sendTo with the reverse-path sender.
func (s *Session) sendFrom(sender, mpcValue string, recipients []string, data []byte) (transaction, error) {
	mail := "MAIL FROM:<" + sender + ">"
	if mpcValue != "" {
		mail += " MPC=" + mpcValue
	}
	reply, err := s.Cmd(mail)
	if err != nil {
		return transaction{stage: "MAIL", command: mail}, err
	}
	if reply.Code != 250 {
		return transaction{stage: "MAIL", command: mail, reply: reply}, nil
	}

	for _, rcpt := range recipients {
		line := "RCPT TO:<" + rcpt + ">"
		reply, err = s.Cmd(line)
		if err != nil {
			return transaction{stage: "RCPT", command: line}, err
		}
		if reply.Code != 250 && reply.Code != 251 {
			return transaction{stage: "RCPT", command: line, reply: reply}, nil
		}
	}

	return s.finishData(data)
}

// reset sends RSET so that the session can start another transaction.
func (s *Session) reset() error {
	reply, err := s.Cmd("RSET")
	if err != nil {
		return err
	}
	if reply.Code != 250 {
		return fmt.Errorf("RSET got %s", summarize(reply))
	}
	return nil
}

// watcher returns the Maildir watcher, or records a skip and returns nil
// when the run has none.
func (c *Check) watcher() *maildir.Watcher {
	w := current().Maildir
	if w == nil {
		c.Skip("no Maildir configured (--maildir)")
	}
	return w
}

// waitDelivered waits up to the step timeout for a message with token to
// reach the Maildir tree.
func (c *Check) waitDelivered(token string) ([]maildir.Message, error) {
	ctx, cancel := c.stepContext()
	defer cancel()
	found, err := current().Maildir.Wait(ctx, token)
	if err == context.DeadlineExceeded {
		return nil, fmt.Errorf("no message with %s %s reached the Maildir tree %s within %s",
			maildir.TokenField, token, current().Maildir.Root(), current().StepTimeout)
	}
	return found, err
}

// deliveredAfterAll returns the tokens of which a message reached the
// Maildir tree. It first delivers a control message in a new session and
// waits for it, then waits one quiet period more, so that a message the
// server accepted earlier has had the time to arrive. It returns ok false
// after it records a skip when the server rejects the control message, or
// an error when the control message gets no reply or does not arrive.
func (c *Check) deliveredAfterAll(tokens []string) (delivered []string, ok bool) {
	s := c.open("control message")
	if s == nil {
		return nil, false
	}
	control := c.newMessage()
	tx, err := s.send("per/individual", control.data())
	if err != nil {
		c.Error("the control message failed at %s: %s", tx.stage, describe(err))
		return nil, false
	}
	if !tx.accepted {
		c.skipRejectedTransaction(tx)
		return nil, false
	}
	if _, err := c.waitDelivered(control.token); err != nil {
		c.Error("the control message was accepted but not delivered, so the Maildir watch proves nothing: %v", err)
		return nil, false
	}

	time.Sleep(current().QuietPeriod)
	for _, token := range tokens {
		found, err := current().Maildir.Find(token)
		if err != nil {
			c.Error("%v", err)
			return nil, false
		}
		for _, m := range found {
			c.Observe("delivered file with token %s: %s", token, m.Path)
		}
		if len(found) > 0 {
			delivered = append(delivered, token)
		}
	}
	return delivered, true
}

// unwanted is a message that a clause forbids the server to deliver.
type unwanted struct {
	label string
	mpc   string
	// data is the DATA content, ending in CRLF "." CRLF, and token the
	// token in its header.
	data  []byte
	token string
}

// expectNotDelivered sends each message in its own session and records
// the verdict: a rejection at any stage passes, and so does a message
// accepted with 250 that never reaches the Maildir tree. Without a
// Maildir, an accepted message makes the check skip.
func (c *Check) expectNotDelivered(messages ...unwanted) {
	var rejections, acceptedLabels, acceptedTokens []string
	for _, m := range messages {
		s := c.open(m.label)
		if s == nil {
			return
		}
		tx, err := s.send(m.mpc, m.data)
		s.Close()
		switch {
		case err != nil && tx.stage == "end of data" && closedOrAlert(err):
			// The server may or may not have kept the message.
			acceptedLabels = append(acceptedLabels, fmt.Sprintf("%s (the connection ended without a reply at the end of data)", m.label))
			acceptedTokens = append(acceptedTokens, m.token)
		case err != nil:
			c.Error("%s: no reply to %s: %s", m.label, tx.stage, describe(err))
			return
		case tx.rejected():
			rejections = append(rejections, fmt.Sprintf("%s: %s", m.label, tx))
		default:
			acceptedLabels = append(acceptedLabels, fmt.Sprintf("%s (%s)", m.label, tx))
			acceptedTokens = append(acceptedTokens, m.token)
		}
	}

	if len(acceptedTokens) == 0 {
		c.Pass("the server rejected every message: %s", strings.Join(rejections, "; "))
		return
	}
	if current().Maildir == nil {
		c.Skip("the server did not reject %s; whether it delivers them needs --maildir", strings.Join(acceptedLabels, ", "))
		return
	}
	delivered, ok := c.deliveredAfterAll(acceptedTokens)
	if !ok {
		return
	}
	if len(delivered) > 0 {
		c.Broken("the server accepted and delivered %s", strings.Join(acceptedLabels, ", "))
		return
	}
	c.Pass("no copy reached the Maildir; rejected: %s; accepted but not delivered: %s", listOrNone(rejections), strings.Join(acceptedLabels, ", "))
}
