package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/amtp-toolkit/amtp/reference/mpc"
)

// Sentinel errors wrapped by *Error.
var (
	// ErrClosed means the Conn was closed: by Quit, Close, a policy
	// denial, a 421 reply or a failed read or write. Dial again.
	ErrClosed = errors.New("AMTP connection closed")

	// ErrInvalidMessage means Send rejected the message before sending
	// anything, because no server would accept it as it is.
	ErrInvalidMessage = errors.New("invalid message")

	// ErrNoService means the domain publishes no usable _amtp._tcp SRV
	// record, so it does not take AMTP mail.
	ErrNoService = errors.New("domain does not accept AMTP mail")

	// ErrProtocol means the server sent something that is not a valid
	// reply, or a reply code that makes no sense at that point.
	ErrProtocol = errors.New("AMTP protocol error")
)

// Error is a failure of a session step or of a next-hop lookup. A queue
// retries the message later when Temporary is true and returns it to the
// sender otherwise. IsTemporary reads the field through wrapping.
type Error struct {
	// Op is the step that failed: "connect", "TLS handshake", "greeting",
	// "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT", "message",
	// "SRV lookup", "address lookup" or "send".
	Op string
	// Server is the host:port of the session, or the domain of a lookup.
	Server string
	// Reply is the server's reply that caused the failure, or nil when the
	// failure was local or on the network.
	Reply *Reply
	// Temporary is true when the same message may succeed later.
	Temporary bool
	// Err is the underlying error, or nil when Reply alone explains the
	// failure.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "AMTP %s failed", e.Op)
	if e.Server != "" {
		fmt.Fprintf(&b, " for %s", e.Server)
	}
	b.WriteString(": ")

	switch {
	case e.Reply != nil && e.Err != nil:
		fmt.Fprintf(&b, "server replied %q; %v", e.Reply.String(), e.Err)
	case e.Reply != nil:
		fmt.Fprintf(&b, "server replied %q", e.Reply.String())
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("unknown cause")
	}

	if e.Temporary {
		b.WriteString(" (temporary failure; retry later)")
	} else {
		b.WriteString(" (permanent failure; do not retry)")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// PolicyDeniedError means the server's EHLO declarations deny the MPC
// value of the message. Section 4.4.2 of draft-weinman-amtp-03 then
// requires the client to send QUIT, never retry the message, and return
// it to the sender. It is a permanent failure.
type PolicyDeniedError struct {
	Server string     // host:port of the session
	MPC    mpc.Value  // the message's MPC value
	Policy mpc.Policy // the declarations of the server's EHLO reply
}

func (e *PolicyDeniedError) Error() string {
	return fmt.Sprintf("AMTP server %s denies MPC %s by its EHLO declarations %q; do not retry, return the message to the sender",
		e.Server, e.MPC, e.Policy.String())
}

// IsTemporary reports whether a message that failed with err may succeed
// if it is sent again later. It returns false for nil, for a
// *PolicyDeniedError and for an *Error whose Temporary field is false.
// Errors that this package did not classify, such as a bare context
// error, count as temporary, because retrying until the queue gives up
// loses no mail while a wrong bounce does.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var denied *PolicyDeniedError
	if errors.As(err, &denied) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary
	}
	return true
}

// isTLSRejection reports whether a TLS error means that one side rejected
// the other, rather than a network failure. Such errors are an alert from
// the server (for example because it does not accept our certificate), a
// server certificate that does not verify here, and a peer that does not
// speak TLS. Retrying does not help with any of them until an operator
// acts.
func isTLSRejection(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" {
		return true
	}
	var verifyErr *tls.CertificateVerificationError
	if errors.As(err, &verifyErr) {
		return true
	}
	var recordErr tls.RecordHeaderError
	return errors.As(err, &recordErr)
}
