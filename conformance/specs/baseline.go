package specs

import (
	"fmt"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// listenerKind names a listener of the server under test.
type listenerKind string

const (
	publicListener  listenerKind = "public"
	privateListener listenerKind = "private"
)

// requireBaseline makes sure that the valid client certificate can open a
// session on the public listener: a TLS handshake, a 220 greeting and 250
// to EHLO. The first check that needs it opens that session, and later
// checks reuse the outcome. When it failed, the check records an error and
// gets false, because it could not tell a rejection it expects from a
// server that rejects everyone.
func (c *Check) requireBaseline() bool {
	return c.requireBaselineOf(publicListener)
}

// requirePrivateBaseline is requireBaseline for the private listener and
// the private client certificate. It records a skip when the run has no
// private listener.
func (c *Check) requirePrivateBaseline() bool {
	if current().PrivateTarget == "" {
		c.Skip("no private listener configured (--private-target)")
		return false
	}
	return c.requireBaselineOf(privateListener)
}

func (c *Check) requireBaselineOf(kind listenerKind) bool {
	state := baseline(c, kind)
	if state.ok {
		return true
	}

	c.addEvidence(state.evidence...)
	if state.reply != nil && hasInvalidCode(*state.reply) {
		// The server broke the reply syntax, which a clause judges, so the
		// harness did its part and this check is skipped.
		c.skipRejected(state.step, *state.reply)
		return false
	}
	c.Error("precondition failed: %s", state.reason)
	return false
}

// baseline returns the outcome of the baseline session of a listener,
// opening it on the first call of a run.
func baseline(c *Check, kind listenerKind) *baselineState {
	store.Lock()
	state := store.baselines[kind]
	store.Unlock()
	if state != nil {
		return state
	}

	state = openBaseline(c, kind)
	store.Lock()
	defer store.Unlock()
	if store.baselines[kind] == nil {
		store.baselines[kind] = state
	}
	return store.baselines[kind]
}

// openBaseline opens the baseline session in a check of its own, so that
// its transcript does not join the evidence of whichever check came first.
func openBaseline(c *Check, kind listenerKind) *baselineState {
	probeCheck := &Check{Clause: c.Clause, ctx: c.ctx, start: c.start}
	cfg := current()
	name, target := pki.CertClient, cfg.Target
	if kind == privateListener {
		name, target = pki.CertPrivateClient, cfg.PrivateTarget
	}
	id, err := identity(name)
	if err != nil {
		return &baselineState{reason: err.Error()}
	}

	a := probeCheck.admit(string(kind)+" baseline session", target, id, id.CN)
	state := &baselineState{ok: a.kind == admitted, step: a.step, reply: a.reply}
	if a.session != nil {
		facts := a.session.TLS()
		state.tls = &facts
		if a.kind == admitted {
			a.session.Cmd("QUIT")
		}
		a.session.Close()
	}
	for _, s := range probeCheck.sessions {
		state.evidence = append(state.evidence, s.evidence())
	}

	if state.ok {
		state.reason = fmt.Sprintf("the %s client certificate %s opened a session on %s", kind, id, target)
	} else {
		state.reason = fmt.Sprintf("the %s client certificate %s could not open a session on %s: %s", kind, id, target, a.detail)
	}
	return state
}

// open returns a session of the valid client on the public listener after
// a 250 reply to EHLO. On failure it records an error and returns nil.
func (c *Check) open(label string) *Session {
	if !c.requireBaseline() {
		return nil
	}
	return c.openAs(label, current().Target, pki.CertClient)
}

// openPrivate returns a session of the private client on the private
// listener after a 250 reply to EHLO, before any AUTH. On failure it
// records a skip or an error and returns nil.
func (c *Check) openPrivate(label string) *Session {
	if !c.requirePrivateBaseline() {
		return nil
	}
	return c.openAs(label, current().PrivateTarget, pki.CertPrivateClient)
}

func (c *Check) openAs(label, target, certName string) *Session {
	id, err := identity(certName)
	if err != nil {
		c.Error("%v", err)
		return nil
	}
	a := c.admit(label, target, id, id.CN)
	if a.kind != admitted {
		c.Error("precondition failed: %s could not open a session on %s: %s", id, target, a.detail)
		return nil
	}
	return a.session
}

// ehloReply returns the last reply of a session that admit opened, which
// is the reply to EHLO.
func ehloReply(s *Session) probe.Reply {
	replies := s.Replies()
	if len(replies) == 0 {
		return probe.Reply{}
	}
	return replies[len(replies)-1]
}

// keywords returns the EHLO keywords of an EHLO reply in upper case, one
// per line after the first.
func keywords(ehlo probe.Reply) []string {
	var words []string
	for i, text := range ehlo.Texts() {
		if i == 0 {
			continue
		}
		if fields := strings.Fields(text); len(fields) > 0 {
			words = append(words, strings.ToUpper(fields[0]))
		}
	}
	return words
}
