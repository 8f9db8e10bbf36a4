package run

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/specs"
)

// DNS modes.
const (
	// DNSServe makes the suite serve the PKI's zone file on DNSListen.
	DNSServe = "serve"
	// DNSExternal means the user runs a DNS server for the zone, such as
	// "amtpkit dns serve".
	DNSExternal = "external"
)

// Defaults of Options.
const (
	DefaultDNSListen   = "127.0.0.1:5353"
	DefaultStepTimeout = specs.DefaultStepTimeout
)

// ErrInvalidOptions is wrapped by every error that Run and List return
// for a bad Options value.
var ErrInvalidOptions = errors.New("invalid conformance options")

// Options configures a run.
type Options struct {
	// Target is the public listener of the server under test, host:port.
	Target string
	// Target6 is an IPv6 public listener on ::1, for the IPv6 PTR check.
	Target6 string
	// PrivateTarget is the private listener, host:port; empty skips the
	// checks of draft section 7.
	PrivateTarget string
	// ServerName is the name the server certificate must carry. It
	// defaults to the CN of the PKI's server certificate.
	ServerName string
	// PKIDir is the folder of the test PKI (amtpkit pki init).
	PKIDir string
	// DNSMode is DNSServe (the default) or DNSExternal.
	DNSMode string
	// DNSListen is the loopback address the suite serves DNS on in
	// DNSServe mode; the server under test must resolve through it.
	DNSListen string
	// Maildir is the root of the server's Maildir folders; empty skips the
	// checks of delivered messages.
	Maildir string
	// Recipient is a local address the server accepts; it defaults to
	// postmaster at the PKI's domain.
	Recipient string
	// GatewaySink is the loopback IP:PORT of the suite's plain SMTP sink;
	// the server under test must route gateway.<domain> to it as a
	// non-AMTP next hop. Empty skips the checks that need it.
	GatewaySink string
	// PrivateSink is the loopback IP:PORT of the suite's private AMTP
	// sink; the server under test must route private-sink.<domain> to it
	// over a private network connection. Empty skips the checks that need
	// it.
	PrivateSink string
	// ServerTimeout is the command timeout the server under test is
	// configured with. Zero skips the checks that wait for it.
	ServerTimeout time.Duration
	// Strict demands the draft's literal reading where the project's
	// interpretations accept several behaviours.
	Strict bool
	// StepTimeout bounds each connect, handshake, reply and delivery wait.
	StepTimeout time.Duration
	// Focus and Skip select clauses by ID, section or level.
	Focus []string
	Skip  []string
	// LabelFilter is a Ginkgo label filter, combined with Focus and Skip.
	LabelFilter string

	// Output receives the progress report, a letter per clause; nil
	// discards it.
	Output io.Writer
	// Color enables colors in Ginkgo's report.
	Color bool
	// Verbose replaces the letters of the progress report with Ginkgo's
	// verbose report, which names every spec and its source location.
	Verbose bool
}

// withDefaults fills in defaults and checks the options that need no I/O.
func (o Options) withDefaults() (Options, error) {
	if o.DNSMode == "" {
		o.DNSMode = DNSServe
	}
	if o.DNSListen == "" && o.DNSMode == DNSServe {
		o.DNSListen = DefaultDNSListen
	}
	if o.StepTimeout == 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.Output == nil {
		o.Output = io.Discard
	}

	switch {
	case o.Target == "":
		return o, invalidf("the target is missing; pass the public listener as --target HOST:PORT")
	case o.PKIDir == "":
		return o, invalidf("the PKI folder is missing; pass --pki DIR (create one with 'amtpkit pki init --dir DIR')")
	case o.DNSMode != DNSServe && o.DNSMode != DNSExternal:
		return o, invalidf("DNS mode %q is unknown; use %q or %q", o.DNSMode, DNSServe, DNSExternal)
	case o.StepTimeout < 100*time.Millisecond:
		return o, invalidf("step timeout %s is too short; use at least 100ms", o.StepTimeout)
	case o.ServerTimeout < 0:
		return o, invalidf("server timeout %s is negative; pass the server's command timeout, such as 5m", o.ServerTimeout)
	case o.GatewaySink != "" && o.GatewaySink == o.PrivateSink:
		return o, invalidf("--gateway-sink and --private-sink are both %q; give each sink its own port", o.GatewaySink)
	}
	for _, target := range []struct{ name, value string }{
		{"--target", o.Target}, {"--target6", o.Target6}, {"--private-target", o.PrivateTarget},
		{"--gateway-sink", o.GatewaySink}, {"--private-sink", o.PrivateSink},
	} {
		if err := checkLoopbackAddr(target.name, target.value); err != nil {
			return o, err
		}
	}
	if o.DNSMode == DNSServe {
		if err := checkLoopbackAddr("--dns-listen", o.DNSListen); err != nil {
			return o, err
		}
	}
	if o.Maildir != "" {
		info, err := os.Stat(o.Maildir)
		if err != nil || !info.IsDir() {
			return o, invalidf("Maildir root %q is not a folder; pass the folder under which the server delivers mail", o.Maildir)
		}
	}
	if _, err := o.labelFilter(); err != nil {
		return o, err
	}
	return o, nil
}

// checkLoopbackAddr checks that value, if set, is IP:PORT with a loopback
// IP. The suite runs hostile checks, so it aims at loopback only.
func checkLoopbackAddr(name, value string) error {
	if value == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(value)
	if err != nil {
		return invalidf("%s %q is not HOST:PORT: %v", name, value, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return invalidf("%s %q is not a loopback address; the suite connects only to 127.0.0.0/8, ::1 or localhost", name, value)
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
}

// labelFilter combines Focus, Skip and LabelFilter into one Ginkgo label
// filter and checks its syntax.
func (o Options) labelFilter() (string, error) {
	var parts []string
	if len(o.Focus) > 0 {
		expr, err := selectorExpression(o.Focus, "--focus")
		if err != nil {
			return "", err
		}
		parts = append(parts, expr)
	}
	if len(o.Skip) > 0 {
		expr, err := selectorExpression(o.Skip, "--skip")
		if err != nil {
			return "", err
		}
		parts = append(parts, "!"+expr)
	}
	if strings.TrimSpace(o.LabelFilter) != "" {
		parts = append(parts, "("+o.LabelFilter+")")
	}
	filter := strings.Join(parts, " && ")
	if _, err := types.ParseLabelFilter(filter); err != nil {
		return "", invalidf("label filter %q: %s", filter, plainFilterError(err))
	}
	return filter, nil
}

// selectorExpression turns clause IDs, sections and levels into a label
// filter group such as "(4.4.1-helo-rejected || section:4.5)".
func selectorExpression(values []string, flag string) (string, error) {
	var labels []string
	for _, value := range values {
		selected, err := selectorLabels(value)
		if err != nil {
			return "", invalidf("%s %q: %v", flag, value, err)
		}
		labels = append(labels, selected...)
	}
	return "(" + strings.Join(labels, " || ") + ")", nil
}

// selectorLabels returns the labels that one --focus or --skip value
// selects: a clause ID, a level (MUST, "MUST NOT" or MUST-NOT), or a
// section with its subsections ("4.4" selects 4.4.1 to 4.4.4; RFC 5321
// sections as "rfc5321-4.1.1.4" or "RFC 5321 4.1.1.4").
func selectorLabels(value string) ([]string, error) {
	value = strings.TrimSpace(value)
	if c, ok := catalogue.ByID(value); ok {
		return []string{c.ID}, nil
	}
	for _, level := range catalogue.Levels() {
		normalized := strings.ReplaceAll(strings.ToUpper(value), "-", " ")
		if normalized == string(level) {
			return []string{specs.LevelLabel(level)}, nil
		}
	}

	source, section := catalogue.SourceDraft, strings.TrimPrefix(strings.ToLower(value), "section:")
	lower := strings.ToLower(value)
	for _, prefix := range []string{"rfc5321-", "rfc 5321 ", "rfc5321 "} {
		if rest, ok := strings.CutPrefix(lower, prefix); ok {
			source, section = catalogue.SourceRFC5321, rest
		}
	}
	var labels []string
	for _, c := range catalogue.All() {
		if c.Source != source || (c.Section != section && !strings.HasPrefix(c.Section, section+".")) {
			continue
		}
		label := specs.SectionLabel(c)
		if !slices.Contains(labels, label) {
			labels = append(labels, label)
		}
	}
	if len(labels) == 0 {
		return nil, errors.New("not a clause ID, section or level of the catalogue; run 'amtpkit conform --list' for the IDs")
	}
	return labels, nil
}
