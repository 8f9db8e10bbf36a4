package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/fixtures/postfix"
)

// postfixVerdict is the verdict that the conformance suite must give a
// Postfix 3.7 server on one clause.
type postfixVerdict struct {
	id        string
	verdict   result.Verdict
	reason    string // a substring of the suite's reason
	rationale string // why the suite must give that verdict
}

// Reasons that several clauses share.
const (
	whyNoPrivateListener    = "The instance has no private listener (section 7), so the test passes no --private-target."
	whyNeedsAcceptedMPC     = "The check needs a message accepted with MPC=per/individual first. Postfix rejects every MAIL with an MPC parameter with 555 5.5.4, a reply that 4.4.3-mpc-result-codes judges and fails, so the check is skipped and names that clause."
	whyNoMessageGetsThrough = "A pass for the wrong reason: Postfix rejects every MAIL with an MPC parameter, so no message with an MPC header field gets through."
	whyRelayNeedsPrivate    = "The relay checks submit through a private listener, and the instance has none."
	whyClientRole           = "A client-MTA clause: the suite would watch the server relay to its sinks, which needs a private listener."
	whyNoServerTimeout      = "The test passes no --server-timeout, because the check would wait out Postfix's smtpd_timeout of 300 seconds."
)

// dependsOnMPCCodes is the reason of the checks that need a message
// accepted with MPC=per/individual first.
const dependsOnMPCCodes = `depends on 4.4.3-mpc-result-codes, which got fail: MAIL FROM:<conformance@example.test> MPC=per/individual got "555 5.5.4 Unsupported option: MPC=per/individual"`

// postfixVerdicts lists every clause that has a spec, in catalogue order,
// with the verdict against Postfix as fixtures/postfix/instance.sh
// configures it: implicit TLS, a verified client certificate required,
// Maildir delivery for example.test, no relay. docs/interop.md shows the
// same table.
var postfixVerdicts = []postfixVerdict{
	{"1.2-public-ca-not-private-ca", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"3.1-client-certificate-required", result.Pass, "at the greeting: the greeting was 421 \"421 4.7.1 mx.example.test Error: No client certificate presented\", and the server closed the connection; a control session of client",
		"Postfix (smtpd_tls_req_ccert = yes) completes the handshake, greets a client without a certificate with 421 4.7.1 and closes. A control session with the valid certificate gets 220 right after, so the 421 refuses this client and does not mean that Postfix is busy."},
	{"3.1-client-presents-certificate", result.Skip, "needs --private-target",
		whyClientRole},
	{"3.1-server-presents-certificate", result.Pass, "which verifies for \"mx.example.test\"",
		"Postfix presents the fixture server certificate (smtpd_tls_cert_file)."},
	{"4.1-no-public-on-alternative-port", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"4.1-private-alternative-port", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"4.2-client-ca-recognized", result.Pass, "Error: Client certificate not trusted\", and the server closed the connection",
		"Postfix verifies the chain against smtpd_tls_CAfile and refuses the untrusted-ca certificate with a 421 greeting and a close, while the valid certificate still gets 220."},
	{"4.2-client-certificate-dates", result.Pass, "rejected not-yet-valid (CN future.example.test from 127.0.0.4) with EHLO future.example.test at the greeting",
		"OpenSSL's chain verification refuses the expired and the not-yet-valid certificate, with the same 421 greeting and close."},
	{"4.2-client-cn-fqdn", result.Fail, "accepted cn-not-fqdn",
		"Postfix checks the chain only, not the CN, so a certificate with the CN \"client\" gets a session."},
	{"4.2-client-cn-matches-ptr", result.Fail, "accepted ptr-mismatch",
		"Postfix compares no certificate name with the client's PTR record. It looks up no PTR here (smtpd_peername_lookup = no), and its resolver could not reach the suite's DNS server on a non-standard port anyway."},
	{"4.2-client-presents-certificate", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.2-ipv6-equivalent-tests", result.Skip, "no IPv6 listener configured",
		"The instance listens on IPv4 only, and the test passes no --target6."},
	{"4.2-server-certificate-dates", result.Pass, "the server certificate \"CN=mx.example.test\" is valid from",
		"The fixture server certificate is within its dates."},
	{"4.2-server-presents-certificate", result.Pass, "the private listener was not checked",
		"Postfix presents the fixture server certificate; there is no private listener to check."},
	{"4.2-tls-required", result.Pass, "the server ended the plain-text connection at EHLO",
		"With smtpd_tls_wrappermode the listener speaks TLS only, so a plain-text EHLO gets no SMTP reply."},
	{"4.3.1-client-queries-srv", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.3.1-srv-procedure", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.3.2-client-without-ptr-rejected", result.Fail, "accepted no-ptr",
		"Postfix does not require a PTR record, and it looks up none here."},
	{"4.3.2-ptr-matches-certificate", result.Fail, "accepted ptr-mismatch",
		"Postfix compares no PTR record with the certificate."},
	{"4.3.2-ptr-matches-ehlo", result.Fail, "with EHLO elsewhere.example.test: EHLO got 250",
		"Postfix compares no PTR record with the EHLO name."},
	{"4.4.1-helo-rejected", result.Fail, "HELO after the greeting got \"250 mx.example.test\", not 504",
		"Postfix answers HELO with 250, as RFC 5321 wants of an SMTP server; AMTP demands 504."},
	{"4.4.2-client-bounces-on-deny", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.2-client-no-retry-on-deny", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.2-client-quits-on-deny", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.2-client-starts-with-ehlo", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.2-declarations-in-order", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.2-ehlo-mismatch-rejected", result.Fail, "with EHLO elsewhere.example.test: EHLO got 250",
		"Postfix accepts any EHLO name: it compares it with neither the certificate nor the PTR record."},
	{"4.4.2-mpc-declaration-line", result.Info, "has no MPC line",
		"Postfix knows no MPC extension, so its EHLO reply has no MPC line, which the draft allows (MAY)."},
	{"4.4.2-mpc-declaration-syntax", result.Skip, "no EHLO reply has an MPC line",
		"Without an MPC line there is no syntax to check."},
	{"4.4.2-no-declaration-allows", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.3-client-issues-mpc", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.3-client-one-mpc", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.3-duplicate-mpc-rejected", result.Pass, "MAIL with two MPC parameters got \"555 5.5.4 Unsupported option: MPC=per/individual\"",
		"A pass for the wrong reason: Postfix rejects any unknown MAIL parameter with 555, so two MPC parameters are rejected too."},
	{"4.4.3-mail-without-mpc-rejected", result.Fail, "MAIL without an MPC parameter got 250",
		"Postfix accepts a plain SMTP MAIL command and queues the message."},
	{"4.4.3-mpc-result-codes", result.Fail, "MPC=per/individual got 555 at MAIL",
		"Postfix rejects every MPC value with 555 (unknown parameter), not with the 250, 451 or 550 that the draft assigns to MPC decisions. After smtpd_hard_error_limit (20) errors in one session it replies 421 and closes, so the value that comes next gets 421."},
	{"4.4.3-reject-at-mail-or-rcpt", result.Info, "rejected at MAIL: per/individual (555)",
		"Records that the rejections come at MAIL."},
	{"4.4.3-reject-without-declaration", result.Info, "rejected with 550 no value",
		"Postfix declares nothing and rejects no value with 550; its rejections are 555."},
	{"4.4.4-existing-header-refused", result.Pass, "the server rejected every message",
		whyNoMessageGetsThrough},
	{"4.4.4-existing-header-searched", result.Pass, "the server rejected every message",
		whyNoMessageGetsThrough},
	{"4.4.4-header-inserted-on-delivery", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"4.4.4-header-inserted-on-non-amtp-relay", result.Skip, "needs --gateway-sink",
		"The instance has no route to the suite's plain SMTP gateway sink."},
	{"4.4.4-header-token-case-insensitive", result.Pass, "the server rejected every message",
		whyNoMessageGetsThrough},
	{"4.4.4-mpc-propagated-as-parameter", result.Skip, "needs --private-target",
		whyClientRole},
	{"4.4.4-mpc-value-preserved", result.Skip, "needs --private-target",
		whyRelayNeedsPrivate},
	{"4.4.4-no-header-on-amtp-relay", result.Skip, "needs --private-target",
		whyRelayNeedsPrivate},
	{"4.4.4-no-rewrite", result.Skip, dependsOnMPCCodes,
		"With every MPC value rejected there is no delivered value to compare; the reason cites the first rejection, that of per/individual, which 4.4.3-mpc-result-codes judges."},
	{"4.5-mpc-individual-accepted", result.Fail, "MAIL got \"555 5.5.4 Unsupported option: MPC=mpc/individual\"",
		"mpc/individual, which every AMTP server must accept, gets 555 like every other MPC value."},
	{"4.5-mpc-individual-delivered", result.Skip, "depends on 4.5-mpc-individual-accepted",
		"Depends on the clause above."},
	{"4.5-mpc-role-only-individual", result.Pass, "the server rejected MPC=mpc/optin",
		"A pass for the wrong reason: Postfix rejects mpc/optin because it rejects every MPC value."},
	{"4.5-undefined-values-rejected", result.Pass, "the server rejected MPC=biz/individual",
		"A pass for the wrong reason: Postfix rejects undefined values because it rejects every MPC value."},
	{"5.1-no-public-to-public-relay", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"5.1-relay-over-private-connections", result.Skip, "needs --private-sink",
		"The instance has no private route to the suite's sink."},
	{"5.2-no-rewrite", result.Skip, "needs --private-target",
		whyRelayNeedsPrivate},
	{"5.2-unacceptable-not-delivered", result.Pass, "message with the undefined value MPC=biz/individual: MAIL got \"555",
		"A pass for the wrong reason: Postfix rejects biz/individual because it rejects every MPC value."},
	{"6.4-bounces-net-autoresponse", result.Skip, "needs --private-target",
		whyRelayNeedsPrivate},
	{"7-certificate-subject-matches-user", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"7-client-no-srv-for-private", result.Skip, "needs --private-sink",
		whyClientRole},
	{"7-private-alternative-port", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"7-private-ptr-exemption", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"7-private-user-authentication", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"7-server-certificate-any-ca", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"8-private-additional-authentication", result.Skip, "no private listener configured",
		whyNoPrivateListener},
	{"rfc5321-2.3.8-crlf-only", result.Fail, "so the server executed a command line that ended in a bare LF",
		"Postfix 3.7.11 executes a command line that ends in a bare LF: smtpd_forbid_bare_newline defaults to no in this version."},
	{"rfc5321-3.3-rcpt-before-mail-503", result.Pass, "RCPT got \"503 5.5.1 Error: need MAIL command\"",
		"Postfix keeps the SMTP command order."},
	{"rfc5321-3.5.3-vrfy-no-unverified-250", result.Pass, "Recipient address rejected: User unknown in virtual mailbox table",
		"VRFY of an unknown address gets 550 from the virtual mailbox table."},
	{"rfc5321-3.5.3-vrfy-reply-codes", result.Pass, "VRFY postmaster@example.test got \"252 2.0.0 postmaster@example.test\"",
		"VRFY of a known address gets 252."},
	{"rfc5321-3.6.2-relay-denied-550", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-3.8-no-close-except", result.Pass, "the connection stayed open",
		"Postfix keeps the session open after errors."},
	{"rfc5321-3.8-timeout-close-421", result.Skip, "needs --server-timeout",
		whyNoServerTimeout},
	{"rfc5321-4.1.1.4-end-of-data", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.1.1.4-no-bare-lf-end-of-data", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.1.1.4-no-bare-lf-lines", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.1.1.5-rset-250", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.1.1.5-rset-clears-transaction", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.1.1.9-noop-250", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.1.1.10-quit-221", result.Pass, "QUIT got \"221 2.0.0 Bye\"",
		"Postfix answers QUIT with 221 and closes."},
	{"rfc5321-4.1.4-commands-before-ehlo", result.Pass, "before EHLO, NOOP got 250, RSET got 250, VRFY got 252",
		"Postfix serves NOOP, RSET and VRFY before EHLO."},
	{"rfc5321-4.1.4-data-before-rcpt-503", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.1.4-nested-mail-503", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.2-one-reply-per-command", result.Pass, "MAIL 555, RCPT 503, DATA 503, no message text sent after DATA 503, RSET 250, QUIT 221",
		"Every command gets one reply. MAIL gets 555, so RCPT and DATA get 503, and the check sends no message text after a DATA that did not get 354."},
	{"rfc5321-4.2.1-multiline-format", result.Pass, "have a space or hyphen after each code and end each line in CRLF",
		"Postfix's multiline EHLO reply is well formed."},
	{"rfc5321-4.2.1-multiline-same-code", result.Pass, "carry one code on all their lines",
		"Every line of the multiline reply has the same code."},
	{"rfc5321-4.2.4-no-unimplemented-ehlo-keywords", result.Pass, "every command the EHLO reply lists is implemented",
		"VRFY and ETRN, which the EHLO reply lists, are implemented."},
	{"rfc5321-4.2.4-unknown-command-500", result.Pass, "XYZZY got \"500 5.5.2 Error: command not recognized\"",
		"An unknown command gets 500."},
	{"rfc5321-4.3.1-greeting-220", result.Pass, "the greeting is \"220 mx.example.test ESMTP Postfix\"",
		"A client with a valid certificate gets a 220 greeting."},
	{"rfc5321-4.3.2-command-line-too-long-500", result.Warn, "NOOP (a 2048-octet line with CRLF) got \"250 2.0.0 Ok\", not 500",
		"Postfix accepts command lines longer than RFC 5321's 512 octets (its line_length_limit is 2048 by default) instead of replying 500."},
	{"rfc5321-4.3.2-reply-code-range", result.Pass, "start with a code from 2xx to 5xx",
		"Every reply code is in range."},
	{"rfc5321-4.5.2-dot-unstuffing", result.Skip, dependsOnMPCCodes,
		"The MPC rejection at MAIL stops the message before its text is sent, so the data path of Postfix is never reached. Only a rejection at the end of data would fail the clause."},
	{"rfc5321-4.5.3.1.4-command-line-limit", result.Pass, "NOOP (a 512-octet line with CRLF) got \"250 2.0.0 Ok\"",
		"A 512-octet command line is accepted."},
	{"rfc5321-4.5.3.1.6-text-line-limit", result.Skip, dependsOnMPCCodes,
		"As for dot-unstuffing: the MPC rejection stops the message before any text line is sent."},
	{"rfc5321-4.5.3.1.7-message-content-64k", result.Skip, dependsOnMPCCodes,
		"As for dot-unstuffing: the MPC rejection stops the message before its content is sent."},
	{"rfc5321-4.5.3.1.8-hundred-recipients", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.5.3.1.9-limit-exceeded-reply", result.Info, "MAIL got \"555 5.5.4 Unsupported option: MPC=per/individual\"",
		"Records the reply to an oversized message, here the MPC rejection at MAIL."},
	{"rfc5321-4.5.3.1.10-too-many-recipients-452", result.Skip, dependsOnMPCCodes,
		whyNeedsAcceptedMPC},
	{"rfc5321-4.5.3.2.7-server-timeout", result.Skip, "needs --server-timeout",
		whyNoServerTimeout},
}

var _ = Describe("conform against Postfix", Ordered, ContinueOnFailure, func() {
	var (
		run         conformRun
		r           *result.Result
		st          *conformStage
		instance    *postfix.Instance
		amtpkitPath string
		listen      string
	)

	BeforeAll(func() {
		_, err := postfix.Binary()
		Expect(err).NotTo(HaveOccurred())
		amtpkitPath = builtBinary("amtpkit")

		st = newConformStage()
		m := st.manifest
		server, err := m.Cert(pki.CertServer)
		Expect(err).NotTo(HaveOccurred())
		dir, err := postfix.TempDir()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)

		listen = freeUDPAndTCPAddr()
		instance, err = postfix.StartServer(dir, postfix.ServerOptions{
			Listen:   listen,
			Cert:     m.Path(server.Cert),
			Key:      m.Path(server.Key),
			ClientCA: publicCAPath(m),
			Domain:   m.Domain,
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			AddReportEntry("Postfix mail log", instance.Log())
			Expect(instance.Stop()).To(Succeed())
		})

		run, r = st.runConformAgainst(amtpkitPath, listen, "--maildir", instance.MaildirRoot(), "--timeout", "3s")
	})

	It("exits 1 because MUST clauses fail", func() {
		Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
		Expect(run.stdout).To(ContainSubstring("4.4.1-helo-rejected [MUST]"))
	})

	It("leaves no clause with a harness error", func() {
		Expect(r.Summary.Errors).To(BeEmpty())
		for _, c := range specClauses(r) {
			Expect(c.Verdict).NotTo(Equal(result.Error), "%s: %s", c.ID, c.Reason)
		}
	})

	It("fails a 421 greeting under --strict", func() {
		strictRun, strict := st.runConformAgainst(amtpkitPath, listen, "--strict", "--timeout", "3s",
			"--focus", "3.1-client-certificate-required", "--focus", "4.2-client-ca-recognized")
		Expect(strictRun.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", strictRun.stdout, strictRun.stderr)
		for _, id := range []string{"3.1-client-certificate-required", "4.2-client-ca-recognized"} {
			c, ok := strict.Clause(id)
			Expect(ok).To(BeTrue(), id)
			Expect(c.Verdict).To(Equal(result.Fail), "%s: %s", id, c.Reason)
			Expect(c.Reason).To(HavePrefix("--strict: the listener " + listen + " rejected"))
		}
	})

	It("judges exactly the clauses of the table", func() {
		listed := map[string]bool{}
		for _, v := range postfixVerdicts {
			listed[v.id] = true
		}
		var judged, unlisted []string
		for _, c := range specClauses(r) {
			judged = append(judged, c.ID)
			if !listed[c.ID] {
				unlisted = append(unlisted, fmt.Sprintf("%s: %s: %s", c.ID, c.Verdict, c.Reason))
			}
		}
		Expect(unlisted).To(BeEmpty(), "add these spec clauses to postfixVerdicts and docs/interop.md")

		var gone []string
		for _, v := range postfixVerdicts {
			if !slices.Contains(judged, v.id) {
				gone = append(gone, v.id)
			}
		}
		Expect(gone).To(BeEmpty(), "remove these clauses, which have no spec any more, from postfixVerdicts and docs/interop.md")
	})

	for _, want := range postfixVerdicts {
		It("gives "+want.id+" the expected verdict", func() {
			c, ok := r.Clause(want.id)
			Expect(ok).To(BeTrue())
			Expect(c.Verdict).To(Equal(want.verdict), "expected because: %s\nreason: %s", want.rationale, c.Reason)
			Expect(c.Reason).To(ContainSubstring(want.reason))
		})
	}

	It("delivers the suite's message without MPC to its Maildir", func() {
		messages, err := instance.Delivered(st.manifest.Domain, "postmaster")
		Expect(err).NotTo(HaveOccurred())
		Expect(slices.ContainsFunc(messages, func(m string) bool {
			return strings.Contains(m, "\nX-AMTP-Conformance: ") && strings.Contains(m, ".4.4.3-mail-without-mpc-rejected.")
		})).To(BeTrue(), "%d messages in the Maildir of postmaster", len(messages))
	})

	It("sends a stray 220 after its 421 greeting", func() {
		c, ok := r.Clause("3.1-client-certificate-required")
		Expect(ok).To(BeTrue())
		Expect(c.Transcript).NotTo(BeEmpty())
		Expect(c.Transcript[0].Rendered).To(ContainSubstring(
			"S: 421 4.7.1 mx.example.test Error: No client certificate presented\nS: 220 mx.example.test ESMTP Postfix\n"))
	})

	It("logs why it rejected the clients", func() {
		log := instance.Log()
		Expect(log).To(ContainSubstring("abort: TLS from unknown[127.0.0.2]: No client certificate presented"))
		Expect(log).To(ContainSubstring("abort: TLS from unknown[127.0.0.8]: Client certificate not trusted"))
		Expect(log).To(ContainSubstring("abort: TLS from unknown[127.0.0.3]: Client certificate not trusted"))
	})
})

// publicCAPath returns the certificate file of the PKI's public CA.
func publicCAPath(m *pki.Manifest) string {
	GinkgoHelper()
	for _, ca := range m.CAs {
		if ca.Name == pki.PublicCA {
			return m.Path(ca.Cert)
		}
	}
	Fail("CA " + pki.PublicCA + " not in the manifest")
	return ""
}
