package main_test

import (
	"crypto/x509"
	"os"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

var _ = Describe("amtpd with a server-wide DENY */*", Ordered, func() {
	var srv *amtpd

	BeforeAll(func() {
		srv = newStage("").startAmtpd("deny-all", serverConfig{policy: []string{"DENY */*"}})
	})

	It("advertises DENY=*/*", func() {
		c := srv.dialAs(pki.CertClient)
		Expect(c.greet("client.example.test")).To(ContainSubstring("MPC DENY=*/*"))
	})

	It("rejects per/individual at MAIL", func() {
		c := srv.dialAs(pki.CertClient)
		c.greet("client.example.test")
		c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 550)
	})

	It("accepts and delivers mpc/individual", func() {
		c := srv.dialAs(pki.CertClient)
		c.greet("client.example.test")
		Expect(c.sendMessage("admin@example.org", "mpc/individual", []string{"alice@example.test"}, testBody)).To(Equal(250))
		Expect(srv.waitDelivered("alice@example.test", 1)).To(ContainElement(ContainSubstring("MPC: mpc/individual\r\n")))
	})
})

var _ = Describe("amtpd limits", Ordered, func() {
	var srv *amtpd

	BeforeAll(func() {
		srv = newStage("").startAmtpd("limits", serverConfig{limits: `
max_sessions_per_ip = 2
max_message_size = 2048
max_recipients = 3
command_timeout = "1s"
data_timeout = "1s"
auth_timeout = "2s"
`})
	})

	It("closes a session without a successful EHLO after auth_timeout", func() {
		c := srv.dialAs(pki.CertClient)
		c.expect(220)
		start := time.Now()
		for i := 0; i < 20; i++ {
			c.send("NOOP\r\n")
			code, _, err := c.reply()
			Expect(err).NotTo(HaveOccurred())
			if code == 421 {
				break
			}
			Expect(code).To(Equal(250))
			time.Sleep(300 * time.Millisecond)
		}
		Expect(time.Since(start)).To(BeNumerically(">=", 1500*time.Millisecond))
		Expect(time.Since(start)).To(BeNumerically("<", 5*time.Second))
		Eventually(srv.log).Should(ContainSubstring("limits.auth_timeout"))
	})

	It("closes an idle session with 421 after command_timeout", func() {
		c := srv.dialAs(pki.CertClient)
		c.greet("client.example.test")
		start := time.Now()
		text := c.expect(421)
		Expect(text).To(ContainSubstring("4.4.2"))
		Expect(time.Since(start)).To(BeNumerically(">=", 900*time.Millisecond))
	})

	It("answers 421 to a third session from one address", func() {
		first := srv.dialAs(pki.CertClient)
		first.expect(220)
		second := srv.dialAs(pki.CertClient)
		second.expect(220)

		third := srv.dialAs(pki.CertClient)
		Expect(third.expect(421)).To(ContainSubstring("Too many connections"))

		other := srv.dialAs(pki.CertPool1)
		other.expect(220)
	})

	It("rejects a message over max_message_size with 552", func() {
		c := srv.dialAs(pki.CertPool2)
		c.greet(pki.CertPool2 + ".example.test")
		c.cmd("MAIL FROM:<a@example.org> MPC=per/individual SIZE=4096", 552)

		body := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("z", 78)+"\r\n", 40) + ".\r\n"
		Expect(c.sendMessage("a@example.org", "per/individual", []string{"bob@example.test"}, body)).To(Equal(552))
		c.cmd("NOOP", 250)
		srv.settle()
		Expect(srv.delivered("bob@example.test")).To(BeEmpty())
	})

	It("answers 452 past max_recipients", func() {
		c := srv.dialAs(pki.CertPool3)
		c.greet(pki.CertPool3 + ".example.test")
		c.cmd("MAIL FROM:<a@example.org> MPC=per/individual", 250)
		c.cmd("RCPT TO:<alice@example.test>", 250)
		c.cmd("RCPT TO:<bob@example.test>", 250)
		c.cmd("RCPT TO:<carol@example.test>", 250)
		c.cmd("RCPT TO:<ringo@example.test>", 452)
		c.cmd("DATA", 354)
		c.send(testBody)
		c.expect(250)
	})

	It("keeps the accepted message when DATA stalls", func() {
		c := srv.dialAs(pki.CertPool4)
		c.greet(pki.CertPool4 + ".example.test")
		Expect(c.sendMessage("first@example.org", "per/individual", []string{"ringo@example.test"}, testBody)).To(Equal(250))

		c.cmd("MAIL FROM:<second@example.org> MPC=per/individual", 250)
		c.cmd("RCPT TO:<ringo@example.test>", 250)
		c.cmd("DATA", 354)
		c.send("Subject: stalled\r\n\r\npartial")
		Expect(c.expect(421)).To(ContainSubstring("Timeout"))

		msgs := srv.waitDelivered("ringo@example.test", 1)
		Expect(msgs[0]).To(ContainSubstring("Return-Path: <first@example.org>"))
	})
})

var _ = Describe("amtpd session_timeout", func() {
	It("ends an expired session with a clean 421", func() {
		srv := newStage("").startAmtpd("session-timeout", serverConfig{limits: `session_timeout = "2s"`})
		c := srv.dialAs(pki.CertClient)
		c.greet("client.example.test")
		var last int
		for i := 0; i < 20 && last != 421; i++ {
			time.Sleep(250 * time.Millisecond)
			c.send("NOOP\r\n")
			code, _, err := c.reply()
			Expect(err).NotTo(HaveOccurred())
			last = code
		}
		Expect(last).To(Equal(421))
		Eventually(srv.log).Should(ContainSubstring("limits.session_timeout expired"))
	})
})

var _ = Describe("amtpd shutdown", func() {
	It("sends 421 to an idle session on SIGTERM and exits 0", func() {
		srv := newStage("").startAmtpd("shutdown", serverConfig{})
		c := srv.dialAs(pki.CertClient)
		c.greet("client.example.test")

		srv.session.Signal(syscall.SIGTERM)
		Expect(c.expect(421)).To(ContainSubstring("4.3.2"))
		Eventually(srv.session, 10*time.Second).Should(gexec.Exit(0))
	})

	It("finishes a message in DATA before it exits", func() {
		srv := newStage("").startAmtpd("shutdown-data", serverConfig{})
		c := srv.dialAs(pki.CertClient)
		c.greet("client.example.test")
		c.cmd("MAIL FROM:<late@example.org> MPC=per/individual", 250)
		c.cmd("RCPT TO:<alice@example.test>", 250)
		c.cmd("DATA", 354)
		c.send("Subject: late\r\n\r\n")

		srv.session.Signal(syscall.SIGTERM)
		Consistently(srv.session, 300*time.Millisecond).ShouldNot(gexec.Exit())
		c.send("body\r\n.\r\n")
		c.expect(250)
		c.expect(421)
		Eventually(srv.session, 10*time.Second).Should(gexec.Exit(0))
		// The message is durable: delivered, or still in the spool for
		// the next start.
		Expect(len(srv.delivered("alice@example.test")) + srv.queued()).To(Equal(1))
	})
})

// loopback6Reverse is the ip6.arpa zone of ::1 alone.
const loopback6Reverse = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."

var _ = Describe("amtpd over IPv6", func() {
	It("checks the ip6.arpa PTR of ::1", func() {
		hosts, err := os.ReadFile("/etc/hosts")
		Expect(err).NotTo(HaveOccurred())
		for _, line := range strings.Split(string(hosts), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "::1" {
				Skip("/etc/hosts names ::1, so the Go resolver answers its PTR from that file instead of DNS")
			}
		}

		zone := loopback6Reverse + " 3600 IN SOA mx.example.test. hostmaster.example.test. 1 3600 600 86400 60\n" +
			loopback6Reverse + " 3600 IN PTR client6.example.test.\n"
		st := newStage(zone)
		srv := st.startAmtpd("ipv6", serverConfig{ipv6: true})
		Expect(srv.public6).To(HavePrefix("[::1]:"))

		issued, err := st.manifest.Issue(pki.IssueRequest{
			Issuer:      pki.PublicCA,
			CommonName:  "client6.example.test",
			DNSNames:    []string{"client6.example.test"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		Expect(err).NotTo(HaveOccurred())
		cert, err := issued.TLSCertificate()
		Expect(err).NotTo(HaveOccurred())

		c, err := srv.dial(srv.public6, dialOptions{cert: &cert, source: "::1"})
		Expect(err).NotTo(HaveOccurred())
		c.greet("client6.example.test")

		// The same certificate over IPv4 has no matching PTR.
		c4, err := srv.dial(srv.public, dialOptions{cert: &cert, source: "127.0.0.2"})
		Expect(err).NotTo(HaveOccurred())
		c4.expect(220)
		c4.cmd("EHLO client6.example.test", 504)
	})
})
