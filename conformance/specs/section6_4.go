package specs

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/maildir"
)

// bounceMPC is the MPC value that section 6.4 demands for every bounce.
const bounceMPC = "net/autoresponse"

// section6_4 checks draft section 6.4, Autoresponders, for bounces. The
// server relays a message from a local sender to the suite's denying
// sink, which rejects the recipient with 550. The bounce that reaches the
// sender's Maildir must carry the MPC value net/autoresponse.
func section6_4() {
	Describe("6.4 Autoresponders", func() {
		clause("6.4-bounces-net-autoresponse", []string{"private", "maildir"}, checkBounceMPC)
	})
}

func checkBounceMPC(c *Check) {
	if current().Maildir == nil {
		c.Skip("needs --maildir, because the bounce goes to a local sender")
		return
	}
	target := c.relaySink(current().DenyingSink)
	if target == nil {
		return
	}
	sender := current().Recipient
	recipient := "someone@" + target.Domain
	m, ok := c.submitForRelay(sender, "per/individual", recipient)
	if !ok {
		return
	}

	// The bounce quotes the token only in its body, where it copies the
	// header section of the original message.
	found, err := c.waitContaining(m.token)
	if err != nil {
		c.Broken("the sink %s rejected the recipient %s with 550, but no bounce quoting the token %s reached the Maildir tree %s of the sender %s within %s: %v",
			target, recipient, m.token, current().Maildir.Root(), sender, current().StepTimeout, err)
		return
	}

	bounce := found[0]
	fields := maildir.HeaderFields(bounce.Data)
	if returnPaths := maildir.FieldsNamed(fields, "Return-Path"); len(returnPaths) > 0 {
		if got := strings.TrimSpace(returnPaths[0].Value); got != "<>" {
			c.Observe("the bounce %s has Return-Path %s, not the null reverse-path <> that RFC 5321 section 4.5.5 demands", bounce.Path, got)
		}
	}
	mpcFields := maildir.FieldsNamed(fields, "MPC")
	if len(mpcFields) != 1 {
		c.Broken("the bounce %s has %d MPC header fields, not one with the value %s", bounce.Path, len(mpcFields), bounceMPC)
		return
	}
	if got := strings.Trim(mpcFields[0].Value, " \t"); got != bounceMPC {
		c.Broken("the bounce %s carries the MPC header field %q, but a bounce must carry %s", bounce.Path, got, bounceMPC)
		return
	}
	c.Pass("the bounce %s for the rejected recipient %s carries the MPC header field %s", bounce.Path, recipient, bounceMPC)
}

// waitContaining waits up to the step timeout for messages in the Maildir
// tree whose bytes contain token anywhere, such as a bounce that quotes
// the original header section in its body.
func (c *Check) waitContaining(token string) ([]maildir.Message, error) {
	ctx, cancel := c.stepContext()
	defer cancel()
	return current().Maildir.WaitContaining(ctx, []byte(token))
}
