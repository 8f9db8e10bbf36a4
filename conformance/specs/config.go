package specs

import (
	"context"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/amtp-toolkit/amtp/conformance/maildir"
	"github.com/amtp-toolkit/amtp/conformance/sink"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// Config is the configuration of a run: the server under test, the PKI,
// the DNS server and the timings. The run package sets it with Configure
// before it calls RunSpecs.
type Config struct {
	// Target is the public listener as host:port.
	Target string
	// Target6 is a public listener on ::1, for the IPv6 checks. Empty
	// skips them.
	Target6 string
	// PrivateTarget is the private listener (draft section 7) as
	// host:port. Empty skips the private-listener checks.
	PrivateTarget string
	// ServerName is the name checked against the server certificate.
	ServerName string
	// PKI is the test PKI whose certificates the specs present and whose
	// CAs they trust.
	PKI *pki.Manifest
	// DNS controls the DNS server that the suite runs, or is nil when the
	// user runs one (DNS mode "external").
	DNS DNS
	// Maildir watches the folders where the server delivers mail, or is
	// nil when no Maildir root was given.
	Maildir *maildir.Watcher
	// Recipient is a local address that the server accepts mail for.
	Recipient string
	// Strict demands the draft's literal reading where
	// docs/interpretations.md accepts several behaviours.
	Strict bool
	// StepTimeout bounds each step: a connect, a TLS handshake, one reply,
	// one wait for a delivery.
	StepTimeout time.Duration
	// QuietPeriod is how long a check waits to be sure that no further
	// reply arrives.
	QuietPeriod time.Duration
	// RunID is unique to the run and starts every message token.
	RunID string
	// Sink takes the mail that the server relays to its domain, and
	// DenyingSink rejects every recipient of its domain with 550, so that
	// the server must bounce. Both are nil in DNS mode "external", because
	// only the suite's DNS server routes their domains to them.
	Sink, DenyingSink *RelaySink
	// PolicySink declares "MPC DENY=ngo/* ALLOW=ngo/customer" and accepts
	// every recipient, for the checks of how the server as a client obeys
	// MPC declarations. It is nil in DNS mode "external".
	PolicySink *RelaySink
	// SRVFallback is a domain with two SRV records, for the check of the
	// SRV procedure. It is nil in DNS mode "external".
	SRVFallback *SRVFallback
	// GatewaySink is a plain SMTP sink that the server under test routes
	// its domain to as a non-AMTP next hop, and PrivateSink an AMTP sink
	// with a private-CA certificate that it routes its domain to over a
	// private network connection. Each is nil unless its listen address
	// was given.
	GatewaySink, PrivateSink *RelaySink
	// ServerTimeout is the command timeout of the server under test, zero
	// when not given.
	ServerTimeout time.Duration
	// Progress receives the compact progress report, a letter per clause
	// (ProgressLegend), or nil for none.
	Progress io.Writer
	// ProgressHeader is the line that the progress report starts with,
	// written before the first letter, so that a run that checks nothing
	// writes nothing.
	ProgressHeader string
}

// RelaySink is an AMTP sink of the suite and the mail domain whose
// _amtp._tcp SRV record points at it.
type RelaySink struct {
	Domain string
	Server *sink.Server
}

// SRVFallback is a mail domain whose _amtp._tcp SRV record of priority
// 10 names Down, a listener that closes every connection at once, and
// whose record of priority 20 names the sink.
type SRVFallback struct {
	Domain string
	Down   ConnectionLog
	Sink   *RelaySink
}

// ConnectionLog is a listener that notes its connections.
type ConnectionLog interface {
	// Connections returns when the connections since the time given
	// arrived, oldest first.
	Connections(since time.Time) []time.Time
}

// DNS is the DNS server that the suite runs in DNS mode "serve".
type DNS interface {
	// Addr returns the address the server listens on.
	Addr() string
	// SetPTR replaces the PTR records of addr with names (none removes
	// them) until the returned restore function is called.
	SetPTR(addr netip.Addr, names ...string) (restore func(), err error)
	// PTROverrides lists the changes the suite made to the PKI zone for
	// the whole run, such as "127.0.0.5 PTR client.", for the result.
	PTROverrides() []string
	// Queries returns the questions answered since the time given, oldest
	// first, in lower case, such as "_amtp._tcp.sink.example.test. srv".
	Queries(since time.Time) []string
}

// Default timings, used when Config leaves them zero.
const (
	DefaultStepTimeout = 10 * time.Second
	DefaultQuietPeriod = 500 * time.Millisecond
)

var (
	configMu sync.Mutex
	config   = Config{StepTimeout: DefaultStepTimeout, QuietPeriod: DefaultQuietPeriod}
	// runContext ends the checks of the run early when it is canceled.
	runContext = context.Background()
)

// Configure sets the configuration for the next run and clears the
// results of the previous one. Canceling ctx makes the running check and
// every later one end at once with an error or a skip.
func Configure(ctx context.Context, c Config) {
	if c.StepTimeout <= 0 {
		c.StepTimeout = DefaultStepTimeout
	}
	if c.QuietPeriod <= 0 {
		c.QuietPeriod = min(DefaultQuietPeriod, c.StepTimeout/2)
	}
	configMu.Lock()
	config = c
	runContext = ctx
	configMu.Unlock()
	Reset()
	startProgress(c.Progress, c.ProgressHeader)
}

// current returns the configuration of the running suite.
func current() Config {
	configMu.Lock()
	defer configMu.Unlock()
	return config
}

// runCtx returns the context of the run.
func runCtx() context.Context {
	configMu.Lock()
	defer configMu.Unlock()
	return runContext
}

// specBudget is the maximum time of one spec. Each step has its own
// timeout, and a check stops at the first step that times out, so the
// budget stops a server that replies to each step just before the
// timeout. The idle-timeout checks also wait for the server's command
// timeout.
//
// NOTE: the recipient limit check sends up to 1000 commands. At the default
// step timeout of 10 s the budget is 210 s, so a server that takes more
// than about 200 ms per reply makes that check end with an error.
func specBudget() time.Duration {
	return 20*current().StepTimeout + 10*time.Second + current().ServerTimeout
}
