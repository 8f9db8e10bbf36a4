package specs

import (
	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/probe"
)

// remoteRecipient is an address in a domain that no server under test
// serves: the .invalid top-level domain is reserved (RFC 2606).
const remoteRecipient = "postmaster@relay-check.invalid"

// section5_1 checks draft section 5.1, Unauthorized Relay Prevention, as
// far as the reply to RCPT shows it. Whether a server that accepts the
// RCPT then relays the message is not checked yet. The same RCPT serves the RFC 5321 recommendation on its reply code.
func section5_1() {
	Describe("5.1 Unauthorized Relay Prevention", func() {
		clause("5.1-no-public-to-public-relay", nil, func(c *Check) {
			reply, ok := c.relayRCPT()
			if !ok {
				return
			}
			switch {
			case reply.Code >= 500:
				c.Pass("over a public connection, RCPT for %s got %s", remoteRecipient, summarize(reply))
			case reply.Code >= 400:
				c.Broken("over a public connection, RCPT for %s got %s, a temporary failure, so a client may retry the relay", remoteRecipient, summarize(reply))
			default:
				c.Skip("the server accepted RCPT for %s over a public connection (%s); whether it then relays the message to a remote domain is not checked yet",
					remoteRecipient, summarize(reply))
			}
		})
	})
}

// relayRCPT opens a public session and sends MAIL and RCPT for
// remoteRecipient. It records an error and returns ok false on failure.
func (c *Check) relayRCPT() (probe.Reply, bool) {
	s := c.open("RCPT for a remote domain")
	if s == nil {
		return probe.Reply{}, false
	}
	mail, err := s.Cmd(mailCommand("MPC=per/individual"))
	if err != nil {
		c.Error("no reply to MAIL: %s", describe(err))
		return probe.Reply{}, false
	}
	if mail.Code != 250 {
		c.Error("precondition failed: MAIL with MPC=per/individual got %s", summarize(mail))
		return probe.Reply{}, false
	}
	reply, err := s.Cmd("RCPT TO:<" + remoteRecipient + ">")
	if err != nil {
		c.Error("no reply to RCPT: %s", describe(err))
		return probe.Reply{}, false
	}
	s.reset()
	return reply, true
}
