package specs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// admissionKind is the outcome of an attempt to open a session.
type admissionKind int

const (
	// admitted: EHLO got 250.
	admitted admissionKind = iota
	// rejectedTLS: the TLS handshake failed with an alert or a close, or
	// the server closed the connection before its greeting, as a TLS 1.3
	// server that rejects the client certificate does.
	rejectedTLS
	// rejected504: EHLO got 504.
	rejected504
	// rejectedOther: the server rejected the session some other way, such
	// as with another reply code to EHLO or a 554 greeting.
	rejectedOther
	// rejectedAtGreeting: the greeting was 421 and the server closed the
	// connection, while a control session of the listener's valid client
	// certificate got 220 right after, so the server rejected this client
	// rather than everyone.
	rejectedAtGreeting
	// inconclusive: a timeout, a failed TCP connect, or a 421 reply that
	// another client gets too or that leaves the connection open, which
	// show nothing about the identity.
	inconclusive
)

// admission is the outcome of one attempt to open a session.
type admission struct {
	kind admissionKind
	// detail describes the outcome for a reason, such as "EHLO got 504
	// \"504 5.7.0 Authentication failed\"".
	detail  string
	session *Session
	// step and reply are the command line and the reply that rejected the
	// session, for rejectedOther. step is greetingStep for the greeting.
	step  string
	reply *probe.Reply
}

// admit connects to target as id, reads the greeting and sends EHLO with
// ehloArg. An admitted session stays open for further commands.
func (c *Check) admit(label, target string, id Identity, ehloArg string) admission {
	s, err := c.dial(label, dialOptions{target: target, identity: id})
	if err != nil {
		var dialErr *probe.DialError
		switch {
		case !errors.As(err, &dialErr):
			return admission{kind: inconclusive, detail: err.Error()}
		case dialErr.Stage == "tls" && !errors.Is(err, probe.ErrTimeout):
			return admission{kind: rejectedTLS, detail: describe(err)}
		default:
			return admission{kind: inconclusive, detail: describe(err)}
		}
	}

	greeting, err := s.Read()
	switch {
	case err != nil && closedOrAlert(err):
		return admission{kind: rejectedTLS, detail: "the connection ended before the greeting: " + describe(err), session: s}
	case err != nil:
		return admission{kind: inconclusive, detail: "no greeting: " + describe(err), session: s}
	case greeting.Code == 421:
		return c.judge421Greeting(s, target, id, greeting)
	case greeting.Code != 220:
		return admission{kind: rejectedOther, detail: "the greeting was " + summarize(greeting), session: s, step: greetingStep, reply: &greeting}
	}

	ehlo := "EHLO " + ehloArg
	reply, err := s.Cmd(ehlo)
	switch {
	case err != nil && closedOrAlert(err):
		return admission{kind: rejectedOther, detail: "the connection ended without a reply to EHLO: " + describe(err), session: s}
	case err != nil:
		return admission{kind: inconclusive, detail: "no reply to EHLO: " + describe(err), session: s}
	case reply.Code == 250:
		return admission{kind: admitted, detail: "EHLO got 250", session: s}
	case reply.Code == 504:
		return admission{kind: rejected504, detail: "EHLO got " + summarize(reply), session: s}
	case reply.Code == 421:
		return admission{kind: inconclusive, detail: fmt.Sprintf("EHLO got %s, a temporary failure; if the server checks PTR records, make sure it resolves through the suite's DNS server%s",
			summarize(reply), dnsHint()), session: s}
	default:
		return admission{kind: rejectedOther, detail: "EHLO got " + summarize(reply), session: s, step: ehlo, reply: &reply}
	}
}

// dnsHint names the DNS server that the suite runs, for reasons.
func dnsHint() string {
	if dns := current().DNS; dns != nil {
		return " at " + dns.Addr()
	}
	return ""
}

// rejection is one identity and EHLO argument that a clause requires the
// server to reject.
type rejection struct {
	label string
	id    Identity
	ehlo  string
}

// expectRejected records the verdict of a clause that requires a listener
// to reject every case: a failed TLS handshake or 504 to EHLO passes, and
// so does a 421 greeting followed by a close unless --strict is set. It
// first makes sure that the listener admits its valid client certificate,
// because a server that rejects everyone proves nothing.
func (c *Check) expectRejected(kind listenerKind, cases ...rejection) {
	target := current().Target
	if kind == privateListener {
		if !c.requirePrivateBaseline() {
			return
		}
		target = current().PrivateTarget
	} else if !c.requireBaseline() {
		return
	}
	c.expectRejectedOn(target, cases...)
}

// expectRejectedOn is expectRejected for the listener at target, without
// the check of its valid client certificate.
func (c *Check) expectRejectedOn(target string, cases ...rejection) {
	var rejections []string
	for _, r := range cases {
		a := c.admit(r.label, target, r.id, r.ehlo)
		if a.session != nil {
			a.session.Close()
		}

		what := fmt.Sprintf("%s with EHLO %s", r.id, r.ehlo)
		switch a.kind {
		case rejectedTLS:
			rejections = append(rejections, fmt.Sprintf("rejected %s in the TLS layer: %s", what, a.detail))
		case rejected504:
			rejections = append(rejections, fmt.Sprintf("rejected %s: %s", what, a.detail))
		case rejectedAtGreeting:
			if !c.acceptRejectionAtGreeting(target, what, a.detail) {
				return
			}
			rejections = append(rejections, fmt.Sprintf("rejected %s at the greeting: %s", what, a.detail))
		case admitted:
			c.Broken("the listener %s accepted %s: EHLO got 250", target, what)
			return
		case rejectedOther:
			c.Broken("the listener %s rejected %s, but not with a failed TLS handshake or 504: %s", target, what, a.detail)
			return
		default:
			c.Error("could not tell whether the listener %s accepts %s: %s", target, what, a.detail)
			return
		}
	}
	c.Pass("the listener %s %s", target, strings.Join(rejections, "; "))
}

// judge421Greeting distinguishes a rejection of the client id from a busy
// server, since both send a 421 greeting. The server must close the connection
// after that greeting, as RFC 5321 section 3.8 requires of a 421 reply,
// and a control session of the listener's valid client certificate,
// opened right after, must get 220. When id is that certificate itself,
// the greeting cannot have judged anything that the check varies, such as
// the EHLO argument, so the outcome is inconclusive.
func (c *Check) judge421Greeting(s *Session, target string, id Identity, greeting probe.Reply) admission {
	detail := "the greeting was 421 " + summarize(greeting)
	closed, err := s.ExpectClose()
	switch {
	case err != nil:
		return admission{kind: inconclusive, detail: detail + "; " + describe(err), session: s}
	case !closed:
		return admission{kind: inconclusive, detail: fmt.Sprintf("%s, but the server kept the connection open for %s", detail, current().StepTimeout), session: s}
	}
	detail += ", and the server closed the connection"

	control, controlName, ok := c.controlGreeting(target)
	if !ok {
		return admission{kind: inconclusive, detail: detail + "; " + control, session: s}
	}
	if id.Name == controlName {
		return admission{kind: inconclusive, detail: detail + "; " + control + ", so the 421 was about the server's state, not this certificate", session: s}
	}
	return admission{kind: rejectedAtGreeting, detail: detail + "; " + control, session: s}
}

// controlGreeting opens a session of the valid client certificate of the
// listener at target and reads its greeting. It returns what happened,
// the PKI name of the certificate, and whether the greeting was 220. The
// IPv6 listener gets no control session: the check that uses it admits
// the valid certificate there first, and its PTR record for ::1 may name
// another host at this point.
func (c *Check) controlGreeting(target string) (detail, certName string, ok bool) {
	cfg := current()
	name := pki.CertClient
	switch target {
	case cfg.Target:
	case cfg.PrivateTarget:
		name = pki.CertPrivateClient
	default:
		return "no control session on this listener", "", true
	}
	id, err := identity(name)
	if err != nil {
		return err.Error(), name, false
	}

	s, err := c.dial("control session after a 421 greeting", dialOptions{target: target, identity: id})
	if err != nil {
		return fmt.Sprintf("a control session of %s failed too, so the 421 may mean that the server is busy: %s", id, describe(err)), name, false
	}
	defer s.Close()
	greeting, err := s.Read()
	switch {
	case err != nil:
		return fmt.Sprintf("a control session of %s got no greeting either, so the 421 may mean that the server is busy: %s", id, describe(err)), name, false
	case greeting.Code != 220:
		return fmt.Sprintf("a control session of %s got %s, so the 421 may mean that the server is busy", id, summarize(greeting)), name, false
	}
	s.Cmd("QUIT")
	return fmt.Sprintf("a control session of %s got %s right after", id, summarize(greeting)), name, true
}

// acceptRejectionAtGreeting reports whether the run accepts a 421 greeting
// followed by a close as the rejection of a client. With --strict it
// records a broken clause and returns false, because a 421 reply asks the client
// to try again later, and section 4.4.2.1 answers a failed authentication
// with 504.
func (c *Check) acceptRejectionAtGreeting(target, what, detail string) bool {
	if !c.Strict() {
		return true
	}
	c.Broken("--strict: the listener %s rejected %s with a 421 greeting, which tells the client to try again later, not the 504 of section 4.4.2.1 or a failed TLS handshake: %s", target, what, detail)
	return false
}
