package probe_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/netip"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// caSubject returns the subject CN of the CA called name.
func caSubject(name string) string {
	GinkgoHelper()
	for _, ca := range manifest.CAs {
		if ca.Name == name {
			return ca.SubjectCN
		}
	}
	Fail("CA " + name + " is not in the PKI manifest")
	return ""
}

// dialError returns err as a *probe.DialError and fails the spec if it is
// not one.
func dialError(err error) *probe.DialError {
	GinkgoHelper()
	var dialErr *probe.DialError
	Expect(errors.As(err, &dialErr)).To(BeTrue(), "error %v is not a *probe.DialError", err)
	return dialErr
}

var _ = Describe("TLS", func() {
	It("presents a client certificate from a source", func() {
		server := startTLSServer(serverConfig(tls.RequireAndVerifyClientCert, pki.PublicCA), sendThenHold("220 mx ready\r\n"))
		client, err := manifest.Cert(pki.CertClient)
		Expect(err).NotTo(HaveOccurred())
		opts := clientOptions(server.addr, pki.CertClient)
		opts.Source = netip.MustParseAddr(client.SourceAddr)
		conn := dial(opts)

		greeting, err := conn.ReadGreeting(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(greeting.Code).To(Equal(220))

		var result handshakeResult
		Eventually(server.handshakes).Should(Receive(&result))
		Expect(result.err).NotTo(HaveOccurred())
		Expect(result.remote.Addr().String()).To(Equal(client.SourceAddr))
		Expect(result.state.PeerCertificates).NotTo(BeEmpty())
		Expect(result.state.PeerCertificates[0].Subject.CommonName).To(Equal(client.CN))

		facts := conn.TLS()
		Expect(facts.Enabled).To(BeTrue())
		Expect(facts.HandshakeComplete).To(BeTrue())
		Expect(facts.Version).To(Equal("TLS 1.3"))
		Expect(facts.VersionID).To(Equal(uint16(tls.VersionTLS13)))
		Expect(facts.CipherSuite).To(Equal(tls.CipherSuiteName(result.state.CipherSuite)))
		Expect(facts.Curve).To(Equal(result.state.CurveID.String()))
		Expect(facts.Resumed).To(BeFalse())
		Expect(facts.ServerName).To(Equal("mx." + manifest.Domain))
		Expect(facts.Verified).To(BeTrue())
		Expect(facts.VerifyError).To(BeEmpty())
		Expect(facts.HandshakeError).To(BeEmpty())
		Expect(facts.Alert).To(BeNil())

		Expect(facts.PeerCertificates).To(HaveLen(1))
		serverCert := facts.PeerCertificates[0]
		Expect(serverCert.CommonName).To(Equal("mx." + manifest.Domain))
		Expect(serverCert.Issuer).To(ContainSubstring(caSubject(pki.PublicCA)))
		Expect(serverCert.DNSNames).To(ContainElement("mx." + manifest.Domain))
		Expect(serverCert.IPAddresses).To(ContainElement("127.0.0.1"))
		Expect(serverCert.NotBefore).To(BeTemporally("<", time.Now()))
		Expect(serverCert.NotAfter).To(BeTemporally(">", time.Now()))
		Expect(serverCert.SHA256).To(HaveLen(64))

		Expect(facts.CertificateRequested).To(BeTrue())
		Expect(facts.AcceptableCAs).To(HaveLen(1))
		Expect(facts.AcceptableCAs[0]).To(ContainSubstring(caSubject(pki.PublicCA)))
		Expect(facts.ClientCertificate).NotTo(BeNil())
		Expect(facts.ClientCertificate.CommonName).To(Equal(client.CN))

		rendered := conn.Transcript().Render()
		Expect(rendered).To(ContainSubstring("* TLS handshake done: TLS 1.3, " + facts.CipherSuite))
		Expect(rendered).To(ContainSubstring(`* presenting client certificate: subject "CN=` + client.CN))
		Expect(rendered).To(ContainSubstring("S: 220 mx ready\n"))
	})

	It("sends a certificate for another CA", func() {
		server := startTLSServer(serverConfig(tls.RequireAnyClientCert, pki.PrivateCA), sendThenHold("220 mx ready\r\n"))
		conn := dial(clientOptions(server.addr, pki.CertClient))

		_, err := conn.ReadGreeting(context.Background())
		Expect(err).NotTo(HaveOccurred())

		var result handshakeResult
		Eventually(server.handshakes).Should(Receive(&result))
		Expect(result.err).NotTo(HaveOccurred())
		Expect(result.state.PeerCertificates).NotTo(BeEmpty())
		Expect(result.state.PeerCertificates[0].Subject.CommonName).To(Equal("client." + manifest.Domain))
		Expect(conn.TLS().AcceptableCAs).To(HaveLen(1))
		Expect(conn.TLS().AcceptableCAs[0]).To(ContainSubstring(caSubject(pki.PrivateCA)))
	})

	It("reports a TLS 1.3 rejection at first read", func() {
		server := startTLSServer(serverConfig(tls.RequireAndVerifyClientCert, pki.PublicCA), sendThenHold("220 mx ready\r\n"))
		conn := dial(clientOptions(server.addr, pki.CertUntrustedCA))
		Expect(conn.TLS().Version).To(Equal("TLS 1.3"))

		_, err := conn.ReadGreeting(context.Background())

		Expect(err).To(MatchError(probe.ErrClosed))
		failure := readError(err)
		Expect(failure.Alert).NotTo(BeNil())
		Expect(failure.Alert.Code).To(Equal(48))
		Expect(failure.Alert.Name).To(Equal("unknown_ca"))
		Expect(conn.TLS().Alert).To(Equal(failure.Alert))
		Expect(conn.TLS().ClientCertificate.CommonName).To(Equal("untrusted." + manifest.Domain))
		Expect(conn.Transcript().Render()).To(ContainSubstring("* TLS alert from server: unknown_ca (48)\n"))

		var result handshakeResult
		Eventually(server.handshakes).Should(Receive(&result))
		Expect(result.err).To(HaveOccurred())
	})

	It("reports certificate_required without a certificate", func() {
		server := startTLSServer(serverConfig(tls.RequireAndVerifyClientCert, pki.PublicCA), sendThenHold("220 mx ready\r\n"))
		conn := dial(clientOptions(server.addr, ""))

		_, err := conn.ReadGreeting(context.Background())

		Expect(err).To(MatchError(probe.ErrClosed))
		facts := conn.TLS()
		Expect(facts.CertificateRequested).To(BeTrue())
		Expect(facts.ClientCertificate).To(BeNil())
		Expect(facts.Alert).NotTo(BeNil())
		Expect(facts.Alert.Name).To(Equal("certificate_required"))
		Expect(conn.Transcript().Render()).To(ContainSubstring("* presenting no client certificate\n"))
	})

	It("reports a TLS 1.2 handshake alert", func() {
		server := startTLSServer(serverConfig(tls.RequireAndVerifyClientCert, pki.PublicCA), sendThenHold("220 mx ready\r\n"))
		opts := clientOptions(server.addr, pki.CertUntrustedCA)
		opts.MaxVersion = tls.VersionTLS12

		conn, err := probe.Dial(context.Background(), opts)

		Expect(conn).To(BeNil())
		dialErr := dialError(err)
		Expect(dialErr.Stage).To(Equal("tls"))
		Expect(dialErr.TLS.HandshakeComplete).To(BeFalse())
		Expect(dialErr.TLS.HandshakeError).To(ContainSubstring("unknown certificate authority"))
		Expect(dialErr.TLS.Alert).NotTo(BeNil())
		Expect(dialErr.TLS.Alert.Code).To(Equal(48))
		Expect(dialErr.TLS.Alert.Name).To(Equal("unknown_ca"))
		Expect(dialErr.TLS.PeerCertificates).To(HaveLen(1))
		rendered := dialErr.Transcript.Render()
		Expect(rendered).To(ContainSubstring("* TLS handshake failed: remote error: tls: unknown certificate authority\n"))
		Expect(rendered).To(HaveSuffix("* probe closed the connection\n"))
	})

	It("records an unverified server chain", func() {
		server := startTLSServer(serverConfig(tls.NoClientCert, ""), sendThenHold("220 mx ready\r\n"))
		opts := clientOptions(server.addr, "")
		var err error
		opts.RootCAs, err = manifest.CAPool(pki.UntrustedCA)
		Expect(err).NotTo(HaveOccurred())

		_, err = probe.Dial(context.Background(), opts)

		var verifyErr *tls.CertificateVerificationError
		Expect(errors.As(err, &verifyErr)).To(BeTrue())
		dialErr := dialError(err)
		Expect(dialErr.TLS.Verified).To(BeFalse())
		Expect(dialErr.TLS.VerifyError).To(ContainSubstring("unknown authority"))
		Expect(dialErr.TLS.PeerCertificates).To(HaveLen(1))
		Expect(dialErr.TLS.PeerCertificates[0].CommonName).To(Equal("mx." + manifest.Domain))
		Expect(dialErr.Transcript.Render()).To(ContainSubstring("* server certificate chain failed verification: "))
	})

	It("rejects a wrong server name", func() {
		server := startTLSServer(serverConfig(tls.NoClientCert, ""), sendThenHold("220 mx ready\r\n"))
		opts := clientOptions(server.addr, "")
		opts.ServerName = "other." + manifest.Domain

		_, err := probe.Dial(context.Background(), opts)

		dialErr := dialError(err)
		Expect(dialErr.TLS.ServerName).To(Equal("other." + manifest.Domain))
		Expect(dialErr.TLS.VerifyError).To(ContainSubstring("other." + manifest.Domain))
	})

	It("records the chain with InsecureSkipVerify", func() {
		server := startTLSServer(serverConfig(tls.NoClientCert, ""), sendThenHold("220 mx ready\r\n"))
		opts := clientOptions(server.addr, "")
		opts.RootCAs = nil
		opts.InsecureSkipVerify = true
		conn := dial(opts)

		facts := conn.TLS()
		Expect(facts.HandshakeComplete).To(BeTrue())
		Expect(facts.Verified).To(BeFalse())
		Expect(facts.PeerCertificates).To(HaveLen(1))
		Expect(facts.CertificateRequested).To(BeFalse())
		Expect(conn.Transcript().Render()).To(ContainSubstring("* server certificate chain not verified: InsecureSkipVerify is set\n"))
	})

	It("resumes a TLS 1.3 session", func() {
		server := startTLSServer(serverConfig(tls.RequireAndVerifyClientCert, pki.PublicCA), sendThenHold("220 mx ready\r\n"))
		opts := clientOptions(server.addr, pki.CertClient)
		opts.SessionCache = tls.NewLRUClientSessionCache(4)

		first := dial(opts)
		_, err := first.ReadGreeting(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(first.TLS().Resumed).To(BeFalse())
		Expect(first.Close()).To(Succeed())

		second := dial(opts)
		_, err = second.ReadGreeting(context.Background())
		Expect(err).NotTo(HaveOccurred())
		facts := second.TLS()
		Expect(facts.Resumed).To(BeTrue())
		Expect(facts.Version).To(Equal("TLS 1.3"))
		Expect(facts.Verified).To(BeTrue())
		Expect(facts.PeerCertificates).To(HaveLen(1))
		Expect(facts.CertificateRequested).To(BeFalse())
		Expect(second.Transcript().Render()).To(ContainSubstring(", resumed session\n"))
	})

	It("records a cleartext server's bytes", func() {
		server := startServer("127.0.0.1:0", sendThenHold("220 cleartext.example.test ESMTP\r\n"))

		_, err := probe.Dial(context.Background(), clientOptions(server.addr, pki.CertClient))

		dialErr := dialError(err)
		Expect(dialErr.Stage).To(Equal("tls"))
		Expect(dialErr.TLS.HandshakeError).NotTo(BeEmpty())
		Expect(dialErr.Transcript.Render()).To(MatchRegexp(`\* received \d+ bytes? from the server during the handshake, starting with: 220 c`))
	})

	It("times out a silent handshake", func() {
		server := startServer("127.0.0.1:0", hold)
		opts := clientOptions(server.addr, pki.CertClient)
		opts.StepTimeout = 300 * time.Millisecond

		start := time.Now()
		_, err := probe.Dial(context.Background(), opts)

		Expect(err).To(MatchError(probe.ErrTimeout))
		Expect(dialError(err).Stage).To(Equal("tls"))
		Expect(time.Since(start)).To(BeNumerically("<", time.Second))
	})

	It("sends cleartext in plain TCP mode", func() {
		server := startTLSServer(serverConfig(tls.NoClientCert, ""), hold)
		conn := dial(plainOptions(server.addr, time.Second))

		Expect(conn.SendLine("EHLO client.example.test")).To(Succeed())
		closed, err := conn.ExpectClose(context.Background())

		Expect(err).NotTo(HaveOccurred())
		Expect(closed).To(BeTrue())
		Expect(conn.TLS().Enabled).To(BeFalse())
		var result handshakeResult
		Eventually(server.handshakes).Should(Receive(&result))
		Expect(result.err).To(HaveOccurred())
	})

	It("round-trips TLS facts through JSON", func() {
		server := startTLSServer(serverConfig(tls.RequireAndVerifyClientCert, pki.PublicCA), sendThenHold("220 mx ready\r\n"))
		conn := dial(clientOptions(server.addr, pki.CertClient))

		encoded, err := json.Marshal(conn.TLS())
		Expect(err).NotTo(HaveOccurred())
		var decoded probe.TLSFacts
		Expect(json.Unmarshal(encoded, &decoded)).To(Succeed())
		reencoded, err := json.Marshal(decoded)
		Expect(err).NotTo(HaveOccurred())

		Expect(reencoded).To(MatchJSON(encoded))
		Expect(decoded.PeerCertificates[0].CommonName).To(Equal("mx." + manifest.Domain))
		Expect(string(encoded)).To(ContainSubstring(`"version":"TLS 1.3"`))
	})
})

var _ = Describe("ReadReply over TLS", func() {
	It("records control bytes and invalid UTF-8 readably", func() {
		server := startTLSServer(serverConfig(tls.NoClientCert, ""), sendThenHold("220\x00\xff junk\r\n"))
		conn := dial(clientOptions(server.addr, ""))

		reply, err := conn.ReadGreeting(context.Background())

		Expect(err).To(MatchError(probe.ErrMalformedReply))
		Expect(reply.Code).To(Equal(220))
		Expect(reply.Defects).To(HaveLen(1))
		Expect(reply.Defects[0].Kind).To(Equal(probe.DefectMissingSeparator))
		Expect(string(reply.Raw)).To(Equal("220\x00\xff junk\r\n"))
		Expect(conn.Transcript().Render()).To(ContainSubstring("S: 220\\x00\\xff junk\n"))
	})
})
