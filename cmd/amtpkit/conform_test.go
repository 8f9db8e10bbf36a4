package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// The conformance suite registers its specs in Ginkgo's global tree, and
// Ginkgo runs one tree per process, so these tests run "amtpkit conform"
// as a subprocess of a separately built amtpkit binary.

// conformRunTimeout bounds one "amtpkit conform" run in these tests. A
// whole run against amtpd takes about 10 seconds on a laptop.
const conformRunTimeout = 2 * time.Minute

// relayClauses are the clauses whose checks relay a message from the
// private listener to the suite's AMTP sinks.
var relayClauses = []string{
	"4.4.4-mpc-value-preserved",
	"4.4.4-no-header-on-amtp-relay",
	"4.4.4-header-inserted-on-non-amtp-relay",
	"5.1-relay-over-private-connections",
	"5.2-no-rewrite",
	"6.4-bounces-net-autoresponse",
}

// conformStage is a PKI in a temporary folder, a free loopback port for
// the suite's DNS server and free ports for the sinks that amtpd reaches
// by its routes.
type conformStage struct {
	dir         string
	manifest    *pki.Manifest
	dnsListen   string
	gatewaySink string
	privateSink string
}

// amtpdCommandTimeout is the command_timeout of the amtpd of these tests,
// short so that the idle-timeout checks take seconds.
const amtpdCommandTimeout = "5s"

func newConformStage() *conformStage {
	dir := GinkgoT().TempDir()
	m, err := pki.Init(pki.Options{Dir: filepath.Join(dir, "pki")})
	Expect(err).NotTo(HaveOccurred())
	return &conformStage{dir: dir, manifest: m, dnsListen: freeUDPAndTCPAddr(),
		gatewaySink: freeUDPAndTCPAddr(), privateSink: freeUDPAndTCPAddr()}
}

// sinkArgs returns the conform options that start the route sinks and
// name amtpd's command timeout.
func (st *conformStage) sinkArgs() []string {
	return []string{"--gateway-sink", st.gatewaySink, "--private-sink", st.privateSink, "--server-timeout", amtpdCommandTimeout}
}

// freeUDPAndTCPAddr returns a 127.0.0.1 address whose port was free for
// both UDP and TCP a moment ago.
func freeUDPAndTCPAddr() string {
	for range 10 {
		packetConn, err := net.ListenPacket("udp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := packetConn.LocalAddr().String()
		listener, err := net.Listen("tcp", addr)
		packetConn.Close()
		if err == nil {
			listener.Close()
			return addr
		}
	}
	Fail("found no port free for both UDP and TCP")
	return ""
}

// conformAmtpd is an amtpd process configured for a conformance run.
type conformAmtpd struct {
	public, public6, private, maildir string
}

// startConformAmtpd starts amtpd with public and private listeners, the
// PKI's certificates, the suite's DNS address as its resolver, an MPC
// policy that denies */optout and a Maildir in the stage folder. With
// ipv6 set, it adds a public listener on ::1.
func (st *conformStage) startConformAmtpd(amtpdPath string, ipv6 bool) *conformAmtpd {
	publicListen := []string{"127.0.0.1:0"}
	if ipv6 {
		publicListen = append(publicListen, "[::1]:0")
	}
	commandTimeout, err := time.ParseDuration(amtpdCommandTimeout)
	Expect(err).NotTo(HaveOccurred())
	config, err := suiteAmtpdConfig{
		manifest:       st.manifest,
		work:           st.dir,
		publicListen:   publicListen,
		privateListen:  "127.0.0.1:0",
		dnsListen:      st.dnsListen,
		gatewaySink:    st.gatewaySink,
		privateSink:    st.privateSink,
		commandTimeout: commandTimeout,
	}.render()
	Expect(err).NotTo(HaveOccurred())
	maildir := filepath.Join(st.dir, "maildir")
	listeners := len(publicListen) + 1

	configPath := filepath.Join(st.dir, "amtpd.toml")
	Expect(os.WriteFile(configPath, []byte(config), 0o644)).To(Succeed())

	session, err := gexec.Start(exec.Command(amtpdPath, "--config", configPath), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		session.Terminate()
		Eventually(session, 15*time.Second).Should(gexec.Exit())
	})
	Eventually(func() int {
		return len(amtpdListenerLine.FindAllString(string(session.Out.Contents()), -1))
	}, 10*time.Second).Should(Equal(listeners), "amtpd did not start; its log:\n%s", session.Err.Contents())

	a := &conformAmtpd{maildir: maildir}
	for _, match := range amtpdListenerLine.FindAllStringSubmatch(string(session.Out.Contents()), -1) {
		switch {
		case match[1] == "private":
			a.private = match[2]
		case strings.HasPrefix(match[2], "["):
			a.public6 = match[2]
		default:
			a.public = match[2]
		}
	}
	return a
}

// conformRun is one finished "amtpkit conform" process.
type conformRun struct {
	code     int
	stdout   string
	stderr   string
	elapsed  time.Duration
	jsonPath string
}

// runConformCommand runs amtpkit with args and waits for it.
func runConformCommand(amtpkitPath string, args ...string) conformRun {
	start := time.Now()
	session, err := gexec.Start(exec.Command(amtpkitPath, args...), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	Eventually(session, conformRunTimeout).Should(gexec.Exit())
	return conformRun{
		code:    session.ExitCode(),
		stdout:  string(session.Out.Contents()),
		stderr:  string(session.Err.Contents()),
		elapsed: time.Since(start),
	}
}

// runConformAgainst runs "amtpkit conform" with the stage's PKI and DNS
// address against target, plus extra arguments, and loads the result.
func (st *conformStage) runConformAgainst(amtpkitPath, target string, extra ...string) (conformRun, *result.Result) {
	jsonPath := filepath.Join(GinkgoT().TempDir(), "result.json")
	args := append([]string{"conform", "--target", target, "--pki", st.manifest.Dir(),
		"--dns-listen", st.dnsListen, "--json", jsonPath}, extra...)
	r := runConformCommand(amtpkitPath, args...)
	r.jsonPath = jsonPath
	loaded, err := result.Load(jsonPath)
	Expect(err).NotTo(HaveOccurred(), "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	return r, loaded
}

// specClauses returns the clauses that have a spec: those with a rerun
// command.
func specClauses(r *result.Result) []result.Clause {
	var clauses []result.Clause
	for _, c := range r.Clauses {
		if c.Rerun != "" {
			clauses = append(clauses, c)
		}
	}
	return clauses
}

var _ = Describe("conform", Ordered, func() {
	var amtpkitPath, amtpdPath string

	BeforeAll(func() {
		amtpkitPath = builtBinary("amtpkit")
		amtpdPath = builtBinary("amtpd")
	})

	Context("against amtpd", Ordered, func() {
		var (
			st  *conformStage
			srv *conformAmtpd
		)

		BeforeAll(func() {
			st = newConformStage()
			srv = st.startConformAmtpd(amtpdPath, false)
		})

		It("passes every server clause that applies", func() {
			args := append([]string{"--private-target", srv.private, "--maildir", srv.maildir, "--timeout", "3s"}, st.sinkArgs()...)
			run, r := st.runConformAgainst(amtpkitPath, srv.public, args...)
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.elapsed).To(BeNumerically("<", time.Minute))
			Expect(run.stdout).To(ContainSubstring("JSON result: " + run.jsonPath))

			// amtpd serves only NOOP and QUIT before EHLO, on purpose (the
			// interpretations page, item 10), which is a warning. It counts a
			// repeated recipient once, so the recipient limit check finds no
			// limit, and this run has no IPv6 listener. Its command timeout
			// is 5 seconds, below the 5 minutes of RFC 5321, so that the
			// idle check takes seconds.
			allowedWarnings := []string{"rfc5321-4.1.4-commands-before-ehlo", "rfc5321-4.5.3.2.7-server-timeout"}
			allowedSkips := []string{"4.2-ipv6-equivalent-tests", "rfc5321-4.5.3.1.10-too-many-recipients-452"}
			checked := 0
			for _, c := range specClauses(r) {
				checked++
				switch c.Verdict {
				case result.Pass, result.Info:
				case result.Warn:
					Expect(allowedWarnings).To(ContainElement(c.ID), "%s: %s", c.ID, c.Reason)
				case result.Skip:
					Expect(allowedSkips).To(ContainElement(c.ID), "%s: %s", c.ID, c.Reason)
				default:
					Fail(fmt.Sprintf("%s got %s: %s", c.ID, c.Verdict, c.Reason))
				}
			}
			Expect(checked).To(BeNumerically(">=", 60))

			// amtpd relays to the sinks: its relay identity is its server
			// certificate, and it trusts the public CA that signs the sinks'.
			for _, id := range relayClauses {
				c, ok := r.Clause(id)
				Expect(ok).To(BeTrue(), id)
				Expect(c.Verdict).To(Equal(result.Pass), "%s: %s", id, c.Reason)
			}
			preserved, _ := r.Clause("4.4.4-mpc-value-preserved")
			Expect(preserved.Reason).To(ContainSubstring("MPC=ngo/optin as submitted"))
			Expect(preserved.Reason).To(ContainSubstring("MPC header field ngo/optin"))
			server, err := st.manifest.Cert(pki.CertServer)
			Expect(err).NotTo(HaveOccurred())
			noRewrite, _ := r.Clause("5.2-no-rewrite")
			Expect(noRewrite.Observations).To(ContainElement(ContainSubstring(fmt.Sprintf("client certificate CN %q", server.CN))))
			bounce, _ := r.Clause("6.4-bounces-net-autoresponse")
			Expect(bounce.Reason).To(ContainSubstring("net/autoresponse"))
			Expect(r.Environment.DNSOverrides).To(ContainElement(HavePrefix("_amtp._tcp.sink." + st.manifest.Domain + ". IN SRV 0 0 ")))
		})

		It("skips the relay clauses without a private listener", func() {
			run, r := st.runConformAgainst(amtpkitPath, srv.public, "--timeout", "3s",
				"--focus", "4.4.4-no-header-on-amtp-relay", "--focus", "5.2-no-rewrite")
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			for _, id := range []string{"4.4.4-no-header-on-amtp-relay", "5.2-no-rewrite"} {
				c, _ := r.Clause(id)
				Expect(c.Verdict).To(Equal(result.Skip), id)
				Expect(c.Reason).To(Equal("needs --private-target (relay from a public connection is forbidden by section 5.1)"), id)
			}
		})

		It("skips the relay clauses without the suite's DNS server", func() {
			run, r := st.runConformAgainst(amtpkitPath, srv.public, "--timeout", "3s", "--dns", "external",
				"--private-target", srv.private, "--focus", "5.2-no-rewrite")
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			c, _ := r.Clause("5.2-no-rewrite")
			Expect(c.Verdict).To(Equal(result.Skip))
			Expect(c.Reason).To(HavePrefix("needs --dns serve"))
		})

		It("writes the JSON result with every catalogue clause", func() {
			_, r := st.runConformAgainst(amtpkitPath, srv.public, "--timeout", "3s", "--focus", "4.4.1")
			Expect(r.SchemaVersion).To(Equal(1))
			Expect(r.Environment.Draft).To(Equal("draft-weinman-amtp-03"))
			Expect(r.Environment.Target).To(Equal(srv.public))
			Expect(r.Environment.Options.PKIDir).To(Equal(st.manifest.Dir()))
			Expect(r.Environment.End).To(BeTemporally(">=", r.Environment.Start))
			Expect(r.Environment.TLS).NotTo(BeNil())
			Expect(r.Environment.TLS.HandshakeComplete).To(BeTrue())
			Expect(r.Summary.Clauses).To(Equal(len(catalogue.All())))
			Expect(r.Clauses).To(HaveLen(len(catalogue.All())))

			for i, c := range catalogue.All() {
				entry := r.Clauses[i]
				Expect(entry.ID).To(Equal(c.ID))
				Expect(entry.Section).To(Equal(c.Section))
				Expect(entry.Level).To(Equal(string(c.Level)))
				Expect(entry.Role).To(Equal(string(c.Role)))
				Expect(entry.Text).To(Equal(c.Text), c.ID)
				Expect(entry.Notes).To(Equal(c.Notes), c.ID)
				Expect(entry.Reason).NotTo(BeEmpty(), c.ID)
				switch {
				case !c.Testable():
					Expect(entry.Verdict).To(Equal(result.Untestable), c.ID)
					Expect(entry.Reason).To(Equal(c.Untestable))
				case c.Role != catalogue.RoleServer && entry.Rerun == "":
					Expect(entry.Verdict).To(Equal(result.Skip), c.ID)
				}
			}

			helo, ok := r.Clause("4.4.1-helo-rejected")
			Expect(ok).To(BeTrue())
			Expect(helo.Verdict).To(Equal(result.Pass))
			Expect(helo.Text).To(ContainSubstring("MUST return a failure code 504"))
			Expect(helo.Notes).To(ContainSubstring("RFC 5321 section 4.1.1.1"))
			Expect(helo.Rerun).To(HavePrefix("amtpkit conform --target " + srv.public + " --pki " + st.manifest.Dir()))
			Expect(helo.Rerun).To(HaveSuffix("--focus 4.4.1-helo-rejected"))
			Expect(helo.Transcript).To(HaveLen(2))
			Expect(helo.Transcript[0].Rendered).To(ContainSubstring("C: HELO client." + st.manifest.Domain))
			Expect(helo.Transcript[0].Rendered).To(ContainSubstring("S: 504"))
			Expect(helo.Transcript[0].TLS).NotTo(BeNil())
			Expect(helo.Transcript[0].Record.Events()).NotTo(BeEmpty())
		})

		It("runs only the focused clause", func() {
			run, r := st.runConformAgainst(amtpkitPath, srv.public, "--timeout", "3s", "--focus", "4.4.1-helo-rejected")
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			for _, c := range specClauses(r) {
				if c.ID == "4.4.1-helo-rejected" {
					Expect(c.Verdict).To(Equal(result.Pass), c.Reason)
					continue
				}
				Expect(c.Verdict).To(Equal(result.Skip), c.ID)
				Expect(c.Reason).To(Equal("not selected by --focus, --skip or --label-filter"), c.ID)
			}
		})

		It("names the write error in its last line", func() {
			jsonPath := filepath.Join(GinkgoT().TempDir(), "missing", "result.json")
			run := runConformCommand(amtpkitPath, "conform", "--target", srv.public, "--pki", st.manifest.Dir(),
				"--dns-listen", st.dnsListen, "--timeout", "3s", "--focus", "4.4.1-helo-rejected", "--json", jsonPath)
			Expect(run.code).To(Equal(3), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stdout).To(ContainSubstring("JSON result not written: "))

			lines := strings.Split(strings.TrimSpace(run.stderr), "\n")
			last := lines[len(lines)-1]
			Expect(last).To(HavePrefix("amtpkit conform: results not written: "))
			Expect(last).To(ContainSubstring(jsonPath))
			Expect(run.stderr).NotTo(ContainSubstring("could not run 0 clauses"))
		})

		It("shows a letter per clause without Ginkgo's report", func() {
			run, _ := st.runConformAgainst(amtpkitPath, srv.public, "--timeout", "3s",
				"--focus", "4.4.1", "--focus", "rfc5321-4.2.1")
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stderr).To(ContainSubstring("checking " + srv.public + " (. pass, F fail"))
			Expect(run.stderr).To(MatchRegexp(`(?m)^4\.4\.1 +[.Wis]+$`))
			Expect(run.stderr).To(MatchRegexp(`(?m)^rfc5321-4\.2\.1 +\.\.$`))
			Expect(run.stderr).NotTo(ContainSubstring(".go:"))
			Expect(run.stderr).NotTo(MatchRegexp(`Ran \d+ of \d+ Specs|Skipped|Passed`))
		})

		It("shows Ginkgo's report under --verbose", func() {
			run, _ := st.runConformAgainst(amtpkitPath, srv.public, "--timeout", "3s", "--verbose",
				"--focus", "4.4.1-helo-rejected")
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stderr).To(ContainSubstring("4.4.1-helo-rejected"))
			Expect(run.stderr).To(MatchRegexp(`Ran 1 of \d+ Specs`))
		})

		DescribeTable("records an interrupt as skips and exits with 130", func(signal os.Signal, cause string) {
			dir := GinkgoT().TempDir()
			jsonPath := filepath.Join(dir, "result.json")
			markdownPath := filepath.Join(dir, "result.md")
			args := append([]string{"conform", "--target", srv.public, "--pki", st.manifest.Dir(),
				"--dns-listen", st.dnsListen, "--json", jsonPath, "--markdown", markdownPath,
				"--private-target", srv.private, "--maildir", srv.maildir, "--timeout", "3s"}, st.sinkArgs()...)
			session, err := gexec.Start(exec.Command(amtpkitPath, args...), GinkgoWriter, GinkgoWriter)
			Expect(err).NotTo(HaveOccurred())

			// The first letter of the progress report: a check ended and
			// the next one is running.
			Eventually(session.Err, 30*time.Second).Should(gbytes.Say(`\n\S+ +[.FWisE]`))
			session.Signal(signal)
			Eventually(session, conformRunTimeout).Should(gexec.Exit())
			stderr := string(session.Err.Contents())
			Expect(session.ExitCode()).To(Equal(130), "stdout:\n%s\nstderr:\n%s", session.Out.Contents(), stderr)

			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			Expect(lines[len(lines)-1]).To(HavePrefix("amtpkit conform: interrupted (" + cause + ") after checking "))
			Expect(lines[len(lines)-1]).To(HaveSuffix("partial result in " + jsonPath))
			Expect(markdownPath).To(BeAnExistingFile())

			r, err := result.Load(jsonPath)
			Expect(err).NotTo(HaveOccurred())
			Expect(r.Environment.Interrupted).To(BeTrue())
			Expect(r.Environment.InterruptReason).To(Equal(cause))
			notRun := 0
			for _, c := range r.Clauses {
				Expect(c.Verdict).NotTo(Equal(result.Fail), "%s: %s", c.ID, c.Reason)
				Expect(c.Verdict).NotTo(Equal(result.Error), "%s: %s", c.ID, c.Reason)
				if strings.HasPrefix(c.Reason, "not run: the run was interrupted before this check") {
					notRun++
				}
			}
			Expect(notRun).To(BeNumerically(">", 0))
		},
			Entry("SIGINT", os.Interrupt, "interrupt signal received"),
			Entry("SIGTERM", syscall.SIGTERM, "terminated signal received"),
		)

		It("fails the literal readings under --strict", func() {
			run, r := st.runConformAgainst(amtpkitPath, srv.public, "--timeout", "3s", "--strict",
				"--focus", "4.4.3-mail-without-mpc-rejected", "--focus", "4.4.3-duplicate-mpc-rejected")
			Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			without, _ := r.Clause("4.4.3-mail-without-mpc-rejected")
			Expect(without.Verdict).To(Equal(result.Fail))
			Expect(without.Reason).To(ContainSubstring("--strict"))
			Expect(run.stdout).To(ContainSubstring("4.4.3-duplicate-mpc-rejected [MUST]: --strict"))
		})
	})

	It("checks the PTR records of ::1", func() {
		hosts, err := os.ReadFile("/etc/hosts")
		Expect(err).NotTo(HaveOccurred())
		for _, line := range strings.Split(string(hosts), "\n") {
			if fields := strings.Fields(line); len(fields) > 1 && fields[0] == "::1" {
				Skip("/etc/hosts names ::1, so amtpd's Go resolver reads its PTR from that file instead of DNS")
			}
		}
		probe, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			Skip("no IPv6 loopback: " + err.Error())
		}
		probe.Close()

		st := newConformStage()
		srv := st.startConformAmtpd(amtpdPath, true)
		run, r := st.runConformAgainst(amtpkitPath, srv.public, "--target6", srv.public6, "--timeout", "3s",
			"--focus", "4.2-ipv6-equivalent-tests")
		Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
		ipv6, _ := r.Clause("4.2-ipv6-equivalent-tests")
		Expect(ipv6.Verdict).To(Equal(result.Pass), ipv6.Reason)
		Expect(ipv6.Observations).To(ContainElement(ContainSubstring("EHLO got 250")))
		Expect(ipv6.Transcript).To(HaveLen(2))
	})

	It("fails 4.4.1-helo-rejected against a server that accepts HELO", func() {
		st := newConformStage()
		target := startLenientServer(st.manifest)
		run, r := st.runConformAgainst(amtpkitPath, target, "--timeout", "2s")
		Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

		helo, _ := r.Clause("4.4.1-helo-rejected")
		Expect(helo.Verdict).To(Equal(result.Fail))
		Expect(helo.Reason).To(ContainSubstring("HELO after the greeting got"))
		Expect(helo.Reason).To(ContainSubstring("not 504"))
		Expect(run.stdout).To(ContainSubstring("4.4.1-helo-rejected [MUST]"))

		// A server that accepts every certificate fails the certificate
		// checks too, each on its own connection.
		untrusted, _ := r.Clause("4.2-client-ca-recognized")
		Expect(untrusted.Verdict).To(Equal(result.Fail))
		greeting, _ := r.Clause("rfc5321-4.3.1-greeting-220")
		Expect(greeting.Verdict).To(Equal(result.Pass))

		// The user learns where to look from the summary, not from Ginkgo.
		Expect(run.stderr).To(MatchRegexp(`(?m)^4\.4\.1 +\S*F`))
		Expect(run.stderr).To(MatchRegexp(`(?m)^client 4\.4\.2 +s+$`))
		Expect(run.stderr).NotTo(ContainSubstring(".go:"))
		Expect(run.stdout).To(ContainSubstring("failed:\n"))
		Expect(run.stdout).To(ContainSubstring("JSON result: " + run.jsonPath))
		Expect(run.stderr).To(HaveSuffix("MUST-class clauses failed\n"))
	})

	It("ends within the timeouts against a silent server", func() {
		st := newConformStage()
		target := startSilentServer()
		run, r := st.runConformAgainst(amtpkitPath, target, "--timeout", "1s")
		Expect(run.code).To(Equal(3), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
		Expect(run.elapsed).To(BeNumerically("<", 30*time.Second))
		Expect(r.Environment.Baseline).NotTo(BeNil())
		Expect(r.Environment.Baseline.OK).To(BeFalse())
		Expect(r.Environment.Baseline.Reason).To(ContainSubstring("timed out"))

		for _, c := range r.Clauses {
			Expect(c.Verdict).To(BeElementOf(result.Error, result.Fail, result.Skip, result.Untestable), "%s: %s", c.ID, c.Reason)
		}
		helo, _ := r.Clause("4.4.1-helo-rejected")
		Expect(helo.Verdict).To(Equal(result.Error))
		Expect(helo.Reason).To(ContainSubstring("precondition failed"))
		Expect(run.stdout).To(MatchRegexp(`\d+ clauses: precondition failed`))
	})

	It("lists the clauses without connecting", func() {
		run := runConformCommand(amtpkitPath, "conform", "--list")
		Expect(run.code).To(Equal(0), run.stderr)
		Expect(run.stdout).To(ContainSubstring("124 clauses"))
		Expect(run.stdout).To(MatchRegexp(`(?m)^  checked on the wire +MUST +server MTA +4\.4\.1-helo-rejected$`))
		Expect(run.stdout).To(MatchRegexp(`(?m)^  untestable +MUST +operator +4\.3\.2-client-ptr-required$`))
		Expect(run.stdout).To(MatchRegexp(`(?m)^  checked on the wire +MUST +client MTA +4\.4\.2-client-starts-with-ehlo$`))
		Expect(run.stdout).To(MatchRegexp(`(?m)^  checked on the wire +SHALL +client MTA +4\.3\.1-srv-procedure$`))
		Expect(run.stdout).To(MatchRegexp(`(?m)^  checked on the wire +MUST NOT +server MTA +5\.2-unacceptable-not-delivered$`))
		Expect(run.stdout).To(MatchRegexp(`(?m)^  checked on the wire +MUST NOT +server MTA +5\.2-no-rewrite$`))
		Expect(run.stdout).To(MatchRegexp(`clauses: \d+ checked on the wire, \d+ not checked yet, \d+ binds another role, \d+ untestable`))
		Expect(run.stdout).NotTo(ContainSubstring("no spec yet"))

		// The labels that a label filter can name, with an example.
		Expect(run.stdout).To(MatchRegexp(`(?m)^  level:MAY level:MUST level:MUST-NOT .*level:SHOULD$`))
		Expect(run.stdout).To(MatchRegexp(`(?m)^  section:1\.2 .*section:4\.4\.1 .*section:rfc5321-4\.1\.1\.4`))
		Expect(run.stdout).To(MatchRegexp(`(?m)^  needs:\S+ .*needs:maildir`))
		Expect(run.stdout).To(ContainSubstring("example: --label-filter 'level:MUST && !needs:maildir'"))

		for _, match := range regexp.MustCompile(`(?m)^  checked on the wire +\S+(?: NOT)? +server MTA +(\S+)$`).FindAllStringSubmatch(run.stdout, -1) {
			_, ok := catalogue.ByID(match[1])
			Expect(ok).To(BeTrue(), match[1])
		}
	})

	DescribeTable("rejects a selection that checks nothing",
		func(args []string, named string) {
			st := newConformStage()
			jsonPath := filepath.Join(GinkgoT().TempDir(), "result.json")
			run := runConformCommand(amtpkitPath, append([]string{"conform", "--target", "127.0.0.1:1",
				"--pki", st.manifest.Dir(), "--dns-listen", st.dnsListen, "--json", jsonPath}, args...)...)
			Expect(run.code).To(Equal(2), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stderr).To(ContainSubstring("leaves no clause to check on the wire"))
			Expect(run.stderr).To(ContainSubstring(named))
			Expect(run.stderr).To(ContainSubstring("level:MAY level:MUST level:MUST-NOT"))
			Expect(run.stderr).To(ContainSubstring("needs:maildir"))
			Expect(run.stderr).NotTo(ContainSubstring("checking 127.0.0.1:1"))
			Expect(jsonPath).NotTo(BeAnExistingFile())
		},
		Entry("mistyped level label", []string{"--label-filter", "level:MUSTT"}, `--label-filter "level:MUSTT"`),
		Entry("every level skipped",
			[]string{"--skip", "MUST", "--skip", "MUST-NOT", "--skip", "REQUIRED", "--skip", "SHALL", "--skip", "SHOULD", "--skip", "MAY"},
			"--skip MUST --skip MUST-NOT"),
	)

	It("prints a label filter syntax error without colour codes", func() {
		run := runConformCommand(amtpkitPath, "conform", "--target", "127.0.0.1:1", "--pki", "pki",
			"--label-filter", "level:MUST &&")
		Expect(run.code).To(Equal(2), run.stderr)
		Expect(run.stderr).To(ContainSubstring("Syntax Error Parsing Label Filter"))
		Expect(run.stderr).NotTo(ContainSubstring("\x1b["))
	})

	DescribeTable("rejects bad usage with exit status 2",
		func(args []string, message string) {
			run := runConformCommand(amtpkitPath, append([]string{"conform"}, args...)...)
			Expect(run.code).To(Equal(2), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stderr).To(ContainSubstring(message))
		},
		Entry("missing target", []string{"--pki", "pki"}, "--target HOST:PORT"),
		Entry("missing PKI", []string{"--target", "127.0.0.1:1"}, "--pki DIR"),
		Entry("unknown focus", []string{"--target", "127.0.0.1:1", "--pki", "pki", "--focus", "9.9-nothing"}, `--focus "9.9-nothing"`),
		Entry("non-loopback target", []string{"--target", "192.0.2.1:25", "--pki", "pki"}, "not a loopback address"),
		Entry("bad label filter", []string{"--target", "127.0.0.1:1", "--pki", "pki", "--label-filter", "a &&"}, "label filter"),
		Entry("unknown DNS mode", []string{"--target", "127.0.0.1:1", "--pki", "pki", "--dns", "other"}, `DNS mode "other"`),
		Entry("unknown flag", []string{"--bogus"}, "flag provided but not defined"),
		Entry("zero step timeout", []string{"--target", "127.0.0.1:1", "--pki", "pki", "--timeout", "0s"}, "--timeout 0s is invalid"),
	)
})

// startLenientServer serves a TLS server on 127.0.0.1 with the PKI's
// server certificate that accepts every client certificate and replies
// with success to every command, HELO included. It stops when the spec ends.
func startLenientServer(m *pki.Manifest) string {
	cert, err := m.TLSCertificate(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())
	listener, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
	})
	Expect(err).NotTo(HaveOccurred())

	var wg sync.WaitGroup
	DeferCleanup(func() {
		listener.Close()
		wg.Wait()
	})
	var conns sync.Map
	DeferCleanup(func() {
		conns.Range(func(key, _ any) bool {
			key.(net.Conn).Close()
			return true
		})
	})
	wg.Go(func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			conns.Store(conn, true)
			wg.Go(func() { serveLenient(conn) })
		}
	})
	return listener.Addr().String()
}

// serveLenient runs one session of the lenient server.
func serveLenient(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	reply := func(lines ...string) bool {
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
		return err == nil
	}
	if !reply("220 mx.example.test lenient test server") {
		return
	}
	for {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO":
			if !reply("250-mx.example.test", "250 PIPELINING") {
				return
			}
		case "QUIT":
			reply("221 bye")
			return
		case "DATA":
			if !reply("354 go ahead") {
				return
			}
			var data strings.Builder
			for !strings.HasSuffix(data.String(), "\r\n.\r\n") {
				chunk, err := r.ReadString('\n')
				if err != nil {
					return
				}
				data.WriteString(chunk)
			}
			if !reply("250 accepted") {
				return
			}
		default:
			if !reply("250 ok") {
				return
			}
		}
	}
}

// startSilentServer accepts TCP connections on 127.0.0.1 and never sends
// a byte. It stops when the spec ends.
func startSilentServer() string {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	DeferCleanup(func() {
		listener.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	})
	return listener.Addr().String()
}
