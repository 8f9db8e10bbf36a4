// Package loadgen is the AMTP load generator behind "amtpkit load". It
// opens mutual-TLS connections to a server under test and runs one of
// four scenarios on each: handshake, resume, session or relay. Open loop
// starts connections at a rate and measures latency from the intended
// start; closed loop keeps a fixed number of connections busy. Per-phase
// latencies go into HDR histograms, and the output is a
// loadgen/result.Result.
//
// It reaches the server only over the network and never imports the
// reference server, and it connects only to loopback addresses.
package loadgen

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// Defaults of Config.
const (
	DefaultMessages    = 1
	DefaultMessageSize = 1024
	DefaultMPC         = "per/individual"
	// NoMPC as Config.MPC leaves the MPC= parameter out of MAIL, for
	// comparisons with plain SMTP servers that reject it.
	NoMPC                 = "none"
	DefaultResumeFraction = 0.5
	DefaultTimeout        = 10 * time.Second
	DefaultMaxInFlight    = 1000
	DefaultStepDuration   = 10 * time.Second
	// DefaultFindMaxFactor multiplies the rate from one find-max step to
	// the next.
	DefaultFindMaxFactor = 1.5
	// DefaultFindMaxSteps bounds the steps of a find-max run.
	DefaultFindMaxSteps = 12
)

// ErrInvalidConfig is wrapped by every error of Config.Validate, so a
// command can report it as a usage error.
var ErrInvalidConfig = errors.New("invalid load configuration")

// Config is one load run.
type Config struct {
	// Target is the server's IP:PORT with a loopback IP address, or
	// localhost:PORT. Run never resolves a host name: see
	// ParseLoopbackTarget.
	Target string
	// PKI is the fixture PKI whose client identities the generator uses.
	PKI *pki.Manifest
	// Scenario is result.ScenarioHandshake, ScenarioResume,
	// ScenarioSession or ScenarioRelay.
	Scenario string

	// Rate sets open loop: units of work (connections) per second.
	// RateSteps, when set, replaces it with a schedule of StepDuration
	// each. Concurrency sets closed loop instead: that many connections
	// back to back.
	Rate         float64
	RateSteps    []float64
	StepDuration time.Duration
	Concurrency  int
	// MaxInFlight bounds the open-loop units in progress. Arrivals beyond
	// it wait, and their wait counts in their latency and in the lag.
	MaxInFlight int

	// Duration and Count bound the run. At least one must be set, unless
	// RateSteps or FindMax bound it by their steps. Count is in units of
	// work.
	Duration time.Duration
	Count    int64

	// Messages, MessageSize (bytes of the whole message), MPC and
	// Recipient shape the messages of the session and relay scenarios.
	Messages    int
	MessageSize int
	MPC         string
	Recipient   string
	// ResumeFraction is the share of resume-scenario connections that
	// offer a session ticket, from 0 to 1.
	ResumeFraction float64

	// Identities are certificate names of the PKI manifest. Each unit uses
	// the next identity and connects from its source address. The
	// default is the four pool identities for the public scenarios and
	// the private client for relay.
	Identities []string
	// ServerName is the TLS server name; the default is the CN of the
	// PKI's server certificate.
	ServerName string
	// Timeout bounds each step of a unit (connect, handshake, one reply).
	Timeout time.Duration

	// Relay scenario: RelayDomain is the domain whose _amtp._tcp SRV record
	// points at the generator's sink, which listens on SinkListen. When
	// DNSListen is set, the generator serves the PKI's zone with that
	// record added there, for a server whose resolver points there. User
	// and Password authenticate on the private listener, and the defaults
	// come from the PKI's users file.
	RelayDomain string
	DNSListen   string
	SinkListen  string
	User        string
	Password    string

	// Shard is this process's part of a sharded run, or nil.
	Shard *result.Shard
	// Thresholds are expressions for result.ParseThreshold.
	Thresholds []string
	// FindMax steps the rate up from Rate by FindMaxFactor until a
	// threshold breaks or the delivery backlog keeps growing.
	FindMax       bool
	FindMaxFactor float64
	FindMaxSteps  int

	// SkipCalibration leaves out the calibration at start, for tests.
	SkipCalibration bool
	// Progress receives the progress display; nil disables it. Terminal
	// selects progress bars over plain periodic lines.
	Progress         io.Writer
	Terminal         bool
	ProgressInterval time.Duration
	Logger           *slog.Logger
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// mode returns result.ModeOpen or result.ModeClosed.
func (c *Config) mode() string {
	if c.Concurrency > 0 {
		return result.ModeClosed
	}
	return result.ModeOpen
}

// withDefaults returns c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Messages == 0 {
		c.Messages = DefaultMessages
	}
	if c.MessageSize == 0 {
		c.MessageSize = DefaultMessageSize
	}
	if c.MPC == "" {
		c.MPC = DefaultMPC
	}
	if c.Scenario == result.ScenarioResume && c.ResumeFraction == 0 {
		c.ResumeFraction = DefaultResumeFraction
	}

	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.StepDuration == 0 {
		c.StepDuration = DefaultStepDuration
	}
	if c.FindMaxFactor == 0 {
		c.FindMaxFactor = DefaultFindMaxFactor
	}
	if c.FindMaxSteps == 0 {
		c.FindMaxSteps = DefaultFindMaxSteps
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}

	if c.PKI != nil {
		if len(c.Identities) == 0 && c.Scenario == result.ScenarioRelay {
			c.Identities = []string{pki.CertPrivateClient}
		} else if len(c.Identities) == 0 {
			c.Identities = []string{pki.CertPool1, pki.CertPool2, pki.CertPool3, pki.CertPool4}
		}
		if c.Recipient == "" && c.Scenario == result.ScenarioRelay {
			c.Recipient = "load@" + c.relayDomain()
		} else if c.Recipient == "" {
			c.Recipient = "alice@" + c.PKI.Domain
		}
		if c.User == "" && len(c.PKI.Users) > 0 {
			c.User, c.Password = c.PKI.Users[0].Name, c.PKI.Users[0].Password
		}
	}
	return c
}

// relayDomain returns the domain the relay scenario sends to.
func (c *Config) relayDomain() string {
	if c.RelayDomain != "" {
		return c.RelayDomain
	}
	return "load-sink." + c.PKI.Domain
}

// Validate checks c for contradictions and missing values. Run checks
// the target with ParseLoopbackTarget.
func (c *Config) Validate() error {
	switch {
	case c.PKI == nil:
		return invalidf("missing PKI; pass --pki DIR with a PKI from 'amtpkit pki init'")
	case c.Target == "":
		return invalidf("missing target; pass --target IP:PORT with a loopback IP address, such as 127.0.0.1:4025")
	}
	switch c.Scenario {
	case result.ScenarioHandshake, result.ScenarioResume, result.ScenarioSession, result.ScenarioRelay:
	default:
		return invalidf("unknown scenario %q; use handshake, resume, session or relay", c.Scenario)
	}

	open := c.Rate > 0 || len(c.RateSteps) > 0
	switch {
	case open && c.Concurrency > 0:
		return invalidf("--rate and --concurrency exclude each other: choose open loop (a rate) or closed loop (a concurrency)")
	case !open && c.Concurrency <= 0:
		return invalidf("missing load model; pass --rate R (open loop, connections per second) or --concurrency C (closed loop)")
	case c.Rate < 0 || c.Concurrency < 0:
		return invalidf("rate %v and concurrency %d must not be negative", c.Rate, c.Concurrency)
	case c.Duration <= 0 && c.Count <= 0 && len(c.RateSteps) == 0 && !c.FindMax:
		return invalidf("missing bound; pass --duration D, --count N or both, so the run stops by itself")
	case c.FindMax && c.Concurrency > 0:
		return invalidf("--find-max steps an open-loop rate; pass --rate as the first step instead of --concurrency")
	case c.FindMax && len(c.RateSteps) > 0:
		return invalidf("--find-max chooses its own rate steps; pass only --rate as the first step")
	case c.Timeout < 0 || c.StepDuration < 0:
		return invalidf("timeout %s and step duration %s must not be negative; 0 selects the default", c.Timeout, c.StepDuration)
	case c.MaxInFlight < 0:
		return invalidf("maximum in flight %d must not be negative; 0 selects the default", c.MaxInFlight)
	case c.Messages < 0 || c.MessageSize < 0:
		return invalidf("messages per connection %d and message size %d must not be negative", c.Messages, c.MessageSize)
	case c.ResumeFraction < 0 || c.ResumeFraction > 1:
		return invalidf("resume fraction %v must be between 0 and 1", c.ResumeFraction)
	}
	for _, r := range c.RateSteps {
		if r <= 0 {
			return invalidf("rate step %v must be positive", r)
		}
	}
	if c.Shard != nil {
		if err := checkShard(*c.Shard); err != nil {
			return err
		}
	}
	for _, expr := range c.Thresholds {
		if _, err := result.ParseThreshold(expr); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	for _, name := range c.Identities {
		entry, err := c.PKI.Cert(name)
		if err != nil {
			return fmt.Errorf("%w: identity: %w", ErrInvalidConfig, err)
		}
		if entry.Role != pki.RoleClient {
			return invalidf("identity %q is a %s certificate; pass client certificates", name, entry.Role)
		}
	}
	return nil
}

// ParseShard parses "i/N".
func ParseShard(text string) (*result.Shard, error) {
	var s result.Shard
	if _, err := fmt.Sscanf(text, "%d/%d", &s.Index, &s.Total); err != nil || fmt.Sprintf("%d/%d", s.Index, s.Total) != text {
		return nil, invalidf("shard %q is invalid; write i/N such as 0/3", text)
	}
	if err := checkShard(s); err != nil {
		return nil, err
	}
	return &s, nil
}

// checkShard returns an error unless 0 <= s.Index < s.Total.
func checkShard(s result.Shard) error {
	if s.Total < 1 {
		return invalidf("shard %d/%d is invalid: the number of shards must be at least 1, as in 0/1", s.Index, s.Total)
	}
	if s.Index >= 0 && s.Index < s.Total {
		return nil
	}

	valid := fmt.Sprintf("0/%d to %d/%d", s.Total, s.Total-1, s.Total)
	switch s.Total {
	case 1:
		valid = "0/1"
	case 2:
		valid = "0/2 or 1/2"
	case 3:
		valid = "0/3, 1/3 or 2/3"
	}
	return invalidf("shard %d/%d is invalid: shards are numbered from 0: use %s", s.Index, s.Total, valid)
}

// ParseLoopbackTarget parses target as IP:PORT with a loopback IP
// address (127.0.0.0/8 or ::1), or as localhost:PORT, which it maps to
// 127.0.0.1 because the pool identities connect from IPv4 addresses. It
// rejects every other host name before any lookup, so the generator sends
// nothing, DNS queries included, to an address that is not loopback. The
// port must be a number.
func ParseLoopbackTarget(target string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return netip.AddrPort{}, invalidf("target %q is not IP:PORT: %v; pass a loopback IP address and port such as 127.0.0.1:4025", target, err)
	}
	portNumber, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, invalidf("target port %q is not a port number from 0 to 65535; pass a loopback IP address and port such as 127.0.0.1:4025", port)
	}

	addr, err := netip.ParseAddr(host)
	switch {
	case err == nil:
	case strings.EqualFold(strings.TrimSuffix(host, "."), "localhost"):
		addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		return netip.AddrPort{}, invalidf("target host %q is a host name, which amtpkit load does not resolve, so that it sends nothing (DNS queries included) to an address that is not loopback; give a loopback IP address such as 127.0.0.1:%s or [::1]:%s", host, port, port)
	}

	addr = addr.Unmap()
	if !addr.IsLoopback() {
		return netip.AddrPort{}, invalidf("target %q: %s is not a loopback address; amtpkit load sends load only to 127.0.0.0/8 or ::1, so pass an address such as 127.0.0.1:%s", target, addr, port)
	}
	return netip.AddrPortFrom(addr, uint16(portNumber)), nil
}

// shardPart returns this shard's part of total: total/N, with the
// remainder spread over the lowest shard indexes.
func shardPart(total int64, shard *result.Shard) int64 {
	if shard == nil {
		return total
	}
	part := total / int64(shard.Total)
	if int64(shard.Index) < total%int64(shard.Total) {
		part++
	}
	return part
}

// describeIdentities returns the identity names with their source
// addresses, for the fingerprint.
func describeIdentities(ids []*identity) (names, addrs []string) {
	for _, id := range ids {
		names = append(names, id.name)
		addrs = append(addrs, id.source.String())
	}
	return names, addrs
}

// joinNonEmpty joins the non-empty parts with sep.
func joinNonEmpty(sep string, parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, sep)
}
