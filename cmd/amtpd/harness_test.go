package main_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// ioTimeout bounds every read and write of the test client.
const ioTimeout = 10 * time.Second

// stage is a PKI, a zone served by a DNS server on loopback, and a folder
// for amtpd configurations and Maildirs, shared by the servers of one
// Describe block.
type stage struct {
	dir      string
	manifest *pki.Manifest
	dns      *dnsserver.Server
}

// newStage writes a PKI into a temporary folder and serves its zone, plus
// extraZone (master file text), on 127.0.0.1.
func newStage(extraZone string) *stage {
	dir := GinkgoT().TempDir()
	m, err := pki.Init(pki.Options{Dir: filepath.Join(dir, "pki")})
	Expect(err).NotTo(HaveOccurred())

	zonePath := m.Path(m.ZoneFile)
	if extraZone != "" {
		f, err := os.OpenFile(zonePath, os.O_APPEND|os.O_WRONLY, 0)
		Expect(err).NotTo(HaveOccurred())
		_, err = f.WriteString("\n" + extraZone + "\n")
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Close()).To(Succeed())
	}
	zone, err := dnsserver.LoadZone(zonePath)
	Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	dns, err := dnsserver.Start(ctx, "127.0.0.1:0", zone, nil)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(dns.Close)

	return &stage{dir: dir, manifest: m, dns: dns}
}

// amtpd is one running amtpd process.
type amtpd struct {
	session *gexec.Session
	public  string // host:port of the first public listener
	public6 string // host:port of the IPv6 public listener, if configured
	private string // host:port of the private listener, if configured
	maildir string
	spool   string
	config  string
	name    string // the server certificate's DNS name
	stage   *stage
}

// serverConfig holds the parts of the amtpd configuration that tests vary.
type serverConfig struct {
	policy     []string
	recipients string // extra [[policy.recipient]] tables
	limits     string // lines of the [limits] table
	queue      string // lines of the [queue] table
	private    bool
	ipv6       bool
}

// startAmtpd writes a configuration for s, starts amtpd with it and waits
// until it listens.
func (s *stage) startAmtpd(name string, sc serverConfig) *amtpd {
	dir := filepath.Join(s.dir, name)
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	m := s.manifest

	publicCA := caFile(m, pki.PublicCA)
	listen := `"127.0.0.1:0"`
	if sc.ipv6 {
		listen += `, "[::1]:0"`
	}

	certEntry, err := m.Cert(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())

	var b strings.Builder
	fmt.Fprintf(&b, "hostname = %q\n", "mx."+m.Domain)
	fmt.Fprintf(&b, "[tls]\ncert = %q\nkey = %q\n", m.Path(certEntry.Cert), m.Path(certEntry.Key))
	fmt.Fprintf(&b, "[dns]\nserver = %q\ntimeout = \"2s\"\n", s.dns.Addr())
	fmt.Fprintf(&b, "[public]\nlisten = [%s]\nclient_ca = [%q]\n", listen, publicCA)
	if sc.private {
		fmt.Fprintf(&b, "[private]\nlisten = [\"127.0.0.1:0\"]\nclient_ca = [%q]\nusers = %q\n", caFile(m, pki.PrivateCA), m.Path(m.UsersFile))
	}
	fmt.Fprintf(&b, "[policy]\nmpc = [%s]\n", quoteList(sc.policy))
	b.WriteString(sc.recipients + "\n")
	fmt.Fprintf(&b, "[[domain]]\nname = %q\nmailboxes = [\"alice\", \"bob\", \"carol\", \"ringo\", \"locked\"]\n", m.Domain)
	fmt.Fprintf(&b, "[delivery]\nmaildir = %q\n", filepath.Join(dir, "maildir"))
	fmt.Fprintf(&b, "[queue]\ndir = %q\n%s\n", filepath.Join(dir, "spool"), sc.queue)
	fmt.Fprintf(&b, "[limits]\n%s\n", sc.limits)
	fmt.Fprintf(&b, "[log]\nlevel = \"debug\"\n")

	return s.runAmtpd(name, b.String(), sc.ipv6, sc.private)
}

// runAmtpd writes configText as the configuration of a server called name,
// starts amtpd with it and waits until it listens. The configuration must
// put the Maildir and the spool in the folder of that name.
func (s *stage) runAmtpd(name, configText string, ipv6, private bool) *amtpd {
	dir := filepath.Join(s.dir, name)
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	configPath := filepath.Join(dir, "amtpd.toml")
	Expect(os.WriteFile(configPath, []byte(configText), 0o644)).To(Succeed())

	cmd := exec.Command(amtpdPath, "--config", configPath)
	session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		session.Terminate()
		Eventually(session, 15*time.Second).Should(gexec.Exit())
	})

	srv := &amtpd{session: session, maildir: filepath.Join(dir, "maildir"), spool: filepath.Join(dir, "spool"), stage: s, config: configPath}
	Eventually(session.Out, 10*time.Second).Should(gbytes.Say(`amtpd: public listener on`))
	want := 1
	if ipv6 {
		want++
	}
	if private {
		want++
	}
	Eventually(func() int { return len(listenerLines(session.Out.Contents())) }, 5*time.Second).Should(Equal(want))
	for _, l := range listenerLines(session.Out.Contents()) {
		switch {
		case l[1] == "private":
			srv.private = l[2]
		case strings.HasPrefix(l[2], "["):
			srv.public6 = l[2]
		default:
			srv.public = l[2]
		}
	}
	return srv
}

var listenerLine = regexp.MustCompile(`amtpd: (public|private) listener on (\S+)`)

func listenerLines(out []byte) [][]string {
	return listenerLine.FindAllStringSubmatch(string(out), -1)
}

func caFile(m *pki.Manifest, name string) string {
	for _, ca := range m.CAs {
		if ca.Name == name {
			return m.Path(ca.Cert)
		}
	}
	Fail("CA " + name + " not in manifest")
	return ""
}

func quoteList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = strconv.Quote(s)
	}
	return strings.Join(quoted, ", ")
}

// log returns what amtpd has written to stderr so far.
func (a *amtpd) log() string {
	return string(a.session.Err.Contents())
}

// delivered returns the contents of every file in the Maildir new/ folder
// of recipient.
func (a *amtpd) delivered(recipient string) []string {
	local, domain, _ := strings.Cut(strings.ToLower(recipient), "@")
	entries, err := os.ReadDir(filepath.Join(a.maildir, domain, local, "new"))
	if os.IsNotExist(err) {
		return nil
	}
	Expect(err).NotTo(HaveOccurred())
	var msgs []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(a.maildir, domain, local, "new", e.Name()))
		Expect(err).NotTo(HaveOccurred())
		msgs = append(msgs, string(data))
	}
	return msgs
}

// waitDelivered waits until recipient has at least n messages in its
// Maildir and returns them. Delivery runs from the queue, after the 250
// reply.
func (a *amtpd) waitDelivered(recipient string, n int) []string {
	GinkgoHelper()
	Eventually(func() []string { return a.delivered(recipient) }, 10*time.Second, 20*time.Millisecond).Should(HaveLen(n))
	return a.delivered(recipient)
}

// settle waits until the queue is empty, so that a Maildir check after it
// finds every delivery of the messages accepted so far.
func (a *amtpd) settle() {
	GinkgoHelper()
	Eventually(a.queued, 10*time.Second, 20*time.Millisecond).Should(BeZero())
}

// queued returns the number of messages in the spool.
func (a *amtpd) queued() int {
	entries, err := os.ReadDir(filepath.Join(a.spool, "msg"))
	if os.IsNotExist(err) {
		return 0
	}
	Expect(err).NotTo(HaveOccurred())
	return len(entries)
}

// client is a test AMTP client over a raw TLS connection, able to send any
// bytes.
type client struct {
	conn *tls.Conn
	r    *bufio.Reader
}

// dialOptions select the identity and TLS behaviour of a client.
type dialOptions struct {
	cert       *tls.Certificate // nil: present no certificate
	source     string           // source IP address, "" for any
	cache      tls.ClientSessionCache
	maxVersion uint16
}

// issueFromCA returns a client certificate for cn signed by the manifest
// CA caName, with a new ECDSA key. Each change edits the template before
// it is signed, so a test can present certificates that pki.Manifest.Issue
// cannot make.
func issueFromCA(m *pki.Manifest, caName, cn string, changes ...func(*x509.Certificate)) tls.Certificate {
	GinkgoHelper()
	var entry *pki.CAEntry
	for i := range m.CAs {
		if m.CAs[i].Name == caName {
			entry = &m.CAs[i]
		}
	}
	Expect(entry).NotTo(BeNil(), "CA %q is not in the manifest", caName)
	ca, err := tls.LoadX509KeyPair(m.Path(entry.Cert), m.Path(entry.Key))
	Expect(err).NotTo(HaveOccurred())

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, change := range changes {
		change(template)
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.Leaf, key.Public(), ca.PrivateKey)
	Expect(err).NotTo(HaveOccurred())
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// dialAs connects from the source address of the manifest certificate
// certName and presents that certificate.
func (a *amtpd) dialAs(certName string) *client {
	c, err := a.tryDialAs(certName, a.public)
	Expect(err).NotTo(HaveOccurred())
	return c
}

func (a *amtpd) tryDialAs(certName, addr string) (*client, error) {
	m := a.stage.manifest
	entry, err := m.Cert(certName)
	Expect(err).NotTo(HaveOccurred())
	cert, err := m.TLSCertificate(certName)
	Expect(err).NotTo(HaveOccurred())
	return a.dial(addr, dialOptions{cert: &cert, source: entry.SourceAddr})
}

// dial connects to addr and reads nothing yet.
func (a *amtpd) dial(addr string, opts dialOptions) (*client, error) {
	m := a.stage.manifest
	roots, err := m.CAPool(pki.PublicCA)
	Expect(err).NotTo(HaveOccurred())

	dialer := &net.Dialer{Timeout: ioTimeout}
	if opts.source != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(opts.source)}
	}
	cfg := &tls.Config{
		RootCAs:            roots,
		ServerName:         a.serverName(),
		ClientSessionCache: opts.cache,
		MaxVersion:         opts.maxVersion,
		// Always present the chosen certificate, even when the server
		// names CAs that did not sign it.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if opts.cert == nil {
				return &tls.Certificate{}, nil
			}
			return opts.cert, nil
		},
	}
	raw, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	conn.SetDeadline(time.Now().Add(ioTimeout))
	if err := conn.Handshake(); err != nil {
		conn.Close()
		return nil, err
	}
	c := &client{conn: conn, r: bufio.NewReader(conn)}
	DeferCleanup(func() { conn.Close() })
	return c, nil
}

func (a *amtpd) serverName() string {
	if a.name != "" {
		return a.name
	}
	return "mx." + a.stage.manifest.Domain
}

// reply reads one reply and returns its code and the text of each line.
func (c *client) reply() (int, []string, error) {
	c.conn.SetDeadline(time.Now().Add(ioTimeout))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, lines, err
		}
		if len(line) < 5 || !strings.HasSuffix(line, "\r\n") {
			return 0, lines, fmt.Errorf("malformed reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, lines, fmt.Errorf("malformed reply code in %q", line)
		}
		lines = append(lines, strings.TrimRight(line[4:], "\r\n"))
		if line[3] == ' ' {
			return code, lines, nil
		}
	}
}

// expect reads one reply and fails unless it has the given code. It
// returns the reply text.
func (c *client) expect(code int) string {
	GinkgoHelper()
	got, lines, err := c.reply()
	Expect(err).NotTo(HaveOccurred())
	Expect(got).To(Equal(code), "reply %q", strings.Join(lines, " / "))
	return strings.Join(lines, "\n")
}

// send writes raw bytes.
func (c *client) send(data string) {
	GinkgoHelper()
	c.conn.SetDeadline(time.Now().Add(ioTimeout))
	_, err := c.conn.Write([]byte(data))
	Expect(err).NotTo(HaveOccurred())
}

// cmd sends one command line and checks the reply code.
func (c *client) cmd(line string, code int) string {
	GinkgoHelper()
	c.send(line + "\r\n")
	return c.expect(code)
}

// greet reads the greeting and sends EHLO with the certificate's CN.
func (c *client) greet(ehlo string) string {
	GinkgoHelper()
	c.expect(220)
	return c.cmd("EHLO "+ehlo, 250)
}

// sendMessage runs one mail transaction and returns the final reply code.
func (c *client) sendMessage(from, mpcValue string, rcpts []string, body string) int {
	GinkgoHelper()
	c.cmd(fmt.Sprintf("MAIL FROM:<%s> MPC=%s", from, mpcValue), 250)
	for _, r := range rcpts {
		c.cmd("RCPT TO:<"+r+">", 250)
	}
	c.cmd("DATA", 354)
	c.send(body)
	code, _, err := c.reply()
	Expect(err).NotTo(HaveOccurred())
	return code
}

// peerCN returns the CN of the manifest certificate name.
func cnOf(m *pki.Manifest, name string) string {
	GinkgoHelper()
	e, err := m.Cert(name)
	Expect(err).NotTo(HaveOccurred())
	return e.CN
}

func b64(s string) string {
	return base64.StdEncoding.EncodeToString([]byte(s))
}
