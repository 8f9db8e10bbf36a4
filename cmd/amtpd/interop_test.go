package main_test

import (
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

// smtplibClient sends one message with Python's smtplib over implicit TLS
// with a client certificate. It prints "sent" or the exception's class and
// SMTP code, and exits 0 either way so the test can read the outcome.
const smtplibClient = `
import smtplib, ssl, sys
host, port, ca, cert, key, source, ehlo, mpc, rcpt = sys.argv[1:10]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
msg = "From: py@example.org\r\nTo: %s\r\nSubject: from smtplib\r\n\r\nHello from smtplib.\r\n" % rcpt
options = ["MPC=" + mpc] if mpc else []
try:
    with smtplib.SMTP_SSL(host, int(port), local_hostname=ehlo, context=ctx,
                          source_address=(source, 0), timeout=10) as s:
        s.sendmail("py@example.org", [rcpt], msg, mail_options=options)
    print("sent")
except smtplib.SMTPHeloError as e:
    print("helo-error", e.smtp_code)
except smtplib.SMTPSenderRefused as e:
    print("sender-refused", e.smtp_code)
except smtplib.SMTPRecipientsRefused as e:
    print("recipients-refused", list(e.recipients.values())[0][0])
`

var _ = Describe("clients nobody here wrote", Ordered, func() {
	var (
		srv    *amtpd
		m      *pki.Manifest
		script string
	)

	BeforeAll(func() {
		st := newStage("")
		m = st.manifest
		srv = st.startAmtpd("interop", serverConfig{policy: []string{"DENY */optout"}})
		script = filepath.Join(st.dir, "send.py")
		Expect(os.WriteFile(script, []byte(smtplibClient), 0o644)).To(Succeed())
	})

	runPython := func(certName, ehlo, mpc, rcpt string) string {
		GinkgoHelper()
		entry, err := m.Cert(certName)
		Expect(err).NotTo(HaveOccurred())
		host, port, _ := strings.Cut(srv.public, ":")
		cmd := exec.Command("python3", script, host, port, caFile(m, pki.PublicCA),
			m.Path(entry.Cert), m.Path(entry.Key), entry.SourceAddr, ehlo, mpc, rcpt)
		session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred(), "python3 is required; .ci/run installs it")
		Eventually(session, 30*time.Second).Should(gexec.Exit(0))
		return strings.TrimSpace(string(session.Out.Contents()))
	}

	It("delivers a message from Python smtplib with MPC=per/individual", func() {
		Expect(runPython(pki.CertClient, "client.example.test", "per/individual", "alice@example.test")).To(Equal("sent"))
		msgs := srv.waitDelivered("alice@example.test", 1)
		Expect(msgs[0]).To(ContainSubstring("MPC: per/individual\r\n"))
		Expect(msgs[0]).To(ContainSubstring("Hello from smtplib."))
	})

	It("refuses smtplib mail without MPC with 501", func() {
		Expect(runPython(pki.CertClient, "client.example.test", "", "alice@example.test")).To(Equal("sender-refused 501"))
	})

	It("refuses smtplib mail with a denied MPC with 550", func() {
		Expect(runPython(pki.CertClient, "client.example.test", "com/optout", "alice@example.test")).To(Equal("sender-refused 550"))
	})

	It("answers smtplib's HELO fallback with 504", func() {
		// smtplib falls back to HELO when EHLO fails; both get 504.
		Expect(runPython(pki.CertPTRMismatch, "mismatch.example.test", "per/individual", "alice@example.test")).To(Equal("helo-error 504"))
	})

	It("serves a whole transaction to openssl s_client", func() {
		entry, err := m.Cert(pki.CertClient)
		Expect(err).NotTo(HaveOccurred())
		cmd := exec.Command("openssl", "s_client", "-connect", srv.public, "-bind", entry.SourceAddr+":0",
			"-cert", m.Path(entry.Cert), "-key", m.Path(entry.Key), "-CAfile", caFile(m, pki.PublicCA),
			"-verify_return_error", "-crlf", "-quiet", "-ign_eof")
		cmd.Stdin = strings.NewReader("EHLO client.example.test\nMAIL FROM:<ossl@example.org> MPC=ngo/confirmed\nRCPT TO:<bob@example.test>\nDATA\nSubject: from openssl\n\nHello from s_client.\n.\nQUIT\n")
		session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred(), "openssl is required; .ci/run installs it")
		Eventually(session, 30*time.Second).Should(gexec.Exit(0))

		out := string(session.Out.Contents())
		Expect(out).To(ContainSubstring("250-mx.example.test greets client.example.test"))
		Expect(out).To(ContainSubstring("354 "))
		Expect(out).To(ContainSubstring("250 2.0.0 OK: queued as"))
		Expect(out).To(ContainSubstring("221 2.0.0"))
		Expect(srv.waitDelivered("bob@example.test", 1)).To(ContainElement(ContainSubstring("MPC: ngo/confirmed\r\n")))
	})

	It("gives openssl s_client without a certificate no SMTP service", func() {
		cmd := exec.Command("openssl", "s_client", "-connect", srv.public, "-bind", "127.0.0.2:0",
			"-CAfile", caFile(m, pki.PublicCA), "-crlf", "-quiet", "-ign_eof")
		cmd.Stdin = strings.NewReader("EHLO client.example.test\nQUIT\n")
		session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(session, 30*time.Second).Should(gexec.Exit())
		Expect(string(session.Out.Contents())).NotTo(ContainSubstring("220 "))
		Expect(string(session.Err.Contents())).To(ContainSubstring("certificate required"))
	})
})
