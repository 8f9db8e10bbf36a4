// Package result is the JSON format of an amtpkit load run. A result holds
// the run fingerprint (what ran against which server), the generator's
// calibration, per-phase latency histograms, throughput per second, the
// error taxonomy, the generator's CPU use, threshold outcomes and rate
// steps.
//
// The format is versioned by SchemaVersion, and Parse rejects files of a
// newer version. Histograms are stored as HDR buckets with one fixed
// configuration, so Merge combines the results of several shards exactly:
// the merged counts and buckets equal those of one run that recorded
// everything.
//
// Durations in JSON are integers in microseconds (fields ending in _us) or
// seconds (fields ending in _s); times are RFC 3339.
package result

import (
	"time"
)

// SchemaVersion is the version of the JSON format that Write produces and
// the newest that Parse reads.
const SchemaVersion = 1

// Phase names: the keys of Result.Phases and the names thresholds use.
// Each phase histogram measures the phase alone, from sending the command
// (or starting the step) to reading the whole reply, except PhaseTotal
// and PhaseLag.
const (
	PhaseConnect = "connect"
	// PhaseHandshake is a full TLS handshake with client certificate.
	PhaseHandshake = "handshake"
	// PhaseResumedHandshake is a TLS 1.3 handshake that resumed a session.
	PhaseResumedHandshake = "resumed_handshake"
	PhaseGreeting         = "greeting"
	PhaseEHLO             = "ehlo"
	// PhaseAuth is AUTH PLAIN on a private listener (relay scenario).
	PhaseAuth = "auth"
	PhaseMail = "mail"
	PhaseRcpt = "rcpt"
	// PhaseData is DATA to the 354 reply.
	PhaseData = "data"
	// PhaseDataEnd is the end of the message data to the 250 reply, which
	// a durable server sends after committing the message to its queue.
	PhaseDataEnd = "data_end"
	PhaseQuit    = "quit"
	// PhaseDelivery is end-to-end: from sending the end of the message
	// data to the server under test until the sink received the message.
	PhaseDelivery = "delivery"
	// PhaseTotal is one unit of work (a connection with all its
	// messages). In open loop it runs from the intended start, so time a
	// unit waited for the generator counts against the server, as in wrk2.
	// In closed loop it runs from the actual start.
	PhaseTotal = "total"
	// PhaseLag is the generator's own lag: from a unit's intended start to
	// its actual start. It is recorded in open loop only.
	PhaseLag = "lag"
)

// Phases returns the phase names in the order of a session.
func Phases() []string {
	return []string{PhaseConnect, PhaseHandshake, PhaseResumedHandshake, PhaseGreeting, PhaseEHLO, PhaseAuth,
		PhaseMail, PhaseRcpt, PhaseData, PhaseDataEnd, PhaseQuit, PhaseDelivery, PhaseTotal, PhaseLag}
}

// Scenario names.
const (
	ScenarioHandshake = "handshake"
	ScenarioResume    = "resume"
	ScenarioSession   = "session"
	ScenarioRelay     = "relay"
)

// Load models.
const (
	ModeOpen   = "open"
	ModeClosed = "closed"
)

// Result is one load run, or the merge of several shard runs.
type Result struct {
	SchemaVersion int `json:"schema_version"`
	// Run describes the run. For a merged result its Start and End span
	// all shards, Shard is nil, and the other fields come from the first
	// shard. Each shard's own description is in Shards.
	Run Run `json:"run"`
	// Shards lists the runs a merged result combines, in shard order. It
	// is empty for a single run.
	Shards []Run `json:"shards,omitempty"`

	// Phases maps a phase name (PhaseConnect...) to its latency
	// histogram. Phases that a scenario does not have are absent.
	Phases map[string]*Histogram `json:"phases"`
	// Timeline has one entry per wall-clock second in which anything
	// happened, in increasing order.
	Timeline []Second `json:"timeline"`
	Counts   Counts   `json:"counts"`
	// Errors is the error taxonomy, sorted by class, phase and key.
	Errors []ErrorCount `json:"errors"`
	CPU    CPU          `json:"cpu"`
	// Steps holds one entry per rate step of a stepped or find-max run.
	Steps []Step `json:"steps,omitempty"`
	// FindMax is set for a --find-max run.
	FindMax    *FindMax           `json:"find_max,omitempty"`
	Thresholds []ThresholdOutcome `json:"thresholds,omitempty"`
}

// Run is the fingerprint of one generator process: where and how it ran,
// against what, and what it negotiated.
type Run struct {
	Generator Generator `json:"generator"`
	// Target is the server address as given, such as 127.0.0.1:4025.
	Target   string  `json:"target"`
	Scenario string  `json:"scenario"`
	Options  Options `json:"options"`
	// Shard is this process's part of a sharded run; nil when unsharded.
	Shard *Shard `json:"shard,omitempty"`
	// TLS holds what the first successful handshake negotiated.
	TLS TLSFacts `json:"tls"`
	// EHLOCapabilities are the EHLO reply lines after the greeting line,
	// as the server sent them (such as "PIPELINING", "SIZE 10485760",
	// "MPC ...").
	EHLOCapabilities []string    `json:"ehlo_capabilities"`
	Start            time.Time   `json:"start"`
	End              time.Time   `json:"end"`
	Calibration      Calibration `json:"calibration"`
	// Warnings are conditions that make the figures less trustworthy,
	// such as a requested rate near the generator's own capacity.
	Warnings []string `json:"warnings,omitempty"`
	// StopReason is the cause of the end of the run: "duration", "count",
	// "steps" (the last rate step ended), "interrupted" or "find-max". A merged result
	// lists the reasons of its shards, separated by commas.
	StopReason string `json:"stop_reason"`
}

// Generator describes the machine and build that produced a run.
type Generator struct {
	GoVersion  string `json:"go_version"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"num_cpu"`
	CPUModel   string `json:"cpu_model"`
	Hostname   string `json:"hostname"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

// Options are the run's settings as the user gave them. Rates are those of
// the whole run, before a shard takes its part.
type Options struct {
	Mode string `json:"mode"`
	// Rate is the open-loop arrival rate in units per second. Steps, when
	// set, replaces it with a schedule.
	Rate        float64   `json:"rate,omitempty"`
	RateSteps   []float64 `json:"rate_steps,omitempty"`
	StepSeconds float64   `json:"step_s,omitempty"`
	Concurrency int       `json:"concurrency,omitempty"`
	// MaxInFlight bounds the open-loop units in progress at once.
	MaxInFlight     int     `json:"max_in_flight,omitempty"`
	DurationSeconds float64 `json:"duration_s,omitempty"`
	Count           int64   `json:"count,omitempty"`
	Messages        int     `json:"messages_per_connection,omitempty"`
	MessageSize     int     `json:"message_size,omitempty"`
	MPC             string  `json:"mpc,omitempty"`
	Recipient       string  `json:"recipient,omitempty"`
	// ResumeFraction is the share of resume connections that offer a
	// session ticket.
	ResumeFraction float64  `json:"resume_fraction,omitempty"`
	Identities     []string `json:"identities"`
	SourceAddrs    []string `json:"source_addrs"`
	TimeoutSeconds float64  `json:"timeout_s"`
	FindMax        bool     `json:"find_max,omitempty"`
	Thresholds     []string `json:"thresholds,omitempty"`
}

// Shard is the part i of N (0 <= i < N) that one process of a sharded run
// produced. Each shard runs 1/N of the rate, concurrency and count.
type Shard struct {
	Index int `json:"index"`
	Total int `json:"total"`
}

// TLSFacts are the negotiated TLS parameters.
type TLSFacts struct {
	Version     string `json:"version"`
	CipherSuite string `json:"cipher_suite"`
	// Group is the key exchange group, such as X25519MLKEM768.
	Group string `json:"group"`
	// ServerCN is the subject common name of the server's certificate.
	ServerCN string `json:"server_cn"`
}

// Calibration is the generator's measurement of its own machine before the
// run, on one goroutine each.
type Calibration struct {
	// SignaturesPerSecond is the rate of signatures with the client key.
	SignaturesPerSecond float64 `json:"signatures_per_s"`
	// VerificationsPerSecond is the rate of certificate signature checks
	// with the server's CA key type.
	VerificationsPerSecond float64 `json:"verifications_per_s"`
	// KeyExchangesPerSecond is the rate of X25519 key agreements (key
	// generation and shared secret).
	KeyExchangesPerSecond float64 `json:"key_exchanges_per_s"`
	// HandshakeCPUUS estimates the client's CPU time for the crypto of one
	// full handshake, in microseconds: one signature, two verifications
	// and one key exchange at the rates above.
	HandshakeCPUUS float64 `json:"handshake_cpu_us"`
	// MaxHandshakesPerSecond estimates the full handshakes per second the
	// generator can start with all its cores: GOMAXPROCS seconds of CPU
	// per second divided by HandshakeCPUUS.
	MaxHandshakesPerSecond float64 `json:"max_handshakes_per_s"`
	DurationSeconds        float64 `json:"duration_s"`
}

// Activity counts what happened in a span of time: a second or a step.
type Activity struct {
	// Started, Completed and Failed count units of work (connections)
	// started, finished without error, and finished with an error.
	Started   int64 `json:"started"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	// Accepted counts messages the server accepted with 250 after DATA.
	Accepted int64 `json:"accepted"`
	// Delivered counts messages the relay sink received.
	Delivered int64 `json:"delivered"`
}

// Add adds the counts of b to a.
func (a *Activity) Add(b Activity) {
	a.Started += b.Started
	a.Completed += b.Completed
	a.Failed += b.Failed
	a.Accepted += b.Accepted
	a.Delivered += b.Delivered
}

// Second is the activity of one wall-clock second. Units count in the
// second they started (Started) or ended (the others).
type Second struct {
	// Unix is the second, in seconds since 1970.
	Unix int64 `json:"unix"`
	Activity
	// Latency is the PhaseTotal histogram of the units that finished in
	// this second, for percentiles over time.
	Latency *Histogram `json:"latency"`
}

// Counts are the totals of a run.
type Counts struct {
	// Arrivals counts units the pacer scheduled (open loop) or workers
	// began (closed loop).
	Arrivals  int64 `json:"arrivals"`
	Started   int64 `json:"started"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	// Unstarted counts scheduled units still waiting for a worker when
	// the run ended. They are not in any histogram.
	Unstarted      int64 `json:"unstarted"`
	FullHandshakes int64 `json:"full_handshakes"`
	// ResumeOffered counts handshakes that offered a session ticket, and
	// Resumed those the server resumed.
	ResumeOffered int64 `json:"resume_offered"`
	Resumed       int64 `json:"resumed"`
	MessagesSent  int64 `json:"messages_sent"`
	// MessagesAccepted counts 250 replies after the message data.
	MessagesAccepted  int64 `json:"messages_accepted"`
	MessagesRejected  int64 `json:"messages_rejected"`
	MessagesDelivered int64 `json:"messages_delivered"`
	BytesSent         int64 `json:"bytes_sent"`
	// InvalidDurations counts units with a negative duration or a total
	// shorter than the phases it contains. Such a unit is a generator
	// bug: its bad values are left out of the histograms and the first
	// one is in Run.Warnings.
	InvalidDurations int64 `json:"invalid_durations,omitempty"`
}

// Error classes of ErrorCount.
const (
	// ErrorReply is an SMTP reply other than the expected one.
	ErrorReply = "reply"
	// ErrorTLSAlert is a TLS alert from the server, by its RFC 8446 name.
	ErrorTLSAlert = "tls_alert"
	// ErrorTLS is a local TLS failure, such as a certificate the
	// generator could not verify.
	ErrorTLS = "tls"
	// ErrorNetwork is a connect, read or write failure or a timeout.
	ErrorNetwork = "network"
	// ErrorProtocol is a reply the generator could not parse.
	ErrorProtocol = "protocol"
)

// ErrorCount counts one kind of failure.
type ErrorCount struct {
	Class string `json:"class"`
	// Phase is the phase that failed.
	Phase string `json:"phase"`
	// Key identifies the failure within its class: for replies the code
	// and enhanced code ("550 5.7.1", or "421" without one), for TLS
	// alerts the alert name ("bad_certificate"), for network errors a
	// short kind ("connection refused", "timeout", "connection reset").
	Key string `json:"key"`
	// Example is the first message seen, such as the reply text.
	Example string `json:"example,omitempty"`
	Count   int64  `json:"count"`
}

// CPU is the generator's CPU time during the run, from getrusage(2).
type CPU struct {
	UserSeconds   float64 `json:"user_s"`
	SystemSeconds float64 `json:"system_s"`
	// PerHandshakeUS is the CPU time per handshake (full or resumed) in
	// microseconds, and PerMessageUS the CPU time per message sent. Both
	// divide the whole run's CPU time, so in a session run they overlap.
	PerHandshakeUS float64 `json:"per_handshake_us"`
	PerMessageUS   float64 `json:"per_message_us"`
	// Utilization is the CPU time over wall time over GOMAXPROCS: 1 means
	// the generator kept all its cores busy.
	Utilization float64 `json:"utilization"`
}

// Step is one rate step of a stepped or find-max run.
type Step struct {
	Index int `json:"index"`
	// Rate is the open-loop arrival rate of the step in units per second.
	Rate  float64   `json:"rate"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Activity counts the units that started in this step.
	Activity
	// Latency and Lag are the PhaseTotal and PhaseLag histograms of the
	// units that started in this step.
	Latency *Histogram `json:"latency"`
	Lag     *Histogram `json:"lag"`
	// Passed is set by find-max: whether the step met every threshold and
	// its delivery backlog did not keep growing. Reason explains a failed
	// step.
	Passed *bool  `json:"passed,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// FindMax is the outcome of a --find-max run.
type FindMax struct {
	// MaxSustainableRate is the highest step rate that passed; 0 when the
	// first step failed.
	MaxSustainableRate float64 `json:"max_sustainable_rate"`
	// BrokenAt is the rate of the first step that failed; 0 when every
	// step passed.
	BrokenAt float64 `json:"broken_at,omitempty"`
	Reason   string  `json:"reason"`
}

// ThresholdOutcome is the check of one --threshold expression.
type ThresholdOutcome struct {
	Expression string `json:"expression"`
	Passed     bool   `json:"passed"`
	// Observed and Limit are in Unit: "us", "ratio", "count" or
	// "per_second".
	Observed float64 `json:"observed"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	// Detail explains a failure in words, such as "no samples".
	Detail string `json:"detail,omitempty"`
}

// Duration returns the wall time of the run.
func (r *Result) Duration() time.Duration {
	return r.Run.End.Sub(r.Run.Start)
}

// ErrorTotal returns the number of failures of every class.
func (r *Result) ErrorTotal() int64 {
	var n int64
	for _, e := range r.Errors {
		n += e.Count
	}
	return n
}

// Phase returns the histogram of a phase, or nil when the run has none.
func (r *Result) Phase(name string) *Histogram {
	return r.Phases[name]
}
