package main_test

import (
	"fmt"
	"io"
	"net"
	"net/textproto"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// customServer contains the amtpd settings that serverConfig cannot
// express: a fixed public address, routes, metrics and the log level.
type customServer struct {
	listen   string // public listen address; "127.0.0.1:0" when empty
	private  bool   // add a private listener with the fixture users file
	queue    string // lines of the [queue] table
	routes   string // [[route]] tables
	metrics  string // metrics listen address; no [metrics] table when empty
	logLevel string // "debug" when empty
}

// customConfig returns the configuration text of a server called name
// with the fixture PKI and local domain example.test.
func (s *stage) customConfig(name string, c customServer) string {
	m := s.manifest
	dir := filepath.Join(s.dir, name)
	certEntry, err := m.Cert(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())
	if c.listen == "" {
		c.listen = "127.0.0.1:0"
	}
	if c.logLevel == "" {
		c.logLevel = "debug"
	}

	var b strings.Builder
	fmt.Fprintf(&b, "hostname = %q\n", "mx."+m.Domain)
	fmt.Fprintf(&b, "[tls]\ncert = %q\nkey = %q\n", m.Path(certEntry.Cert), m.Path(certEntry.Key))
	fmt.Fprintf(&b, "[dns]\nserver = %q\ntimeout = \"2s\"\n", s.dns.Addr())
	fmt.Fprintf(&b, "[public]\nlisten = [%q]\nclient_ca = [%q]\n", c.listen, caFile(m, pki.PublicCA))
	if c.private {
		fmt.Fprintf(&b, "[private]\nlisten = [\"127.0.0.1:0\"]\nclient_ca = [%q]\nusers = %q\n", caFile(m, pki.PrivateCA), m.Path(m.UsersFile))
	}
	fmt.Fprintf(&b, "[[domain]]\nname = %q\nmailboxes = [\"alice\", \"bob\", \"carol\"]\n", m.Domain)
	fmt.Fprintf(&b, "[delivery]\nmaildir = %q\n", filepath.Join(dir, "maildir"))
	fmt.Fprintf(&b, "[queue]\ndir = %q\n%s\n", filepath.Join(dir, "spool"), c.queue)
	b.WriteString(c.routes + "\n")
	if c.metrics != "" {
		fmt.Fprintf(&b, "[metrics]\nlisten = %q\n", c.metrics)
	}
	fmt.Fprintf(&b, "[log]\nlevel = %q\n", c.logLevel)
	return b.String()
}

// gatewayRoute returns a [[route]] table that sends the mail for domain to
// the SMTP server at smarthost.
func gatewayRoute(domain, smarthost string) string {
	return fmt.Sprintf("[[route]]\ndomain = %q\nkind = \"gateway\"\nsmarthost = %q\n", domain, smarthost)
}

// sinkMessage is one message received by smtpSink.
type sinkMessage struct {
	mailCommand string // the MAIL command line as received
	from        string
	recipients  []string
	data        string // with CRLF line ends and dot-stuffing removed
}

// smtpSink is a plain SMTP server on loopback, without TLS or AMTP
// extensions, that records what it receives.
type smtpSink struct {
	listener  net.Listener
	rcptReply string // the reply to every RCPT, such as "250 2.1.5 OK"

	mu       sync.Mutex
	ehlo     []string // EHLO arguments
	rcpts    []string // every RCPT address, accepted or not
	messages []sinkMessage
}

// startSink listens on 127.0.0.1 and serves until the spec ends.
func startSink(rcptReply string) *smtpSink {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	sink := &smtpSink{listener: l, rcptReply: rcptReply}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sink.serve(conn)
			}()
		}
	}()
	DeferCleanup(func() {
		l.Close()
		wg.Wait()
	})
	return sink
}

func (k *smtpSink) addr() string {
	return k.listener.Addr().String()
}

// serve runs one SMTP session. Every read and write has a deadline, so a
// stuck client cannot keep the cleanup waiting.
func (k *smtpSink) serve(conn net.Conn) {
	defer conn.Close()
	tc := textproto.NewConn(conn)
	reply := func(line string) error {
		conn.SetDeadline(time.Now().Add(ioTimeout))
		return tc.PrintfLine("%s", line)
	}
	if reply("220 sink.example.test ESMTP") != nil {
		return
	}

	var current *sinkMessage
	for range 100 {
		conn.SetDeadline(time.Now().Add(ioTimeout))
		line, err := tc.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			k.mu.Lock()
			k.ehlo = append(k.ehlo, arg)
			k.mu.Unlock()
			err = reply("250 sink.example.test")
		case "MAIL":
			current = &sinkMessage{mailCommand: line, from: between(arg, "<", ">")}
			err = reply("250 2.1.0 OK")
		case "RCPT":
			rcpt := between(arg, "<", ">")
			k.mu.Lock()
			k.rcpts = append(k.rcpts, rcpt)
			k.mu.Unlock()
			if current != nil && strings.HasPrefix(k.rcptReply, "250") {
				current.recipients = append(current.recipients, rcpt)
			}
			err = reply(k.rcptReply)
		case "DATA":
			if current == nil || len(current.recipients) == 0 {
				err = reply("503 5.5.1 no valid recipients")
				break
			}
			if err = reply("354 go ahead"); err != nil {
				return
			}
			conn.SetDeadline(time.Now().Add(ioTimeout))
			data, readErr := io.ReadAll(tc.DotReader())
			if readErr != nil {
				return
			}
			current.data = strings.ReplaceAll(string(data), "\n", "\r\n")
			k.mu.Lock()
			k.messages = append(k.messages, *current)
			k.mu.Unlock()
			current = nil
			err = reply("250 2.0.0 queued")
		case "RSET":
			current = nil
			err = reply("250 2.0.0 OK")
		case "NOOP":
			err = reply("250 2.0.0 OK")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			err = reply("502 5.5.2 command not implemented")
		}
		if err != nil {
			return
		}
	}
}

func (k *smtpSink) received() []sinkMessage {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.messages)
}

func (k *smtpSink) recipientsTried() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.rcpts)
}

func (k *smtpSink) ehloArguments() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ehlo)
}

// between returns the text of s between the first open and the next close
// after it, or "" when they are missing.
func between(s, open, close string) string {
	_, rest, ok := strings.Cut(s, open)
	if !ok {
		return ""
	}
	inner, _, ok := strings.Cut(rest, close)
	if !ok {
		return ""
	}
	return inner
}

// mpcFieldLine matches an MPC header field line, in any case and in the
// obsolete form with white space before the colon.
var mpcFieldLine = regexp.MustCompile(`(?im)^mpc[ \t]*:`)

var _ = Describe("SMTP gateway route", Ordered, func() {
	var (
		st       *stage
		srv      *amtpd
		sink     *smtpSink
		rejecter *smtpSink
	)

	BeforeAll(func() {
		st = newStage("")
		sink = startSink("250 2.1.5 OK")
		rejecter = startSink("550 5.1.1 no such user here")
		srv = st.runAmtpd("gateway", st.customConfig("gateway", customServer{
			queue:  "retry_base = \"200ms\"\nretry_max_interval = \"400ms\"\nmax_age = \"30s\"",
			routes: gatewayRoute("g.example.test", sink.addr()) + gatewayRoute("r.example.test", rejecter.addr()),
		}), false, false)
	})

	publicClient := func() *client {
		c := srv.dialAs(pki.CertClient)
		c.greet(cnOf(st.manifest, pki.CertClient))
		return c
	}

	// Section 5.1 forbids relaying public mail over another public network
	// connection. amtpd counts a gateway route as a configured route, like
	// a private one, so the RCPT is accepted.
	It("relays public mail with one MPC field", func() {
		body := "From: sender@example.org\r\nTo: someone@g.example.test\r\nSubject: through the gateway\r\n\r\nHello, SMTP world.\r\n..leading dot\r\n.\r\n"
		c := publicClient()
		Expect(c.sendMessage("sender@example.org", "com/confirmed", []string{"someone@g.example.test"}, body)).To(Equal(250))

		Eventually(sink.received, 10*time.Second, 20*time.Millisecond).Should(HaveLen(1))
		msg := sink.received()[0]
		Expect(msg.from).To(Equal("sender@example.org"), "the envelope sender is unchanged")
		Expect(msg.recipients).To(Equal([]string{"someone@g.example.test"}))
		Expect(msg.mailCommand).NotTo(ContainSubstring("MPC="), "an SMTP server gets no AMTP parameter")

		header, content, found := strings.Cut(msg.data, "\r\n\r\n")
		Expect(found).To(BeTrue(), "the message has a header section")
		header += "\r\n"
		Expect(mpcFieldLine.FindAllString(header, -1)).To(HaveLen(1), "exactly one MPC field")
		Expect(header).To(MatchRegexp(`(?m)^MPC: com/confirmed\r$`))
		Expect(header).To(ContainSubstring("Subject: through the gateway\r\n"))
		Expect(header).To(MatchRegexp(`by mx\.example\.test with AMTP`))
		Expect(content).To(Equal("Hello, SMTP world.\r\n.leading dot\r\n"))
		Expect(sink.ehloArguments()).To(ContainElement("mx.example.test"))
		srv.settle()
	})

	It("bounces a recipient the gateway rejects", func() {
		c := publicClient()
		Expect(c.sendMessage("alice@example.test", "per/individual", []string{"nobody@r.example.test"}, testBody)).To(Equal(250))

		bounces := srv.waitDelivered("alice@example.test", 1)
		Expect(bounces[0]).To(HavePrefix("Return-Path: <>\r\nMPC: net/autoresponse\r\n"))
		Expect(mpcFieldLine.FindAllString(bounces[0], -1)).To(HaveLen(1))
		Expect(bounces[0]).To(ContainSubstring("<nobody@r.example.test>: 550 5.1.1 no such user here"))
		Expect(bounces[0]).To(ContainSubstring("Content-Type: message/delivery-status"))
		Expect(bounces[0]).To(ContainSubstring("Diagnostic-Code: smtp; 550 5.1.1 no such user here\r\n"))
		Expect(rejecter.recipientsTried()).To(Equal([]string{"nobody@r.example.test"}))
		Expect(rejecter.received()).To(BeEmpty(), "no DATA without an accepted recipient")
		srv.settle()
	})
})
