package specs

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/conformance/sink"
)

// Values that the server under test relays to the policy sink, which
// declares "MPC DENY=ngo/* ALLOW=ngo/customer".
const (
	// policyDeniedValue matches the DENY declaration alone.
	policyDeniedValue = "ngo/optin"
	// policyAllowedValue matches both, and the later ALLOW decides.
	policyAllowedValue = "ngo/customer"
)

// clientSpecs checks the server under test in the role of a client MTA,
// as the suite's sinks see it when the server relays a message from its
// private listener. These clauses bind the client MTA, so a server that
// never relays gets skip.
func clientSpecs() {
	Describe("Client MTA role, observed at the suite's sinks", func() {
		clause("3.1-client-presents-certificate", []string{"private"}, func(c *Check) {
			tx, ok := c.relayWithPublicChain()
			if !ok {
				return
			}
			c.Pass("when relaying to the suite's AMTP sink, the server presented the client certificate %q, which chains to the PKI's public CA", tx.ClientCN)
		})

		clause("4.2-client-presents-certificate", []string{"private"}, func(c *Check) {
			tx, ok := c.relayWithPublicChain()
			if !ok {
				return
			}
			if !isFQDN(tx.ClientCN) {
				c.Broken("the client certificate the server presented to the suite's AMTP sink has the CN %q, which is not a fully-qualified domain name", tx.ClientCN)
				return
			}
			c.Pass("the client certificate %q chains to the PKI's public CA, is within its validity dates (%s to %s) and has a fully-qualified CN",
				tx.ClientCN, tx.ClientChain[0].NotBefore.Format(time.DateOnly), tx.ClientChain[0].NotAfter.Format(time.DateOnly))
		})

		clause("4.3.1-client-queries-srv", []string{"private"}, func(c *Check) {
			dns := current().DNS
			since := time.Now()
			tx, ok := c.relayToSink("com/confirmed")
			if !ok {
				return
			}
			if dns == nil {
				c.Skip("needs --dns serve, because the suite sees the DNS queries only of its own DNS server")
				return
			}
			domain := domainOf(tx.Recipients)
			question := strings.ToLower("_amtp._tcp." + domain + ". srv")
			queries := dns.Queries(since)
			if !slices.Contains(queries, question) {
				c.Broken("the server relayed the message for %s to the suite's AMTP sink without an SRV query for _amtp._tcp.%s; the suite's DNS server answered: %s",
					domain, domain, listOrNone(queries))
				return
			}
			c.Pass("the server queried the SRV record _amtp._tcp.%s before it relayed the message to the suite's AMTP sink", domain)
		})

		clause("4.3.1-srv-procedure", []string{"private"}, checkSRVFallback)

		clause("4.4.2-client-starts-with-ehlo", []string{"private"}, func(c *Check) {
			tx, ok := c.relayToSink("com/confirmed")
			if !ok {
				return
			}
			if len(tx.Commands) == 0 || !strings.EqualFold(commandVerb(tx.Commands[0]), "EHLO") {
				c.Broken("the server's first command at the suite's AMTP sink was %q, not EHLO; its commands: %s", firstOrNone(tx.Commands), strings.Join(tx.Commands, " / "))
				return
			}
			if !strings.EqualFold(tx.EHLO, tx.ClientCN) {
				c.Observe("the EHLO argument %s differs from the CN %q of the client certificate", tx.EHLO, tx.ClientCN)
			}
			c.Pass("the server's first command at the suite's AMTP sink was %q", tx.Commands[0])
		})

		clause("4.4.2-declarations-in-order", []string{"private"}, func(c *Check) {
			record, ok := c.relayToPolicySink(policyAllowedValue)
			if !ok {
				return
			}
			if !hasVerb(record.Commands, "MAIL") {
				c.Broken("the policy sink declared %q, and the server did not go on to MAIL for MPC=%s, which the later ALLOW allows; its commands: %s",
					policyLine, policyAllowedValue, strings.Join(record.Commands, " / "))
				return
			}
			c.Pass("the policy sink declared %q, and the server went on to MAIL for MPC=%s", policyLine, policyAllowedValue)
		})

		clause("4.4.2-no-declaration-allows", []string{"private"}, func(c *Check) {
			tx, ok := c.relayToSink("com/confirmed")
			if !ok {
				return
			}
			c.Info("the suite's AMTP sink declared no MPC line, and the server went on to %q", tx.MailCommand)
		})

		clause("4.4.2-client-quits-on-deny", []string{"private"}, func(c *Check) {
			record, ok := c.relayToPolicySink(policyDeniedValue)
			if !ok {
				return
			}
			if problem := quitProblem(record.Commands); problem != "" {
				c.Broken("the policy sink declared %q, which denies MPC=%s, and the server %s; its commands: %s",
					policyLine, policyDeniedValue, problem, strings.Join(record.Commands, " / "))
				return
			}
			c.Pass("the policy sink declared %q, which denies MPC=%s, and the server sent QUIT right after EHLO", policyLine, policyDeniedValue)
		})

		clause("4.4.2-client-no-retry-on-deny", []string{"private"}, func(c *Check) {
			first, ok := c.relayToPolicySink(policyDeniedValue)
			if !ok {
				return
			}
			// NOTE: a retry after one step timeout is not seen, so a server
			// whose queue waits longer before it retries passes here.
			ctx, cancel := c.stepContext()
			defer cancel()
			policy := current().PolicySink.Server
			retry, err := policy.WaitSession(ctx, func(r sink.SessionRecord) bool { return r.Started.After(first.Started) })
			if err == nil {
				c.Broken("after the server quit at the policy sink, which denies MPC=%s, it connected again at %s with the commands: %s",
					policyDeniedValue, retry.Started.Format(time.TimeOnly), strings.Join(retry.Commands, " / "))
				return
			}
			c.Pass("after the server quit at the policy sink, which denies MPC=%s, it did not connect again within %s", policyDeniedValue, current().StepTimeout)
		})

		clause("4.4.2-client-bounces-on-deny", []string{"private", "maildir"}, func(c *Check) {
			if c.watcher() == nil {
				return
			}
			target := c.relaySink(current().PolicySink)
			if target == nil {
				return
			}
			sender := current().Recipient
			m, ok := c.submitForRelay(sender, policyDeniedValue, "postmaster@"+target.Domain)
			if !ok {
				return
			}
			found, err := c.waitContaining(m.token)
			if err != nil {
				c.Broken("the policy sink denies MPC=%s, but no bounce quoting the token %s reached the Maildir tree of the sender %s within %s: %v",
					policyDeniedValue, m.token, sender, current().StepTimeout, err)
				return
			}
			c.Pass("the policy sink denies MPC=%s, and a bounce reached the sender %s: %s", policyDeniedValue, sender, found[0].Path)
		})

		clause("4.4.3-client-issues-mpc", []string{"private"}, func(c *Check) {
			tx, ok := c.relayToSink("com/confirmed")
			if !ok {
				return
			}
			if _, found := tx.MailParameter("MPC"); !found {
				c.Broken("the server's MAIL command at the suite's AMTP sink has no MPC parameter: %q", tx.MailCommand)
				return
			}
			c.Pass("the server's MAIL command at the suite's AMTP sink has an MPC parameter: %q", tx.MailCommand)
		})

		clause("4.4.3-client-one-mpc", []string{"private"}, func(c *Check) {
			tx, ok := c.relayToSink("com/confirmed")
			if !ok {
				return
			}
			count := 0
			for _, p := range tx.MailParameters {
				keyword, _, _ := strings.Cut(p, "=")
				if strings.EqualFold(keyword, "MPC") {
					count++
				}
			}
			if count != 1 {
				c.Broken("the server's MAIL command at the suite's AMTP sink has %d MPC parameters, not one: %q", count, tx.MailCommand)
				return
			}
			c.Pass("the server's MAIL command at the suite's AMTP sink has exactly one MPC parameter: %q", tx.MailCommand)
		})

		clause("4.4.4-mpc-propagated-as-parameter", []string{"private"}, func(c *Check) {
			checkRelayedMPCParameter(c, "com/confirmed")
		})

		clause("7-client-no-srv-for-private", []string{"private-sink"}, func(c *Check) {
			dns := current().DNS
			if dns == nil {
				c.Skip("needs --dns serve, because the suite sees the DNS queries only of its own DNS server")
				return
			}
			since := time.Now()
			tx, ok := c.relayByRoute(current().PrivateSink, "--private-sink", false, "com/confirmed")
			if !ok {
				return
			}
			domain := domainOf(tx.Recipients)
			question := strings.ToLower("_amtp._tcp." + domain + ". srv")
			if slices.Contains(dns.Queries(since), question) {
				c.Broken("the server queried the SRV record _amtp._tcp.%s for a private network connection to the suite's private sink", domain)
				return
			}
			c.Pass("the server relayed the message for %s to the suite's private sink without an SRV query for the domain", domain)
		})
	})
}

// checkSRVFallback relays a message for the domain whose priority-10 SRV
// target closes every connection and whose priority-20 target is the
// sink. The server must try the first before it delivers to the second.
func checkSRVFallback(c *Check) {
	fallback := current().SRVFallback
	var target *RelaySink
	if fallback != nil {
		target = fallback.Sink
	}
	if c.relaySink(target) == nil {
		return
	}
	since := time.Now()
	recipient := "postmaster@" + fallback.Domain
	m, ok := c.submitForRelay("conformance@"+current().PKI.Domain, "com/confirmed", recipient)
	if !ok {
		return
	}
	tx, err := c.waitAtSink(target, m)
	if err != nil {
		c.Broken("the server accepted the message for %s but did not deliver it to the priority-20 SRV target, the suite's sink %s, within %s: %v",
			recipient, target, current().StepTimeout, err)
		return
	}
	attempts := fallback.Down.Connections(since)
	if len(attempts) == 0 || attempts[0].After(tx.Received) {
		c.Broken("the server delivered the message for %s to the priority-20 SRV target without first trying the priority-10 target", recipient)
		return
	}
	c.Pass("the server tried the priority-10 SRV target of %s (%s, each closed at once) and then delivered to the priority-20 target",
		fallback.Domain, result.Count(len(attempts), "connection", "connections"))
}

// PolicySinkMPCLine is the MPC line of the policy sink, which the run
// package starts: it denies every value of the role ngo except
// ngo/customer, which the later ALLOW allows when the declarations are
// evaluated in order.
const PolicySinkMPCLine = "MPC DENY=ngo/* ALLOW=ngo/customer"

// policyLine is the MPC line of the policy sink without its keyword.
var policyLine = strings.TrimPrefix(PolicySinkMPCLine, "MPC ")

// relayToPolicySink submits a message with mpcValue for the policy sink's
// domain on the private listener and returns the record of the first
// session that the server opens there afterwards, once it ends. It records a skip or
// an error and returns ok false on failure.
func (c *Check) relayToPolicySink(mpcValue string) (sink.SessionRecord, bool) {
	target := c.relaySink(current().PolicySink)
	if target == nil {
		return sink.SessionRecord{}, false
	}
	since := time.Now()
	if _, ok := c.submitForRelay("conformance@"+current().PKI.Domain, mpcValue, "postmaster@"+target.Domain); !ok {
		return sink.SessionRecord{}, false
	}
	// The sink ends a session that stalls for one step timeout, so a
	// session is recorded within two.
	wait := 2 * current().StepTimeout
	ctx, cancel := context.WithTimeout(c.ctx, wait)
	defer cancel()
	record, err := target.Server.WaitSession(ctx, func(r sink.SessionRecord) bool { return !r.Started.Before(since) })
	if err != nil {
		c.Error("the server accepted a message with MPC=%s for %s, but no session with the policy sink %s ended within %s: %v",
			mpcValue, target.Domain, target, wait, err)
		return sink.SessionRecord{}, false
	}
	c.Observe("the policy sink %s saw a session from %s (client certificate CN %q): %s", target, record.Source, record.ClientCN, strings.Join(record.Commands, " / "))
	return record, true
}

// quitProblem returns why commands do not go from EHLO straight to QUIT,
// or "".
func quitProblem(commands []string) string {
	ehlo := slices.IndexFunc(commands, func(line string) bool { return strings.EqualFold(commandVerb(line), "EHLO") })
	switch {
	case hasVerb(commands, "MAIL"):
		return "went on to MAIL"
	case ehlo < 0:
		return "sent no EHLO"
	case ehlo+1 >= len(commands):
		return "closed the connection without QUIT"
	case !strings.EqualFold(commandVerb(commands[ehlo+1]), "QUIT"):
		return fmt.Sprintf("sent %q after EHLO, not QUIT", commands[ehlo+1])
	}
	return ""
}

// relayWithPublicChain relays a message to the sink and records a broken
// clause unless the server presented a client certificate there that
// chains to the PKI's public CA.
func (c *Check) relayWithPublicChain() (sink.Transaction, bool) {
	tx, ok := c.relayToSink("com/confirmed")
	if !ok {
		return tx, false
	}
	if problem := clientChainProblem(tx.ClientChain); problem != "" {
		c.Broken("when relaying to the suite's AMTP sink, the server %s", problem)
		return tx, false
	}
	return tx, true
}

// clientChainProblem returns why a client chain fails the public CA of
// the PKI, or "".
func clientChainProblem(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return "presented no client certificate"
	}
	if err := chainsTo(chain, publicCA); err != nil {
		return fmt.Sprintf("presented the client certificate %q, which does not verify against the PKI's public CA at the current time: %v", chain[0].Subject.CommonName, err)
	}
	return ""
}

// isFQDN reports whether name has at least two labels of letters, digits
// and hyphens, without a trailing dot.
func isFQDN(name string) bool {
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return false
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

func commandVerb(line string) string {
	verb, _, _ := strings.Cut(line, " ")
	return verb
}

func hasVerb(commands []string, verb string) bool {
	return slices.ContainsFunc(commands, func(line string) bool { return strings.EqualFold(commandVerb(line), verb) })
}

func firstOrNone(items []string) string {
	if len(items) == 0 {
		return "(none)"
	}
	return items[0]
}

// domainOf returns the domain of the first recipient.
func domainOf(recipients []string) string {
	if len(recipients) == 0 {
		return ""
	}
	_, domain, _ := strings.Cut(recipients[0], "@")
	return domain
}
