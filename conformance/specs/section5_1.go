package specs

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/sink"
)

// remoteRecipient is an address in a domain that no server under test
// serves: the .invalid top-level domain is reserved (RFC 2606). The relay
// checks use it when the run has no AMTP sink to route a domain to.
const remoteRecipient = "postmaster@relay-check.invalid"

// section5_1 checks draft section 5.1, Unauthorized Relay Prevention. Over
// a public connection the suite sends RCPT for the domain of its AMTP
// sink, which the suite's DNS routes to the sink by an _amtp._tcp SRV
// record, so a relay there would be a public network connection. When the
// server accepts the RCPT, the check completes the transaction and watches
// the sink.
func section5_1() {
	Describe("5.1 Unauthorized Relay Prevention", func() {
		clause("5.1-no-public-to-public-relay", nil, checkNoPublicRelay)
		clause("5.1-relay-over-private-connections", []string{"private-sink"}, checkRelayOverPrivate)
	})
}

// relayWaitSteps is the number of step timeouts that checkNoPublicRelay
// waits at the sink for a message that the server accepted for relay, so
// that a server that queues it for a few seconds first is still caught.
const relayWaitSteps = 3

// checkNoPublicRelay passes a rejected RCPT for a remote domain, fails a
// temporary rejection, and follows an accepted one to the sink. A message
// that arrives there was relayed over a public connection. One that does
// not arrive within relayWaitSteps step timeouts gets a warning, because
// accepting a relay recipient from a public peer is suspect but breaks
// nothing by itself.
func checkNoPublicRelay(c *Check) {
	attempt, ok := c.publicRelayRCPT()
	if !ok {
		return
	}
	reply := attempt.reply
	switch {
	case reply.Code >= 500:
		c.Pass("over a public connection, RCPT for %s got %s", attempt.recipient, summarize(reply))
		return
	case reply.Code >= 400:
		c.Broken("over a public connection, RCPT for %s got %s, a temporary failure, so a client may retry the relay", attempt.recipient, summarize(reply))
		return
	case attempt.sink == nil:
		c.Skip("the server accepted RCPT for %s over a public connection (%s); following the message to a next hop needs --dns serve, because only the suite's DNS server routes a domain to the suite's AMTP sink",
			attempt.recipient, summarize(reply))
		return
	}

	m := c.newMessage()
	tx, err := attempt.session.finishData(m.data())
	if err != nil {
		c.Error("the server accepted RCPT for %s over a public connection, then gave no reply to %s: %s", attempt.recipient, tx.stage, describe(err))
		return
	}
	if !tx.accepted {
		c.Pass("over a public connection, RCPT for %s got %s, but the message was then rejected: %s", attempt.recipient, summarize(reply), tx)
		return
	}

	wait := relayWaitSteps * current().StepTimeout
	if _, err := c.waitAtSinkFor(attempt.sink, m, wait); err != nil {
		// NOTE: a server that queues the message for longer than the wait
		// before it relays gets this warning, not a fail; a longer
		// --timeout widens the window.
		c.Warn("the server accepted a relay RCPT for %s from a public connection, and the message, but it did not reach the suite's AMTP sink %s within %s; a server that does not relay would reject that RCPT, so it may have queued the message for a later relay or dropped it",
			attempt.recipient, attempt.sink, wait)
		return
	}
	c.Broken("the server accepted a message for %s over a public connection and relayed it over another public connection, to the suite's AMTP sink %s, which its _amtp._tcp SRV record names",
		attempt.recipient, attempt.sink)
}

// checkRelayOverPrivate submits a message over a public connection for
// the domain of the suite's private sink. The server's operator routes
// that domain over a private network connection, so the check requires
// the client certificate the server presents at the sink to chain to the
// PKI's private CA.
func checkRelayOverPrivate(c *Check) {
	tx, ok := c.relayByRoute(current().PrivateSink, "--private-sink", true, "per/individual")
	if !ok {
		return
	}
	if len(tx.ClientChain) == 0 {
		c.Broken("the server relayed a message that arrived over a public connection to the private sink %s without a client certificate", current().PrivateSink)
		return
	}
	if err := chainsTo(tx.ClientChain, privateCA); err != nil {
		c.Broken("the server relayed a message that arrived over a public connection with the client certificate %q, which does not chain to the PKI's private CA, so the hop is not a private network connection: %v",
			tx.ClientChain[0].Subject.CommonName, err)
		return
	}
	c.Pass("the server relayed a message that arrived over a public connection to the private sink with the client certificate %q from the PKI's private CA",
		tx.ClientChain[0].Subject.CommonName)
}

// relayAttempt is a public session after MAIL and RCPT for a remote
// domain.
type relayAttempt struct {
	session   *Session
	recipient string
	reply     probe.Reply
	// sink is the suite's AMTP sink that the recipient's domain routes to,
	// or nil when the run has none.
	sink *RelaySink
}

// publicRelayRCPT opens a public session and sends MAIL and RCPT for an
// address at the sink's domain, or for remoteRecipient when the run has
// no sink. It records a skip when the server rejects MAIL, an error when
// a step fails otherwise, and then returns ok false.
func (c *Check) publicRelayRCPT() (relayAttempt, bool) {
	attempt := relayAttempt{recipient: remoteRecipient, sink: current().Sink}
	if attempt.sink != nil {
		attempt.recipient = "postmaster@" + attempt.sink.Domain
	}
	s := c.open("RCPT for a remote domain")
	if s == nil {
		return attempt, false
	}
	attempt.session = s
	mailLine := mailCommand("MPC=per/individual")
	mail, err := s.Cmd(mailLine)
	if err != nil {
		c.Error("no reply to MAIL: %s", describe(err))
		return attempt, false
	}
	if mail.Code != 250 {
		c.skipRejected(mailLine, mail)
		return attempt, false
	}
	reply, err := s.Cmd("RCPT TO:<" + attempt.recipient + ">")
	if err != nil {
		c.Error("no reply to RCPT: %s", describe(err))
		return attempt, false
	}
	attempt.reply = reply
	return attempt, true
}

// finishData sends DATA and data after the recipients were accepted.
func (s *Session) finishData(data []byte) (transaction, error) {
	reply, err := s.Cmd("DATA")
	if err != nil {
		return transaction{stage: "DATA", command: "DATA"}, err
	}
	if reply.Code != 354 {
		return transaction{stage: "DATA", command: "DATA", reply: reply}, nil
	}
	if err := s.Send(data); err != nil {
		return transaction{stage: "end of data", command: endOfDataStep}, err
	}
	reply, err = s.Read()
	if err != nil {
		return transaction{stage: "end of data", command: endOfDataStep}, err
	}
	return transaction{stage: "end of data", command: endOfDataStep, reply: reply, accepted: reply.Code == 250}, nil
}

// describeRelayed returns the facts of a transaction at a sink for a
// reason.
func describeRelayed(t sink.Transaction) string {
	return fmt.Sprintf("from %s (client certificate CN %q, EHLO %s): %s", t.Source, t.ClientCN, t.EHLO, t.MailCommand)
}
