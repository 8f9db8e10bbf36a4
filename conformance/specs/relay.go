package specs

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/amtp-toolkit/amtp/conformance/sink"
)

// relayFromPublicReason is the skip reason of the relay checks without a
// private listener.
const relayFromPublicReason = "needs --private-target (relay from a public connection is forbidden by section 5.1)"

// relaySink returns want, one of the run's sinks, or records a skip and
// returns nil when the run has no private listener or want is nil.
func (c *Check) relaySink(want *RelaySink) *RelaySink {
	if current().PrivateTarget == "" {
		c.Skip(relayFromPublicReason)
		return nil
	}
	if want == nil {
		c.Skip("needs --dns serve, because only the suite's DNS server routes the domain of its AMTP sink to the sink")
		return nil
	}
	return want
}

// openAuthenticated opens a session of the private client on the private
// listener and authenticates with AUTH PLAIN as the PKI's first user. It
// returns nil after it records a skip when the server rejects AUTH, or an
// error when a step fails otherwise.
func (c *Check) openAuthenticated(label string) *Session {
	m := current().PKI
	if len(m.Users) == 0 {
		c.Error("the PKI manifest lists no SMTP AUTH user")
		return nil
	}
	s := c.openPrivate(label)
	if s == nil {
		return nil
	}
	user := m.Users[0]
	credentials := base64.StdEncoding.EncodeToString([]byte("\x00" + user.Name + "\x00" + user.Password))
	auth, err := s.Cmd("AUTH PLAIN " + credentials)
	if err != nil {
		c.Error("no reply to AUTH: %s", describe(err))
		return nil
	}
	if auth.Code != 235 {
		// The credentials stay out of the reason.
		c.skipRejected("AUTH PLAIN as "+user.Name, auth)
		return nil
	}
	return s
}

// submitForRelay sends a message with mpcValue from sender to recipient
// over an authenticated private session. It returns ok false unless the
// server accepts the message, after it records a skip for a rejection and
// an error for a step without a reply.
func (c *Check) submitForRelay(sender, mpcValue, recipient string) (message, bool) {
	s := c.openAuthenticated("relay of a message with MPC=" + mpcValue + " to " + recipient)
	return c.submitOn(s, "the private listener", sender, mpcValue, recipient)
}

// submitOn sends a message with mpcValue from sender to recipient on s,
// which the caller opened on the listener that where names, and then
// quits. It returns ok false unless the server accepts the message, after
// it records a skip for a rejection and an error for a step without a
// reply. A nil s returns ok false at once.
func (c *Check) submitOn(s *Session, where, sender, mpcValue, recipient string) (message, bool) {
	if s == nil {
		return message{}, false
	}
	m := c.newMessage()
	tx, err := s.sendFrom(sender, mpcValue, []string{recipient}, m.data())
	if err != nil {
		c.Error("no reply to %s: %s", tx.stage, describe(err))
		return message{}, false
	}
	switch {
	case !tx.accepted && tx.reply.Code >= 500 && (tx.stage == "MAIL" || tx.stage == "RCPT"):
		// A server that never relays cannot break the relay clauses.
		c.Skip("%s does not relay a message with MPC=%s for %s: %s", where, mpcValue, recipient, tx)
		return message{}, false
	case !tx.accepted:
		c.skipRejectedTransaction(tx)
		return message{}, false
	}
	s.Cmd("QUIT")
	return m, true
}

// relayToSink submits a message with mpcValue for someone@ the sink's
// domain on the private listener and waits up to the step timeout for it
// at the sink. It records a skip, an error or, when the message does not
// arrive, a broken clause, and then returns ok false.
func (c *Check) relayToSink(mpcValue string) (sink.Transaction, bool) {
	target := c.relaySink(current().Sink)
	if target == nil {
		return sink.Transaction{}, false
	}
	recipient := "someone@" + target.Domain
	m, ok := c.submitForRelay("conformance@"+current().PKI.Domain, mpcValue, recipient)
	if !ok {
		return sink.Transaction{}, false
	}
	tx, err := c.waitAtSink(target, m)
	if err != nil {
		c.Broken("the server accepted the message for %s but did not relay it to the suite's sink at %s within %s: %v",
			recipient, target.Server.Addr(), current().StepTimeout, err)
		return sink.Transaction{}, false
	}
	return tx, true
}

// waitAtSink waits up to the step timeout for m at target, and records
// what the sink received as an observation.
func (c *Check) waitAtSink(target *RelaySink, m message) (sink.Transaction, error) {
	return c.waitAtSinkFor(target, m, current().StepTimeout)
}

// waitAtSinkFor is waitAtSink with a wait of its own, which ends earlier
// when the spec ends.
func (c *Check) waitAtSinkFor(target *RelaySink, m message, wait time.Duration) (sink.Transaction, error) {
	ctx, cancel := context.WithTimeout(c.ctx, wait)
	defer cancel()
	tx, err := target.Server.Wait(ctx, func(t sink.Transaction) bool {
		return bytes.Contains(t.Data, []byte(m.token))
	})
	if err != nil {
		return sink.Transaction{}, err
	}
	c.Observe("the sink %s received the message %s", target, describeRelayed(tx))
	return tx, nil
}

// relayByRoute submits a message with mpcValue for postmaster at the
// domain of target, a sink that the server reaches by a route its
// operator configures, and waits for it there. It submits on the public
// listener when public is set, and otherwise on the private listener when
// the run has one. flag is the option that starts the sink. It records a
// skip or an error and returns ok false when the message does not arrive.
func (c *Check) relayByRoute(target *RelaySink, flag string, public bool, mpcValue string) (sink.Transaction, bool) {
	if target == nil {
		c.Skip("needs %s and a route for its domain in the server under test; see 'amtpkit conform --help'", flag)
		return sink.Transaction{}, false
	}
	recipient := "postmaster@" + target.Domain
	sender := "conformance@" + current().PKI.Domain
	var m message
	var ok bool
	if public || current().PrivateTarget == "" {
		m, ok = c.submitOn(c.open("message with MPC="+mpcValue+" to "+recipient), "the public listener", sender, mpcValue, recipient)
	} else {
		m, ok = c.submitForRelay(sender, mpcValue, recipient)
	}
	if !ok {
		return sink.Transaction{}, false
	}
	tx, err := c.waitAtSink(target, m)
	if err != nil {
		c.Error("the server accepted the message for %s, but the suite's sink %s did not receive it within %s; check the server's route for %s: %v",
			recipient, target, current().StepTimeout, target.Domain, err)
		return sink.Transaction{}, false
	}
	return tx, true
}

// checkRelayedMPCParameter relays a message with mpcValue to the sink and
// compares the MPC parameter of the sink's MAIL command with it, octet for
// octet.
func checkRelayedMPCParameter(c *Check, mpcValue string) {
	tx, ok := c.relayToSink(mpcValue)
	if !ok {
		return
	}
	got, found := tx.MailParameter("MPC")
	switch {
	case !found:
		c.Broken("the relayed MAIL command carries no MPC parameter: %q", tx.MailCommand)
	case got != mpcValue:
		c.Broken("the relayed MAIL command carries MPC=%s, but the message was submitted with MPC=%s: %q", got, mpcValue, tx.MailCommand)
	default:
		c.Pass("the relayed MAIL command carries MPC=%s as submitted, octet for octet: %q", got, tx.MailCommand)
	}
}

// String describes the sink for reasons.
func (s *RelaySink) String() string {
	return fmt.Sprintf("%s at %s", s.Domain, s.Server.Addr())
}

// chainsTo verifies the chain a client presented, leaf first, against
// the PKI's CA caName at the current time. It accepts any extended key
// usage, because the draft names none (docs/interpretations.md).
func chainsTo(chain []*x509.Certificate, caName string) error {
	roots, err := current().PKI.CAPool(caName)
	if err != nil {
		return fmt.Errorf("load the %s of the PKI: %w", caName, err)
	}
	intermediates := x509.NewCertPool()
	for _, cert := range chain[1:] {
		intermediates.AddCert(cert)
	}
	_, err = chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}
