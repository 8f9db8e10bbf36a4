package specs

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// section4_2 checks draft section 4.2, X.509 Certificate Requirements:
// TLS on every connection, and the checks a server makes on the client
// certificate.
func section4_2() {
	Describe("4.2 X.509 Certificate Requirements", func() {
		clause("4.2-tls-required", nil, checkTLSRequired)

		clause("4.2-server-presents-certificate", nil, func(c *Check) {
			public, err := current().PKI.CAPool(publicCA)
			if err != nil {
				c.Error("%v", err)
				return
			}
			ok, detail, err := c.serverCertificateVerifies("public listener", current().Target, pki.CertClient, public)
			switch {
			case err != nil:
				c.Error("%s", detail)
				return
			case !ok:
				c.Broken("%s", detail)
				return
			}
			if current().PrivateTarget == "" {
				c.Pass("%s; the private listener was not checked: no --private-target", detail)
				return
			}

			either, err := caPools(publicCA, privateCA)
			if err != nil {
				c.Error("%v", err)
				return
			}
			privateOK, privateDetail, err := c.serverCertificateVerifies("private listener", current().PrivateTarget, pki.CertPrivateClient, either)
			switch {
			case err != nil:
				c.Error("%s", privateDetail)
			case !privateOK:
				c.Broken("%s", privateDetail)
			default:
				c.Pass("%s; %s", detail, privateDetail)
			}
		})

		clause("4.2-client-ca-recognized", nil, func(c *Check) {
			expectIdentityRejected(c, pki.CertUntrustedCA, "certificate from an untrusted CA")
		})

		clause("4.2-client-cn-fqdn", nil, func(c *Check) {
			id, err := identity(pki.CertCNNotFQDN)
			if err != nil {
				c.Error("%v", err)
				return
			}
			if current().DNS == nil {
				c.Observe("the external DNS server decides the PTR record of %s; with the PKI zone it names %s, so a server that checks only the PTR match also rejects this certificate", id.Source, id.PTR)
			} else {
				c.Observe("the suite's DNS server names %s %s., the certificate CN, so that only the check of the CN form can reject it", id.Source, id.CN)
			}
			c.expectRejected(publicListener, rejection{label: "single-label CN", id: id, ehlo: id.CN})
		})

		clause("4.2-client-cn-matches-ptr", nil, func(c *Check) {
			expectIdentityRejected(c, pki.CertPTRMismatch, "CN other than the PTR record")
		})

		clause("4.2-ipv6-equivalent-tests", []string{"target6", "dns-serve"}, checkIPv6PTR)

		clause("4.2-client-certificate-dates", nil, func(c *Check) {
			expired, err := identity(pki.CertExpired)
			if err != nil {
				c.Error("%v", err)
				return
			}
			future, err := identity(pki.CertNotYetValid)
			if err != nil {
				c.Error("%v", err)
				return
			}
			c.expectRejected(publicListener,
				rejection{label: "expired certificate", id: expired, ehlo: expired.CN},
				rejection{label: "certificate not yet valid", id: future, ehlo: future.CN},
			)
		})

		clause("4.2-server-certificate-dates", nil, func(c *Check) {
			id, err := validClient()
			if err != nil {
				c.Error("%v", err)
				return
			}
			s, err := c.dial("server certificate", dialOptions{target: current().Target, identity: id})
			if err != nil {
				c.Error("could not complete a TLS handshake: %s", describe(err))
				return
			}
			now := time.Now()
			facts := s.TLS()
			if len(facts.PeerCertificates) == 0 {
				c.Broken("the server presented no certificate")
				return
			}
			leaf := facts.PeerCertificates[0]
			validity := fmt.Sprintf("valid from %s to %s", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
			switch {
			case !leaf.NotBefore.Before(now):
				c.Broken("the server certificate %q is not valid yet: %s", leaf.Subject, validity)
			case !leaf.NotAfter.After(now):
				c.Broken("the server certificate %q has expired: %s", leaf.Subject, validity)
			default:
				c.Pass("the server certificate %q is %s", leaf.Subject, validity)
			}
		})
	})
}

// expectIdentityRejected checks that the public listener rejects the PKI
// certificate certName with EHLO set to its CN.
func expectIdentityRejected(c *Check, certName, label string) {
	id, err := identity(certName)
	if err != nil {
		c.Error("%v", err)
		return
	}
	c.expectRejected(publicListener, rejection{label: label, id: id, ehlo: id.CN})
}

// caPools returns a pool with the certificates of the named PKI CAs.
func caPools(names ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	m := current().PKI
	for _, name := range names {
		found := false
		for _, ca := range m.CAs {
			if ca.Name != name {
				continue
			}
			data, err := os.ReadFile(m.Path(ca.Cert))
			if err != nil {
				return nil, fmt.Errorf("read CA %q: %w", name, err)
			}
			if !pool.AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("CA file %s contains no PEM certificate", m.Path(ca.Cert))
			}
			found = true
		}
		if !found {
			return nil, fmt.Errorf("CA %q is not in the PKI manifest", name)
		}
	}
	return pool, nil
}

// checkTLSRequired sends EHLO and MAIL in plain text to the public
// listener. The draft does not say whether TLS starts with the first byte
// or after STARTTLS, so either passes as long as MAIL gets no 250.
func checkTLSRequired(c *Check) {
	if !c.requireBaseline() {
		return
	}
	id, err := validClient()
	if err != nil {
		c.Error("%v", err)
		return
	}
	s, err := c.dial("plain text", dialOptions{target: current().Target, identity: Identity{Name: "plain TCP", Source: id.Source}, plain: true})
	if err != nil {
		c.Error("could not connect: %s", describe(err))
		return
	}

	// A server with implicit TLS sends nothing and waits for a TLS
	// ClientHello, and one with STARTTLS sends its greeting in plain text.
	quiet, greeting, err := s.Quiet()
	switch {
	case err != nil && closedOrAlert(err):
		c.Pass("the server closed the plain-text connection before any command: %s", describe(err))
		return
	case quiet:
		s.Note("no plain-text greeting within the quiet period; sending EHLO anyway")
	default:
		s.Note("plain-text greeting: %s", summarize(greeting))
	}

	steps := []string{"EHLO " + id.CN, "MAIL FROM:<conformance@" + current().PKI.Domain + "> MPC=per/individual"}
	var replies []string
	for _, line := range steps {
		verb := strings.Fields(line)[0]
		reply, err := s.Cmd(line)
		switch {
		case err != nil && closedOrAlert(err):
			c.Pass("the server ended the plain-text connection at %s: %s", verb, describe(err))
			return
		case err != nil:
			c.Pass("the server sent no reply to %s in plain text (%s), so it accepted no MAIL", verb, describe(err))
			return
		case verb == "MAIL" && reply.Code == 250:
			c.Broken("the server accepted MAIL in plain text, before TLS: %s", summarize(reply))
			return
		}
		replies = append(replies, fmt.Sprintf("%s got %s", verb, summarize(reply)))
	}
	c.Pass("the server accepted no MAIL in plain text: %s", strings.Join(replies, "; "))
}

// checkIPv6PTR connects from ::1 twice, first with a PTR record equal to
// the certificate CN, which must be admitted, then with one that names
// another host, which must be rejected.
func checkIPv6PTR(c *Check) {
	cfg := current()
	switch {
	case cfg.Target6 == "":
		c.Skip("no IPv6 listener configured (--target6)")
		return
	case cfg.DNS == nil:
		c.Skip("needs the suite's own DNS server (--dns serve), because the check changes the PTR record of ::1")
		return
	}
	if !c.requireBaseline() {
		return
	}
	id, err := validClient()
	if err != nil {
		c.Error("%v", err)
		return
	}
	loopback6 := netip.IPv6Loopback()
	id.Source = loopback6

	restore, err := cfg.DNS.SetPTR(loopback6, id.CN+".")
	if err != nil {
		c.Error("could not set the PTR record of ::1: %v", err)
		return
	}
	a := c.admit("::1 with a matching PTR record", cfg.Target6, id, id.CN)
	restore()
	if a.session != nil {
		a.session.Close()
	}
	switch a.kind {
	case admitted:
		c.Observe("with the PTR record of ::1 naming %s, the server admitted %s: EHLO got 250", id.CN, id)
	case inconclusive:
		c.Error("could not tell whether the server accepts %s over IPv6: %s", id, a.detail)
		return
	default:
		c.Broken("the server rejected %s over IPv6 although the ip6.arpa PTR record of ::1 names %s: %s; a server that resolves ::1 from /etc/hosts sees another name", id, id.CN, a.detail)
		return
	}

	other := "elsewhere." + cfg.PKI.Domain + "."
	restore, err = cfg.DNS.SetPTR(loopback6, other)
	if err != nil {
		c.Error("could not set the PTR record of ::1: %v", err)
		return
	}
	defer restore()
	c.expectRejectedOn(cfg.Target6, rejection{label: "::1 with a PTR record naming another host", id: id, ehlo: id.CN})
}
