// Package client is the reference AMTP client (draft-weinman-amtp-03). It
// opens a session over implicit TLS with a client certificate, reads the
// server's extensions and MPC declarations from the EHLO reply, and sends
// messages with the MPC parameter, pipelined when the server offers
// PIPELINING. LookupNextHops finds the servers of a domain from its
// _amtp._tcp SRV records, and DialNextHop opens a session with the first
// one that accepts the client.
//
// Section numbers in this package refer to draft-weinman-amtp-03.
//
// Every error of this package distinguishes a temporary failure, after which a
// queue should retry the message, from a permanent one, after which it
// should return the message to the sender: see IsTemporary.
package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
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

	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// Config is the client's identity and limits.
type Config struct {
	// Certificate is presented in every TLS handshake. Its subject CN is
	// the EHLO argument, because section 4.4.2 requires the argument to
	// match the certificate.
	Certificate tls.Certificate
	// RootCAs verifies the server certificate. Nil means the system roots.
	RootCAs *x509.CertPool
	// LocalAddr is the source address of the connection; the zero Addr
	// lets the system choose. Section 4.2 requires the PTR record of the
	// source address to name the certificate CN.
	LocalAddr netip.Addr
	// Timeouts bound each step of a session.
	Timeouts Timeouts
	// Auth, when set, makes Dial authenticate with AUTH PLAIN after EHLO,
	// as section 7 recommends for private network connections.
	Auth *PlainAuth
	// Logger receives the transaction log at debug level, and errors that
	// the client handles itself at info level. Nil discards both. The log
	// contains the AUTH user name but never the password or message data.
	Logger *slog.Logger
}

// Timeouts bound each step of a session. A zero field takes its default.
// The reply timeouts default to the minimums of RFC 5321 section
// 4.5.3.2; Connect and Handshake, which RFC 5321 does not cover, default
// to 30 seconds.
type Timeouts struct {
	Connect   time.Duration // TCP connection
	Handshake time.Duration // TLS handshake
	Greeting  time.Duration // 220 greeting; default 5 minutes
	Command   time.Duration // replies to EHLO, AUTH, RSET and QUIT; default 5 minutes
	Mail      time.Duration // reply to MAIL; default 5 minutes
	Rcpt      time.Duration // reply to each RCPT; default 5 minutes
	DataInit  time.Duration // 354 reply to DATA; default 2 minutes
	DataBlock time.Duration // each write of message data; default 3 minutes
	DataEnd   time.Duration // reply after the final "."; default 10 minutes
}

// Default timeouts.
const (
	DefaultConnectTimeout   = 30 * time.Second
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultGreetingTimeout  = 5 * time.Minute
	DefaultCommandTimeout   = 5 * time.Minute
	DefaultMailTimeout      = 5 * time.Minute
	DefaultRcptTimeout      = 5 * time.Minute
	DefaultDataInitTimeout  = 2 * time.Minute
	DefaultDataBlockTimeout = 3 * time.Minute
	DefaultDataEndTimeout   = 10 * time.Minute
)

func (t Timeouts) withDefaults() Timeouts {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&t.Connect, DefaultConnectTimeout)
	set(&t.Handshake, DefaultHandshakeTimeout)
	set(&t.Greeting, DefaultGreetingTimeout)
	set(&t.Command, DefaultCommandTimeout)
	set(&t.Mail, DefaultMailTimeout)
	set(&t.Rcpt, DefaultRcptTimeout)
	set(&t.DataInit, DefaultDataInitTimeout)
	set(&t.DataBlock, DefaultDataBlockTimeout)
	set(&t.DataEnd, DefaultDataEndTimeout)
	return t
}

// PlainAuth holds the credentials of SMTP AUTH PLAIN (RFC 4954, RFC 4616).
// Its String and LogValue methods omit the password.
type PlainAuth struct {
	Username string
	Password string
}

func (a PlainAuth) String() string {
	return fmt.Sprintf("PlainAuth{Username: %q, Password: <omitted>}", a.Username)
}

// GoString omits the password from %#v.
func (a PlainAuth) GoString() string { return a.String() }

// LogValue omits the password from log/slog output.
func (a PlainAuth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", a.Username))
}

// Conn is one AMTP session, from the greeting to QUIT. It can send several
// messages in turn. A Conn is not safe for concurrent use.
type Conn struct {
	addr       string
	serverName string
	cfg        Config
	log        *slog.Logger

	conn *tls.Conn
	r    *bufio.Reader
	w    *bufio.Writer

	// mu guards canceled, writeTimeout and the deadlines of conn, which a
	// context.AfterFunc callback sets from another goroutine.
	mu           sync.Mutex
	canceled     bool
	writeTimeout time.Duration

	closed bool

	// From the EHLO reply.
	name       string
	extensions Extensions
	policy     mpc.Policy
}

// Dial connects to addr (host:port) over TLS from the first byte and
// opens a session. The server certificate must be valid for serverName,
// which is the SRV target name on a public connection. Dial then reads the
// greeting, sends EHLO with the CN of cfg.Certificate, and authenticates
// when cfg.Auth is set.
//
// The error is an *Error. Connection failures, timeouts, network errors
// in the TLS handshake and 4xx replies are temporary. A TLS handshake in
// which one side rejects the other's certificate, 5xx replies (504 at EHLO
// is the server rejecting the client identity) and an invalid Config are
// permanent.
func Dial(ctx context.Context, addr, serverName string, cfg Config) (*Conn, error) {
	cfg.Timeouts = cfg.Timeouts.withDefaults()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("server", addr)

	ehloName, err := certificateName(cfg.Certificate)
	if err != nil {
		return nil, &Error{Op: "connect", Server: addr, Err: err}
	}
	if serverName == "" {
		return nil, &Error{Op: "connect", Server: addr, Err: errors.New("server name is empty; pass the name that the server certificate must carry")}
	}

	dialer := &net.Dialer{Timeout: cfg.Timeouts.Connect}
	if cfg.LocalAddr.IsValid() {
		dialer.LocalAddr = &net.TCPAddr{IP: cfg.LocalAddr.AsSlice(), Zone: cfg.LocalAddr.Zone()}
	}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &Error{Op: "connect", Server: addr, Temporary: true, Err: err}
	}

	certificate := cfg.Certificate
	tlsConn := tls.Client(raw, &tls.Config{
		ServerName: serverName,
		RootCAs:    cfg.RootCAs,
		MinVersion: tls.VersionTLS12,
		// Present the certificate even when the server's list of
		// acceptable CAs does not name its issuer. The server then makes
		// the decision and can log the reason, instead of seeing no
		// certificate at all.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &certificate, nil
		},
	})
	handshakeCtx, cancel := context.WithTimeout(ctx, cfg.Timeouts.Handshake)
	err = tlsConn.HandshakeContext(handshakeCtx)
	cancel()
	if err != nil {
		raw.Close()
		return nil, &Error{Op: "TLS handshake", Server: addr, Temporary: !isTLSRejection(err), Err: err}
	}
	state := tlsConn.ConnectionState()
	logger.Debug("TLS session established", "tls", tls.VersionName(state.Version), "server_name", serverName, "ehlo", ehloName)

	c := &Conn{
		addr:       addr,
		serverName: serverName,
		cfg:        cfg,
		log:        logger,
		conn:       tlsConn,
	}
	c.r = bufio.NewReader(tlsConn)
	c.w = bufio.NewWriter(deadlineWriter{c})

	stop := c.watch(ctx)
	err = c.open(ctx, ehloName)
	stop()
	switch {
	case err != nil:
		return nil, err
	case c.closed:
		// ctx ended just as the session opened.
		return nil, &Error{Op: "connect", Server: addr, Temporary: true, Err: ctx.Err()}
	}
	return c, nil
}

// open runs the greeting, EHLO and, when configured, AUTH.
func (c *Conn) open(ctx context.Context, ehloName string) error {
	if err := c.greeting(ctx); err != nil {
		return err
	}
	if err := c.ehlo(ctx, ehloName); err != nil {
		return err
	}
	if c.cfg.Auth != nil {
		return c.auth(ctx, *c.cfg.Auth)
	}
	return nil
}

// certificateName returns the subject CN of the leaf certificate, the
// client's EHLO argument.
func certificateName(cert tls.Certificate) (string, error) {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return "", errors.New("Config.Certificate is empty; load the client certificate and key with tls.LoadX509KeyPair")
		}
		parsed, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return "", fmt.Errorf("parse the client certificate: %w", err)
		}
		leaf = parsed
	}

	name := leaf.Subject.CommonName
	if !smtp.IsDomain(name) {
		return "", fmt.Errorf("client certificate CN %q is not a domain name, so it cannot be the EHLO argument; use a certificate whose CN is the client's FQDN", name)
	}
	return name, nil
}

// greeting reads the 220 greeting. A 554 greeting means the server will not
// serve this client (RFC 5321 section 3.1).
func (c *Conn) greeting(ctx context.Context) error {
	reply, err := c.readReply(ctx, "greeting", c.cfg.Timeouts.Greeting)
	if err != nil {
		return err
	}
	if reply.Code == 220 {
		return nil
	}
	if reply.Positive() {
		return c.fail(c.replyError("greeting", reply, fmt.Errorf("%w: expected 220", ErrProtocol)))
	}
	return c.fail(c.replyError("greeting", reply, nil))
}

// ehlo sends EHLO and reads the extensions and MPC declarations of the
// reply.
func (c *Conn) ehlo(ctx context.Context, name string) error {
	reply, err := c.command(ctx, "EHLO", "EHLO "+name, c.cfg.Timeouts.Command)
	if err != nil {
		return err
	}
	switch {
	case reply.Code == 504:
		// Section 4.4.2: 504 means the EHLO argument or the certificate
		// did not pass the server's identity checks.
		return c.fail(c.replyError("EHLO", reply, fmt.Errorf("the server rejected the client identity %q; check that the certificate is within its validity dates, that its CN equals the PTR name of the source address, and that the server trusts its CA", name)))
	case reply.Code != 250:
		return c.fail(c.replyError("EHLO", reply, nil))
	}

	c.name, _, _ = strings.Cut(reply.Lines[0], " ")
	c.extensions = parseExtensions(reply.Lines[1:])
	policy, err := mpc.ParseEHLO(reply.Lines[1:])
	if err != nil {
		// The server's declarations cannot be evaluated. Its operator can
		// fix them, so the message waits in the queue instead of bouncing.
		return c.fail(&Error{Op: "EHLO", Server: c.addr, Temporary: true,
			Err: fmt.Errorf("%w: cannot read the MPC declarations of the EHLO reply: %w", ErrProtocol, err)})
	}
	c.policy = policy
	return nil
}

// auth runs AUTH PLAIN with an initial response (RFC 4954 section 4).
func (c *Conn) auth(ctx context.Context, credentials PlainAuth) error {
	if !c.extensions.OffersAuth("PLAIN") {
		return c.fail(&Error{Op: "AUTH", Server: c.addr,
			Err: fmt.Errorf("the server does not offer AUTH PLAIN (its AUTH line: %q); connect to its private listener or remove the credentials", c.extensions.Keywords["AUTH"])})
	}

	response := base64.StdEncoding.EncodeToString([]byte("\x00" + credentials.Username + "\x00" + credentials.Password))
	c.log.Debug("AMTP command sent", "command", "AUTH PLAIN <credentials omitted>", "username", credentials.Username)
	reply, err := c.exchange(ctx, "AUTH", "AUTH PLAIN "+response, c.cfg.Timeouts.Command)
	if err != nil {
		return err
	}
	if reply.Code != 235 {
		return c.fail(c.replyError("AUTH", reply, fmt.Errorf("authentication as %q failed", credentials.Username)))
	}
	return nil
}

// EHLOResult returns the server's name from the first line of the EHLO
// reply, its extensions, and its MPC declarations in the order sent.
func (c *Conn) EHLOResult() (name string, extensions Extensions, policy mpc.Policy) {
	return c.name, c.extensions, append(mpc.Policy(nil), c.policy...)
}

// Addr returns the host:port that the Conn is connected to.
func (c *Conn) Addr() string { return c.addr }

// ServerName returns the name that the server certificate was verified
// against.
func (c *Conn) ServerName() string { return c.serverName }

// Allows reports whether the server's EHLO declarations allow a message
// with MPC value v, as the function Allows decides.
func (c *Conn) Allows(v mpc.Value) bool {
	return Allows(c.policy, v)
}

// Allows reports whether a server that advertised policy in its EHLO
// reply accepts MPC value v, by the ordered evaluation of section 4.4.2
// that mpc.Policy.Evaluate implements. It is always true for
// mpc/individual: section 4.5 requires every system to accept and deliver
// it, so a client never gives up on it by itself. The server may still
// reject it at MAIL or RCPT, for example for an unknown mailbox.
func Allows(policy mpc.Policy, v mpc.Value) bool {
	return v.IsIndividualMPC() || policy.Evaluate(v) == mpc.Allow
}

// Quit sends QUIT, reads the reply and closes the connection. The
// connection is closed even when Quit returns an error.
func (c *Conn) Quit() error {
	if c.closed {
		return &Error{Op: "QUIT", Server: c.addr, Temporary: true, Err: ErrClosed}
	}
	defer c.Close()

	reply, err := c.command(context.Background(), "QUIT", "QUIT", c.cfg.Timeouts.Command)
	if err != nil {
		return err
	}
	if reply.Code != 221 {
		return c.replyError("QUIT", reply, fmt.Errorf("%w: expected 221", ErrProtocol))
	}
	return nil
}

// Close closes the connection without QUIT. It may be called more than
// once.
func (c *Conn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.Close()
}

// quit ends the session after a failure: it sends QUIT, as RFC 5321
// section 3.1 and section 4.4.2 require, and closes the connection. A
// failing QUIT is logged, because the caller already has a better error.
func (c *Conn) quit() {
	if c.closed {
		return
	}
	if err := c.Quit(); err != nil {
		c.log.Info("QUIT after a failure failed; connection closed", "error", err)
	}
}

// replyError returns the *Error for a reply that ends op. It is
// temporary for a 4xx reply and permanent otherwise.
func (c *Conn) replyError(op string, reply Reply, err error) *Error {
	return &Error{Op: op, Server: c.addr, Reply: &reply, Temporary: reply.Temporary(), Err: err}
}

// fail ends the session and returns e. It sends QUIT first unless the
// reply was 421, after which the server closes the connection itself
// (RFC 5321 section 3.8).
func (c *Conn) fail(e *Error) error {
	if e.Reply != nil && e.Reply.Code == 421 {
		c.Close()
		return e
	}
	c.quit()
	return e
}

// command sends one command line and reads its reply.
func (c *Conn) command(ctx context.Context, op, line string, timeout time.Duration) (Reply, error) {
	c.log.Debug("AMTP command sent", "command", line)
	return c.exchange(ctx, op, line, timeout)
}

// exchange sends one command line without logging it and reads the reply.
func (c *Conn) exchange(ctx context.Context, op, line string, timeout time.Duration) (Reply, error) {
	if err := c.writeLines(ctx, op, []string{line}); err != nil {
		return Reply{}, err
	}
	return c.readReply(ctx, op, timeout)
}

// writeLines writes command lines and flushes them in one write, which is
// how a pipelined group goes out (RFC 2920).
func (c *Conn) writeLines(ctx context.Context, op string, lines []string) error {
	c.setWriteTimeout(c.cfg.Timeouts.Command)
	for _, line := range lines {
		c.w.WriteString(line)
		c.w.WriteString("\r\n")
	}
	if err := c.w.Flush(); err != nil {
		return c.ioError(ctx, op, "send "+op, c.cfg.Timeouts.Command, err)
	}
	return nil
}

// readReply reads one reply within timeout and logs it. A read error
// closes the connection.
func (c *Conn) readReply(ctx context.Context, op string, timeout time.Duration) (Reply, error) {
	c.mu.Lock()
	if !c.canceled {
		c.conn.SetReadDeadline(time.Now().Add(timeout))
	}
	c.mu.Unlock()

	reply, err := readReply(c.r)
	if err != nil {
		return Reply{}, c.ioError(ctx, op, "read the reply to "+op, timeout, err)
	}
	c.log.Debug("AMTP reply received", "reply", reply.String())
	return reply, nil
}

// ioError closes the connection after a failed read or write and returns
// a temporary *Error that names what was being done, the timeout when it
// expired, and the context error when ctx ended.
func (c *Conn) ioError(ctx context.Context, op, action string, timeout time.Duration, err error) error {
	c.Close()
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%s: %w", action, ctx.Err())
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%s: no progress within %s: %w", action, timeout, err)
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("%s: the server closed the connection: %w", action, err)
	default:
		err = fmt.Errorf("%s: %w", action, err)
	}
	return &Error{Op: op, Server: c.addr, Temporary: !isTLSRejection(err), Err: err}
}

// watch makes every read and write of the connection fail at once when
// ctx ends. The returned function stops watching. If ctx ended in the
// meantime, it closes the connection, because the protocol state is then
// unknown.
func (c *Conn) watch(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	stopFunc := context.AfterFunc(ctx, func() {
		defer close(done)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.canceled = true
		c.conn.SetDeadline(time.Unix(1, 0))
	})
	return func() {
		if !stopFunc() {
			<-done
			c.Close()
		}
	}
}

func (c *Conn) setWriteTimeout(d time.Duration) {
	c.mu.Lock()
	c.writeTimeout = d
	c.mu.Unlock()
}

// deadlineWriter sets the write deadline before each write to the
// connection, so a timeout applies to each block of data rather than to
// the whole message (RFC 5321 section 4.5.3.2.5).
type deadlineWriter struct {
	c *Conn
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	c := d.c
	c.mu.Lock()
	if !c.canceled {
		c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	c.mu.Unlock()
	return c.conn.Write(p)
}

func isLineError(err error) bool {
	return errors.Is(err, smtp.ErrLineTooLong) || errors.Is(err, smtp.ErrBareLF) ||
		errors.Is(err, smtp.ErrBareCR) || errors.Is(err, smtp.ErrDiscardCap)
}
