package specs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/probe"
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
	// inconclusive: a timeout, a failed TCP connect or a 421 reply, which
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
		return admission{kind: inconclusive, detail: "the greeting was 421 " + summarize(greeting), session: s}
	case greeting.Code != 220:
		return admission{kind: rejectedOther, detail: "the greeting was " + summarize(greeting), session: s}
	}

	reply, err := s.Cmd("EHLO " + ehloArg)
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
		return admission{kind: rejectedOther, detail: "EHLO got " + summarize(reply), session: s}
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
// to reject every case: a failed TLS handshake or 504 to EHLO passes. It
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
