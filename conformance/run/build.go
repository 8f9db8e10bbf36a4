package run

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/conformance/specs"
)

// build makes the result of a run from the outcomes the specs recorded.
// given are the options as the user passed them, for the rerun commands,
// and opts the options with defaults.
// interruption is the cause of the run's cancellation, or "" when the run
// was not canceled.
func build(given, opts Options, filter, interruption string, start, end time.Time) *result.Result {
	outcomes := specs.Outcomes()
	selected, _ := types.ParseLabelFilter(filter)
	hasSpec := map[string]bool{}
	for _, id := range specs.SpecIDs() {
		hasSpec[id] = true
	}

	var clauses []result.Clause
	for _, c := range catalogue.All() {
		entry := result.Clause{
			ID:      c.ID,
			Section: c.Section,
			Source:  c.Source,
			Title:   c.Title,
			Level:   string(c.Level),
			Role:    string(c.Role),
			Text:    c.Text,
			Notes:   c.Notes,
		}
		switch {
		case !c.Testable():
			entry.Verdict, entry.Reason = result.Untestable, c.Untestable
		case c.Role != catalogue.RoleServer && !hasSpec[c.ID]:
			entry.Verdict, entry.Reason = result.Skip, roleReason(c.Role)
		case !hasSpec[c.ID]:
			entry.Verdict, entry.Reason = result.Skip, "no spec yet"
		default:
			entry.Rerun = RerunCommand(given, c.ID)
			if o, ok := outcomes[c.ID]; ok {
				entry.Outcome = o
			} else if !selected(specs.SpecLabels(c.ID)) {
				entry.Verdict, entry.Reason = result.Skip, "not selected by --focus, --skip or --label-filter"
			} else if interruption != "" {
				entry.Verdict, entry.Reason = result.Skip, fmt.Sprintf("not run: the run was interrupted before this check (%s)", interruption)
			} else {
				entry.Verdict, entry.Reason = result.Skip, "not run: the run ended before this check"
			}
		}
		if entry.Transcript == nil {
			entry.Transcript = []result.Evidence{}
		}
		clauses = append(clauses, entry)
	}

	env := result.Environment{
		SuiteVersion:    SuiteVersion(),
		Draft:           result.Draft,
		Target:          opts.Target,
		Options:         resultOptions(opts),
		Start:           start,
		End:             end,
		DurationSeconds: end.Sub(start).Seconds(),
		Interrupted:     interruption != "",
		InterruptReason: interruption,
	}
	if ran, ok, reason, tls := specs.Baseline(); ran {
		env.Baseline = &result.Baseline{OK: ok, Reason: reason}
		env.TLS = tls
	}
	for _, id := range specs.UnknownIDs() {
		env.Problems = append(env.Problems, fmt.Sprintf("a spec names the clause ID %q, which is not in the catalogue", id))
	}

	return &result.Result{
		SchemaVersion: result.SchemaVersion,
		Environment:   env,
		Summary:       result.Summarize(clauses),
		Clauses:       clauses,
	}
}

func roleReason(role catalogue.Role) string {
	if role == catalogue.RoleClient {
		return "binds the client MTA; the suite could observe it at its AMTP sink when the server under test relays, but no spec checks it"
	}
	return fmt.Sprintf("binds the %s, not the server MTA that this run checks", role)
}

func resultOptions(opts Options) result.Options {
	return result.Options{
		Target:        opts.Target,
		Target6:       opts.Target6,
		PrivateTarget: opts.PrivateTarget,
		ServerName:    opts.ServerName,
		PKIDir:        opts.PKIDir,
		DNSMode:       opts.DNSMode,
		DNSListen:     opts.DNSListen,
		Maildir:       opts.Maildir,
		Recipient:     opts.Recipient,
		GatewaySink:   opts.GatewaySink,
		PrivateSink:   opts.PrivateSink,
		ServerTimeout: serverTimeoutText(opts.ServerTimeout),
		Strict:        opts.Strict,
		StepTimeout:   opts.StepTimeout.String(),
		Focus:         opts.Focus,
		Skip:          opts.Skip,
		LabelFilter:   opts.LabelFilter,
	}
}

// serverTimeoutText returns d as the result records it, "" when not given.
func serverTimeoutText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

// RerunCommand returns the amtpkit command line that checks the clause id
// alone with the options of opts.
func RerunCommand(opts Options, id string) string {
	args := []string{"amtpkit", "conform", "--target", opts.Target, "--pki", opts.PKIDir}
	optional := []struct{ flag, value string }{
		{"--target6", opts.Target6},
		{"--private-target", opts.PrivateTarget},
		{"--server-name", opts.ServerName},
		{"--maildir", opts.Maildir},
		{"--recipient", opts.Recipient},
		{"--gateway-sink", opts.GatewaySink},
		{"--private-sink", opts.PrivateSink},
	}
	if opts.ServerTimeout > 0 {
		optional = append(optional, struct{ flag, value string }{"--server-timeout", opts.ServerTimeout.String()})
	}
	if opts.DNSMode == DNSExternal {
		optional = append(optional, struct{ flag, value string }{"--dns", DNSExternal})
	} else if opts.DNSListen != "" && opts.DNSListen != DefaultDNSListen {
		optional = append(optional, struct{ flag, value string }{"--dns-listen", opts.DNSListen})
	}
	if opts.StepTimeout != 0 && opts.StepTimeout != DefaultStepTimeout {
		optional = append(optional, struct{ flag, value string }{"--timeout", opts.StepTimeout.String()})
	}
	for _, o := range optional {
		if o.value != "" {
			args = append(args, o.flag, o.value)
		}
	}
	if opts.Strict {
		args = append(args, "--strict")
	}
	args = append(args, "--focus", id)

	quoted := make([]string, len(args))
	for i, arg := range args {
		quoted[i] = shellQuote(arg)
	}
	return strings.Join(quoted, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

// shellQuote quotes arg for a POSIX shell unless it needs no quotes.
func shellQuote(arg string) string {
	if shellSafe.MatchString(arg) {
		return arg
	}
	return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
}

// SuiteVersion returns the version of the running build: the module
// version, and the VCS revision when the build recorded one.
func SuiteVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var revision string
	modified := false
	for _, setting := range info.Settings {
		switch setting.Key {
		case "vcs.revision":
			revision = setting.Value
		case "vcs.modified":
			modified = setting.Value == "true"
		}
	}
	// Go names the main module's version after the revision when it
	// builds from a checkout (v0.0.0-DATE-REVISION, +dirty when modified),
	// so the revision is added only when the version does not hold it.
	short := revision[:min(len(revision), 12)]
	if revision != "" && !strings.Contains(version, short) {
		version += " " + short
		if modified {
			version += "+modified"
		}
	}
	return version
}
