package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
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
	"github.com/amtp-toolkit/amtp/reference/client"
)

// testTimeout bounds every step of the client in tests, so a hung server
// fails a spec in seconds rather than minutes.
const testTimeout = 10 * time.Second

// stage is a PKI and its zone, served by a DNS server on 127.0.0.1, plus a
// folder for amtpd configurations and Maildirs.
type stage struct {
	dir      string
	manifest *pki.Manifest
	dns      *dnsserver.Server
	zoneText string
}

// newStage writes a PKI into a temporary folder and serves its zone plus
// extraZone (master file text) on 127.0.0.1.
func newStage(extraZone string) *stage {
	dir := GinkgoT().TempDir()
	m, err := pki.Init(pki.Options{Dir: filepath.Join(dir, "pki")})
	Expect(err).NotTo(HaveOccurred())

	text, err := os.ReadFile(m.Path(m.ZoneFile))
	Expect(err).NotTo(HaveOccurred())
	st := &stage{dir: dir, manifest: m, zoneText: string(text) + "\n" + extraZone + "\n"}

	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	st.dns, err = dnsserver.Start(ctx, "127.0.0.1:0", st.parseZone(), nil)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(st.dns.Close)
	return st
}

func (s *stage) parseZone() *dnsserver.Zone {
	zone, err := dnsserver.ParseZone(strings.NewReader(s.zoneText), "", "test zone")
	Expect(err).NotTo(HaveOccurred())
	return zone
}

// pointSRVAt rewrites the port of the _amtp._tcp SRV record of the PKI
// domain to the port of a running amtpd.
func (s *stage) pointSRVAt(hostPort string) {
	_, port, found := strings.Cut(hostPort, "127.0.0.1:")
	Expect(found).To(BeTrue(), "amtpd address %q", hostPort)
	record := regexp.MustCompile(`(?m)^(_amtp\._tcp\.` + regexp.QuoteMeta(s.manifest.Domain) + `\.\s+IN\s+SRV\s+\d+\s+\d+\s+)\d+`)
	rewritten := record.ReplaceAllString(s.zoneText, "${1}"+port)
	Expect(rewritten).NotTo(Equal(s.zoneText), "no SRV record for %s in the zone", s.manifest.Domain)
	s.zoneText = rewritten
	s.dns.SetZone(s.parseZone())
}

// amtpd is one running amtpd process.
type amtpd struct {
	session *gexec.Session
	public  string // host:port of the public listener
	private string // host:port of the private listener, if configured
	maildir string
}

// serverConfig holds the parts of the amtpd configuration that tests vary.
type serverConfig struct {
	policy     []string
	recipients string // extra [[policy.recipient]] tables
	private    bool
}

var listenerLine = regexp.MustCompile(`amtpd: (public|private) listener on (\S+)`)

// startAmtpd writes a configuration, starts amtpd with it and waits until
// it listens on 127.0.0.1.
func (s *stage) startAmtpd(name string, sc serverConfig) *amtpd {
	dir := filepath.Join(s.dir, name)
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	m := s.manifest

	server, err := m.Cert(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())

	var b strings.Builder
	fmt.Fprintf(&b, "hostname = %q\n", server.CN)
	fmt.Fprintf(&b, "[tls]\ncert = %q\nkey = %q\n", m.Path(server.Cert), m.Path(server.Key))
	fmt.Fprintf(&b, "[dns]\nserver = %q\ntimeout = \"2s\"\n", s.dns.Addr())
	fmt.Fprintf(&b, "[public]\nlisten = [\"127.0.0.1:0\"]\nclient_ca = [%q]\n", caFile(m, pki.PublicCA))
	if sc.private {
		fmt.Fprintf(&b, "[private]\nlisten = [\"127.0.0.1:0\"]\nclient_ca = [%q]\nusers = %q\n", caFile(m, pki.PrivateCA), m.Path(m.UsersFile))
	}
	fmt.Fprintf(&b, "[policy]\nmpc = [%s]\n", quoteList(sc.policy))
	b.WriteString(sc.recipients + "\n")
	fmt.Fprintf(&b, "[[domain]]\nname = %q\nmailboxes = [\"alice\", \"bob\", \"carol\", \"ringo\"]\n", m.Domain)
	fmt.Fprintf(&b, "[delivery]\nmaildir = %q\n", filepath.Join(dir, "maildir"))
	fmt.Fprintf(&b, "[log]\nlevel = \"debug\"\n")

	configPath := filepath.Join(dir, "amtpd.toml")
	Expect(os.WriteFile(configPath, []byte(b.String()), 0o644)).To(Succeed())

	session, err := gexec.Start(exec.Command(amtpdPath, "--config", configPath), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		session.Terminate()
		Eventually(session, 15*time.Second).Should(gexec.Exit())
	})

	want := 1
	if sc.private {
		want++
	}
	Eventually(func() int {
		return len(listenerLine.FindAllStringSubmatch(string(session.Out.Contents()), -1))
	}, 10*time.Second).Should(Equal(want), "amtpd did not report its listeners; its log:\n%s", session.Err.Contents())

	srv := &amtpd{session: session, maildir: filepath.Join(dir, "maildir")}
	for _, l := range listenerLine.FindAllStringSubmatch(string(session.Out.Contents()), -1) {
		if l[1] == "private" {
			srv.private = l[2]
		} else {
			srv.public = l[2]
		}
	}
	return srv
}

// log returns what amtpd has written to stderr so far.
func (a *amtpd) log() string {
	return string(a.session.Err.Contents())
}

// delivered returns the contents of every file in the Maildir new/ folder
// of recipient.
func (a *amtpd) delivered(recipient string) []string {
	waitForEmptyQueue(filepath.Join(filepath.Dir(a.maildir), "spool"))
	local, domain, _ := strings.Cut(strings.ToLower(recipient), "@")
	folder := filepath.Join(a.maildir, domain, local, "new")
	entries, err := os.ReadDir(folder)
	if os.IsNotExist(err) {
		return nil
	}
	Expect(err).NotTo(HaveOccurred())

	var messages []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(folder, e.Name()))
		Expect(err).NotTo(HaveOccurred())
		messages = append(messages, string(data))
	}
	return messages
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

// clientConfig returns a client configuration with the manifest
// certificate certName, connecting from that certificate's source address
// and trusting the public CA. The transaction log goes to log, which may
// be nil.
func clientConfig(m *pki.Manifest, certName string, log *gbytes.Buffer) client.Config {
	GinkgoHelper()
	entry, err := m.Cert(certName)
	Expect(err).NotTo(HaveOccurred())
	cert, err := m.TLSCertificate(certName)
	Expect(err).NotTo(HaveOccurred())
	roots, err := m.CAPool(pki.PublicCA)
	Expect(err).NotTo(HaveOccurred())

	var logOutput io.Writer = GinkgoWriter
	if log != nil {
		logOutput = io.MultiWriter(GinkgoWriter, log)
	}
	logger := slog.New(slog.NewTextHandler(logOutput, &slog.HandlerOptions{Level: slog.LevelDebug}))

	cfg := client.Config{
		Certificate: cert,
		RootCAs:     roots,
		Logger:      logger,
		Timeouts: client.Timeouts{
			Connect: testTimeout, Handshake: testTimeout, Greeting: testTimeout, Command: testTimeout,
			Mail: testTimeout, Rcpt: testTimeout, DataInit: testTimeout, DataBlock: testTimeout, DataEnd: testTimeout,
		},
	}
	if entry.SourceAddr != "" {
		cfg.LocalAddr = netip.MustParseAddr(entry.SourceAddr)
	}
	return cfg
}

// serverName returns the CN of the PKI's server certificate.
func serverName(m *pki.Manifest) string {
	GinkgoHelper()
	entry, err := m.Cert(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())
	return entry.CN
}

// dial connects to addr as certName and closes the connection when the
// spec ends.
func dial(addr string, m *pki.Manifest, certName string, log *gbytes.Buffer) *client.Conn {
	GinkgoHelper()
	conn, err := client.Dial(context.Background(), addr, serverName(m), clientConfig(m, certName, log))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(conn.Close)
	return conn
}

// waitForEmptyQueue waits until amtpd has delivered every queued message,
// because delivery to the Maildir runs from the queue after the 250 reply.
func waitForEmptyQueue(spool string) {
	GinkgoHelper()
	Eventually(func() int {
		entries, _ := os.ReadDir(filepath.Join(spool, "msg"))
		return len(entries)
	}, 10*time.Second, 20*time.Millisecond).Should(BeZero())
}
