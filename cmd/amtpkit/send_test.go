package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// sendTestServer is an amtpd process with its PKI and DNS server, for the
// end-to-end tests of "send".
type sendTestServer struct {
	manifest *pki.Manifest
	dns      *dnsserver.Server
	session  *gexec.Session
	public   string
	private  string
	maildir  string
}

var amtpdListener = regexp.MustCompile(`amtpd: (public|private) listener on (\S+)`)

// startSendTestServer builds and starts amtpd with a fresh PKI, serves the
// PKI zone with its SRV record pointing at amtpd, and stops everything when
// the container ends.
func startSendTestServer() *sendTestServer {
	amtpdPath := builtBinary("amtpd")

	dir := GinkgoT().TempDir()
	m, err := pki.Init(pki.Options{Dir: filepath.Join(dir, "pki")})
	Expect(err).NotTo(HaveOccurred())
	zoneText, err := os.ReadFile(m.Path(m.ZoneFile))
	Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	zone, err := dnsserver.ParseZone(bytes.NewReader(zoneText), "", "PKI zone")
	Expect(err).NotTo(HaveOccurred())
	dns, err := dnsserver.Start(ctx, "127.0.0.1:0", zone, nil)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(dns.Close)

	server, err := m.Cert(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())
	caPath := func(name string) string {
		for _, ca := range m.CAs {
			if ca.Name == name {
				return m.Path(ca.Cert)
			}
		}
		Fail("CA " + name + " not in the manifest")
		return ""
	}
	maildir := filepath.Join(dir, "maildir")
	config := fmt.Sprintf(`hostname = %q
[tls]
cert = %q
key = %q
[dns]
server = %q
timeout = "2s"
[public]
listen = ["127.0.0.1:0"]
client_ca = [%q]
[private]
listen = ["127.0.0.1:0"]
client_ca = [%q]
users = %q
[policy]
mpc = ["DENY */optout"]
[[policy.recipient]]
match = "ringo@%s"
mpc = ["ALLOW */individual"]
[[domain]]
name = %q
mailboxes = ["alice", "bob", "ringo"]
[delivery]
maildir = %q
`, server.CN, m.Path(server.Cert), m.Path(server.Key), dns.Addr(), caPath(pki.PublicCA),
		caPath(pki.PrivateCA), m.Path(m.UsersFile), m.Domain, m.Domain, maildir)
	configPath := filepath.Join(dir, "amtpd.toml")
	Expect(os.WriteFile(configPath, []byte(config), 0o644)).To(Succeed())

	session, err := gexec.Start(exec.Command(amtpdPath, "--config", configPath), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		session.Terminate()
		Eventually(session, 15*time.Second).Should(gexec.Exit())
	})
	Eventually(func() int {
		return len(amtpdListener.FindAllString(string(session.Out.Contents()), -1))
	}, 10*time.Second).Should(Equal(2), "amtpd did not start; its log:\n%s", session.Err.Contents())

	s := &sendTestServer{manifest: m, dns: dns, session: session, maildir: maildir}
	for _, match := range amtpdListener.FindAllStringSubmatch(string(session.Out.Contents()), -1) {
		if match[1] == "private" {
			s.private = match[2]
		} else {
			s.public = match[2]
		}
	}

	// Point the domain's SRV record at the public listener.
	_, port, _ := strings.Cut(s.public, "127.0.0.1:")
	srv := regexp.MustCompile(`(?m)^(_amtp\._tcp\.` + regexp.QuoteMeta(m.Domain) + `\.\s+IN\s+SRV\s+\d+\s+\d+\s+)\d+`)
	rewritten := srv.ReplaceAll(zoneText, []byte("${1}"+port))
	Expect(rewritten).NotTo(Equal(zoneText))
	zone, err = dnsserver.ParseZone(bytes.NewReader(rewritten), "", "PKI zone")
	Expect(err).NotTo(HaveOccurred())
	dns.SetZone(zone)
	return s
}

// delivered returns the contents of the Maildir new/ files of recipient.
func (s *sendTestServer) delivered(recipient string) []string {
	waitForEmptyQueue(filepath.Join(filepath.Dir(s.maildir), "spool"))
	local, domain, _ := strings.Cut(recipient, "@")
	folder := filepath.Join(s.maildir, domain, local, "new")
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

// runSendCommand runs "amtpkit send" through runMain and returns the exit
// code, stdout and stderr.
func runSendCommand(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := runMain(ctx, append([]string{"send"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeMessageFile writes text to a temporary file and returns its path.
func writeMessageFile(text string) string {
	path := filepath.Join(GinkgoT().TempDir(), "message.txt")
	Expect(os.WriteFile(path, []byte(text), 0o600)).To(Succeed())
	return path
}

var _ = Describe("send", Ordered, func() {
	var s *sendTestServer

	BeforeAll(func() {
		s = startSendTestServer()
	})

	pkiArgs := func() []string {
		return []string{"--pki", s.manifest.Dir()}
	}

	It("delivers a file without header and adds Date, Message-ID and From", func() {
		file := writeMessageFile("Hello from amtpkit send.\n.with a leading dot\n")
		args := append(pkiArgs(), "--server", s.public, "--to", "alice@example.test", "--mpc", "per/individual", file)

		code, stdout, stderr := runSendCommand(args...)
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(stdout).To(MatchRegexp(`^alice@example.test: accepted: 250 2\.0\.0 OK: queued as \S+\n$`))

		messages := s.delivered("alice@example.test")
		Expect(messages).To(HaveLen(1))
		Expect(messages[0]).To(ContainSubstring("MPC: per/individual\r\n"))
		Expect(messages[0]).To(MatchRegexp(`\r\nDate: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} `))
		Expect(messages[0]).To(MatchRegexp(`\r\nMessage-ID: <\w+@client\.example\.test>\r\n`))
		Expect(messages[0]).To(ContainSubstring("\r\nFrom: amtpkit@client.example.test\r\n\r\n"))
		Expect(messages[0]).To(HaveSuffix("\r\n\r\nHello from amtpkit send.\r\n.with a leading dot\r\n"))
	})

	It("sends input with a header section from stdin unchanged", func() {
		sendInput = strings.NewReader("Subject: from stdin\n\nBody line.\n")
		DeferCleanup(func() { sendInput = os.Stdin })
		args := append(pkiArgs(), "--server", s.public, "--to", "bob@example.test", "--mpc", "com/confirmed", "--from", "shop@example.org")

		code, stdout, stderr := runSendCommand(args...)
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(stdout).To(HavePrefix("bob@example.test: accepted: 250 "))

		messages := s.delivered("bob@example.test")
		Expect(messages).To(HaveLen(1))
		Expect(messages[0]).To(ContainSubstring("MPC: com/confirmed\r\n"))
		Expect(messages[0]).To(ContainSubstring("Return-Path: <shop@example.org>"))
		Expect(messages[0]).To(HaveSuffix("\r\nSubject: from stdin\r\n\r\nBody line.\r\n"))
		Expect(messages[0]).NotTo(ContainSubstring("Message-ID:"))
	})

	It("sends the null reverse-path for an empty --from", func() {
		file := writeMessageFile("Subject: bounce\n\nDelivery report.\n")
		args := append(pkiArgs(), "--server", s.public, "--from", "", "--to", "bob@example.test", "--mpc", "net/autoresponse", file)

		code, stdout, stderr := runSendCommand(args...)
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(stdout).To(HavePrefix("bob@example.test: accepted: "))
		Expect(s.delivered("bob@example.test")).To(ContainElement(SatisfyAll(
			HavePrefix("Return-Path: <>\r\n"),
			ContainSubstring("MPC: net/autoresponse\r\n"),
		)))
	})

	It("finds the server by SRV lookup with --dns", func() {
		file := writeMessageFile("Subject: via SRV\n\nFound through _amtp._tcp.\n")
		args := append(pkiArgs(), "--dns", s.dns.Addr(), "--to", "ringo@example.test", "--mpc", "per/individual", file)

		code, stdout, stderr := runSendCommand(args...)
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(stdout).To(HavePrefix("ringo@example.test: accepted: "))
		Expect(s.delivered("ringo@example.test")).To(ContainElement(ContainSubstring("Subject: via SRV\r\n")))
	})

	It("prints each recipient and exits 1 when one is rejected", func() {
		before := len(s.delivered("alice@example.test"))
		file := writeMessageFile("Subject: offer\n\nOpt-in mail.\n")
		args := append(pkiArgs(), "--server", s.public, "--to", "alice@example.test", "--to", "ringo@example.test", "--mpc", "com/optin", file)

		code, stdout, stderr := runSendCommand(args...)
		Expect(code).To(Equal(1))
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		Expect(lines).To(HaveLen(2))
		Expect(lines[0]).To(HavePrefix("alice@example.test: accepted: 250 "))
		Expect(lines[1]).To(Equal("ringo@example.test: permanent failure: 550 5.7.1 MPC policy violation"))
		Expect(stderr).To(ContainSubstring("amtpkit send: 1 of 2 recipients not delivered"))
		Expect(s.delivered("alice@example.test")).To(HaveLen(before + 1))
	})

	It("reports a policy denial for every recipient without sending MAIL", func() {
		logBefore := len(s.session.Err.Contents())
		file := writeMessageFile("Subject: bulk\n\nOpt-out mail.\n")
		args := append(pkiArgs(), "--server", s.public, "--to", "alice@example.test", "--to", "bob@example.test", "--mpc", "com/optout", file)

		code, stdout, _ := runSendCommand(args...)
		Expect(code).To(Equal(1))
		Expect(stdout).To(ContainSubstring("alice@example.test: permanent failure: AMTP server " + s.public + " denies MPC com/optout"))
		Expect(stdout).To(ContainSubstring("bob@example.test: permanent failure: AMTP server "))
		Eventually(func() string { return string(s.session.Err.Contents()[logBefore:]) }).Should(ContainSubstring("outcome=quit"))
		Expect(string(s.session.Err.Contents()[logBefore:])).NotTo(ContainSubstring("MAIL"))
	})

	It("authenticates with --user and --password-env on the private listener", func() {
		user := s.manifest.Users[0]
		Expect(os.Setenv("AMTPKIT_TEST_PASSWORD", user.Password)).To(Succeed())
		DeferCleanup(os.Unsetenv, "AMTPKIT_TEST_PASSWORD")
		file := writeMessageFile("Subject: roaming\n\nSent from the road.\n")
		args := append(pkiArgs(), "--server", s.private, "--cert", pki.CertPrivateClient,
			"--user", user.Name, "--password-env", "AMTPKIT_TEST_PASSWORD",
			"--to", "alice@example.test", "--mpc", "per/individual", file)

		code, stdout, stderr := runSendCommand(args...)
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(stdout).To(HavePrefix("alice@example.test: accepted: "))
		Expect(stderr).NotTo(ContainSubstring(user.Password))
	})

	It("exits 1 with a temporary failure when the connection is refused", func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		closed := ln.Addr().String()
		Expect(ln.Close()).To(Succeed())
		file := writeMessageFile("Subject: nobody home\n\nHello?\n")
		args := append(pkiArgs(), "--server", closed, "--to", "alice@example.test", "--mpc", "per/individual", file)

		code, stdout, _ := runSendCommand(args...)
		Expect(code).To(Equal(1))
		Expect(stdout).To(HavePrefix("alice@example.test: temporary failure: AMTP connect failed for " + closed))
		Expect(stdout).To(ContainSubstring("connection refused"))
	})

	Describe("invalid options", func() {
		// listener counts connections, to show that a usage error is
		// reported before connecting.
		var (
			listener    net.Listener
			connections atomic.Int32
		)

		BeforeEach(func() {
			var err error
			listener, err = net.Listen("tcp", "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			connections.Store(0)
			go func() {
				for {
					conn, err := listener.Accept()
					if err != nil {
						return
					}
					connections.Add(1)
					conn.Close()
				}
			}()
			DeferCleanup(listener.Close)
		})

		DescribeTable("exit 2 before connecting",
			func(makeArgs func(server string) []string, wantMessage string) {
				file := writeMessageFile("Subject: never sent\n\nBody.\n")
				args := append(makeArgs(listener.Addr().String()), file)

				code, stdout, stderr := runSendCommand(args...)
				Expect(code).To(Equal(2), "stdout: %s", stdout)
				Expect(stderr).To(ContainSubstring(wantMessage))
				Expect(stdout).To(BeEmpty())
				Consistently(connections.Load, 200*time.Millisecond).Should(BeZero())
			},
			Entry("an undefined MPC class", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--to", "alice@example.test", "--mpc", "com/spam")
			}, `invalid --mpc "com/spam": MPC value not defined`),
			Entry("a class used as role", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--to", "alice@example.test", "--mpc", "individual/confirmed")
			}, `invalid --mpc "individual/confirmed"`),
			Entry("an MPC value without a slash", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--to", "alice@example.test", "--mpc", "personal")
			}, `invalid --mpc "personal": MPC value syntax error`),
			Entry("a missing --mpc", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--to", "alice@example.test")
			}, "missing --mpc"),
			Entry("a missing --to", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--mpc", "per/individual")
			}, "missing --to"),
			Entry("an invalid --to", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--to", "<alice@example.test>", "--mpc", "per/individual")
			}, `invalid --to "<alice@example.test>"`),
			Entry("both --server and --dns", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--dns", "127.0.0.1:53", "--to", "alice@example.test", "--mpc", "per/individual")
			}, "--server and --dns exclude each other"),
			Entry("--user with --dns", func(server string) []string {
				return append(pkiArgs(), "--dns", server, "--user", "u", "--password-env", "HOME", "--to", "alice@example.test", "--mpc", "per/individual")
			}, "--user needs --server"),
			Entry("--user without --password-env", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--user", "u", "--to", "alice@example.test", "--mpc", "per/individual")
			}, "--user and --password-env go together"),
			Entry("an unset password variable", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--user", "u", "--password-env", "AMTPKIT_TEST_UNSET_VARIABLE",
					"--to", "alice@example.test", "--mpc", "per/individual")
			}, "--password-env AMTPKIT_TEST_UNSET_VARIABLE: the environment variable is unset or empty"),
			Entry("an unknown --cert", func(server string) []string {
				return append(pkiArgs(), "--server", server, "--cert", "nobody", "--to", "alice@example.test", "--mpc", "per/individual")
			}, `--cert nobody: certificate "nobody" is not in the PKI manifest`),
			Entry("a --pki without manifest", func(server string) []string {
				return []string{"--pki", GinkgoT().TempDir(), "--server", server, "--to", "alice@example.test", "--mpc", "per/individual"}
			}, "amtpkit pki init"),
			Entry("neither --server nor --dns", func(server string) []string {
				return append(pkiArgs(), "--to", "alice@example.test", "--mpc", "per/individual")
			}, "missing --server HOST:PORT or --dns IP:PORT"),
		)

		It("exits 2 for a missing message file", func() {
			args := append(pkiArgs(), "--server", listener.Addr().String(), "--to", "alice@example.test", "--mpc", "per/individual", "/nonexistent/message.txt")
			code, _, stderr := runSendCommand(args...)
			Expect(code).To(Equal(2))
			Expect(stderr).To(ContainSubstring("/nonexistent/message.txt"))
			Consistently(connections.Load, 200*time.Millisecond).Should(BeZero())
		})
	})

	It("prints help with exit 0", func() {
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), []string{"send", "-h"}, &stdout, &stderr)
		Expect(code).To(Equal(0))
		Expect(stdout.String()).To(ContainSubstring("Date,\nMessage-ID and From fields are added"))
		Expect(stdout.String()).To(ContainSubstring("-password-env variable"))
	})
})

var _ = Describe("addMissingHeader", func() {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	DescribeTable("adds fields only without a header section",
		func(input string, wantAdded bool) {
			output := string(addMissingHeader([]byte(input), "me@example.org", "client.example.test", now))
			if !wantAdded {
				Expect(output).To(Equal(input))
				return
			}
			Expect(output).To(HavePrefix("Date: Sun, 01 Mar 2026 12:00:00 +0000\r\nMessage-ID: <"))
			Expect(output).To(MatchRegexp(`\r\nMessage-ID: <\w+@client\.example\.test>\r\nFrom: me@example.org\r\n`))
			Expect(output).To(HaveSuffix(input))
			Expect(strings.Count(output, "\r\n\r\n")+strings.Count(output, "\r\n\n")).To(Equal(1), "exactly one empty line ends the header section: %q", output)
		},
		Entry("a header field", "Subject: hi\n\nbody\n", false),
		Entry("a header field with CRLF", "Subject: hi\r\n\r\nbody\r\n", false),
		Entry("the obsolete space before the colon", "Subject : hi\n\nbody\n", false),
		Entry("plain text", "Hello there.\n", true),
		Entry("plain text with a colon", "Note: see below\n", false),
		Entry("an mbox From_ line", "From someone Mon Jan  1 00:00:00 2026\nbody\n", true),
		Entry("an empty first line", "\nbody only\n", true),
	)

	It("uses amtpkit@CN as author for the null reverse-path", func() {
		output := string(addMissingHeader([]byte("text\n"), "", "client.example.test", now))
		Expect(output).To(ContainSubstring("\r\nFrom: amtpkit@client.example.test\r\n"))
	})
})

var _ = Describe("groupByDomain", func() {
	It("groups recipients in order of first appearance", func() {
		groups := groupByDomain([]string{"a@one.test", "b@TWO.test", "c@One.test", "postmaster@two.test"})
		Expect(groups).To(Equal([]domainGroup{
			{domain: "one.test", recipients: []string{"a@one.test", "c@One.test"}},
			{domain: "two.test", recipients: []string{"b@TWO.test", "postmaster@two.test"}},
		}))
	})
})

// waitForEmptyQueue waits until amtpd has delivered every queued message,
// because delivery to the Maildir runs from the queue after the 250 reply.
func waitForEmptyQueue(spool string) {
	GinkgoHelper()
	Eventually(func() int {
		entries, _ := os.ReadDir(filepath.Join(spool, "msg"))
		return len(entries)
	}, 10*time.Second, 20*time.Millisecond).Should(BeZero())
}
