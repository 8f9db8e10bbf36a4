// Package result is the JSON result of one conformance run: the run
// environment, a summary per level and per section, and one entry per
// clause of the catalogue with its verdict, reason and wire evidence.
//
// The format is versioned by SchemaVersion. Load reads files of this
// version and rejects newer ones, so a CI job that archives results can
// tell an old amtpkit from a damaged file. Within one version, fields are
// only added, never removed or given a new meaning, and readers ignore
// fields they do not know.
package result

import (
	"time"

	"github.com/amtp-toolkit/amtp/conformance/probe"
)

// SchemaVersion is the version of the JSON format that Write produces and
// Load reads.
const SchemaVersion = 1

// Draft is the revision of the AMTP draft that the suite checks.
const Draft = "draft-weinman-amtp-03"

// Verdict is the outcome of one clause.
type Verdict string

// Verdicts. Fail, Warn and Info are the verdicts for a broken clause of an
// absolute requirement, a recommendation and a permission (see
// catalogue.Level.Verdict); Info also marks a fact recorded for a MAY clause.
const (
	Pass Verdict = "pass"
	Fail Verdict = "fail"
	Warn Verdict = "warn"
	Info Verdict = "info"
	// Skip means the clause was not checked: it was not selected, its role
	// is not the server, or the run lacks something it needs. Reason names
	// the cause.
	Skip Verdict = "skip"
	// Error means the harness could not check the clause, for example
	// because it could not connect at all.
	Error Verdict = "error"
	// Untestable marks a clause that no wire check can observe.
	Untestable Verdict = "untestable"
)

// Verdicts returns every verdict in the order that summaries print them.
func Verdicts() []Verdict {
	return []Verdict{Pass, Fail, Warn, Info, Skip, Error, Untestable}
}

// Valid reports whether v is one of the verdicts.
func (v Verdict) Valid() bool {
	for _, known := range Verdicts() {
		if v == known {
			return true
		}
	}
	return false
}

// Result is the whole result of one run.
type Result struct {
	SchemaVersion int         `json:"schema_version"`
	Environment   Environment `json:"environment"`
	Summary       Summary     `json:"summary"`
	// Clauses has one entry per catalogue clause, in catalogue order.
	Clauses []Clause `json:"clauses"`
}

// Environment describes the run: what ran, against what, and when.
type Environment struct {
	// SuiteVersion is the version of the amtpkit build that ran the suite.
	SuiteVersion string `json:"suite_version"`
	// Draft is the draft revision whose clauses were checked.
	Draft   string    `json:"draft"`
	Target  string    `json:"target"`
	Options Options   `json:"options"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// DurationSeconds is End minus Start.
	DurationSeconds float64 `json:"duration_seconds"`
	// TLS holds the TLS facts of a session that the valid client
	// certificate opened, or nil if none could be opened.
	TLS *probe.TLSFacts `json:"tls,omitempty"`
	// Baseline is the session that most checks need first: the valid
	// client certificate connects, gets a greeting and a 250 reply to EHLO.
	Baseline *Baseline `json:"baseline,omitempty"`
	// DNSOverrides lists the records that the suite's DNS server changed
	// in the PKI zone for the whole run.
	DNSOverrides []string `json:"dns_overrides,omitempty"`
	// Interrupted is true when the run was canceled, such as by SIGINT,
	// before every selected check ended. The suite records the checks that
	// the cancellation cut short, and those after them, as skipped.
	Interrupted bool `json:"interrupted,omitempty"`
	// InterruptReason is the cause of the cancellation, such as
	// "interrupt signal received". It is empty unless Interrupted.
	InterruptReason string `json:"interrupt_reason,omitempty"`
	// Problems lists harness problems that concern no single clause, such
	// as a spec that names an ID missing from the catalogue.
	Problems []string `json:"problems,omitempty"`
}

// Baseline is the outcome of the first session with the valid client
// certificate. Checks that need a working session report error when it
// failed, because then they cannot tell a rejection from a broken server.
type Baseline struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
}

// Options are the run options as the user gave them, so that the result
// records what ran.
type Options struct {
	Target        string   `json:"target"`
	Target6       string   `json:"target6,omitempty"`
	PrivateTarget string   `json:"private_target,omitempty"`
	ServerName    string   `json:"server_name"`
	PKIDir        string   `json:"pki_dir"`
	DNSMode       string   `json:"dns_mode"`
	DNSListen     string   `json:"dns_listen,omitempty"`
	Maildir       string   `json:"maildir,omitempty"`
	Recipient     string   `json:"recipient"`
	GatewaySink   string   `json:"gateway_sink,omitempty"`
	PrivateSink   string   `json:"private_sink,omitempty"`
	ServerTimeout string   `json:"server_timeout,omitempty"`
	Strict        bool     `json:"strict"`
	StepTimeout   string   `json:"step_timeout"`
	Focus         []string `json:"focus,omitempty"`
	Skip          []string `json:"skip,omitempty"`
	LabelFilter   string   `json:"label_filter,omitempty"`
}

// Outcome is the verdict, reason and evidence that a spec records for
// one clause.
type Outcome struct {
	Verdict Verdict `json:"verdict"`
	// Reason explains the verdict in one line.
	Reason string `json:"reason"`
	// Observations are further facts the check recorded, such as the
	// declarations of an EHLO reply or the Maildir file it inspected.
	Observations []string `json:"observations,omitempty"`
	// Transcript has one entry per connection that the check opened, in
	// the order it opened them.
	Transcript []Evidence `json:"transcript"`
	// DurationMS is the time the check took, in milliseconds.
	DurationMS int64 `json:"duration_ms"`
}

// Evidence is the record of one probe connection.
type Evidence struct {
	// Label is the purpose of the connection, such as "HELO after the
	// greeting".
	Label string `json:"label"`
	// TLS holds the connection's TLS facts; nil for a plain TCP
	// connection.
	TLS *probe.TLSFacts `json:"tls,omitempty"`
	// Record is the probe transcript: every byte sent and received and
	// every connection event, with times.
	Record *probe.Transcript `json:"record"`
	// Rendered is Record as "C:" and "S:" lines, for reading.
	Rendered string `json:"rendered"`
}

// Clause is the result of one catalogue clause.
type Clause struct {
	ID      string `json:"id"`
	Section string `json:"section"`
	// Source is the document of Section: the draft or RFC 5321.
	Source string `json:"source"`
	Title  string `json:"title"`
	Level  string `json:"level"`
	Role   string `json:"role"`
	// Text is the normative sentence that the clause quotes, copied from
	// the catalogue. It is empty in results written before the suite
	// recorded it, and Sentence then falls back to the catalogue.
	Text string `json:"text,omitempty"`
	// Notes is the interpretation of the draft that the suite applied to
	// the clause, if any.
	Notes string `json:"notes,omitempty"`
	Outcome
	// Rerun is an amtpkit command line that checks this clause alone. It
	// is empty for clauses that the suite does not check.
	Rerun string `json:"rerun,omitempty"`
}

// Clause returns the entry for id and whether there is one.
func (r *Result) Clause(id string) (Clause, bool) {
	for _, c := range r.Clauses {
		if c.ID == id {
			return c, true
		}
	}
	return Clause{}, false
}
