package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// swaks and msmtp can present a client certificate over implicit TLS, but
// neither can add an MPC parameter to MAIL FROM: swaks 20201014 writes
// "MAIL FROM:<address>" with PRDR at most, and msmtp 1.8 adds only the DSN
// parameter RET. So amtpd must reject their mail for the missing MPC
// parameter, and deliver nothing.

// clientRun is one finished run of a third-party client.
type clientRun struct {
	code   int
	output string // stdout and stderr
}

// runClient runs a client command that the Debian package pkg provides and
// waits up to 30 seconds for it.
func runClient(pkg string, cmd *exec.Cmd) clientRun {
	GinkgoHelper()
	session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred(), "%s is required: install the Debian package %s with 'make deps'", cmd.Path, pkg)
	Eventually(session, 30*time.Second).Should(gexec.Exit())
	return clientRun{code: session.ExitCode(), output: string(session.Out.Contents()) + string(session.Err.Contents())}
}

var _ = Describe("swaks and msmtp against amtpd", Ordered, func() {
	var (
		srv *amtpd
		m   *pki.Manifest
	)

	BeforeAll(func() {
		st := newStage("")
		m = st.manifest
		srv = st.startAmtpd("clients", serverConfig{policy: []string{"DENY */optout"}})
	})

	// expectNothingDelivered checks that amtpd queued and delivered no
	// message for alice.
	expectNothingDelivered := func() {
		GinkgoHelper()
		srv.settle()
		Expect(srv.delivered("alice@example.test")).To(BeEmpty())
	}

	// swaks runs swaks against the public listener as the manifest
	// certificate certName (none when empty), from sourceAddr, with EHLO
	// ehlo.
	swaks := func(certName, sourceAddr, ehlo string) clientRun {
		GinkgoHelper()
		args := []string{"--server", srv.public, "--tls-on-connect", "--tls-verify", "--tls-ca-path", caFile(m, pki.PublicCA),
			"--local-interface", sourceAddr, "--helo", ehlo, "--from", "swaks@example.org", "--to", "alice@example.test",
			"--header", "Subject: from swaks", "--timeout", "10"}
		if certName != "" {
			entry, err := m.Cert(certName)
			Expect(err).NotTo(HaveOccurred())
			args = append(args, "--tls-cert", m.Path(entry.Cert), "--tls-key", m.Path(entry.Key))
		}
		return runClient("swaks", exec.Command("swaks", args...))
	}

	It("rejects swaks mail without MPC with 501", func() {
		run := swaks(pki.CertClient, "127.0.0.2", "client.example.test")

		// swaks exits 23 on an error in the MAIL transaction (swaks(1), EXIT CODES).
		Expect(run.code).To(Equal(23), run.output)
		Expect(run.output).To(ContainSubstring("TLS local DN=\"/CN=client.example.test\""))
		Expect(run.output).To(ContainSubstring("<~  250-mx.example.test greets client.example.test"))
		Expect(run.output).To(ContainSubstring(" ~> MAIL FROM:<swaks@example.org>\n<~* 501 5.5.4 MPC parameter required"))
		Expect(srv.log()).To(ContainSubstring(`msg="MAIL rejected: no MPC parameter"`))
		expectNothingDelivered()
	})

	It("answers swaks with a mismatched PTR with 504 to EHLO and HELO", func() {
		run := swaks(pki.CertPTRMismatch, "127.0.0.6", "mismatch.example.test")

		// swaks falls back from EHLO to HELO, and exits 22 on an error in
		// the HELO transaction.
		Expect(run.code).To(Equal(22), run.output)
		Expect(run.output).To(ContainSubstring(" ~> EHLO mismatch.example.test\n<~* 504 5.7.0 Authentication failed"))
		Expect(run.output).To(ContainSubstring(" ~> HELO mismatch.example.test\n<~* 504 "))
		Expect(run.output).NotTo(ContainSubstring("MAIL FROM"))
		expectNothingDelivered()
	})

	It("gives swaks without a certificate no SMTP service", func() {
		run := swaks("", "127.0.0.2", "client.example.test")

		// swaks exits 6 when the connection closes unexpectedly.
		Expect(run.code).To(Equal(6), run.output)
		Expect(run.output).To(ContainSubstring("TLS no local certificate set"))
		Expect(run.output).NotTo(ContainSubstring("<~  220 "))
		expectNothingDelivered()
	})

	// msmtp sends one message to alice through an msmtp configuration file
	// for the manifest certificate certName (none when empty).
	msmtp := func(certName string) clientRun {
		GinkgoHelper()
		host, port, _ := strings.Cut(srv.public, ":")
		config := fmt.Sprintf(`account amtp
host %s
port %s
tls on
tls_starttls off
tls_trust_file %s
tls_host_override mx.example.test
source_ip 127.0.0.2
domain client.example.test
from msmtp@example.org
auth off
timeout 10
`, host, port, caFile(m, pki.PublicCA))
		if certName != "" {
			entry, err := m.Cert(certName)
			Expect(err).NotTo(HaveOccurred())
			config += fmt.Sprintf("tls_cert_file %s\ntls_key_file %s\n", m.Path(entry.Cert), m.Path(entry.Key))
		}
		config += "account default : amtp\n"
		configPath := filepath.Join(GinkgoT().TempDir(), "msmtprc")
		Expect(os.WriteFile(configPath, []byte(config), 0o600)).To(Succeed())

		cmd := exec.Command("msmtp", "-C", configPath, "--debug", "alice@example.test")
		cmd.Stdin = strings.NewReader("Subject: from msmtp\n\nHello from msmtp.\n")
		return runClient("msmtp", cmd)
	}

	It("rejects msmtp mail without MPC with 501", func() {
		run := msmtp(pki.CertClient)

		// msmtp exits 65 (EX_DATAERR) when the server rejects the sender.
		Expect(run.code).To(Equal(65), run.output)
		Expect(run.output).To(ContainSubstring("<-- 250-mx.example.test greets client.example.test"))
		Expect(run.output).To(ContainSubstring("--> MAIL FROM:<msmtp@example.org>\r\n"))
		Expect(run.output).To(ContainSubstring("<-- 501 5.5.4 MPC parameter required"))
		Expect(run.output).To(ContainSubstring("envelope from address msmtp@example.org not accepted by the server"))
		expectNothingDelivered()
	})

	It("gives msmtp without a certificate no SMTP service", func() {
		run := msmtp("")

		// msmtp exits 74 (EX_IOERR) when the TLS connection fails.
		Expect(run.code).To(Equal(74), run.output)
		Expect(run.output).To(ContainSubstring("TLS fatal alert"))
		Expect(run.output).NotTo(ContainSubstring("<-- 220 "))
		expectNothingDelivered()
	})
})
