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
		srv      *amtpd
		m        *pki.Manifest
		instance *postfix.Instance
		submit   string
	)

	BeforeAll(func() {
		_, err := postfix.Binary()
		Expect(err).NotTo(HaveOccurred())

		st := newStage("")
		m = st.manifest
		server, err := m.Cert(pki.CertServer)
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

		client, err := m.Cert(pki.CertClient)
		Expect(err).NotTo(HaveOccurred())
		instanceDir, err := postfix.TempDir()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, instanceDir)
		submit = freeTCPAddr()
		instance, err = postfix.StartClient(instanceDir, postfix.ClientOptions{
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
	})

	It("bounces mail that amtpd rejects for the missing MPC", func() {
		sender := "sender@" + cnOf(m, pki.CertClient)
		message := "From: " + sender + "\r\nTo: alice@example.test\r\nSubject: through Postfix\r\n\r\nHello from Postfix.\r\n"
		Expect(smtp.SendMail(submit, nil, sender, []string{"alice@example.test"}, []byte(message))).To(Succeed())

		relayHost, _, _ := strings.Cut(srv.public, ":")

		// Postfix relays at once and bounces at the first 5xx reply.
		var bounces []string
		Eventually(func() ([]string, error) {
			var err error
			bounces, err = instance.Delivered(cnOf(m, pki.CertClient), "sender")
			return bounces, err
		}, 30*time.Second, 100*time.Millisecond).Should(HaveLen(1), "Postfix mail log:\n%s", instance.Log())

		bounce := bounces[0]
		Expect(bounce).To(ContainSubstring("Subject: Undelivered Mail Returned to Sender"))
		Expect(bounce).To(ContainSubstring("<alice@example.test>: host " + relayHost + "[" + relayHost + "] said: 501 5.5.4"))
		Expect(bounce).To(ContainSubstring("(in reply to MAIL FROM command)"))
		Expect(bounce).To(ContainSubstring("\nStatus: 5.5.4\n"))
		Expect(bounce).To(ContainSubstring("\nDiagnostic-Code: smtp; 501 5.5.4 MPC parameter required\n"))
		Expect(bounce).To(ContainSubstring("Subject: through Postfix"))

		// amtpd admitted Postfix's certificate, source address and EHLO
		// name, and rejected only the MAIL command.
		Expect(srv.log()).To(MatchRegexp(`msg="identity verified" .* peer=127\.0\.0\.2:\d+ cn=client\.example\.test`))
		Expect(srv.log()).To(ContainSubstring(`msg="MAIL rejected: no MPC parameter"`))
		srv.settle()
		Expect(srv.delivered("alice@example.test")).To(BeEmpty())
		Expect(instance.Log()).To(ContainSubstring("Verified TLS connection established to " + relayHost))
	})
})
