package specs

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// section7 checks draft section 7, Private Network Considerations, on the
// private listener.
func section7() {
	Describe("7 Private Network Considerations", func() {
		clause("7-server-certificate-any-ca", []string{"private"}, func(c *Check) {
			if !c.requirePrivateBaseline() {
				return
			}
			var chains, misses []string
			for _, ca := range []string{publicCA, privateCA} {
				roots, err := current().PKI.CAPool(ca)
				if err != nil {
					c.Error("%v", err)
					return
				}
				ok, detail, err := c.serverCertificateVerifies("private listener", current().PrivateTarget, pki.CertPrivateClient, roots)
				switch {
				case err != nil:
					c.Error("%s", detail)
					return
				case ok:
					chains = append(chains, "the "+ca)
				default:
					misses = append(misses, fmt.Sprintf("not to the %s: %s", ca, detail))
				}
			}
			if len(chains) == 0 {
				c.Info("the certificate of the private listener chains to neither CA of the PKI: %s", strings.Join(misses, "; "))
				return
			}
			c.Info("the certificate of the private listener chains to %s", strings.Join(chains, " and "))
		})

		clause("7-private-user-authentication", []string{"private"}, func(c *Check) {
			s := c.openPrivate("MAIL without AUTH")
			if s == nil {
				return
			}
			advertised := slices.Contains(keywords(ehloReply(s)), "AUTH")
			mail, err := s.Cmd(mailCommand("MPC=per/individual"))
			if err != nil {
				c.Error("no reply to MAIL: %s", describe(err))
				return
			}
			switch {
			case !advertised && mail.Code == 250:
				c.Broken("the private listener does not advertise AUTH and accepted MAIL without authentication")
			case !advertised:
				c.Broken("the private listener does not advertise AUTH; MAIL without authentication got %s", summarize(mail))
			case mail.Code == 250:
				c.Broken("the private listener advertises AUTH but accepted MAIL without authentication")
			case mail.Code == 530:
				c.Pass("the private listener advertises AUTH, and MAIL without authentication got %s", summarize(mail))
			default:
				c.Pass("the private listener advertises AUTH, and MAIL without authentication got %s (530 expected, but any rejection keeps the clause)", summarize(mail))
			}
		})

		clause("7-certificate-subject-matches-user", []string{"private"}, checkSubjectMatchesUser)

		clause("7-private-alternative-port", []string{"private"}, func(c *Check) {
			public, private, ok := c.listenerPorts()
			if !ok {
				return
			}
			if private == public {
				c.Info("the private listener uses the AMTP port %d of the public listener, on another address", private)
				return
			}
			c.Info("the private listener uses port %d, not the AMTP port %d", private, public)
		})

		clause("7-private-ptr-exemption", []string{"private"}, func(c *Check) {
			if current().PrivateTarget == "" {
				c.Skip("no private listener configured (--private-target)")
				return
			}
			id, err := privateClient()
			if err != nil {
				c.Error("%v", err)
				return
			}
			a := c.admit("private client without PTR record", current().PrivateTarget, id, id.CN)
			switch a.kind {
			case admitted:
				c.Info("the private listener admitted %s, whose source address has no PTR record: EHLO got 250", id)
			case inconclusive:
				c.Error("could not tell whether the private listener admits %s: %s", id, a.detail)
			default:
				c.Info("the private listener rejected %s, whose source address has no PTR record: %s", id, a.detail)
			}
		})
	})
}

// checkSubjectMatchesUser presents a private-CA certificate with a CN of
// its own, then authenticates as the PKI's user, whose name is another CN.
// The server should reject the authentication or the MAIL after it.
func checkSubjectMatchesUser(c *Check) {
	if !c.requirePrivateBaseline() {
		return
	}
	m := current().PKI
	if len(m.Users) == 0 {
		c.Error("the PKI manifest lists no SMTP AUTH user")
		return
	}
	user := m.Users[0]
	private, err := privateClient()
	if err != nil {
		c.Error("%v", err)
		return
	}
	cn := "other-user." + m.Domain
	id, err := issueIdentity("certificate issued for this check", privateCA, cn, private.Source)
	if err != nil {
		c.Error("%v", err)
		return
	}

	a := c.admit("AUTH as a user other than the certificate CN", current().PrivateTarget, id, cn)
	switch a.kind {
	case admitted:
	case inconclusive:
		c.Error("could not open a session as %s: %s", id, a.detail)
		return
	default:
		c.Skip("the private listener rejected %s before AUTH (%s), so the user name check cannot be reached", id, a.detail)
		return
	}

	s := a.session
	credentials := base64.StdEncoding.EncodeToString([]byte("\x00" + user.Name + "\x00" + user.Password))
	auth, err := s.Cmd("AUTH PLAIN " + credentials)
	if err != nil {
		c.Error("no reply to AUTH: %s", describe(err))
		return
	}
	if auth.Code != 235 {
		c.Pass("AUTH PLAIN as %s with the certificate CN %s got %s", user.Name, cn, summarize(auth))
		return
	}
	mail, err := s.Cmd(mailCommand("MPC=per/individual"))
	if err != nil {
		c.Error("no reply to MAIL: %s", describe(err))
		return
	}
	if mail.Code == 250 {
		c.Broken("the private listener accepted AUTH as %s and then MAIL from a client whose certificate CN is %s", user.Name, cn)
		return
	}
	c.Pass("AUTH as %s with the certificate CN %s got 235, but MAIL was rejected: %s", user.Name, cn, summarize(mail))
}
