package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/amtp-toolkit/amtp/reference/identity"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// errCloseSession ends the command loop after the reply already sent.
var errCloseSession = errors.New("close session")

// session is one client connection.
type session struct {
	srv    *Server
	ep     *endpoint
	raw    net.Conn
	conn   *tls.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	remote netip.AddrPort
	id     string
	log    *slog.Logger

	start        time.Time
	deadline     time.Time // end of session_timeout
	authDeadline time.Time // end of auth_timeout: a successful EHLO must come first

	// mu guards idle and readTimeout against Server.Shutdown.
	mu          sync.Mutex
	idle        bool
	readTimeout time.Duration

	// State set by EHLO and AUTH.
	ehlo string
	// ehloCount counts the EHLO commands of the session.
	ehloCount int
	identity  *identity.Identity
	authUser  string

	tx *transaction

	// Counters for the session log line.
	errors     int
	accepted   int
	rejected   int
	recipients int
	outcome    string
}

// transaction is the mail transaction between MAIL and the end of DATA.
type transaction struct {
	from       string
	mpc        mpc.Value
	recipients []string
	seen       map[string]bool // lower-case recipients, to drop duplicates
	attempts   int             // RCPT commands, accepted or not
}

func newSession(srv *Server, ep *endpoint, conn net.Conn, remote netip.AddrPort) *session {
	id := newID()
	return &session{
		srv:    srv,
		ep:     ep,
		raw:    conn,
		conn:   tls.Server(conn, ep.tls),
		remote: remote,
		id:     id,
		log:    srv.log.With("session", id, "listener", ep.kind, "peer", remote.String()),
		start:  time.Now(),
	}
}

// newID returns a random identifier for sessions and messages.
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return base32.StdEncoding.EncodeToString(b[:])
}

// serve runs the session from the TLS handshake to the close.
func (s *session) serve() {
	defer s.conn.Close()
	s.deadline = s.start.Add(s.srv.cfg.Limits.SessionTimeout.Duration)
	s.authDeadline = s.start.Add(s.srv.cfg.Limits.AuthTimeout.Duration)
	s.outcome = "closed"
	defer s.logSummary()

	// Section 4.2: the connection is established using TLS, from the
	// first byte (implicit TLS), and the client must present a
	// certificate; crypto/tls rejects a client without one here.
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.Limits.HandshakeTimeout.Duration)
	err := s.conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.outcome = "tls_handshake_failed"
		s.log.Info("TLS handshake failed", "error", err, "hint", handshakeHint(err, s.srv.cfg.Limits.HandshakeTimeout.Duration))
		return
	}

	s.readTimeout = s.srv.cfg.Limits.CommandTimeout.Duration
	s.r = bufio.NewReaderSize(deadlineReader{s}, 4096)
	s.w = bufio.NewWriterSize(s.conn, 4096)

	if err := s.reply(codeReady, "", s.srv.hostname+" AMTP service ready"); err != nil {
		s.outcome = "write_failed"
		return
	}
	s.commandLoop()

	// Replies held back for pipelined commands go out before the close.
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	s.w.Flush()
}

func (s *session) commandLoop() {
	for {
		line, err := s.readCommand()
		switch {
		case err == nil:
			cmd := smtp.ParseCommand(line)
			err = s.dispatch(cmd)
		case isRecoverableLineError(err):
			// The reader stopped at a line boundary, so the session can
			// reply and go on.
			s.log.Info("invalid command line", "error", err)
			err = s.fail(lineErrorReply(err))
		default:
			s.handleReadError(err)
			return
		}

		if err != nil {
			if !errors.Is(err, errCloseSession) {
				s.outcome = "write_failed"
				s.log.Info("session ended by write error", "error", err)
			}
			return
		}
		if s.errors >= s.srv.cfg.Limits.MaxErrors {
			s.outcome = "too_many_errors"
			s.log.Warn("closing session after too many errors", "errors", s.errors)
			s.sendReply(replyTooManyErrors)
			return
		}
	}
}

func isRecoverableLineError(err error) bool {
	return errors.Is(err, smtp.ErrLineTooLong) || errors.Is(err, smtp.ErrBareLF) || errors.Is(err, smtp.ErrBareCR)
}

func lineErrorReply(err error) reply {
	if errors.Is(err, smtp.ErrLineTooLong) {
		return replyLineTooLong
	}
	return replyBareLF
}

// readCommand waits for the next command line. While it waits the session
// counts as idle, so a shutdown interrupts the read.
func (s *session) readCommand() (string, error) {
	s.mu.Lock()
	if s.srv.shutdown.Load() {
		s.mu.Unlock()
		return "", errShutdown
	}
	s.idle = true
	s.readTimeout = s.srv.cfg.Limits.CommandTimeout.Duration
	s.mu.Unlock()

	line, err := smtp.ReadCommandLine(s.r)

	s.mu.Lock()
	s.idle = false
	s.mu.Unlock()

	if err != nil && s.srv.shutdown.Load() && (isTimeout(err) || errors.Is(err, errShutdown)) {
		return "", errShutdown
	}
	return line, err
}

// deadlineReader sets the read deadline of the session's connection before
// each read, so each timeout of RFC 5321 section 4.5.3.2 applies to every
// block the client sends rather than to a whole command or message.
type deadlineReader struct {
	s *session
}

func (d deadlineReader) Read(p []byte) (int, error) {
	s := d.s
	s.mu.Lock()
	if s.idle && s.srv.shutdown.Load() {
		s.mu.Unlock()
		return 0, errShutdown
	}
	s.conn.SetReadDeadline(s.timeoutAt(s.readTimeout))
	s.mu.Unlock()
	return s.conn.Read(p)
}

var errShutdown = errors.New("server shutting down")

// interruptIfIdle makes a session that waits for a command return from
// its read at once. Server.Shutdown calls it.
func (s *session) interruptIfIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle {
		s.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// timeoutAt returns now+d, capped at the end of the session timeout and,
// before a successful EHLO, at the end of the authentication timeout.
func (s *session) timeoutAt(d time.Duration) time.Time {
	t := time.Now().Add(d)
	if t.After(s.deadline) {
		t = s.deadline
	}
	if !s.greeted() && t.After(s.authDeadline) {
		t = s.authDeadline
	}
	return t
}

// handleReadError ends the session after a read error, with a 421 reply
// where the client can still read one.
func (s *session) handleReadError(err error) {
	switch {
	case errors.Is(err, errShutdown):
		s.outcome = "shutdown"
		s.sendReply(replyShutdown)
	case errors.Is(err, smtp.ErrDiscardCap):
		s.outcome = "line_too_long"
		s.log.Warn("closing session: command line exceeds the discard limit", "limit", smtp.MaxCommandDiscard)
		s.sendReply(reply{codeServiceUnavailable, "4.7.0", "Command line too long; closing connection"})
	case isTimeout(err) && !time.Now().Before(s.deadline):
		s.outcome = "session_timeout"
		s.log.Info("closing session: limits.session_timeout expired", "session_timeout", s.srv.cfg.Limits.SessionTimeout.Duration)
		s.sendReply(replyTimeout)
	case isTimeout(err) && !s.greeted() && !time.Now().Before(s.authDeadline):
		s.outcome = "auth_timeout"
		s.log.Info("closing session: no successful EHLO within limits.auth_timeout", "auth_timeout", s.srv.cfg.Limits.AuthTimeout.Duration)
		s.sendReply(replyTimeout)
	case isTimeout(err):
		s.outcome = "timeout"
		s.log.Info("closing session: limits.command_timeout expired waiting for a command", "command_timeout", s.srv.cfg.Limits.CommandTimeout.Duration)
		s.sendReply(replyTimeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		if s.outcome == "closed" || s.outcome == "authenticated" {
			s.outcome = "client_closed"
		}
	default:
		s.outcome = "read_failed"
		s.log.Info("session ended by read error", "error", err)
	}
}

// handshakeHint explains the usual causes of a failed TLS handshake.
func handshakeHint(err error, timeout time.Duration) string {
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &recordErr):
		return "the client did not start TLS; this port uses implicit TLS from the first byte, not STARTTLS"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Sprintf("the handshake did not finish within limits.handshake_timeout (%s)", timeout)
	case strings.Contains(err.Error(), "certificate"):
		return "a client certificate is required"
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// writeTimeout bounds each reply write. It is not capped by the session
// timeout, so the 421 that ends an expired session still goes out.
const writeTimeout = 30 * time.Second

// reply writes one reply line and flushes it.
func (s *session) reply(code int, enhanced, text string) error {
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if enhanced != "" {
		fmt.Fprintf(s.w, "%d %s %s\r\n", code, enhanced, text)
	} else {
		fmt.Fprintf(s.w, "%d %s\r\n", code, text)
	}
	if code != codeStartMailInput && s.commandBuffered() {
		// RFC 2920: with pipelined commands waiting, the replies go out
		// together when the input runs dry, saving a write per command.
		return nil
	}
	return s.w.Flush()
}

// commandBuffered reports whether a whole command line from the client is
// already buffered, so the next read will not block.
func (s *session) commandBuffered() bool {
	n := s.r.Buffered()
	if n == 0 {
		return false
	}
	buffered, _ := s.r.Peek(n)
	return bytes.IndexByte(buffered, '\n') >= 0
}

// replyLines writes a multi-line reply (RFC 5321 section 4.2.1).
func (s *session) replyLines(code int, lines []string) error {
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for i, line := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(s.w, "%d%s%s\r\n", code, sep, line)
	}
	return s.w.Flush()
}

func (s *session) sendReply(r reply) error {
	return s.reply(r.code, r.enhanced, r.text)
}

// fail sends an error reply and counts it toward limits.max_errors.
func (s *session) fail(r reply) error {
	s.errors++
	return s.sendReply(r)
}

func (s *session) logSummary() {
	st := s.conn.ConnectionState()
	cn := ""
	switch {
	case s.identity != nil:
		cn = s.identity.CN
	case len(st.PeerCertificates) > 0:
		cn = st.PeerCertificates[0].Subject.CommonName
	}

	attrs := []any{
		"outcome", s.outcome,
		"cn", cn,
		"ehlo", s.ehlo,
		"messages", s.accepted,
		"rejected_messages", s.rejected,
		"recipients", s.recipients,
		"errors", s.errors,
		"duration", time.Since(s.start).Round(time.Millisecond),
	}
	if st.HandshakeComplete {
		attrs = append(attrs, "tls", tls.VersionName(st.Version), "resumed", st.DidResume)
	}
	if s.authUser != "" {
		attrs = append(attrs, "user", s.authUser)
	}
	s.log.Info("session", attrs...)
}

// resetTransaction abandons the current mail transaction.
func (s *session) resetTransaction() {
	s.tx = nil
}

func (s *session) greeted() bool {
	return s.identity != nil
}

// shortList joins at most n items for a log line.
func shortList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ",")
	}
	return strings.Join(items[:n], ",") + fmt.Sprintf(",... (%d more)", len(items)-n)
}
