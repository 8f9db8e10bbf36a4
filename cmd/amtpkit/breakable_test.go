package main

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/conformance/specs"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// These tests show that each server-role clause with a spec can fail: the
// breakable server keeps every clause, and each fault switch breaks the
// clauses of one behaviour and no other.

// breakableMPCLine is the MPC line of the breakable server's EHLO reply,
// the policy that its MAIL command applies.
const breakableMPCLine = "MPC DENY=*/optout"

// notSelected is the reason of a clause that --focus left out.
const notSelected = "not selected by --focus, --skip or --label-filter"

// verdicts maps clause IDs to verdicts.
type verdicts map[string]result.Verdict

// focusOf returns the --focus values that select the sections of the
// clauses in ids, in catalogue order.
func focusOf(ids []string) []string {
	var sections []string
	for _, id := range ids {
		c, ok := catalogue.ByID(id)
		Expect(ok).To(BeTrue(), "clause %s is not in the catalogue", id)
		section := specs.SectionLabelValue(c.Source, c.Section)
		if !slices.Contains(sections, section) {
			sections = append(sections, section)
		}
	}
	return sections
}

// expectedStatus returns the exit status of "amtpkit conform" for a run
// whose verdicts are want: 1 when a clause fails, 0 otherwise.
func expectedStatus(want []result.Verdict) int {
	if slices.Contains(want, result.Fail) {
		return 1
	}
	return 0
}

var _ = Describe("conform against the breakable server", Ordered, ContinueOnFailure, func() {
	var (
		amtpkitPath string
		manifest    *pki.Manifest
		ipv6        bool
		// baseline is the result of the run without a fault.
		baseline *result.Result
	)

	BeforeAll(func() {
		var err error
		amtpkitPath = builtBinary("amtpkit")

		manifest, err = pki.Init(pki.Options{Dir: filepath.Join(GinkgoT().TempDir(), "pki")})
		Expect(err).NotTo(HaveOccurred())

		if probe, err := net.Listen("tcp", "[::1]:0"); err == nil {
			probe.Close()
			ipv6 = true
		}
	})

	// runAgainst starts a breakable server with faults and runs "amtpkit
	// conform" against all its listeners, restricted to focus, with the
	// extra options.
	runAgainst := func(faults []fault, focus []string, extra ...string) (conformRun, *result.Result) {
		st := &conformStage{dir: GinkgoT().TempDir(), manifest: manifest, dnsListen: freeUDPAndTCPAddr(),
			gatewaySink: freeUDPAndTCPAddr(), privateSink: freeUDPAndTCPAddr()}
		maildir := filepath.Join(st.dir, "maildir")
		Expect(os.MkdirAll(maildir, 0o755)).To(Succeed())

		srv, err := startBreakableServer(breakableConfig{
			manifest:    manifest,
			dnsAddr:     st.dnsListen,
			maildir:     maildir,
			mpcLine:     breakableMPCLine,
			gatewaySink: st.gatewaySink,
			privateSink: st.privateSink,
			ipv6:        ipv6,
			faults:      faults,
			logf:        func(format string, args ...any) { fmt.Fprintf(GinkgoWriter, format+"\n", args...) },
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(srv.Close)

		args := []string{"--private-target", srv.private, "--maildir", maildir, "--timeout", "2s",
			"--gateway-sink", st.gatewaySink, "--private-sink", st.privateSink,
			"--server-timeout", breakableCommandTimeout.String()}
		if srv.public6 != "" {
			args = append(args, "--target6", srv.public6)
		}
		for _, value := range focus {
			args = append(args, "--focus", value)
		}
		args = append(args, extra...)
		return st.runConformAgainst(amtpkitPath, srv.public, args...)
	}

	It("passes every server clause without a fault", func() {
		run, r := runAgainst(nil, nil)
		Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
		Expect(run.elapsed).To(BeNumerically("<", time.Minute))

		checked := 0
		for _, c := range specClauses(r) {
			checked++
			want := result.Pass
			switch {
			case c.Level == string(catalogue.May):
				want = result.Info
			case c.ID == "4.2-ipv6-equivalent-tests" && !ipv6:
				want = result.Skip
			case c.ID == "rfc5321-4.5.3.2.7-server-timeout":
				// The server closes an idle session after 4 seconds, below
				// the 5 minutes that RFC 5321 recommends, so that the idle
				// checks take seconds. The clause's warning shows that it
				// can fail.
				want = result.Warn
			}
			Expect(c.Verdict).To(Equal(want), "%s: %s", c.ID, c.Reason)
		}
		Expect(checked).To(BeNumerically(">=", 72))
		baseline = r
	})

	// Each entry switches one fault on, runs the sections of the clauses
	// it breaks, and compares every clause of those sections with the
	// baseline: the broken clauses must get their verdict in the entry,
	// and the others must keep the verdict of the baseline. A focus list
	// replaces those sections, for an entry that breaks no clause or that
	// should leave a clause of another section unchanged.
	DescribeTable("breaks only the clauses of one fault",
		func(f fault, broken verdicts, focus []string) {
			Expect(baseline).NotTo(BeNil(), "the run without a fault did not finish")
			if f == skipIPv6PTRCheck && !ipv6 {
				Skip("no IPv6 loopback")
			}
			if focus == nil {
				focus = focusOf(slices.Sorted(maps.Keys(broken)))
			}

			run, r := runAgainst([]fault{f}, focus)

			var seen []result.Verdict
			compared := map[string]bool{}
			for _, c := range specClauses(r) {
				if c.Verdict == result.Skip && c.Reason == notSelected {
					continue
				}
				before, ok := baseline.Clause(c.ID)
				Expect(ok).To(BeTrue(), c.ID)
				want, isBroken := broken[c.ID]
				if !isBroken || before.Verdict == result.Skip {
					// A clause that the baseline skips, such as the IPv6
					// check without IPv6, cannot break.
					want = before.Verdict
				}
				Expect(c.Verdict).To(Equal(want), "%s with %s: %s", c.ID, f, c.Reason)
				seen = append(seen, c.Verdict)
				compared[c.ID] = true
			}
			Expect(compared).NotTo(BeEmpty(), "--focus %v selected no clause", focus)
			for id := range broken {
				Expect(compared).To(HaveKey(id), "%s did not run", id)
			}
			Expect(run.code).To(Equal(expectedStatus(seen)), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
		},
		func(f fault, _ verdicts, _ []string) string { return string(f) },

		// TLS, certificates, PTR records and the EHLO argument.
		Entry(nil, optionalClientCert, verdicts{"3.1-client-certificate-required": result.Fail}, nil),
		Entry(nil, untrustedServerCert, verdicts{
			"3.1-server-presents-certificate": result.Fail,
			"4.2-server-presents-certificate": result.Fail,
		}, nil),
		Entry(nil, expiredServerCert, verdicts{
			"3.1-server-presents-certificate": result.Fail,
			"4.2-server-presents-certificate": result.Fail,
			"4.2-server-certificate-dates":    result.Fail,
		}, nil),
		Entry(nil, privateServerCertUntrusted, verdicts{"4.2-server-presents-certificate": result.Fail}, nil),
		Entry(nil, noPTRMeansPrivate, verdicts{"1.2-public-ca-not-private-ca": result.Fail}, nil),
		Entry(nil, acceptPublicOnPrivate, verdicts{"4.1-no-public-on-alternative-port": result.Fail}, nil),
		Entry(nil, acceptPlainText, verdicts{"4.2-tls-required": result.Fail}, nil),
		Entry(nil, acceptUntrustedCA, verdicts{"4.2-client-ca-recognized": result.Fail}, nil),
		Entry(nil, acceptExpired, verdicts{"4.2-client-certificate-dates": result.Fail}, nil),
		Entry(nil, acceptNotYetValid, verdicts{"4.2-client-certificate-dates": result.Fail}, nil),
		// NOTE: section 4.2 of the draft does not name the extended key
		// usage among the conditions of a valid certificate, and no clause
		// of the catalogue covers it, so this fault changes no verdict. The
		// suite never presents the PKI's no-client-auth certificate.
		Entry(nil, acceptNoClientAuth, verdicts{}, []string{"3.1", "4.2", "4.3.2"}),
		Entry(nil, acceptNonFQDN, verdicts{"4.2-client-cn-fqdn": result.Fail}, nil),
		Entry(nil, acceptPTRMismatch, verdicts{
			"4.2-client-cn-matches-ptr":     result.Fail,
			"4.2-ipv6-equivalent-tests":     result.Fail,
			"4.3.2-ptr-matches-certificate": result.Fail,
		}, nil),
		Entry(nil, acceptMissingPTR, verdicts{"4.3.2-client-without-ptr-rejected": result.Fail}, nil),
		Entry(nil, skipPTRCheck, verdicts{
			"4.2-client-cn-matches-ptr":         result.Fail,
			"4.2-ipv6-equivalent-tests":         result.Fail,
			"4.3.2-client-without-ptr-rejected": result.Fail,
			"4.3.2-ptr-matches-certificate":     result.Fail,
		}, nil),
		Entry(nil, skipIPv6PTRCheck, verdicts{"4.2-ipv6-equivalent-tests": result.Fail}, nil),
		Entry(nil, skipEHLOMatch, verdicts{
			"4.3.2-ptr-matches-ehlo":       result.Fail,
			"4.4.2-ehlo-mismatch-rejected": result.Fail,
		}, nil),
		// A 421 greeting and a close reject the client without breaking a
		// clause unless --strict is set, which the test after the table
		// shows.
		Entry(nil, rejectAtGreeting, verdicts{}, []string{"1.2", "3.1", "4.1", "4.2", "4.3.2", "4.4.2-ehlo-mismatch-rejected"}),

		// AMTP commands, the MPC parameter and the MPC header field.
		Entry(nil, acceptHELO, verdicts{"4.4.1-helo-rejected": result.Fail}, nil),
		Entry(nil, acceptHELOAfterEHLO, verdicts{"4.4.1-helo-rejected": result.Fail}, nil),
		Entry(nil, badMPCLine, verdicts{"4.4.2-mpc-declaration-syntax": result.Fail}, nil),
		Entry(nil, acceptTwoMPC, verdicts{"4.4.3-duplicate-mpc-rejected": result.Fail}, nil),
		Entry(nil, ignoreMissingMPC, verdicts{"4.4.3-mail-without-mpc-rejected": result.Fail}, nil),
		Entry(nil, keepSenderWithoutMPC, verdicts{"4.4.3-mail-without-mpc-rejected": result.Fail}, nil),
		Entry(nil, wrongMPCRejectCode, verdicts{"4.4.3-mpc-result-codes": result.Fail}, nil),
		// The checks that need an accepted message are skipped, because the
		// rejection at MAIL breaks 4.4.3-mpc-result-codes and not their own
		// clauses.
		Entry(nil, rejectEveryMPC, verdicts{
			"4.4.3-mpc-result-codes":             result.Fail,
			"4.5-mpc-individual-accepted":        result.Fail,
			"4.5-mpc-individual-delivered":       result.Skip,
			"rfc5321-4.1.4-data-before-rcpt-503": result.Skip,
			"rfc5321-4.1.4-nested-mail-503":      result.Skip,
			"rfc5321-4.5.2-dot-unstuffing":       result.Skip,
		}, nil),
		Entry(nil, keepExistingMPCHeader, verdicts{
			"4.4.4-existing-header-refused":       result.Fail,
			"4.4.4-existing-header-searched":      result.Fail,
			"4.4.4-header-token-case-insensitive": result.Fail,
		}, nil),
		Entry(nil, caseSensitiveHeaderSearch, verdicts{"4.4.4-header-token-case-insensitive": result.Fail}, nil),
		Entry(nil, shallowHeaderSearch, verdicts{"4.4.4-existing-header-searched": result.Fail}, nil),
		Entry(nil, missFoldedMPCHeader, verdicts{"4.4.4-existing-header-searched": result.Fail}, nil),
		Entry(nil, missSpaceBeforeColon, verdicts{"4.4.4-existing-header-searched": result.Fail}, nil),
		Entry(nil, noMPCHeader, verdicts{
			"4.4.4-mpc-value-preserved":         result.Fail,
			"4.4.4-header-inserted-on-delivery": result.Fail,
			"4.4.4-no-rewrite":                  result.Fail,
			"4.5-mpc-individual-delivered":      result.Fail,
		}, nil),
		Entry(nil, noMPCHeaderForMPCRole, verdicts{
			"4.4.4-no-rewrite":             result.Fail,
			"4.5-mpc-individual-delivered": result.Fail,
		}, nil),
		Entry(nil, rewriteMPCHeader, verdicts{"4.4.4-no-rewrite": result.Fail}, nil),
		Entry(nil, rejectMPCIndividual, verdicts{
			"4.5-mpc-individual-accepted": result.Fail,
			// It depends on the clause before, so it is skipped.
			"4.5-mpc-individual-delivered": result.Skip,
		}, nil),
		Entry(nil, acceptMPCOptin, verdicts{"4.5-mpc-role-only-individual": result.Fail}, nil),
		Entry(nil, acceptUndefinedMPC, verdicts{"4.5-undefined-values-rejected": result.Fail}, nil),

		// Relay and the private listener.
		Entry(nil, relayAnything, verdicts{
			"5.1-no-public-to-public-relay":  result.Fail,
			"rfc5321-3.6.2-relay-denied-550": result.Skip,
		}, nil),
		// Accepting a relay recipient without relaying is suspect but proves
		// no relay, so the clause warns.
		Entry(nil, acceptRelayDrop, verdicts{
			"5.1-no-public-to-public-relay":  result.Warn,
			"rfc5321-3.6.2-relay-denied-550": result.Skip,
		}, nil),
		Entry(nil, relayTempFail, verdicts{
			"5.1-no-public-to-public-relay":  result.Fail,
			"rfc5321-3.6.2-relay-denied-550": result.Warn,
		}, nil),
		Entry(nil, relayDenied554, verdicts{"rfc5321-3.6.2-relay-denied-550": result.Warn}, nil),
		Entry(nil, noAuthRequired, verdicts{
			"7-private-user-authentication":       result.Warn,
			"8-private-additional-authentication": result.Warn,
		}, nil),
		Entry(nil, noAuthAdvertised, verdicts{"7-private-user-authentication": result.Warn}, nil),
		Entry(nil, authIgnoresCN, verdicts{"7-certificate-subject-matches-user": result.Warn}, nil),
		Entry(nil, wrongAuthFailureCode, verdicts{"8-private-additional-authentication": result.Warn}, nil),
		Entry(nil, relayAddsMPCHeader, verdicts{"4.4.4-no-header-on-amtp-relay": result.Fail}, nil),
		Entry(nil, relayRewritesMPC, verdicts{
			"4.4.4-mpc-value-preserved":         result.Fail,
			"4.4.4-mpc-propagated-as-parameter": result.Fail,
			"5.2-no-rewrite":                    result.Fail,
		}, nil),
		Entry(nil, gatewayOmitsMPCHeader, verdicts{"4.4.4-header-inserted-on-non-amtp-relay": result.Fail}, nil),
		Entry(nil, privateRouteWithPublicCert, verdicts{"5.1-relay-over-private-connections": result.Fail}, nil),
		Entry(nil, caseSensitivePolicy, verdicts{"5.2-unacceptable-not-delivered": result.Fail}, nil),
		// A client-role fault: the sink's MPC DENY declaration is ignored.
		Entry(nil, relayIgnoresDeny, verdicts{
			"4.4.2-client-quits-on-deny":   result.Fail,
			"4.4.2-client-bounces-on-deny": result.Warn,
		}, nil),
		Entry(nil, bounceKeepsMPC, verdicts{"6.4-bounces-net-autoresponse": result.Fail}, nil),

		// RFC 5321 behaviour that AMTP inherits.
		Entry(nil, bareLFEndsCommand, verdicts{"rfc5321-2.3.8-crlf-only": result.Fail}, nil),
		Entry(nil, acceptRCPTBeforeMAIL, verdicts{"rfc5321-3.3-rcpt-before-mail-503": result.Fail}, nil),
		Entry(nil, vrfyAlways250, verdicts{"rfc5321-3.5.3-vrfy-no-unverified-250": result.Fail}, nil),
		Entry(nil, vrfyRejects550, verdicts{"rfc5321-3.5.3-vrfy-reply-codes": result.Warn}, nil),
		Entry(nil, lowErrorLimit, verdicts{"rfc5321-3.8-no-close-except": result.Fail}, nil),
		Entry(nil, trimmedDotEndsData, verdicts{"rfc5321-4.1.1.4-end-of-data": result.Fail}, nil),
		Entry(nil, bareLFEndsData, verdicts{"rfc5321-4.1.1.4-no-bare-lf-end-of-data": result.Fail}, nil),
		Entry(nil, acceptBareLF, verdicts{"rfc5321-4.1.1.4-no-bare-lf-lines": result.Fail}, nil),
		Entry(nil, rsetWithoutRecipientRejected, verdicts{"rfc5321-4.1.1.5-rset-250": result.Fail}, nil),
		Entry(nil, rsetKeepsRecipients, verdicts{"rfc5321-4.1.1.5-rset-clears-transaction": result.Fail}, nil),
		Entry(nil, noopInTransactionRejected, verdicts{"rfc5321-4.1.1.9-noop-250": result.Fail}, nil),
		Entry(nil, quitKeepsOpen, verdicts{"rfc5321-4.1.1.10-quit-221": result.Fail}, nil),
		Entry(nil, rejectCommandsBeforeEHLO, verdicts{"rfc5321-4.1.4-commands-before-ehlo": result.Warn}, nil),
		Entry(nil, dataWithoutRecipients, verdicts{
			"rfc5321-4.1.1.5-rset-clears-transaction": result.Fail,
			"rfc5321-4.1.4-data-before-rcpt-503":      result.Fail,
		}, nil),
		Entry(nil, dataErrorEndsTransaction, verdicts{"rfc5321-4.1.4-data-before-rcpt-503": result.Fail}, nil),
		Entry(nil, nestedMailResets, verdicts{"rfc5321-4.1.4-nested-mail-503": result.Fail}, nil),
		Entry(nil, extraReplyToRSET, verdicts{"rfc5321-4.2-one-reply-per-command": result.Fail}, nil),
		Entry(nil, wrongMultiline, verdicts{"rfc5321-4.2.1-multiline-format": result.Fail}, nil),
		Entry(nil, mixedMultilineCodes, verdicts{"rfc5321-4.2.1-multiline-same-code": result.Fail}, nil),
		Entry(nil, unknownCommand502, verdicts{"rfc5321-4.2.4-unknown-command-500": result.Warn}, nil),
		Entry(nil, advertiseUnimplemented, verdicts{"rfc5321-4.2.4-no-unimplemented-ehlo-keywords": result.Fail}, nil),
		Entry(nil, greetingWithoutDomain, verdicts{"rfc5321-4.3.1-greeting-220": result.Fail}, nil),
		Entry(nil, noLineLimit, verdicts{"rfc5321-4.3.2-command-line-too-long-500": result.Warn}, nil),
		Entry(nil, helpBadReplyCode, verdicts{"rfc5321-4.3.2-reply-code-range": result.Fail}, nil),
		Entry(nil, noDotUnstuffing, verdicts{
			"rfc5321-4.5.2-dot-unstuffing":      result.Fail,
			"rfc5321-4.5.3.1.6-text-line-limit": result.Fail,
		}, nil),
		Entry(nil, shortCommandLimit, verdicts{"rfc5321-4.5.3.1.4-command-line-limit": result.Fail}, nil),
		Entry(nil, limitBeforeUnstuffing, verdicts{"rfc5321-4.5.3.1.6-text-line-limit": result.Fail}, nil),
		Entry(nil, smallMessageLimit, verdicts{"rfc5321-4.5.3.1.7-message-content-64k": result.Fail}, nil),
		// The limit of 50 is below the 100 that RFC 5321 requires, but its
		// reply is the 452 of rfc5321-4.5.3.1.10, which still passes.
		Entry(nil, recipientLimit50, verdicts{"rfc5321-4.5.3.1.8-hundred-recipients": result.Fail},
			[]string{"rfc5321-4.5.3.1.8", "rfc5321-4.5.3.1.10"}),
		Entry(nil, recipientLimitCode550, verdicts{"rfc5321-4.5.3.1.10-too-many-recipients-452": result.Fail}, nil),
	)

	It("names the clause a skipped check depends on", func() {
		run, r := runAgainst([]fault{rejectEveryMPC}, []string{"4.4.3-mpc-result-codes", "rfc5321-4.5.2-dot-unstuffing"})
		Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

		c, ok := r.Clause("rfc5321-4.5.2-dot-unstuffing")
		Expect(ok).To(BeTrue())
		Expect(c.Verdict).To(Equal(result.Skip), c.Reason)
		Expect(c.Reason).To(HavePrefix("depends on 4.4.3-mpc-result-codes, which got fail: MAIL FROM:<"))
		Expect(c.Reason).To(HaveSuffix(` MPC=per/individual got "555 5.5.4 Unsupported option: MPC=per/individual"`))
	})

	It("fails only the reply code clause at EHLO 999", func() {
		run, r := runAgainst([]fault{invalidEHLOReplyCode}, nil)
		Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

		codes, ok := r.Clause("rfc5321-4.3.2-reply-code-range")
		Expect(ok).To(BeTrue())
		Expect(codes.Verdict).To(Equal(result.Fail), codes.Reason)
		Expect(codes.Reason).To(ContainSubstring(`the reply line "999 what" to EHLO `))
		Expect(codes.Transcript).NotTo(BeEmpty())
		Expect(codes.Transcript[0].Rendered).To(ContainSubstring("S: 999 what"))
		Expect(run.stdout).To(ContainSubstring("rfc5321-4.3.2-reply-code-range [MUST NOT]: the reply line"))

		dependent := 0
		for _, c := range specClauses(r) {
			Expect(c.Verdict).NotTo(Equal(result.Error), "%s: %s", c.ID, c.Reason)
			if c.ID != codes.ID {
				Expect(c.Verdict).NotTo(Equal(result.Fail), "%s: %s", c.ID, c.Reason)
			}
			if c.Verdict == result.Skip && strings.HasPrefix(c.Reason, "depends on rfc5321-4.3.2-reply-code-range, which this reply breaks: EHLO ") {
				dependent++
			}
		}
		Expect(dependent).To(BeNumerically(">=", 40))
	})

	It("describes mixed multiline codes as seen", func() {
		run, r := runAgainst([]fault{mixedMultilineCodes}, []string{"rfc5321-4.2.1"})
		Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

		format, ok := r.Clause("rfc5321-4.2.1-multiline-format")
		Expect(ok).To(BeTrue())
		Expect(format.Verdict).To(Equal(result.Pass), format.Reason)
		Expect(format.Reason).To(MatchRegexp(`\(\d+ lines with codes 250, 251, 250`))
		Expect(format.Reason).NotTo(ContainSubstring("lines of 250"))
		Expect(format.Reason).To(HaveSuffix("have a space or hyphen after each code and end each line in CRLF"))

		sameCode, ok := r.Clause("rfc5321-4.2.1-multiline-same-code")
		Expect(ok).To(BeTrue())
		Expect(sameCode.Verdict).To(Equal(result.Fail), sameCode.Reason)
		Expect(sameCode.Reason).To(ContainSubstring("code 251 differs from code 250 on line 1"))
	})

	It("warns on a relay RCPT that reaches no sink", func() {
		run, r := runAgainst([]fault{acceptRelayDrop}, []string{"5.1-no-public-to-public-relay"})
		Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

		c, ok := r.Clause("5.1-no-public-to-public-relay")
		Expect(ok).To(BeTrue())
		Expect(c.Verdict).To(Equal(result.Warn), c.Reason)
		Expect(c.Reason).To(HavePrefix("the server accepted a relay RCPT for postmaster@sink." + manifest.Domain + " from a public connection, and the message, but it did not reach"))
		// Three step timeouts of 2 seconds each.
		Expect(c.Reason).To(ContainSubstring(" within 6s; "))
		Expect(run.stdout).To(ContainSubstring("warnings:\n  5.1-no-public-to-public-relay [MUST NOT]: "))
	})

	It("names the undelivered message in the reason", func() {
		empty := filepath.Join(GinkgoT().TempDir(), "elsewhere")
		Expect(os.MkdirAll(empty, 0o755)).To(Succeed())
		run, r := runAgainst(nil, []string{"rfc5321-4.5.2-dot-unstuffing"}, "--maildir", empty)
		Expect(run.code).To(Equal(3), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

		c, ok := r.Clause("rfc5321-4.5.2-dot-unstuffing")
		Expect(ok).To(BeTrue())
		Expect(c.Verdict).To(Equal(result.Error), c.Reason)
		Expect(c.Reason).To(HavePrefix("the message with dot-stuffed lines was accepted but not delivered; check --maildir: "))
		Expect(run.stderr).To(HaveSuffix("amtpkit conform: the harness could not run 1 clause\n"))
	})

	It("fails a rejection by 421 greeting under --strict", func() {
		ids := []string{"3.1-client-certificate-required", "4.2-client-ca-recognized", "4.2-client-certificate-dates",
			"4.2-client-cn-fqdn", "4.3.2-client-without-ptr-rejected"}
		run, r := runAgainst([]fault{rejectAtGreeting}, ids, "--strict")
		Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

		for _, id := range ids {
			c, ok := r.Clause(id)
			Expect(ok).To(BeTrue(), id)
			Expect(c.Verdict).To(Equal(result.Fail), "%s: %s", id, c.Reason)
			Expect(c.Reason).To(HavePrefix("--strict: the listener "), id)
			Expect(c.Reason).To(ContainSubstring("with a 421 greeting"), id)
		}
	})
})
