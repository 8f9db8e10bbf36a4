package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/conformance/run"
)

const conformUsage = `usage: amtpkit conform --target HOST:PORT --pki DIR
                       [--private-target HOST:PORT] [--target6 [::1]:PORT]
                       [--dns serve|external] [--dns-listen ADDR]
                       [--maildir DIR] [--recipient ADDR] [--server-name NAME]
                       [--gateway-sink ADDR] [--private-sink ADDR]
                       [--server-timeout DURATION]
                       [--strict] [--timeout 10s]
                       [--focus ID|SECTION|LEVEL]... [--skip ID|SECTION|LEVEL]...
                       [--label-filter EXPR] [--json FILE] [--verbose]
                       [--junit FILE] [--html FILE] [--markdown FILE]
       amtpkit conform --list

Checks an AMTP server against the clauses of draft-weinman-amtp-03 and the
RFC 5321 behaviour it inherits, one spec per clause, and writes the result
as JSON. Each clause gets a verdict: pass; fail (a broken MUST, MUST NOT,
REQUIRED, SHALL or SHALL NOT); warn (a broken SHOULD); info (a fact about
a MAY); skip (not checked, with the reason); error (the suite could not
check it); untestable (no wire check can observe it).

The server must use the certificates of the test PKI in DIR ('amtpkit pki
init') and resolve PTR records through the suite's DNS: with --dns serve
(the default) the suite serves the PKI's zone on --dns-listen itself; with
--dns external you serve it, for example with 'amtpkit dns serve'. The
suite connects only to loopback addresses. --maildir names the folder
under which the server delivers mail, so that the checks of delivered
messages can run; the suite finds its messages there by a header field,
whatever the layout of the folders.

--gateway-sink and --private-sink start sinks on loopback addresses that
the server reaches by routes you configure: route gateway.<domain> (the
PKI's domain) over plain SMTP, as to a non-AMTP server, to the
--gateway-sink address, and private-sink.<domain> over a private network
connection to the --private-sink address, whose certificate comes from
the PKI's private CA. --server-timeout is the command timeout the server
is configured with; the idle-timeout checks wait that long and are
skipped without it.

--focus and --skip take a clause ID (4.4.1-helo-rejected), a section
(4.4 selects 4.4.1 to 4.4.4; rfc5321-4.1.1.4 for RFC 5321) or a level
(MUST, MUST-NOT, SHOULD, ...), and may be repeated. A selection that
leaves no clause to check is invalid. --list prints, without connecting,
the clause IDs, whether the suite checks each on the wire, and the labels
that --label-filter can name.

Exit status:
  0  every MUST-class clause that ran passed
  1  a MUST-class clause failed
  2  invalid options
  3  the harness had errors (and no MUST-class clause failed)
  130  interrupted by SIGINT or SIGTERM; the partial result is written

options:
`

// defaultResultFile is the file of the JSON result without --json.
const defaultResultFile = "amtp-conformance.json"

// Exit statuses of "conform" beyond those of runMain. conformInterrupted
// is the shell's status of a process that SIGINT ended, 128 + 2.
const (
	conformHarnessError = 3
	conformInterrupted  = 130
)

// stringList is a flag that may be repeated; each value may also hold a
// comma-separated list.
type stringList []string

func (l *stringList) String() string {
	return strings.Join(*l, ",")
}

func (l *stringList) Set(value string) error {
	for _, item := range strings.Split(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// runConform runs "amtpkit conform".
func runConform(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("amtpkit conform", flag.ContinueOnError)
	var opts run.Options
	var focus, skip stringList
	flags.StringVar(&opts.Target, "target", "", "public listener of the server under test, `HOST:PORT` on loopback (required)")
	flags.StringVar(&opts.Target6, "target6", "", "public listener on ::1, `[::1]:PORT`, for the IPv6 PTR check; needs --dns serve")
	flags.StringVar(&opts.PrivateTarget, "private-target", "", "private listener (draft section 7), `HOST:PORT`; without it the private checks are skipped")
	flags.StringVar(&opts.ServerName, "server-name", "", "`name` the server certificate must carry (default: the CN of the PKI's server certificate)")
	flags.StringVar(&opts.PKIDir, "pki", "", "test PKI `folder` written by 'amtpkit pki init' (required)")
	flags.StringVar(&opts.DNSMode, "dns", run.DNSServe, "`mode`: serve the PKI zone on --dns-listen, or external when you run the DNS server")
	flags.StringVar(&opts.DNSListen, "dns-listen", run.DefaultDNSListen, "loopback `address` IP:PORT of the suite's DNS server (UDP and TCP) in --dns serve mode")
	flags.StringVar(&opts.Maildir, "maildir", "", "`folder` under which the server delivers mail; without it the delivery checks are skipped")
	flags.StringVar(&opts.Recipient, "recipient", "", "local `address` the server accepts mail for (default: postmaster at the PKI's domain)")
	flags.StringVar(&opts.GatewaySink, "gateway-sink", "", "loopback `address` IP:PORT for the suite's plain SMTP sink, the server's gateway route for gateway.<domain>")
	flags.StringVar(&opts.PrivateSink, "private-sink", "", "loopback `address` IP:PORT for the suite's private AMTP sink, the server's private route for private-sink.<domain>")
	flags.DurationVar(&opts.ServerTimeout, "server-timeout", 0, "command timeout `duration` the server is configured with; without it the idle-timeout checks are skipped")
	flags.BoolVar(&opts.Strict, "strict", false, "demand the draft's literal reading where docs/interpretations.md accepts several behaviours")
	flags.DurationVar(&opts.StepTimeout, "timeout", run.DefaultStepTimeout, "maximum `duration` of each step: a connect, a TLS handshake, one reply, one wait for a delivery")
	flags.Var(&focus, "focus", "run only the clauses with this `ID, section or level`; repeatable")
	flags.Var(&skip, "skip", "skip the clauses with this `ID, section or level`; repeatable")
	flags.StringVar(&opts.LabelFilter, "label-filter", "", "Ginkgo label filter `expression`, such as 'level:MUST && !needs:maildir'")
	jsonPath := flags.String("json", defaultResultFile, "`file` to write the JSON result to")
	reports := addReportFlags(flags)
	list := flags.Bool("list", false, "print the clause IDs, which of them the suite checks, and the labels for --label-filter, without connecting")
	flags.BoolVar(&opts.Verbose, "verbose", false, "show Ginkgo's report of every spec on stderr in place of a letter per clause")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), conformUsage)
		flags.PrintDefaults()
	}

	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usageErrorf("unexpected argument %q; run 'amtpkit conform --help'", flags.Arg(0))
	}
	// Options.StepTimeout takes zero as the default, so the command
	// rejects an explicit zero itself.
	if opts.StepTimeout <= 0 {
		return usageErrorf("--timeout %v is invalid; give a positive duration such as 5s", opts.StepTimeout)
	}
	if *list {
		return listClauses(stdout)
	}
	opts.Focus, opts.Skip = focus, skip
	opts.Output = os.Stderr
	opts.Color = isTerminal(os.Stderr)

	r, err := run.Run(ctx, opts)
	switch {
	case errors.Is(err, run.ErrInvalidOptions):
		return usageErrorf("%v", err)
	case err != nil:
		return &exitError{status: conformHarnessError, err: err}
	}
	// The progress report on stderr ends without a newline.
	fmt.Fprintln(os.Stderr)

	writeErr := r.Write(*jsonPath)
	if writeErr != nil {
		writeErr = fmt.Errorf("%s: %w", *jsonPath, writeErr)
	}
	printSummary(stdout, r, *jsonPath, writeErr)
	writeErr = errors.Join(writeErr, writeReports(stdout, r, reports))

	if r.Environment.Interrupted {
		return &exitError{status: conformInterrupted, err: errors.New(conformInterruption(r, *jsonPath, writeErr))}
	}
	status := conformStatus(r, writeErr)
	if status == 0 {
		return nil
	}
	return &exitError{status: status, err: errors.New(conformFailure(r, writeErr))}
}

// conformFailure returns the last line of a run that did not pass. It
// names the failed MUST-class clauses, the clauses the harness could not
// run, the problems of the environment and the write error, each part
// only when it applies.
func conformFailure(r *result.Result, writeErr error) string {
	var parts []string
	if n := len(r.MustFailures()); n > 0 {
		parts = append(parts, result.Count(n, "MUST-class clause", "MUST-class clauses")+" failed")
	}
	if n := len(r.HarnessErrors()); n > 0 {
		parts = append(parts, "the harness could not run "+result.Count(n, "clause", "clauses"))
	}
	if n := len(r.Environment.Problems); n > 0 {
		parts = append(parts, result.Count(n, "problem", "problems")+" with the environment, listed above")
	}
	if writeErr != nil {
		parts = append(parts, fmt.Sprintf("results not written: %v", writeErr))
	}
	return strings.Join(parts, "; ")
}

// conformInterruption returns the last line of an interrupted run: the
// cause, how many clauses were checked, and where the result is.
func conformInterruption(r *result.Result, jsonPath string, writeErr error) string {
	checked := 0
	for _, c := range r.Clauses {
		if c.Verdict != result.Skip && c.Verdict != result.Untestable {
			checked++
		}
	}
	line := fmt.Sprintf("interrupted (%s) after checking %s; the clauses it cut short are skipped, not failed",
		r.Environment.InterruptReason, result.Count(checked, "clause", "clauses"))
	if writeErr != nil {
		return line + fmt.Sprintf("; results not written: %v", writeErr)
	}
	return line + "; partial result in " + jsonPath
}

// conformStatus returns the exit status for a result.
func conformStatus(r *result.Result, writeErr error) int {
	switch {
	case len(r.MustFailures()) > 0:
		return 1
	case len(r.HarnessErrors()) > 0 || len(r.Environment.Problems) > 0 || writeErr != nil:
		return conformHarnessError
	default:
		return 0
	}
}

// printSummary writes the counts per verdict, the failed, erroneous and
// warned clauses with their reasons, and the JSON path.
func printSummary(w io.Writer, r *result.Result, jsonPath string, writeErr error) {
	env := r.Environment
	fmt.Fprintf(w, "\nAMTP conformance of %s (%s), %.2fs, suite %s\n", env.Target, env.Draft, env.DurationSeconds, env.SuiteVersion)
	if env.Baseline != nil && !env.Baseline.OK {
		fmt.Fprintf(w, "baseline session failed: %s\n", env.Baseline.Reason)
	}
	for _, problem := range env.Problems {
		fmt.Fprintf(w, "problem: %s\n", problem)
	}

	var counts []string
	for _, v := range result.Verdicts() {
		counts = append(counts, fmt.Sprintf("%d %s", r.Summary.Verdicts[v], v))
	}
	fmt.Fprintf(w, "verdicts of %s: %s\n", result.Count(r.Summary.Clauses, "clause", "clauses"), strings.Join(counts, ", "))

	for _, group := range []struct {
		title   string
		verdict result.Verdict
	}{
		{"failed", result.Fail},
		{"errors", result.Error},
		{"warnings", result.Warn},
	} {
		printGroup(w, group.title, r.Clauses, group.verdict)
	}

	if writeErr != nil {
		fmt.Fprintf(w, "JSON result not written: %v\n", writeErr)
		return
	}
	fmt.Fprintf(w, "JSON result: %s\n", jsonPath)
}

// sharedReasonMin is the number of clauses with the same reason from which
// the summary prints the reason once, followed by their IDs.
const sharedReasonMin = 3

// printGroup prints the clauses with verdict v, one line each with its
// reason. Clauses that share a reason with at least sharedReasonMin others,
// as after a failed baseline session, are printed once as a list of IDs.
func printGroup(w io.Writer, title string, clauses []result.Clause, v result.Verdict) {
	byReason := map[string][]string{}
	var order []string
	for _, c := range clauses {
		if c.Verdict != v {
			continue
		}
		if byReason[c.Reason] == nil {
			order = append(order, c.Reason)
		}
		byReason[c.Reason] = append(byReason[c.Reason], fmt.Sprintf("%s [%s]", c.ID, c.Level))
	}
	if len(order) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, reason := range order {
		ids := byReason[reason]
		if len(ids) < sharedReasonMin {
			for _, id := range ids {
				fmt.Fprintf(w, "  %s: %s\n", id, reason)
			}
			continue
		}
		fmt.Fprintf(w, "  %d clauses: %s\n    %s\n", len(ids), reason, strings.Join(ids, ", "))
	}
}

// Statuses of a clause in the --list output.
const (
	statusChecked       = "checked on the wire"
	statusNotYet        = "not checked yet"
	statusOtherRole     = "binds another role"
	statusUntestable    = "untestable"
	listStatusColumnFmt = "  %-19s %-9s %-14s %s"
)

// listClauses prints the catalogue's counts, the labels that a label
// filter can name, and every clause with whether the suite checks it.
func listClauses(w io.Writer) error {
	ids, err := run.List()
	if err != nil {
		return err
	}
	hasSpec := map[string]bool{}
	for _, id := range ids {
		hasSpec[id] = true
	}

	fmt.Fprint(w, catalogue.Summary())
	statuses := map[string]int{}
	var rows []string
	for _, c := range catalogue.All() {
		status := statusChecked
		switch {
		case hasSpec[c.ID]:
		case !c.Testable():
			status = statusUntestable
		case c.Role != catalogue.RoleServer:
			status = statusOtherRole
		default:
			status = statusNotYet
		}
		statuses[status]++
		rows = append(rows, fmt.Sprintf(listStatusColumnFmt, status, c.Level, c.Role, c.ID))
	}
	fmt.Fprintf(w, "clauses: %d %s, %d %s, %d %s, %d %s\n",
		statuses[statusChecked], statusChecked, statuses[statusNotYet], statusNotYet,
		statuses[statusOtherRole], statusOtherRole, statuses[statusUntestable], statusUntestable)
	printLabels(w)
	fmt.Fprintf(w, listStatusColumnFmt+"\n", "STATUS", "LEVEL", "ROLE", "ID")
	fmt.Fprintln(w, strings.Join(rows, "\n"))
	return nil
}

// printLabels prints the labels that --label-filter can name, with an
// example.
func printLabels(w io.Writer) {
	fmt.Fprintln(w, "labels for --label-filter, besides each clause ID that is checked on the wire:")
	for _, group := range run.LabelGroups() {
		if len(group.Labels) > 0 {
			fmt.Fprintf(w, "  %s\n", strings.Join(group.Labels, " "))
		}
	}
	fmt.Fprintf(w, "  example: --label-filter '%s'\n", run.LabelExample)
}

// isTerminal reports whether f is a character device, such as a terminal.
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
