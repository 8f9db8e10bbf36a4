package main_test

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/bcrypt"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// relayHost is one amtpd of the relay topology: its loopback address, host
// name (with an A and a PTR record) and local domains.
type relayHost struct {
	name    string
	ip      string
	host    string
	domains []string
	extra   string // more TOML: [policy], [[route]] and so on
	private bool
	users   string // users file for the private listener
}

// relayZone returns the DNS records of the topology: an A and a PTR record
// per host, and the _amtp._tcp SRV records of each remote domain, all on
// port.
func relayZone(port int) string {
	var b strings.Builder
	host := func(name, ip string) {
		fmt.Fprintf(&b, "%s.example.test. 60 IN A %s\n", name, ip)
		parts := strings.Split(ip, ".")
		fmt.Fprintf(&b, "%s.%s.%s.%s.in-addr.arpa. 60 IN PTR %s.example.test.\n", parts[3], parts[2], parts[1], parts[0], name)
	}
	srv := func(domain string, priority, weight int, target string) {
		fmt.Fprintf(&b, "_amtp._tcp.%s.example.test. 60 IN SRV %d %d %d %s.example.test.\n", domain, priority, weight, port, target)
	}
	host("mx-a", "127.0.2.1")
	host("mx-b", "127.0.2.2")
	host("mx-c1", "127.0.2.3") // nothing listens here
	host("mx-c2", "127.0.2.4")
	host("mx-d", "127.0.2.5")
	host("mx-u", "127.0.2.6")  // nothing listens here
	host("mx-c0", "127.0.2.7") // nothing listens here

	srv("b", 10, 10, "mx-b")
	srv("c", 10, 60, "mx-c1")
	srv("c", 10, 40, "mx-c0")
	srv("c", 20, 10, "mx-c2")
	srv("d", 10, 10, "mx-d")
	srv("u", 10, 10, "mx-u")
	return b.String()
}

// freePort returns a TCP port that is free on 127.0.2.1 right now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.2.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRelayHost issues a certificate for h (server and client use, CN and
// SAN equal to its host name) and runs amtpd on h.ip:port.
func (s *stage) startRelayHost(h relayHost, port int) *amtpd {
	m := s.manifest
	dir := filepath.Join(s.dir, h.name)
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())

	issued, err := m.Issue(pki.IssueRequest{
		Issuer:      pki.PublicCA,
		CommonName:  h.host,
		DNSNames:    []string{h.host},
		IPAddresses: []net.IP{net.ParseIP(h.ip)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	Expect(err).NotTo(HaveOccurred())
	certPath, keyPath := filepath.Join(dir, "host.pem"), filepath.Join(dir, "host.key")
	Expect(issued.WriteFiles(certPath, keyPath)).To(Succeed())

	var b strings.Builder
	fmt.Fprintf(&b, "hostname = %q\n", h.host)
	fmt.Fprintf(&b, "[tls]\ncert = %q\nkey = %q\n", certPath, keyPath)
	fmt.Fprintf(&b, "[dns]\nserver = %q\ntimeout = \"2s\"\n", s.dns.Addr())
	fmt.Fprintf(&b, "[public]\nlisten = [\"%s:%d\"]\nclient_ca = [%q]\n", h.ip, port, caFile(m, pki.PublicCA))
	if h.private {
		fmt.Fprintf(&b, "[private]\nlisten = [\"%s:0\"]\nclient_ca = [%q]\nusers = %q\n", h.ip, caFile(m, pki.PrivateCA), h.users)
	}
	fmt.Fprintf(&b, "[relay]\nsource_addr = %q\n", h.ip)
	fmt.Fprintf(&b, "[queue]\nretry_base = \"200ms\"\nretry_max_interval = \"400ms\"\nmax_age = \"3s\"\n")
	fmt.Fprintf(&b, "[delivery]\nmaildir = %q\n", filepath.Join(dir, "maildir"))
	fmt.Fprintf(&b, "[log]\nlevel = \"debug\"\n")
	for _, d := range h.domains {
		fmt.Fprintf(&b, "[[domain]]\nname = %q\n", d)
	}
	b.WriteString(h.extra + "\n")
	srv := s.runAmtpd(h.name, b.String(), false, h.private)
	srv.name = h.host
	return srv
}

// usersFile writes a users file with one user and returns its path.
func usersFile(dir, user, password string) string {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(dir, user+".users")
	Expect(os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600)).To(Succeed())
	return path
}

var _ = Describe("relay between amtpd servers", Ordered, func() {
	var (
		st         *stage
		a, b, c, d *amtpd
	)

	BeforeAll(func() {
		port := freePort()
		st = newStage(relayZone(port))
		m := st.manifest

		b = st.startRelayHost(relayHost{
			name: "b", ip: "127.0.2.2", host: "mx-b.example.test",
			domains: []string{"b.example.test", "p.example.test"},
			private: true, users: usersFile(st.dir, "mx-a.example.test", "route-secret"),
		}, port)
		c = st.startRelayHost(relayHost{name: "c", ip: "127.0.2.4", host: "mx-c2.example.test", domains: []string{"c.example.test"}}, port)
		d = st.startRelayHost(relayHost{
			name: "d", ip: "127.0.2.5", host: "mx-d.example.test", domains: []string{"d.example.test"},
			extra: "[policy]\nmpc = [\"DENY */optout\"]\n",
		}, port)

		// A reaches p.example.test over a private route to B's private
		// listener, with a private-CA certificate and SMTP AUTH.
		routeCert, err := m.Issue(pki.IssueRequest{
			Issuer:      pki.PrivateCA,
			CommonName:  "mx-a.example.test",
			DNSNames:    []string{"mx-a.example.test"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		Expect(err).NotTo(HaveOccurred())
		routeDir := filepath.Join(st.dir, "a-route")
		Expect(os.MkdirAll(routeDir, 0o755)).To(Succeed())
		Expect(routeCert.WriteFiles(filepath.Join(routeDir, "route.pem"), filepath.Join(routeDir, "route.key"))).To(Succeed())
		Expect(os.WriteFile(filepath.Join(routeDir, "password"), []byte("route-secret\n"), 0o600)).To(Succeed())
		route := fmt.Sprintf(`[[route]]
domain = "p.example.test"
kind = "private"
smarthost = %q
server_name = "mx-b.example.test"
cert = %q
key = %q
user = "mx-a.example.test"
password_file = %q
`, b.private, filepath.Join(routeDir, "route.pem"), filepath.Join(routeDir, "route.key"), filepath.Join(routeDir, "password"))

		a = st.startRelayHost(relayHost{
			name: "a", ip: "127.0.2.1", host: "mx-a.example.test", domains: []string{"example.test"},
			private: true, users: m.Path(m.UsersFile), extra: route,
		}, port)
	})

	// roaming connects to A's private listener as the private client and
	// authenticates.
	roaming := func() *client {
		GinkgoHelper()
		m := st.manifest
		c, err := a.tryDialAs(pki.CertPrivateClient, a.private)
		Expect(err).NotTo(HaveOccurred())
		c.greet(cnOf(m, pki.CertPrivateClient))
		user := m.Users[0]
		plain := fmt.Sprintf("\x00%s\x00%s", user.Name, user.Password)
		c.cmd("AUTH PLAIN "+b64(plain), 235)
		return c
	}

	It("relays by SRV with the MPC parameter and no MPC header", func() {
		c1 := roaming()
		Expect(c1.sendMessage("alice@example.test", "per/individual", []string{"bob@b.example.test"}, testBody)).To(Equal(250))

		msgs := b.waitDelivered("bob@b.example.test", 1)
		Expect(strings.Count(msgs[0], "\r\nMPC: ")).To(Equal(1), "exactly one MPC field, added by B on delivery")
		Expect(msgs[0]).To(ContainSubstring("\r\nMPC: per/individual\r\n"))
		Expect(msgs[0]).To(ContainSubstring("by mx-b.example.test with AMTP"))
		Expect(msgs[0]).To(ContainSubstring("by mx-a.example.test with AMTPA"))
		Eventually(b.log).Should(MatchRegexp(`message accepted.*peer=127\.0\.2\.1:\d+ .*mpc=per/individual`))
	})

	It("refuses a public-to-public relay at RCPT", func() {
		c1 := a.dialAs(pki.CertClient)
		c1.greet("client.example.test")
		c1.cmd("MAIL FROM:<x@example.org> MPC=per/individual", 250)
		Expect(c1.cmd("RCPT TO:<bob@b.example.test>", 550)).To(ContainSubstring("5.7.1"))
	})

	It("carries public mail on over a private route", func() {
		c1 := a.dialAs(pki.CertClient)
		c1.greet("client.example.test")
		Expect(c1.sendMessage("x@example.org", "ngo/confirmed", []string{"carol@p.example.test"}, testBody)).To(Equal(250))

		msgs := b.waitDelivered("carol@p.example.test", 1)
		Expect(msgs[0]).To(ContainSubstring("\r\nMPC: ngo/confirmed\r\n"))
		Eventually(b.log).Should(MatchRegexp(`AUTH succeeded.*listener=private.*user=mx-a.example.test`))
	})

	It("follows SRV priorities when the first targets are down", func() {
		c1 := roaming()
		Expect(c1.sendMessage("alice@example.test", "com/confirmed", []string{"dave@c.example.test"}, testBody)).To(Equal(250))

		msgs := c.waitDelivered("dave@c.example.test", 1)
		Expect(msgs[0]).To(ContainSubstring("\r\nMPC: com/confirmed\r\n"))
		// Both priority-10 targets were tried before the priority-20 one.
		Eventually(a.log).Should(ContainSubstring("127.0.2.3"))
		Eventually(a.log).Should(ContainSubstring("127.0.2.7"))
	})

	It("quits on a denied MPC and bounces as net/autoresponse", func() {
		c1 := roaming()
		Expect(c1.sendMessage("alice@example.test", "com/optout", []string{"erin@d.example.test"}, testBody)).To(Equal(250))

		bounces := a.waitDelivered("alice@example.test", 1)
		Expect(bounces[0]).To(ContainSubstring("Return-Path: <>\r\n"))
		Expect(bounces[0]).To(ContainSubstring("\r\nMPC: net/autoresponse\r\n"))
		Expect(bounces[0]).To(ContainSubstring("<erin@d.example.test>:"))
		Expect(bounces[0]).To(ContainSubstring("denies MPC com/optout"))
		Expect(bounces[0]).To(ContainSubstring("Content-Type: message/delivery-status"))

		// D saw EHLO and QUIT, and no MAIL.
		Eventually(d.log).Should(MatchRegexp(`msg=session .*peer=127\.0\.2\.1:\d+ outcome=quit .*messages=0`))
		Expect(d.log()).NotTo(ContainSubstring("message accepted"))
		Expect(d.delivered("erin@d.example.test")).To(BeEmpty())
	})

	It("retries an unreachable domain, then bounces", func() {
		before := len(a.delivered("bob@example.test"))
		c1 := roaming()
		Expect(c1.sendMessage("bob@example.test", "per/individual", []string{"frank@u.example.test"}, testBody)).To(Equal(250))

		bounces := a.waitDelivered("bob@example.test", before+1)
		bounce := bounces[len(bounces)-1]
		Expect(bounce).To(ContainSubstring("<frank@u.example.test>:"))
		Expect(bounce).To(ContainSubstring("expired"))
		Expect(bounce).To(ContainSubstring("\r\nMPC: net/autoresponse\r\n"))
		Expect(strings.Count(a.log(), "msg=deferred")).To(BeNumerically(">=", 2))
	})

	It("never bounces a bounce", func() {
		// A message with the null reverse-path to an unreachable domain
		// expires without a bounce.
		c1 := roaming()
		Expect(c1.sendMessage("", "net/autoresponse", []string{"gina@u.example.test"}, testBody)).To(Equal(250))
		Eventually(a.log, 10*time.Second).Should(ContainSubstring("not bouncing a message with the null reverse-path"))
		a.settle()
	})
})
