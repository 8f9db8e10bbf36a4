package specs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// Session is one probe connection of a check. Every read and write is
// bounded by the step timeout, and the transcript becomes evidence of the
// check when the spec ends.
type Session struct {
	check  *Check
	label  string
	target string
	conn   *probe.Conn

	// transcript and facts are kept for a connection that failed to dial,
	// which has no Conn.
	transcript *probe.Transcript
	facts      probe.TLSFacts

	mu sync.Mutex
	// replies are the replies read so far, including malformed ones, for
	// the checks of the reply syntax.
	replies []probe.Reply
}

// dialOptions select how a session connects.
type dialOptions struct {
	target   string
	identity Identity
	// plain skips TLS.
	plain bool
	// verify checks the server chain against roots and the server name,
	// and fails the dial when it does not verify. Only the checks of the
	// server certificate set it: the others must reach the SMTP dialogue
	// even with a server whose certificate is wrong.
	verify bool
	// roots are the trust anchors for verify; nil trusts the public CA of
	// the PKI.
	roots *x509.CertPool
}

// dial opens a session and attaches it to the check, also when the dial
// fails. It returns the *probe.DialError of a failed dial.
func (c *Check) dial(label string, opts dialOptions) (*Session, error) {
	cfg := current()
	roots := opts.roots
	if roots == nil && opts.verify {
		pool, err := cfg.PKI.CAPool(publicCA)
		if err != nil {
			return nil, fmt.Errorf("load the public CA of the PKI: %w", err)
		}
		roots = pool
	}

	probeOpts := probe.Options{
		Target:      opts.target,
		Source:      opts.identity.Source,
		Certificate: opts.identity.Cert,
		RootCAs:     roots,
		ServerName:  cfg.ServerName,
		PlainTCP:    opts.plain,
		StepTimeout: cfg.StepTimeout,
		// The probe records the server chain either way.
		InsecureSkipVerify: !opts.verify,
	}

	s := &Session{check: c, label: label, target: opts.target}
	ctx, cancel := c.stepContext()
	defer cancel()
	conn, err := probe.Dial(ctx, probeOpts)
	if err != nil {
		var dialErr *probe.DialError
		if errors.As(err, &dialErr) {
			s.transcript = dialErr.Transcript
			s.facts = dialErr.TLS
			c.addSession(s)
		}
		return nil, err
	}
	s.conn = conn
	c.addSession(s)
	return s, nil
}

// dialValid connects to the public target as the PKI's valid client. It
// records an error and returns a nil session when that fails.
func (c *Check) dialValid(label string) (*Session, Identity) {
	id, err := validClient()
	if err != nil {
		c.Error("%v", err)
		return nil, id
	}

	s, err := c.dial(label, dialOptions{target: current().Target, identity: id})
	if err != nil {
		c.Error("could not connect: %s", describe(err))
		return nil, id
	}
	return s, id
}

// evidence returns the record of the session.
func (s *Session) evidence() result.Evidence {
	if s.conn == nil {
		transcript := s.transcript
		if transcript == nil {
			transcript = probe.NewTranscript(0, 0)
		}
		return evidenceOf(s.label, transcript, s.facts)
	}
	return evidenceOf(s.label, s.conn.Transcript(), s.conn.TLS())
}

// TLS returns the TLS facts of the session.
func (s *Session) TLS() probe.TLSFacts {
	if s.conn == nil {
		return s.facts
	}
	return s.conn.TLS()
}

// Note adds a meta event to the transcript, to mark a step of the check.
func (s *Session) Note(format string, args ...any) {
	s.conn.Transcript().Note(format, args...)
}

// Close closes the connection. It is safe to call more than once.
func (s *Session) Close() {
	if s.conn != nil {
		s.conn.Close()
	}
}

// Send writes data as it is.
func (s *Session) Send(data []byte) error {
	return s.conn.Send(data)
}

// SendLine writes line and CRLF.
func (s *Session) SendLine(line string) error {
	return s.conn.SendLine(line)
}

// Read reads one reply within the step timeout. A reply that breaks the
// reply syntax is returned without an error, because the checks of the
// reply syntax look at every reply afterwards.
func (s *Session) Read() (probe.Reply, error) {
	ctx, cancel := s.check.stepContext()
	defer cancel()
	reply, err := s.conn.ReadReply(ctx)
	if err == nil || errors.Is(err, probe.ErrMalformedReply) {
		s.mu.Lock()
		s.replies = append(s.replies, reply)
		s.mu.Unlock()
		return reply, nil
	}
	return reply, err
}

// Cmd sends line and reads the reply.
func (s *Session) Cmd(line string) (probe.Reply, error) {
	if err := s.SendLine(line); err != nil {
		return probe.Reply{}, err
	}
	return s.Read()
}

// Quiet waits for the quiet period and reports whether no reply started
// to arrive. A reply that does arrive is read and returned.
func (s *Session) Quiet() (quiet bool, reply probe.Reply, err error) {
	ctx, cancel := context.WithTimeout(s.check.ctx, current().QuietPeriod)
	defer cancel()
	reply, err = s.conn.ReadReply(ctx)
	var readErr *probe.ReadError
	switch {
	case errors.As(err, &readErr) && errors.Is(err, probe.ErrTimeout) && readErr.Received == 0:
		return true, probe.Reply{}, nil
	case err == nil || errors.Is(err, probe.ErrMalformedReply):
		s.mu.Lock()
		s.replies = append(s.replies, reply)
		s.mu.Unlock()
		return false, reply, nil
	default:
		return false, reply, err
	}
}

// ExpectClose waits up to the step timeout for the server to close the
// connection.
func (s *Session) ExpectClose() (bool, error) {
	ctx, cancel := s.check.stepContext()
	defer cancel()
	return s.conn.ExpectClose(ctx)
}

// Replies returns the replies read so far.
func (s *Session) Replies() []probe.Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]probe.Reply(nil), s.replies...)
}

// describe turns a probe error into a phrase for a reason, such as "no
// complete reply within 10s" or "the server sent the TLS alert
// bad_certificate".
func describe(err error) string {
	var readErr *probe.ReadError
	var dialErr *probe.DialError
	switch {
	case errors.As(err, &readErr) && readErr.Alert != nil:
		return "the server sent the TLS alert " + alertName(readErr.Alert)
	case errors.As(err, &readErr) && errors.Is(err, probe.ErrTimeout):
		return fmt.Sprintf("no complete reply within %s (%s of it arrived)", current().StepTimeout, result.Count(readErr.Received, "byte", "bytes"))
	case errors.As(err, &readErr):
		return readErr.Detail
	case errors.As(err, &dialErr) && dialErr.TLS.Alert != nil:
		return "the TLS handshake failed with the alert " + alertName(dialErr.TLS.Alert)
	case errors.As(err, &dialErr) && errors.Is(err, probe.ErrTimeout):
		return fmt.Sprintf("the %s step timed out after %s", stageName(dialErr.Stage), current().StepTimeout)
	case errors.As(err, &dialErr):
		return fmt.Sprintf("the %s failed: %v", stageName(dialErr.Stage), dialErr.Err)
	default:
		return err.Error()
	}
}

func stageName(stage string) string {
	if stage == "tls" {
		return "TLS handshake"
	}
	return "TCP connect"
}

func alertName(a *probe.Alert) string {
	if a.Name != "" {
		return a.Name
	}
	return a.Text
}

// summarize returns a reply as one line for a reason: its lines joined by
// " / ", cut to 200 characters.
func summarize(r probe.Reply) string {
	text := strings.Join(r.Lines, " / ")
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if text == "" {
		return "an empty reply"
	}
	return fmt.Sprintf("%q", text)
}

// closedOrAlert reports whether err means that the server ended the
// connection, with or without a TLS alert, rather than a timeout.
func closedOrAlert(err error) bool {
	return errors.Is(err, probe.ErrClosed)
}
