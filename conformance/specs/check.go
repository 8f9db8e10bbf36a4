package specs

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// Label prefixes. Every spec carries its clause ID as a plain label plus
// a section and a level label, so that a label filter can select by any
// of the three.
const (
	SectionLabelPrefix = "section:"
	LevelLabelPrefix   = "level:"
	// NeedsLabelPrefix marks a spec that needs an optional part of the
	// configuration, such as "needs:private" or "needs:maildir".
	NeedsLabelPrefix = "needs:"
)

// SectionLabel returns the section label of a clause: "section:4.4.1" for
// the draft and "section:rfc5321-4.1.1.4" for RFC 5321.
func SectionLabel(c catalogue.Clause) string {
	return SectionLabelPrefix + SectionLabelValue(c.Source, c.Section)
}

// SectionLabelValue returns the part of a section label after the prefix.
func SectionLabelValue(source, section string) string {
	if source == catalogue.SourceRFC5321 {
		return "rfc5321-" + section
	}
	return section
}

// LevelLabel returns the level label of a clause, with a hyphen for the
// space of two-word levels: "level:MUST-NOT".
func LevelLabel(l catalogue.Level) string {
	return LevelLabelPrefix + strings.ReplaceAll(string(l), " ", "-")
}

// ClauseLabels returns the labels that the spec of c carries, without its
// "needs:" labels.
func ClauseLabels(c catalogue.Clause) []string {
	return []string{c.ID, SectionLabel(c), LevelLabel(c.Level)}
}

// Check is the state of one clause check while its spec runs. A spec
// records exactly one verdict; the first one counts.
type Check struct {
	Clause catalogue.Clause

	ctx   context.Context
	start time.Time

	mu      sync.Mutex
	outcome result.Outcome
	done    bool
	// cutShort is true when the verdict was recorded after the check's
	// context ended, so that it may judge a canceled step.
	cutShort bool
	sessions []*Session
	evidence []result.Evidence
}

// clause declares the spec of the clause id. needs are "needs:" labels
// without their prefix. The spec fails with a clear message if the
// catalogue has no such ID.
func clause(id string, needs []string, body func(c *Check)) {
	cl, _ := catalogue.ByID(id)
	labels := ClauseLabels(cl)
	for _, need := range needs {
		labels = append(labels, NeedsLabelPrefix+need)
	}
	if _, err := registerSpec(id, labels); err != nil {
		It(id+": not in the catalogue", Label(id), Offset(1), func() {
			Fail(err.Error())
		})
		return
	}

	// Offset(1) gives the spec the code location of the clause call in
	// the section's file, for Ginkgo's report.
	It(cl.ID+": "+cl.Title, Label(labels...), SpecTimeout(specBudget()), Offset(1), func(specCtx SpecContext) {
		ctx, cancel := context.WithCancel(specCtx)
		defer cancel()
		stop := context.AfterFunc(runCtx(), cancel)
		defer stop()

		c := &Check{Clause: cl, ctx: ctx, start: time.Now()}
		if reason := Interruption(); reason != "" {
			c.Skip("not run: the run was interrupted before this check (%s)", reason)
		} else {
			c.run(body)
		}
		c.finish()
		report(c.outcome)
	})
}

// run calls body and turns a panic into an error verdict, so that a bug in
// one check cannot stop the run.
func (c *Check) run(body func(c *Check)) {
	defer func() {
		if r := recover(); r != nil {
			c.Error("the check panicked: %v", r)
		}
	}()
	body(c)
}

// finish closes the check's connections, collects their transcripts and
// stores the outcome.
func (c *Check) finish() {
	c.mu.Lock()
	sessions := c.sessions
	c.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	interruption := Interruption()
	switch {
	case (c.cutShort || !c.done) && interruption != "":
		c.outcome = interruptedOutcome(c.outcome, interruption)
		c.done = true
	case c.cutShort:
		// Ginkgo's own interrupt handler may cancel the spec before the
		// run's context ends, so recordUnfinished looks at this mark.
		markCutShort(c.Clause.ID)
	case !c.done:
		c.outcome.Verdict = result.Error
		c.outcome.Reason = "the check recorded no verdict"
		c.done = true
	}
	for _, s := range c.sessions {
		c.evidence = append(c.evidence, s.evidence())
	}
	c.outcome.Transcript = c.evidence
	if c.outcome.Transcript == nil {
		c.outcome.Transcript = []result.Evidence{}
	}
	c.outcome.DurationMS = time.Since(c.start).Milliseconds()
	record(c.Clause.ID, c.outcome)
}

// report maps a verdict to the Ginkgo outcome of the spec, so that the
// Ginkgo report shows the broken MUST clauses and the harness errors as
// failures and the skipped clauses as skips.
func report(o result.Outcome) {
	switch o.Verdict {
	case result.Fail:
		Fail(o.Reason)
	case result.Error:
		Fail("harness error: " + o.Reason)
	case result.Skip:
		Skip(o.Reason)
	}
}

// Strict reports whether the run demands the draft's literal reading.
func (c *Check) Strict() bool {
	return current().Strict
}

func (c *Check) set(v result.Verdict, format string, args []any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reason := fmt.Sprintf(format, args...)
	if c.done {
		c.outcome.Observations = append(c.outcome.Observations, fmt.Sprintf("later verdict %s ignored: %s", v, reason))
		return
	}
	c.outcome.Verdict = v
	c.outcome.Reason = reason
	c.done = true
	c.cutShort = c.ctx.Err() != nil
}

// Interruption returns why the run was canceled, such as "interrupt
// signal received", or "" while it runs.
func Interruption() string {
	ctx := runCtx()
	if ctx.Err() == nil {
		return ""
	}
	return context.Cause(ctx).Error()
}

// interruptedOutcome turns the outcome of a check that the run's
// cancellation cut short into a skip. A step that the cancellation ended
// is no evidence about the server, so the verdict it led to is kept only as
// an observation.
func interruptedOutcome(o result.Outcome, interruption string) result.Outcome {
	if o.Verdict != "" {
		o.Observations = append(o.Observations, fmt.Sprintf("verdict %s set aside because the run was interrupted: %s", o.Verdict, o.Reason))
	}
	o.Verdict = result.Skip
	o.Reason = fmt.Sprintf("not checked: the run was interrupted during this check (%s)", interruption)
	return o
}

// Pass records that the server keeps the clause.
func (c *Check) Pass(format string, args ...any) {
	c.set(result.Pass, format, args)
}

// Broken records that the server breaks the clause: fail for an absolute
// requirement, warn for a recommendation, info for a permission.
func (c *Check) Broken(format string, args ...any) {
	c.set(result.Verdict(c.Clause.Level.Verdict()), format, args)
}

// Warn records a warning on any clause: the server did something that
// the clause makes suspect, but the check cannot prove it broken.
func (c *Check) Warn(format string, args ...any) {
	c.set(result.Warn, format, args)
}

// Info records a fact about a permission (MAY) clause.
func (c *Check) Info(format string, args ...any) {
	c.set(result.Info, format, args)
}

// Skip records that the clause could not be checked in this run.
func (c *Check) Skip(format string, args ...any) {
	c.set(result.Skip, format, args)
}

// Error records that the harness could not check the clause.
func (c *Check) Error(format string, args ...any) {
	c.set(result.Error, format, args)
}

// snapshot returns the outcome recorded so far, with an empty verdict
// before the first one.
func (c *Check) snapshot() result.Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		return result.Outcome{}
	}
	return c.outcome
}

// Observe adds a fact to the outcome.
func (c *Check) Observe(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outcome.Observations = append(c.outcome.Observations, fmt.Sprintf(format, args...))
}

// addEvidence attaches the record of a connection that is not a Session of
// this check, such as the baseline session.
func (c *Check) addEvidence(e ...result.Evidence) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evidence = append(c.evidence, e...)
}

func (c *Check) addSession(s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessions = append(c.sessions, s)
}

// stepContext returns a context that ends after one step timeout, or
// earlier when the spec ends.
func (c *Check) stepContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, current().StepTimeout)
}

// dependsOn records a skip and returns false when the clause id was
// checked earlier in this run and did not pass.
func (c *Check) dependsOn(id string) bool {
	o, ok := recorded(id)
	if !ok || o.Verdict == result.Pass || o.Verdict == result.Info {
		return true
	}
	c.Skip("depends on %s, which got %s: %s", id, o.Verdict, o.Reason)
	return false
}

// evidenceOf returns the evidence of a probe connection.
func evidenceOf(label string, transcript *probe.Transcript, tls probe.TLSFacts) result.Evidence {
	e := result.Evidence{Label: label, Record: transcript, Rendered: transcript.Render()}
	if tls.Enabled {
		facts := tls
		e.TLS = &facts
	}
	return e
}
