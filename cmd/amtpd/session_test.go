package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

const testBody = "From: sender@example.org\r\nTo: alice@example.test\r\nSubject: test\r\n\r\nHello.\r\n.\r\n"

var _ = Describe("amtpd session", Ordered, func() {
	var (
		st  *stage
		srv *amtpd
		m   *pki.Manifest
	)

	BeforeAll(func() {
		st = newStage("")
		m = st.manifest
		srv = st.startAmtpd("main", serverConfig{
			private: true,
			policy:  []string{"DENY */optout"},
			recipients: `
[[policy.recipient]]
match = "ringo@example.test"
mpc = ["ALLOW */individual", "ALLOW com/confirmed"]

[[policy.recipient]]
match = "carol@example.test"
mpc = ["DEFER com/optin"]

[[policy.recipient]]
match = "locked@example.test"
mpc = ["DENY */*"]
`,
		})
	})

	greeted := func() *client {
		c := srv.dialAs(pki.CertClient)
		c.greet(cnOf(m, pki.CertClient))
		return c
	}

	Describe("greeting and EHLO", func() {
		It("sends 220 with the hostname", func() {
			c := srv.dialAs(pki.CertClient)
			Expect(c.expect(220)).To(HavePrefix("mx.example.test "))
		})

		It("answers HELO with 504 before EHLO", func() {
			c := srv.dialAs(pki.CertClient)
			c.expect(220)
			c.cmd("HELO client.example.test", 504)
		})

		It("answers HELO with 504 after EHLO", func() {
			c := greeted()
			c.cmd("HELO client.example.test", 504)
		})

		It("advertises the MPC policy and extensions", func() {
			c := srv.dialAs(pki.CertClient)
			text := c.greet(cnOf(m, pki.CertClient))
			Expect(text).To(ContainSubstring("MPC DENY=*/optout"))
			Expect(text).To(ContainSubstring("PIPELINING"))
			Expect(text).To(ContainSubstring("SIZE "))
			Expect(text).To(ContainSubstring("ENHANCEDSTATUSCODES"))
			Expect(text).NotTo(ContainSubstring("AUTH"))
			Expect(text).NotTo(ContainSubstring("STARTTLS"))
		})

		It("rejects EHLO with another name with 504", func() {
			c := srv.dialAs(pki.CertClient)
			c.expect(220)
			c.cmd("EHLO other.example.test", 504)
			Eventually(srv.log).Should(ContainSubstring("check=ehlo_mismatch"))
		})

		It("rejects MAIL before EHLO with 503", func() {
			c := srv.dialAs(pki.CertClient)
			c.expect(220)
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 503)
			c.cmd("NOOP", 250)
			c.cmd("RSET", 503)
		})

		It("keeps the session unauthenticated after a failed EHLO", func() {
			c := srv.dialAs(pki.CertClient)
			c.expect(220)
			c.cmd("EHLO other.example.test", 504)
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 503)
			c.cmd("EHLO client.example.test", 250)
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
		})

		It("rejects a malformed EHLO argument with 501", func() {
			c := srv.dialAs(pki.CertClient)
			c.expect(220)
			c.cmd("EHLO", 501)
			c.cmd("EHLO client.example.test extra", 501)
		})
	})

	Describe("client certificates", func() {
		for _, name := range []string{
			pki.CertExpired, pki.CertNotYetValid, pki.CertCNNotFQDN, pki.CertPTRMismatch,
			pki.CertNoPTR, pki.CertUntrustedCA, pki.CertNoClientAuth, pki.CertPrivateClient,
		} {
			It("rejects "+name+" with 504 and logs the check", func() {
				entry, err := m.Cert(name)
				Expect(err).NotTo(HaveOccurred())
				Expect(string(entry.FailsCheck)).NotTo(BeEmpty())

				c := srv.dialAs(name)
				c.expect(220)
				c.cmd("EHLO "+entry.CN, 504)
				c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 503)

				Eventually(srv.log).Should(MatchRegexp(`identity check failed.* check=%s addr=%s`, entry.FailsCheck, strings.ReplaceAll(entry.SourceAddr, ".", `\.`)))
			})
		}

		It("accepts every pool identity from its own address", func() {
			for _, name := range []string{pki.CertPool1, pki.CertPool2, pki.CertPool3, pki.CertPool4} {
				c := srv.dialAs(name)
				c.greet(cnOf(m, name))
				c.cmd("QUIT", 221)
			}
		})

		It("rejects a good certificate from another source address", func() {
			cert, err := m.TLSCertificate(pki.CertClient)
			Expect(err).NotTo(HaveOccurred())
			pool, err := m.Cert(pki.CertPool1)
			Expect(err).NotTo(HaveOccurred())

			c, err := srv.dial(srv.public, dialOptions{cert: &cert, source: pool.SourceAddr})
			Expect(err).NotTo(HaveOccurred())
			c.expect(220)
			c.cmd("EHLO client.example.test", 504)
		})

		It("gives a client without a certificate no SMTP service", func() {
			c, err := srv.dial(srv.public, dialOptions{source: "127.0.0.2"})
			if err == nil {
				// TLS 1.3: the server's alert arrives with the first read.
				_, _, err = c.reply()
			}
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("certificate"))
		})

		// The client certificate of pki.CertClient with changes applied,
		// signed by the public CA, presented from the client's address.
		for _, tc := range []struct {
			name   string
			check  string
			change func(*x509.Certificate)
		}{
			{"a key usage without digitalSignature", "key_usage", func(c *x509.Certificate) {
				c.KeyUsage = x509.KeyUsageCertSign
			}},
			{"a second CN attribute", "cn_ambiguous", func(c *x509.Certificate) {
				c.Subject = pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
					{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "evil.example.org"},
					{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: c.Subject.CommonName},
				}}
			}},
		} {
			It("rejects "+tc.name+" with 504", func() {
				entry, err := m.Cert(pki.CertClient)
				Expect(err).NotTo(HaveOccurred())
				cert := issueFromCA(m, pki.PublicCA, entry.CN, tc.change)

				c, err := srv.dial(srv.public, dialOptions{cert: &cert, source: entry.SourceAddr})
				Expect(err).NotTo(HaveOccurred())
				c.expect(220)
				c.cmd("EHLO "+entry.CN, 504)
				c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 503)

				Eventually(srv.log).Should(MatchRegexp(`identity check failed.* check=%s addr=%s`, tc.check, strings.ReplaceAll(entry.SourceAddr, ".", `\.`)))
			})
		}

		It("checks resumed TLS sessions at EHLO too", func() {
			cache := tls.NewLRUClientSessionCache(4)
			cert, err := m.TLSCertificate(pki.CertPTRMismatch)
			Expect(err).NotTo(HaveOccurred())
			entry, err := m.Cert(pki.CertPTRMismatch)
			Expect(err).NotTo(HaveOccurred())

			first, err := srv.dial(srv.public, dialOptions{cert: &cert, source: entry.SourceAddr, cache: cache})
			Expect(err).NotTo(HaveOccurred())
			first.expect(220)
			first.cmd("EHLO "+entry.CN, 504)
			first.cmd("QUIT", 221)

			second, err := srv.dial(srv.public, dialOptions{cert: &cert, source: entry.SourceAddr, cache: cache})
			Expect(err).NotTo(HaveOccurred())
			second.expect(220)
			Expect(second.conn.ConnectionState().DidResume).To(BeTrue())
			second.cmd("EHLO "+entry.CN, 504)
		})
	})

	Describe("MAIL and the MPC parameter", func() {
		DescribeTable("reply to MAIL",
			func(params string, code int) {
				c := greeted()
				c.cmd("MAIL FROM:<sender@example.org>"+params, code)
			},
			Entry("per/individual", " MPC=per/individual", 250),
			Entry("mpc/individual", " MPC=mpc/individual", 250),
			Entry("upper case value", " MPC=COM/Confirmed", 250),
			Entry("lower case keyword", " mpc=ngo/optin", 250),
			Entry("null reverse-path", "", 501),
			Entry("no MPC", "", 501),
			Entry("two MPC parameters", " MPC=per/individual MPC=per/individual", 501),
			Entry("MPC without value", " MPC", 501),
			Entry("malformed value", " MPC=per", 501),
			Entry("undefined role", " MPC=individual/confirmed", 550),
			Entry("undefined class", " MPC=com/autoresponder", 550),
			Entry("mpc role with optin", " MPC=mpc/optin", 550),
			Entry("denied by DENY */optout", " MPC=com/optout", 550),
			Entry("unknown parameter", " MPC=per/individual FOO=bar", 555),
			Entry("SIZE over the limit", " MPC=per/individual SIZE=999999999999", 552),
			Entry("BODY=8BITMIME", " MPC=per/individual BODY=8BITMIME", 250),
			Entry("SIZE given twice", " MPC=per/individual SIZE=10 SIZE=20", 501),
		)

		It("names the repeated parameter", func() {
			c := greeted()

			text := c.cmd("MAIL FROM:<a@example.org> MPC=per/individual BODY=7BIT BODY=8BITMIME", 501)

			Expect(text).To(ContainSubstring("Parameter BODY given more than once"))
		})

		It("says invalid parameter syntax once", func() {
			c := greeted()

			text := c.cmd("MAIL FROM:<a@example.org> MPC=per/individual =x", 501)

			Expect(strings.ToLower(text)).To(ContainSubstring("invalid parameter syntax"))
			Expect(strings.Count(strings.ToLower(text), "invalid parameter syntax")).To(Equal(1), "reply %q", text)
		})

		It("closes a session after ten EHLO commands", func() {
			c := greeted()
			for range 9 {
				c.cmd("EHLO client.example.test", 250)
			}

			text := c.cmd("EHLO client.example.test", 421)

			Expect(text).To(ContainSubstring("Too many EHLO commands"))
			_, _, err := c.reply()
			Expect(err).To(HaveOccurred(), "the connection stays open after 421")
		})

		It("accepts the null reverse-path with MPC", func() {
			c := greeted()
			c.cmd("MAIL FROM:<> MPC=net/autoresponse", 250)
		})

		It("rejects a nested MAIL with 503", func() {
			c := greeted()
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 503)
			c.cmd("RSET", 250)
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
		})
	})

	Describe("RCPT and per-recipient policy", func() {
		It("rejects one RCPT and accepts another by policy", func() {
			c := greeted()
			c.cmd("MAIL FROM:<list@example.org> MPC=com/optin", 250)
			c.cmd("RCPT TO:<ringo@example.test>", 550)
			c.cmd("RCPT TO:<alice@example.test>", 250)
		})

		It("answers 451 for a DEFER declaration", func() {
			c := greeted()
			c.cmd("MAIL FROM:<list@example.org> MPC=com/optin", 250)
			c.cmd("RCPT TO:<carol@example.test>", 451)
		})

		It("lets mpc/individual through a DENY */* policy", func() {
			c := greeted()
			c.cmd("MAIL FROM:<admin@example.org> MPC=per/individual", 250)
			c.cmd("RCPT TO:<locked@example.test>", 550)
			c.cmd("RSET", 250)
			c.cmd("MAIL FROM:<admin@example.org> MPC=mpc/individual", 250)
			c.cmd("RCPT TO:<locked@example.test>", 250)
		})

		It("rejects an unknown mailbox with 550", func() {
			c := greeted()
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
			c.cmd("RCPT TO:<nobody@example.test>", 550)
		})

		It("refuses to relay to another domain", func() {
			c := greeted()
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
			text := c.cmd("RCPT TO:<someone@elsewhere.example>", 550)
			Expect(text).To(ContainSubstring("5.7.1"))
		})

		It("accepts <Postmaster> without a domain", func() {
			c := greeted()
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
			c.cmd("RCPT TO:<Postmaster>", 250)
		})

		It("rejects RCPT before MAIL and DATA before RCPT", func() {
			c := greeted()
			c.cmd("RCPT TO:<alice@example.test>", 503)
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
			c.cmd("DATA", 503)
		})
	})

	Describe("DATA and delivery", func() {
		It("delivers with the MPC header field", func() {
			c := greeted()
			Expect(c.sendMessage("sender@example.org", "per/individual", []string{"bob@example.test"}, testBody)).To(Equal(250))

			msgs := srv.waitDelivered("bob@example.test", 1)
			Expect(msgs[0]).To(ContainSubstring("\r\nMPC: per/individual\r\n"))
			Expect(msgs[0]).To(ContainSubstring("Return-Path: <sender@example.org>"))
			Expect(msgs[0]).To(ContainSubstring("Received: from client.example.test"))
			Expect(msgs[0]).To(HaveSuffix("Subject: test\r\n\r\nHello.\r\n"))
		})

		It("keeps the MPC value as received", func() {
			c := greeted()
			Expect(c.sendMessage("sender@example.org", "NGO/Customer", []string{"alice@example.test"}, testBody)).To(Equal(250))
			Eventually(func() []string { return srv.delivered("alice@example.test") }).Should(ContainElement(ContainSubstring("\r\nMPC: NGO/Customer\r\n")))
		})

		It("refuses a message with a pre-existing mpc: header", func() {
			srv.settle()
			before := len(srv.delivered("ringo@example.test"))
			c := greeted()
			body := "From: a@example.org\r\nmpc: com/optout\r\nSubject: x\r\n\r\nBody\r\n.\r\n"
			Expect(c.sendMessage("a@example.org", "per/individual", []string{"ringo@example.test"}, body)).To(Equal(550))
			srv.settle()
			Expect(srv.delivered("ringo@example.test")).To(HaveLen(before))
		})

		It("rejects an SMTP smuggling attempt and closes", func() {
			srv.settle()
			before := len(srv.delivered("ringo@example.test"))
			c := greeted()
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
			c.cmd("RCPT TO:<ringo@example.test>", 250)
			c.cmd("DATA", 354)
			c.send("Subject: first\r\n\r\nfirst\n.\nMAIL FROM:<evil@example.org> MPC=per/individual\r\nRCPT TO:<ringo@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
			text := c.expect(554)
			Expect(text).To(ContainSubstring("Bare LF"))
			_, _, err := c.reply()
			Expect(err).To(HaveOccurred())
			srv.settle()
			Expect(srv.delivered("ringo@example.test")).To(HaveLen(before))
		})

		It("answers a body with LF line endings at once", func() {
			c := greeted()
			c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
			c.cmd("RCPT TO:<ringo@example.test>", 250)
			c.cmd("DATA", 354)
			c.send("Subject: lf only\n\nbody\n.\n")
			Expect(c.expect(554)).To(ContainSubstring("line 1"))
		})

		DescribeTable("rejects smuggling variants",
			func(terminator string, staysInStep bool) {
				srv.settle()
				before := len(srv.delivered("ringo@example.test"))
				c := greeted()
				c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
				c.cmd("RCPT TO:<ringo@example.test>", 250)
				c.cmd("DATA", 354)
				c.send("Subject: first\r\n\r\nfirst" + terminator + "MAIL FROM:<evil@example.org> MPC=per/individual\r\nRCPT TO:<ringo@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
				c.expect(554)
				if staysInStep {
					c.cmd("NOOP", 250)
				} else {
					_, _, err := c.reply()
					Expect(err).To(HaveOccurred())
				}
				srv.settle()
				Expect(srv.delivered("ringo@example.test")).To(HaveLen(before))
			},
			Entry("LF . LF", "\n.\n", false),
			Entry("CRLF . LF", "\r\n.\n", false),
			Entry("LF . CRLF", "\n.\r\n", false),
			Entry("CR . CR", "\r.\r", true),
			Entry("CR . CRLF", "\r.\r\n", true),
		)

		It("rejects a text line over 1000 octets", func() {
			c := greeted()
			body := "Subject: long\r\n\r\n" + strings.Repeat("x", 999) + "\r\n.\r\n"
			Expect(c.sendMessage("a@example.org", "per/individual", []string{"alice@example.test"}, body)).To(Equal(500))
			c.cmd("NOOP", 250)
		})

		It("accepts a text line of exactly 1000 octets", func() {
			c := greeted()
			body := "Subject: long\r\n\r\n" + strings.Repeat("x", 998) + "\r\n.\r\n"
			Expect(c.sendMessage("a@example.org", "per/individual", []string{"alice@example.test"}, body)).To(Equal(250))
		})

		It("removes dot-stuffing", func() {
			c := greeted()
			body := "Subject: dots\r\n\r\n..leading dot\r\n.\r\n"
			Expect(c.sendMessage("dots@example.org", "per/individual", []string{"bob@example.test"}, body)).To(Equal(250))
			Eventually(func() []string { return srv.delivered("bob@example.test") }).Should(ContainElement(HaveSuffix("\r\n.leading dot\r\n")))
		})

		It("delivers once to each recipient of a pipelined transaction", func() {
			srv.settle()
			before := len(srv.delivered("alice@example.test"))
			c := greeted()
			c.send("MAIL FROM:<p@example.org> MPC=per/individual\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<ALICE@example.test>\r\nDATA\r\n")
			c.expect(250)
			c.expect(250)
			c.expect(250)
			c.expect(354)
			c.send(testBody)
			c.expect(250)
			srv.waitDelivered("alice@example.test", before+1)
		})
	})

	Describe("private listener", func() {
		private := func() *client {
			c, err := srv.tryDialAs(pki.CertPrivateClient, srv.private)
			Expect(err).NotTo(HaveOccurred())
			return c
		}
		plain := func(user, password string) string {
			return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
		}

		It("demands AUTH before MAIL", func() {
			c := private()
			text := c.greet(cnOf(m, pki.CertPrivateClient))
			Expect(text).To(ContainSubstring("AUTH PLAIN"))
			c.cmd("MAIL FROM:<roamer@example.test> MPC=per/individual", 530)
		})

		It("accepts the user named by the certificate CN", func() {
			user := m.Users[0]
			c := private()
			c.greet(cnOf(m, pki.CertPrivateClient))
			c.cmd("AUTH PLAIN "+plain(user.Name, user.Password), 235)
			Expect(c.sendMessage("roamer@example.test", "per/individual", []string{"alice@example.test"}, testBody)).To(Equal(250))
			Eventually(srv.log).Should(ContainSubstring("user=" + user.Name))
		})

		It("accepts AUTH PLAIN with a 334 continuation", func() {
			user := m.Users[0]
			c := private()
			c.greet(cnOf(m, pki.CertPrivateClient))
			c.cmd("AUTH PLAIN", 334)
			c.cmd(plain(user.Name, user.Password), 235)
		})

		It("rejects a wrong password with 535", func() {
			c := private()
			c.greet(cnOf(m, pki.CertPrivateClient))
			c.cmd("AUTH PLAIN "+plain(m.Users[0].Name, "wrong"), 535)
			c.cmd("MAIL FROM:<roamer@example.test> MPC=per/individual", 530)
		})

		It("rejects a public-CA client on the private listener", func() {
			c, err := srv.tryDialAs(pki.CertClient, srv.private)
			Expect(err).NotTo(HaveOccurred())
			c.expect(220)
			c.cmd("EHLO "+cnOf(m, pki.CertClient), 504)
			Eventually(srv.log).Should(MatchRegexp(`listener=private .*check=untrusted_ca`))
		})

		It("skips the PTR check but still matches EHLO to the CN", func() {
			c := private()
			c.expect(220)
			c.cmd("EHLO other.example.test", 504)
			c.cmd("EHLO "+cnOf(m, pki.CertPrivateClient), 250)
		})
	})

	Describe("bounded input", func() {
		It("rejects a command line over 512 octets and goes on", func() {
			c := greeted()
			c.cmd("NOOP "+strings.Repeat("x", 600), 500)
			c.cmd("NOOP", 250)
		})

		It("rejects a command line ending in a bare LF", func() {
			c := greeted()
			c.send("NOOP\n")
			c.expect(500)
			c.cmd("NOOP", 250)
		})

		It("answers 421 after too many errors", func() {
			c := greeted()
			for i := 0; i < 9; i++ {
				c.cmd(fmt.Sprintf("BOGUS%d", i), 500)
			}
			c.send("BOGUS\r\n")
			c.expect(500)
			c.expect(421)
			_, _, err := c.reply()
			Expect(err).To(HaveOccurred())
		})

		It("loses no accepted message when the session goes bad", func() {
			c := greeted()
			Expect(c.sendMessage("keep@example.org", "per/individual", []string{"carol@example.test"}, testBody)).To(Equal(250))
			// The server closes the connection after 64 KiB of one
			// endless line, so the write may fail part way.
			c.conn.SetDeadline(time.Now().Add(ioTimeout))
			c.conn.Write([]byte(strings.Repeat("y", 100000)))
			c.conn.Close()
			Eventually(func() []string { return srv.delivered("carol@example.test") }).Should(ContainElement(ContainSubstring("Return-Path: <keep@example.org>")))
		})

		It("answers RSET, VRFY and unknown commands as RFC 5321 says", func() {
			c := greeted()
			c.cmd("RSET", 250)
			c.cmd("VRFY alice", 252)
			c.cmd("EXPN list", 502)
			c.cmd("HELP", 214)
			c.cmd("STARTTLS", 503)
			c.cmd("XYZZY", 500)
			c.cmd("QUIT", 221)
		})
	})
})
