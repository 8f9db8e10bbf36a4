package sink_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/sink"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// client is a test client of the sink with a 5-second deadline on each
// step.
type client struct {
	conn   net.Conn
	reader *bufio.Reader
}

func dialSink(s *sink.Server, m *pki.Manifest, certName string) *client {
	roots, err := m.CAPool(pki.PublicCA)
	Expect(err).NotTo(HaveOccurred())
	cfg := &tls.Config{RootCAs: roots, ServerName: s.Hostname()}
	if certName != "" {
		cert, err := m.TLSCertificate(certName)
		Expect(err).NotTo(HaveOccurred())
		cfg.Certificates = []tls.Certificate{cert}
	}
	conn, err := tls.Dial("tcp", s.Addr().String(), cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(conn.Close)
	c := &client{conn: conn, reader: bufio.NewReader(conn)}
	Expect(c.read()).To(HavePrefix("220 "))
	return c
}

// dialPlain connects to a plain-text sink without TLS.
func dialPlain(s *sink.Server) *client {
	conn, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(conn.Close)
	c := &client{conn: conn, reader: bufio.NewReader(conn)}
	Expect(c.read()).To(HavePrefix("220 "))
	return c
}

// read returns the lines of one reply joined by "\n".
func (c *client) read() string {
	var lines []string
	for range 100 {
		Expect(c.conn.SetDeadline(time.Now().Add(5 * time.Second))).To(Succeed())
		line, err := c.reader.ReadString('\n')
		Expect(err).NotTo(HaveOccurred())
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	return strings.Join(lines, "\n")
}

func (c *client) cmd(line string) string {
	Expect(c.conn.SetDeadline(time.Now().Add(5 * time.Second))).To(Succeed())
	_, err := c.conn.Write([]byte(line + "\r\n"))
	Expect(err).NotTo(HaveOccurred())
	return c.read()
}

var _ = Describe("Sink", func() {
	var (
		manifest *pki.Manifest
		host     string
	)

	BeforeEach(func() {
		var err error
		manifest, err = pki.Init(pki.Options{Dir: filepath.Join(GinkgoT().TempDir(), "pki")})
		Expect(err).NotTo(HaveOccurred())
		host = "sink." + manifest.Domain
	})

	start := func(cfg sink.Config) *sink.Server {
		cert, err := sink.IssueCertificate(manifest, pki.PublicCA, host, netip.MustParseAddr("127.0.0.1"))
		Expect(err).NotTo(HaveOccurred())
		cfg.Certificate = cert
		cfg.Hostname = host
		s, err := sink.Start(cfg)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
		return s
	}

	It("records a transaction as sent", func() {
		s := start(sink.Config{MPCLines: []string{"MPC DENY=*/optout"}})
		c := dialSink(s, manifest, pki.CertClient)

		ehlo := c.cmd("EHLO relay.example.test")
		Expect(ehlo).To(HavePrefix("250-" + host))
		Expect(ehlo).To(ContainSubstring("\n250-MPC DENY=*/optout\n"))
		Expect(c.cmd("MAIL FROM:<a@example.test> MPC=NGO/Confirmed BODY=8BITMIME")).To(HavePrefix("250 "))
		Expect(c.cmd("RCPT TO:<someone@" + host + ">")).To(HavePrefix("250 "))
		Expect(c.cmd("DATA")).To(HavePrefix("354 "))
		Expect(c.cmd("Subject: x\r\n\r\n..leading dot\r\nlast\r\n.")).To(HavePrefix("250 "))

		transactions := s.Transactions()
		Expect(transactions).To(HaveLen(1))
		tx := transactions[0]
		Expect(tx.EHLO).To(Equal("relay.example.test"))
		Expect(tx.ReversePath).To(Equal("a@example.test"))
		Expect(tx.MailParameters).To(Equal([]string{"MPC=NGO/Confirmed", "BODY=8BITMIME"}))
		value, ok := tx.MailParameter("mpc")
		Expect(ok).To(BeTrue())
		Expect(value).To(Equal("NGO/Confirmed"))
		Expect(tx.Recipients).To(Equal([]string{"someone@" + host}))
		Expect(string(tx.Data)).To(Equal("Subject: x\r\n\r\n.leading dot\r\nlast\r\n"))
		client, err := manifest.Cert(pki.CertClient)
		Expect(err).NotTo(HaveOccurred())
		Expect(tx.ClientCN).To(Equal(client.CN))
		Expect(tx.Source.Addr().IsLoopback()).To(BeTrue())
	})

	It("records the client chain and the session's commands", func() {
		s := start(sink.Config{})
		c := dialSink(s, manifest, pki.CertClient)
		Expect(c.cmd("NOOP")).To(HavePrefix("250 "))
		Expect(c.cmd("EHLO relay.example.test")).To(HavePrefix("250"))
		Expect(c.cmd("MAIL FROM:<a@example.test> MPC=ngo/optin")).To(HavePrefix("250 "))
		Expect(c.cmd("RCPT TO:<someone@" + host + ">")).To(HavePrefix("250 "))
		Expect(c.cmd("DATA")).To(HavePrefix("354 "))
		Expect(c.cmd("x\r\n.")).To(HavePrefix("250 "))
		Expect(c.cmd("QUIT")).To(HavePrefix("221 "))

		tx := s.Transactions()[0]
		Expect(tx.Commands).To(Equal([]string{"NOOP", "EHLO relay.example.test", "MAIL FROM:<a@example.test> MPC=ngo/optin", "RCPT TO:<someone@" + host + ">", "DATA"}))
		Expect(tx.ClientChain).NotTo(BeEmpty())
		roots, err := manifest.CAPool(pki.PublicCA)
		Expect(err).NotTo(HaveOccurred())
		_, err = tx.ClientChain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		Expect(err).NotTo(HaveOccurred())

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		record, err := s.WaitSession(ctx, func(r sink.SessionRecord) bool { return len(r.Commands) > 0 })
		Expect(err).NotTo(HaveOccurred())
		Expect(record.Commands).To(HaveLen(6))
		Expect(record.Commands[5]).To(Equal("QUIT"))
		Expect(record.ClientCN).To(Equal(tx.ClientCN))
	})

	It("records a session that quits before MAIL", func() {
		s := start(sink.Config{MPCLines: []string{"MPC DENY=*/optout"}})
		c := dialSink(s, manifest, pki.CertClient)
		Expect(c.cmd("EHLO relay.example.test")).To(HavePrefix("250"))
		Expect(c.cmd("QUIT")).To(HavePrefix("221 "))

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		record, err := s.WaitSession(ctx, func(sink.SessionRecord) bool { return true })
		Expect(err).NotTo(HaveOccurred())
		Expect(record.Commands).To(Equal([]string{"EHLO relay.example.test", "QUIT"}))
		Expect(s.Transactions()).To(BeEmpty())
	})

	It("speaks plain SMTP without a certificate when asked", func() {
		s, err := sink.Start(sink.Config{PlainText: true, Hostname: "gateway.example.test"})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
		c := dialPlain(s)
		Expect(c.cmd("EHLO relay.example.test")).To(HavePrefix("250-gateway.example.test"))
		Expect(c.cmd("MAIL FROM:<a@example.test>")).To(HavePrefix("250 "))
		Expect(c.cmd("RCPT TO:<someone@gateway.example.test>")).To(HavePrefix("250 "))
		Expect(c.cmd("DATA")).To(HavePrefix("354 "))
		Expect(c.cmd("MPC: com/confirmed\r\nSubject: x\r\n\r\nbody\r\n.")).To(HavePrefix("250 "))

		tx := s.Transactions()[0]
		Expect(string(tx.Data)).To(HavePrefix("MPC: com/confirmed\r\n"))
		Expect(tx.ClientChain).To(BeEmpty())
		Expect(tx.ClientCN).To(BeEmpty())
	})

	It("serves a certificate that chains to the public CA for its name and address", func() {
		s := start(sink.Config{})
		roots, err := manifest.CAPool(pki.PublicCA)
		Expect(err).NotTo(HaveOccurred())
		for _, name := range []string{host, "127.0.0.1"} {
			conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: roots, ServerName: name})
			Expect(err).NotTo(HaveOccurred(), "server name %s", name)
			leaf := conn.ConnectionState().PeerCertificates[0]
			Expect(leaf.ExtKeyUsage).To(ContainElement(x509.ExtKeyUsageServerAuth))
			conn.Close()
		}
	})

	It("records the null reverse-path and no client certificate", func() {
		s := start(sink.Config{})
		c := dialSink(s, manifest, "")
		Expect(c.cmd("EHLO relay.example.test")).To(HavePrefix("250"))
		Expect(c.cmd("MAIL FROM:<> MPC=net/autoresponse")).To(HavePrefix("250 "))
		Expect(c.cmd("RCPT TO:<someone@" + host + ">")).To(HavePrefix("250 "))
		Expect(c.cmd("DATA")).To(HavePrefix("354 "))
		Expect(c.cmd("Subject: bounce\r\n\r\nbody\r\n.")).To(HavePrefix("250 "))

		tx := s.Transactions()[0]
		Expect(tx.ReversePath).To(BeEmpty())
		Expect(tx.ClientCN).To(BeEmpty())
	})

	It("sends the configured reply to RCPT", func() {
		s := start(sink.Config{RCPTReply: "550 5.7.1 No mail accepted here"})
		c := dialSink(s, manifest, pki.CertClient)
		Expect(c.cmd("EHLO relay.example.test")).To(HavePrefix("250"))
		Expect(c.cmd("MAIL FROM:<a@example.test>")).To(HavePrefix("250 "))
		Expect(c.cmd("RCPT TO:<someone@" + host + ">")).To(Equal("550 5.7.1 No mail accepted here"))
		Expect(c.cmd("DATA")).To(HavePrefix("503 "))
		Expect(s.Transactions()).To(BeEmpty())
	})

	It("rejects a line over the limit and a message over the size limit", func() {
		s := start(sink.Config{MaxLineLength: 100, MaxMessageSize: 50})
		c := dialSink(s, manifest, pki.CertClient)
		Expect(c.cmd("EHLO " + strings.Repeat("a", 200))).To(HavePrefix("500 "))
		Expect(c.cmd("EHLO relay.example.test")).To(HavePrefix("250"))
		Expect(c.cmd("MAIL FROM:<a@example.test>")).To(HavePrefix("250 "))
		Expect(c.cmd("RCPT TO:<someone@" + host + ">")).To(HavePrefix("250 "))
		Expect(c.cmd("DATA")).To(HavePrefix("354 "))
		Expect(c.cmd(strings.Repeat("b\r\n", 40) + ".")).To(HavePrefix("552 "))
		Expect(s.Transactions()).To(BeEmpty())
	})

	It("closes an idle session after the command timeout", func() {
		s := start(sink.Config{CommandTimeout: 200 * time.Millisecond})
		c := dialSink(s, manifest, pki.CertClient)
		Expect(c.conn.SetDeadline(time.Now().Add(5 * time.Second))).To(Succeed())
		_, err := c.reader.ReadString('\n')
		Expect(err).To(HaveOccurred())
	})

	It("wakes a waiter for a matching transaction", func() {
		s := start(sink.Config{})
		found := make(chan sink.Transaction, 1)
		go func() {
			defer GinkgoRecover()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tx, err := s.Wait(ctx, func(t sink.Transaction) bool { return t.ReversePath == "b@example.test" })
			Expect(err).NotTo(HaveOccurred())
			found <- tx
		}()
		c := dialSink(s, manifest, pki.CertClient)
		Expect(c.cmd("EHLO relay.example.test")).To(HavePrefix("250"))
		Expect(c.cmd("MAIL FROM:<b@example.test>")).To(HavePrefix("250 "))
		Expect(c.cmd("RCPT TO:<someone@" + host + ">")).To(HavePrefix("250 "))
		Expect(c.cmd("DATA")).To(HavePrefix("354 "))
		Expect(c.cmd("x\r\n.")).To(HavePrefix("250 "))
		Eventually(found, 5*time.Second).Should(Receive(HaveField("ReversePath", "b@example.test")))
	})

	It("times out a wait without a match", func() {
		s := start(sink.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := s.Wait(ctx, func(sink.Transaction) bool { return true })
		Expect(err).To(MatchError(context.DeadlineExceeded))
	})
})
