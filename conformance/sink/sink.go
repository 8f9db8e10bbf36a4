// Package sink is an AMTP server that takes the mail a server under test
// relays, so that the conformance suite can look at the relayed
// envelope and data. It listens with implicit TLS and requests a client
// certificate without verifying it, or, with Config.PlainText, speaks
// plain SMTP as a non-AMTP next hop does. It records the EHLO argument,
// the MAIL command with its parameters as sent, the recipients, the data
// after dot-unstuffing, the client certificate chain and the source
// address of every transaction, and the commands of every session. It
// delivers nothing.
//
// Every input is bounded: the line length, the message size, the number
// of recipients, sessions and stored transactions, and the time of each
// command and session.
package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Default limits, used when Config leaves them zero.
const (
	// DefaultMaxLineLength is the RFC 5321 limit of a command line and a
	// text line, CRLF included (sections 4.5.3.1.4 and 4.5.3.1.6).
	DefaultMaxLineLength = 1000
	// DefaultMaxMessageSize is the maximum data size in octets, after
	// dot-unstuffing.
	DefaultMaxMessageSize = 10 << 20
	// DefaultMaxRecipients is the RFC 5321 minimum a server must accept
	// (section 4.5.3.1.8).
	DefaultMaxRecipients = 100
	// DefaultMaxSessions is the number of concurrent sessions; more wait
	// in the listen backlog.
	DefaultMaxSessions = 16
	// DefaultMaxStored is the number of transactions kept; the oldest go
	// first.
	DefaultMaxStored = 1000
	// DefaultCommandTimeout bounds the wait for each command line and
	// each data line.
	DefaultCommandTimeout = 30 * time.Second
	// DefaultSessionTimeout bounds a whole session.
	DefaultSessionTimeout = 5 * time.Minute
)

// Config configures a sink.
type Config struct {
	// Listen is the TCP address, "127.0.0.1:0" when empty. The sink is
	// meant for loopback addresses only.
	Listen string
	// Hostname is the name in the greeting and the EHLO reply.
	Hostname string
	// Certificate is the server certificate. PlainText sinks need none.
	Certificate tls.Certificate
	// PlainText makes the sink a plain SMTP server without TLS, the next
	// hop of a gateway route to a non-AMTP server.
	PlainText bool
	// MPCLines are the MPC declaration lines of the EHLO reply, such as
	// "MPC DENY=*/optout", sent as they are.
	MPCLines []string
	// RCPTReply, when set, is the reply to every RCPT command, such as
	// "550 5.7.1 Recipient rejected". Empty accepts every recipient with
	// 250.
	RCPTReply string
	// DataReply, when set, is the reply at the end of data. Empty accepts
	// the message with 250.
	DataReply string

	MaxLineLength  int
	MaxMessageSize int
	MaxRecipients  int
	MaxSessions    int
	MaxStored      int
	CommandTimeout time.Duration
	SessionTimeout time.Duration

	// Logger receives the starts, stops and session errors; nil discards
	// them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.Hostname == "" {
		c.Hostname = "sink.invalid"
	}
	defaults := []struct {
		value *int
		def   int
	}{
		{&c.MaxLineLength, DefaultMaxLineLength},
		{&c.MaxMessageSize, DefaultMaxMessageSize},
		{&c.MaxRecipients, DefaultMaxRecipients},
		{&c.MaxSessions, DefaultMaxSessions},
		{&c.MaxStored, DefaultMaxStored},
	}
	for _, d := range defaults {
		if *d.value <= 0 {
			*d.value = d.def
		}
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Transaction is one mail transaction that reached the end of data.
type Transaction struct {
	// EHLO is the argument of the session's last EHLO or HELO command.
	EHLO string
	// MailCommand is the MAIL command line as received, without CRLF.
	MailCommand string
	// ReversePath is the address between the angle brackets of MAIL,
	// empty for the null reverse-path.
	ReversePath string
	// MailParameters are the parameters after the reverse-path, in order
	// and as sent, such as "MPC=ngo/optin".
	MailParameters []string
	Recipients     []string
	// Data is the message after dot-unstuffing, with CRLF line endings
	// and without the final "." line.
	Data []byte
	// ClientCN is the CN of the client certificate, empty without one.
	ClientCN string
	// ClientChain is the certificate chain the client presented, leaf
	// first, unverified.
	ClientChain []*x509.Certificate
	// Commands are the command lines of the session up to this
	// transaction's DATA, without CRLF, at most MaxSessionCommands.
	Commands []string
	Source   netip.AddrPort
	// Reply is the reply the sink sent at the end of data.
	Reply    string
	Received time.Time
}

// SessionRecord is one client session, stored when it ends, whether or
// not it reached a transaction.
type SessionRecord struct {
	Source      netip.AddrPort
	ClientCN    string
	ClientChain []*x509.Certificate
	// Commands are the command lines in order, without CRLF, at most
	// MaxSessionCommands.
	Commands []string
	Started  time.Time
}

// MaxSessionCommands is the number of command lines kept per session.
const MaxSessionCommands = 200

// MailParameter returns the value of the MAIL parameter name, compared
// without regard to case, as sent. A parameter without "=" has the value
// "".
func (t Transaction) MailParameter(name string) (value string, ok bool) {
	for _, p := range t.MailParameters {
		keyword, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(keyword, name) {
			return value, true
		}
	}
	return "", false
}

// Server is a running sink.
type Server struct {
	cfg      Config
	listener net.Listener
	tls      *tls.Config
	slots    chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup

	mu           sync.Mutex
	transactions []Transaction
	sessions     []SessionRecord
	// changed is closed and replaced when a transaction is stored.
	changed chan struct{}
	conns   map[net.Conn]struct{}
	closed  bool
}

// Start listens on cfg.Listen and serves sessions until Close.
func Start(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Certificate.Certificate) == 0 && !cfg.PlainText {
		return nil, errors.New("start the AMTP sink: missing server certificate; set Config.Certificate")
	}
	listener, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("start the AMTP sink on %s: %w", cfg.Listen, err)
	}
	s := &Server{
		cfg:      cfg,
		listener: listener,
		tls: &tls.Config{
			Certificates: []tls.Certificate{cfg.Certificate},
			// The sink records the client certificate and trusts it
			// blindly, because the suite checks the server under test,
			// not its relay identity.
			ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS12,
		},
		slots:   make(chan struct{}, cfg.MaxSessions),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		conns:   map[net.Conn]struct{}{},
	}
	s.wg.Add(1)
	go s.accept()
	cfg.Logger.Info("AMTP sink started", "addr", listener.Addr().String(), "hostname", cfg.Hostname, "plain_text", cfg.PlainText)
	return s, nil
}

// Addr returns the address the sink listens on.
func (s *Server) Addr() netip.AddrPort {
	return s.listener.Addr().(*net.TCPAddr).AddrPort()
}

// Hostname returns the name in the greeting and the EHLO reply.
func (s *Server) Hostname() string {
	return s.cfg.Hostname
}

// Transactions returns the stored transactions, oldest first.
func (s *Server) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Transaction(nil), s.transactions...)
}

// Sessions returns the records of the ended sessions, oldest first.
func (s *Server) Sessions() []SessionRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SessionRecord(nil), s.sessions...)
}

// WaitSession returns the first session record for which match returns
// true, waiting until one arrives or ctx ends.
func (s *Server) WaitSession(ctx context.Context, match func(SessionRecord) bool) (SessionRecord, error) {
	return waitFor(ctx, s, func() []SessionRecord { return s.sessions }, match)
}

// Wait returns the first stored transaction for which match returns true,
// waiting until one arrives or ctx ends.
func (s *Server) Wait(ctx context.Context, match func(Transaction) bool) (Transaction, error) {
	return waitFor(ctx, s, func() []Transaction { return s.transactions }, match)
}

// waitFor returns the first element of list() for which match returns
// true. It calls list with s.mu held, and waits for the next store until
// one matches or ctx ends.
func waitFor[T any](ctx context.Context, s *Server, list func() []T, match func(T) bool) (T, error) {
	var zero T
	for {
		s.mu.Lock()
		changed := s.changed
		for _, item := range list() {
			if match(item) {
				s.mu.Unlock()
				return item, nil
			}
		}
		s.mu.Unlock()

		select {
		case <-changed:
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-s.done:
			return zero, errors.New("the AMTP sink was closed")
		}
	}
}

// Close stops the listener, ends the open sessions and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()

	err := s.listener.Close()
	s.wg.Wait()
	s.cfg.Logger.Info("AMTP sink stopped", "addr", s.listener.Addr().String())
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			return
		}
		conn, err := s.listener.Accept()
		if err != nil {
			<-s.slots
			select {
			case <-s.done:
				return
			default:
			}
			s.cfg.Logger.Error("AMTP sink accept failed", "error", err)
			// A persistent accept error must not spin.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !s.track(conn) {
			conn.Close()
			<-s.slots
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer s.untrack(conn)
			s.serve(conn)
		}()
	}
}

func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn net.Conn) {
	conn.Close()
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

// store keeps t and wakes the waiters.
func (s *Server) store(t Transaction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transactions = keepLast(append(s.transactions, t), s.cfg.MaxStored)
	s.wake()
}

// storeSession keeps r and wakes the waiters.
func (s *Server) storeSession(r SessionRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = keepLast(append(s.sessions, r), s.cfg.MaxStored)
	s.wake()
}

// wake wakes the waiters; s.mu must be held.
func (s *Server) wake() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func keepLast[T any](list []T, max int) []T {
	if len(list) > max {
		return list[len(list)-max:]
	}
	return list
}
