package main_test

import (
	"fmt"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/fixtures/postfix"
)

// relayListen is amtpd's public listener for the Postfix relay client. It
// cannot be on 127.0.0.1: Postfix listens there itself, and it refuses to
// relay to one of its own addresses ("mail loops back to myself").
const relayListen = "127.0.4.1:0"

// freeTCPAddr returns a 127.0.0.1 address whose TCP port was free a moment
// ago.
func freeTCPAddr() string {
	GinkgoHelper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer listener.Close()
	return listener.Addr().String()
}

var _ = Describe("Postfix as a relay client of amtpd", Ordered, func() {
	var (
		srv    *amtpd
		m      *pki.Manifest
		server pki.CertEntry
	)

	BeforeAll(func() {
		_, err := postfix.Binary()
		Expect(err).NotTo(HaveOccurred())

		st := newStage("")
		m = st.manifest
		server, err = m.Cert(pki.CertServer)
		Expect(err).NotTo(HaveOccurred())
		dir := filepath.Join(st.dir, "relay")
		config := fmt.Sprintf(`hostname = %q
[tls]
cert = %q
key = %q
[dns]
server = %q
timeout = "2s"
[public]
listen = [%q]
client_ca = [%q]
[policy]
mpc = ["DENY */optout"]
[[domain]]
name = %q
mailboxes = ["alice"]
[delivery]
maildir = %q
[queue]
dir = %q
[log]
level = "debug"
`, server.CN, m.Path(server.Cert), m.Path(server.Key), st.dns.Addr(), relayListen, caFile(m, pki.PublicCA),
			m.Domain, filepath.Join(dir, "maildir"), filepath.Join(dir, "spool"))
		srv = st.runAmtpd("relay", config, false, false)
	})

	// relayThroughPostfix starts a Postfix relay client with the identity
	// of the manifest certificate certName, submits one message from
	// sender@CN to alice through it, and returns the bounce that Postfix
	// delivers to the sender, its mail log, and amtpd's relay address.
	relayThroughPostfix := func(certName string) (bounce, postfixLog, relayHost string) {
		GinkgoHelper()
		client, err := m.Cert(certName)
		Expect(err).NotTo(HaveOccurred())
		instanceDir, err := postfix.TempDir()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, instanceDir)
		submit := freeTCPAddr()
		instance, err := postfix.StartClient(instanceDir, postfix.ClientOptions{
			Submit:     submit,
			Relayhost:  srv.public,
			Bind:       client.SourceAddr,
			Hostname:   client.CN,
			Cert:       m.Path(client.Cert),
			Key:        m.Path(client.Key),
			ServerCA:   caFile(m, pki.PublicCA),
			ServerName: server.CN,
			Mailboxes:  []string{"sender"},
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			AddReportEntry("Postfix mail log", instance.Log())
			Expect(instance.Stop()).To(Succeed())
		})

		sender := "sender@" + client.CN
		message := "From: " + sender + "\r\nTo: alice@example.test\r\nSubject: through Postfix\r\n\r\nHello from Postfix.\r\n"
		Expect(smtp.SendMail(submit, nil, sender, []string{"alice@example.test"}, []byte(message))).To(Succeed())

		// Postfix relays at once and bounces at the first 5xx reply.
		var bounces []string
		Eventually(func() ([]string, error) {
			var err error
			bounces, err = instance.Delivered(client.CN, "sender")
			return bounces, err
		}, 30*time.Second, 100*time.Millisecond).Should(HaveLen(1), "Postfix mail log:\n%s", instance.Log())

		relayHost, _, _ = strings.Cut(srv.public, ":")
		Expect(bounces[0]).To(ContainSubstring("Subject: Undelivered Mail Returned to Sender"))
		Expect(bounces[0]).To(ContainSubstring("<alice@example.test>: host " + relayHost + "[" + relayHost + "] "))
		Expect(bounces[0]).To(ContainSubstring("Subject: through Postfix"))
		Expect(instance.Log()).To(ContainSubstring("Verified TLS connection established to " + relayHost))
		srv.settle()
		Expect(srv.delivered("alice@example.test")).To(BeEmpty())
		return bounces[0], instance.Log(), relayHost
	}

	It("bounces mail that amtpd rejects for the missing MPC", func() {
		bounce, _, relayHost := relayThroughPostfix(pki.CertClient)

		Expect(bounce).To(ContainSubstring("[" + relayHost + "] said: 501 5.5.4"))
		Expect(bounce).To(ContainSubstring("(in reply to MAIL FROM command)"))
		Expect(bounce).To(ContainSubstring("\nStatus: 5.5.4\n"))
		Expect(bounce).To(ContainSubstring("\nDiagnostic-Code: smtp; 501 5.5.4 MPC parameter required\n"))

		// amtpd admitted Postfix's certificate, source address and EHLO
		// name, and rejected only the MAIL command.
		Expect(srv.log()).To(MatchRegexp(`msg="identity verified" .* peer=127\.0\.0\.2:\d+ cn=client\.example\.test`))
		Expect(srv.log()).To(ContainSubstring(`msg="MAIL rejected: no MPC parameter"`))
	})

	It("bounces mail from an identity whose PTR does not match", func() {
		bounce, postfixLog, relayHost := relayThroughPostfix(pki.CertPTRMismatch)

		// amtpd rejects EHLO with 504 5.7.0, Postfix falls back to HELO,
		// and amtpd rejects that with 504 5.5.1. Postfix cites only the
		// last reply.
		Expect(srv.log()).To(MatchRegexp(`msg="identity check failed" .* peer=127\.0\.0\.6:\d+ check=ptr_mismatch`))
		Expect(bounce).To(ContainSubstring("[" + relayHost + "] refused to talk to me: 504"))
		Expect(bounce).To(ContainSubstring("\nStatus: 5.5.1\n"))
		Expect(bounce).To(ContainSubstring("\nDiagnostic-Code: smtp; 504 5.5.1 HELO is not supported; use EHLO\n"))
		Expect(postfixLog).To(ContainSubstring("status=bounced (host " + relayHost + "[" + relayHost + "] refused to talk to me: 504 5.5.1"))
	})
})
