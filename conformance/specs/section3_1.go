package specs

import (
	"crypto/x509"
	"errors"
	"fmt"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// section3_1 checks draft section 3.1, Authentication: both MTAs present
// certificates from a trusted CA before a transaction begins.
func section3_1() {
	Describe("3.1 Authentication", func() {
		clause("3.1-server-presents-certificate", nil, func(c *Check) {
			roots, err := current().PKI.CAPool(publicCA)
			if err != nil {
				c.Error("%v", err)
				return
			}
			ok, detail, err := c.serverCertificateVerifies("public listener", current().Target, pki.CertClient, roots)
			switch {
			case err != nil:
				c.Error("%s", detail)
			case ok:
				c.Pass("%s", detail)
			default:
				c.Broken("%s", detail)
			}
		})

		clause("3.1-client-certificate-required", nil, func(c *Check) {
			if !c.requireBaseline() {
				return
			}
			client, err := validClient()
			if err != nil {
				c.Error("%v", err)
				return
			}
			// The source address keeps its matching PTR record, so that only
			// the missing certificate can stop the session.
			anonymous := Identity{Name: "no certificate", Source: client.Source}
			a := c.admit("no client certificate", current().Target, anonymous, client.CN)
			switch a.kind {
			case rejectedTLS:
				c.Pass("the server rejected a client without a certificate in the TLS layer: %s", a.detail)
				return
			case rejectedAtGreeting:
				if c.acceptRejectionAtGreeting(current().Target, "a client without a certificate", a.detail) {
					c.Pass("the server rejected a client without a certificate at the greeting: %s", a.detail)
				}
				return
			case inconclusive:
				c.Error("could not tell whether the server accepts a client without a certificate: %s", a.detail)
				return
			}
			if a.session == nil {
				c.Error("no session to send MAIL on: %s", a.detail)
				return
			}

			tx, err := a.session.send("per/individual", c.newMessage().data())
			switch {
			case err != nil && closedOrAlert(err):
				c.Pass("after %s, the server ended the session of a client without a certificate at %s: %s", a.detail, tx.stage, describe(err))
			case err != nil:
				c.Error("no reply to %s: %s", tx.stage, describe(err))
			case tx.stage == "MAIL" && tx.reply.Code != 250:
				c.Pass("after %s, MAIL from a client without a certificate got %s", a.detail, summarize(tx.reply))
			default:
				c.Broken("after %s, the server accepted MAIL from a client without a certificate; %s", a.detail, tx)
			}
		})
	})
}

// serverCertificateVerifies opens a TLS connection to target as the client
// certName and reports whether the server chain verifies against roots for
// the configured server name. err is set, and detail gives the cause,
// when the connection failed for another reason.
func (c *Check) serverCertificateVerifies(label, target, certName string, roots *x509.CertPool) (ok bool, detail string, err error) {
	id, err := identity(certName)
	if err != nil {
		return false, err.Error(), err
	}
	s, err := c.dial(label, dialOptions{target: target, identity: id, verify: true, roots: roots})
	if err == nil {
		facts := s.TLS()
		s.Close()
		leaf := facts.PeerCertificates[0]
		return true, fmt.Sprintf("the %s presented %q, issued by %q, which verifies for %q", label, leaf.Subject, leaf.Issuer, facts.ServerName), nil
	}

	var dialErr *probe.DialError
	if errors.As(err, &dialErr) && dialErr.TLS.VerifyError != "" {
		return false, fmt.Sprintf("the certificate of the %s does not verify: %s", label, dialErr.TLS.VerifyError), nil
	}
	if errors.As(err, &dialErr) && dialErr.Stage == "tls" && len(dialErr.TLS.PeerCertificates) == 0 && !errors.Is(err, probe.ErrTimeout) {
		return false, fmt.Sprintf("the %s completed no TLS handshake that shows a certificate: %s", label, describe(err)), nil
	}
	return false, fmt.Sprintf("could not reach the certificate of the %s: %s", label, describe(err)), err
}
