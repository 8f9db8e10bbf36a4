package specs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// recommendedCommandTimeout is the minimum command timeout of RFC 5321
// section 4.5.3.2.7.
const recommendedCommandTimeout = 5 * time.Minute

// idleResult is the observation of an idle session after EHLO. The two
// timeout clauses share one per run, so the wait happens once.
type idleResult struct {
	// waited is how long the session stayed idle before the server acted
	// or the wait ended.
	waited time.Duration
	// reply is the reply the server sent while the client was idle.
	reply *probe.Reply
	// closed is true when the server closed the connection.
	closed bool
	// failure is set when the harness could not observe the session.
	failure string
	// skip is the skip reason of the check that could not open the
	// session because the server rejected a step before the wait, so that
	// the other timeout check is skipped for the same reason.
	skip     string
	evidence []result.Evidence
}

// serverTimeoutReason is the skip reason of the timeout checks without
// --server-timeout.
const serverTimeoutReason = "needs --server-timeout, the command timeout the server under test is configured with, because the check waits for it"

// observeIdle returns the run's idle observation, making it on the first
// call: after EHLO, the session stays idle for the server's command
// timeout plus one step timeout, and records what the server sends and
// whether it closes the connection.
func (c *Check) observeIdle() (idleResult, bool) {
	timeout := current().ServerTimeout
	if timeout <= 0 {
		c.Skip(serverTimeoutReason)
		return idleResult{}, false
	}

	store.Lock()
	cached := store.idle
	store.Unlock()
	if cached != nil {
		c.Observe("the idle session was observed once for the timeout checks; its transcript is attached")
		c.addEvidence(cached.evidence...)
		return *cached, c.idleUsable(*cached)
	}

	observed := c.idleSession(timeout)
	store.Lock()
	store.idle = &observed
	store.Unlock()
	return observed, c.idleUsable(observed)
}

// idleUsable records a skip or an error for an observation that failed.
func (c *Check) idleUsable(r idleResult) bool {
	if r.skip != "" {
		c.Skip("%s", r.skip)
		return false
	}
	if r.failure != "" {
		c.Error("%s", r.failure)
		return false
	}
	return true
}

// idleSession opens a session and waits as observeIdle describes.
func (c *Check) idleSession(timeout time.Duration) idleResult {
	s := c.open("idle session after EHLO")
	if s == nil {
		if o := c.snapshot(); o.Verdict == result.Skip {
			return idleResult{skip: o.Reason}
		}
		return idleResult{failure: "no session could be opened for the idle wait"}
	}
	wait := timeout + current().StepTimeout
	s.Note("idle for up to %s: the configured server timeout %s plus one step timeout", wait, timeout)

	start := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, wait)
	defer cancel()
	reply, err := s.conn.ReadReply(ctx)
	r := idleResult{waited: time.Since(start)}
	var readErr *probe.ReadError
	switch {
	case err == nil || errors.Is(err, probe.ErrMalformedReply):
		r.reply = &reply
		closed, closeErr := s.ExpectClose()
		r.closed = closed && closeErr == nil
	case errors.As(err, &readErr) && errors.Is(err, probe.ErrTimeout) && readErr.Received == 0:
		// Still open after the wait.
	case closedOrAlert(err):
		r.closed = true
	default:
		r.failure = fmt.Sprintf("the idle wait failed after %s: %s", r.waited.Round(time.Millisecond), describe(err))
	}
	r.evidence = []result.Evidence{s.evidence()}
	return r
}

// String returns the observation as a phrase for a reason.
func (r idleResult) String() string {
	waited := r.waited.Round(100 * time.Millisecond)
	switch {
	case r.reply != nil && r.closed:
		return fmt.Sprintf("after %s idle, the server sent %s and closed the connection", waited, summarize(*r.reply))
	case r.reply != nil:
		return fmt.Sprintf("after %s idle, the server sent %s and kept the connection open", waited, summarize(*r.reply))
	case r.closed:
		return fmt.Sprintf("after %s idle, the server closed the connection without a reply", waited)
	default:
		return fmt.Sprintf("the connection was still open and silent after %s idle", waited)
	}
}

// checkIdleClose records whether the server closes an idle session after
// its command timeout and whether it sends 421 first.
func checkIdleClose(c *Check) {
	r, ok := c.observeIdle()
	if !ok {
		return
	}
	switch {
	case r.reply != nil && r.reply.Code == 421:
		c.Info("%s", r)
	case r.reply == nil && !r.closed:
		c.Info("%s, the configured server timeout %s plus one step timeout; it did not close an idle session", r, current().ServerTimeout)
	default:
		c.Broken("%s; a server that closes after a timeout is expected to send 421 first", r)
	}
}

// checkCommandTimeout passes a server that keeps an idle session open for
// 5 minutes, and warns about one that closes it or ends it earlier.
func checkCommandTimeout(c *Check) {
	r, ok := c.observeIdle()
	if !ok {
		return
	}
	ended := r.closed || (r.reply != nil && r.reply.Code == 421)
	switch {
	case ended && r.waited < recommendedCommandTimeout:
		c.Broken("%s, before the 5 minutes that RFC 5321 section 4.5.3.2.7 recommends (configured: %s)", r, current().ServerTimeout)
	case ended || r.waited >= recommendedCommandTimeout:
		c.Pass("%s, no earlier than 5 minutes", r)
	default:
		c.Skip("%s, which is shorter than 5 minutes, so the check cannot tell whether the server waits 5 minutes; pass --server-timeout 5m or more to wait that long", r)
	}
}
