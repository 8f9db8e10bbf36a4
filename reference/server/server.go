// Package server implements the server side of AMTP
// (draft-weinman-amtp-03): implicit TLS from the first byte with a required
// client certificate, the identity checks at EHLO, the MPC parameter and
// policy, and the RFC 5321 command set that AMTP inherits. Accepted mail
// goes to a delivery.Deliverer.
//
// One goroutine serves each session; a session is a state machine with one
// method per command verb. Every resource is bounded: sessions in all and
// per source address, line and message sizes, recipients, errors, and the
// time spent in the TLS handshake, per command, in DATA and per session.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtp-toolkit/amtp/reference/auth"
	"github.com/amtp-toolkit/amtp/reference/config"
	"github.com/amtp-toolkit/amtp/reference/delivery"
	"github.com/amtp-toolkit/amtp/reference/identity"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/resolver"
	"github.com/amtp-toolkit/amtp/reference/router"
)

// Listener kinds, as used in log lines.
const (
	kindPublic  = "public"
	kindPrivate = "private"
)

// maxRejecters bounds the goroutines that complete a TLS handshake only to
// send 421 to a client over the session limits. Past it, such connections
// are closed without a reply.
const maxRejecters = 16

// Options are the dependencies of a Server.
type Options struct {
	Config    *config.Config
	Resolver  resolver.Resolver
	Deliverer delivery.Deliverer
	Logger    *slog.Logger
}

// Server is an AMTP server with a public and an optional private listener.
type Server struct {
	cfg       *config.Config
	hostname  string
	log       *slog.Logger
	deliverer delivery.Deliverer
	tls       *tls.Config

	policy    mpc.Policy
	rcptRules []recipientRule
	domains   map[string]domainRule
	router    *router.Router

	endpoints []*endpoint

	mu        sync.Mutex
	sessions  map[*session]struct{}
	perIP     map[netip.Addr]int
	shutdown  atomic.Bool
	rejecters chan struct{}
	rejectLog logLimiter
	wg        sync.WaitGroup
}

// logLimiter lets one log line through per second and counts the rest.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now, and how many were
// suppressed since the last one that was.
func (l *logLimiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) < time.Second {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
}

// endpoint is one listening socket and the rules of its kind.
type endpoint struct {
	kind string
	addr string
	// tls is this listener's own copy of the server TLS configuration, so
	// session tickets of one listener do not resume on another.
	tls      *tls.Config
	listener net.Listener
	verifier *identity.Verifier
	users    *auth.Users // non-nil on the private listener, where AUTH is required
}

// recipientRule is a compiled per-recipient MPC policy.
type recipientRule struct {
	match  string // lower-case address, or "@domain"
	policy mpc.Policy
}

// domainRule is a locally delivered domain.
type domainRule struct {
	mailboxes map[string]bool // empty means any local part exists
}

// New builds a server from its configuration. It loads the certificates,
// CA pools and users file but does not listen yet.
func New(opts Options) (*Server, error) {
	cfg := opts.Config
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}

	cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
	if err != nil {
		return nil, fmt.Errorf("load server certificate %s: %w", cfg.TLS.Cert, err)
	}
	hostname := cfg.Hostname
	if hostname == "" && cert.Leaf != nil {
		hostname = cert.Leaf.Subject.CommonName
	}
	if hostname == "" {
		return nil, fmt.Errorf("no hostname: set hostname in %s or use a server certificate with a CN", cfg.Path)
	}

	s := &Server{
		cfg:       cfg,
		hostname:  hostname,
		log:       logger,
		deliverer: opts.Deliverer,
		sessions:  map[*session]struct{}{},
		perIP:     map[netip.Addr]int{},
		rejecters: make(chan struct{}, maxRejecters),
		domains:   map[string]domainRule{},
	}
	s.tls = &tls.Config{
		Certificates: []tls.Certificate{cert},
		// The certificate is required here and verified at EHLO, where a
		// failure gets 504 as section 4.4.2 shows, and where resumed
		// sessions are checked too.
		ClientAuth: tls.RequireAnyClientCert,
		MinVersion: tls.VersionTLS12,
	}
	if cfg.TLS.MinVersion == "1.3" {
		s.tls.MinVersion = tls.VersionTLS13
	}

	if err := s.compilePolicy(); err != nil {
		return nil, err
	}
	if err := s.buildEndpoints(opts.Resolver); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) compilePolicy() error {
	policy, err := mpc.ParsePolicy(s.cfg.Policy.MPC, false)
	if err != nil {
		return fmt.Errorf("policy.mpc: %w", err)
	}
	s.policy = policy

	for _, rp := range s.cfg.Policy.Recipients {
		p, err := mpc.ParsePolicy(rp.MPC, true)
		if err != nil {
			return fmt.Errorf("policy.recipient %q: %w", rp.Match, err)
		}
		s.rcptRules = append(s.rcptRules, recipientRule{match: strings.ToLower(rp.Match), policy: p})
	}

	var local []string
	for _, d := range s.cfg.Domains {
		rule := domainRule{mailboxes: map[string]bool{}}
		for _, m := range d.Mailboxes {
			rule.mailboxes[strings.ToLower(m)] = true
		}
		s.domains[strings.ToLower(d.Name)] = rule
		local = append(local, d.Name)
	}

	r, err := router.New(local, RoutesFromConfig(s.cfg.Routes))
	if err != nil {
		return err
	}
	s.router = r
	return nil
}

// RoutesFromConfig converts the configured routes for router.New.
func RoutesFromConfig(routes []config.Route) []router.Route {
	out := make([]router.Route, 0, len(routes))
	for _, r := range routes {
		out = append(out, router.Route{Domain: r.Domain, Kind: router.Kind(r.Kind), Smarthost: r.Smarthost})
	}
	return out
}

func (s *Server) buildEndpoints(res resolver.Resolver) error {
	publicRoots, err := config.LoadCertPool(s.cfg.Public.ClientCA)
	if err != nil {
		return fmt.Errorf("public.client_ca: %w", err)
	}
	publicVerifier := &identity.Verifier{Roots: publicRoots, Resolver: res}

	if p := s.cfg.Private; p != nil {
		privateRoots, err := config.LoadCertPool(p.ClientCA)
		if err != nil {
			return fmt.Errorf("private.client_ca: %w", err)
		}
		users, err := auth.LoadUsers(p.Users)
		if err != nil {
			return fmt.Errorf("private.users: %w", err)
		}
		publicVerifier.PrivateRoots = privateRoots

		privateVerifier := &identity.Verifier{Roots: privateRoots, Resolver: res, SkipPTR: !p.RequirePTR}
		for _, addr := range p.Listen {
			s.endpoints = append(s.endpoints, &endpoint{kind: kindPrivate, addr: addr, verifier: privateVerifier, users: users})
		}
	}

	public := make([]*endpoint, 0, len(s.cfg.Public.Listen))
	for _, addr := range s.cfg.Public.Listen {
		public = append(public, &endpoint{kind: kindPublic, addr: addr, verifier: publicVerifier})
	}
	s.endpoints = append(public, s.endpoints...)
	for _, ep := range s.endpoints {
		ep.tls = s.tls.Clone()
	}
	return nil
}

// Listen opens every listening socket. On error it closes those it opened.
func (s *Server) Listen() error {
	for _, ep := range s.endpoints {
		l, err := net.Listen("tcp", ep.addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("%s listener on %s: %w", ep.kind, ep.addr, err)
		}
		ep.listener = l
	}
	return nil
}

// Addrs returns the bound address of each listener by kind ("public",
// "private"), which shows the port chosen for a configured port 0.
func (s *Server) Addrs() map[string][]net.Addr {
	addrs := map[string][]net.Addr{}
	for _, ep := range s.endpoints {
		if ep.listener != nil {
			addrs[ep.kind] = append(addrs[ep.kind], ep.listener.Addr())
		}
	}
	return addrs
}

// Serve accepts connections on every listener until ctx is done, then
// shuts down: it stops accepting, sends 421 to sessions waiting for a
// command, lets sessions that are receiving or delivering a message finish
// for up to limits.shutdown_timeout, then closes what is left. Listen must
// have been called.
func (s *Server) Serve(ctx context.Context) error {
	for _, ep := range s.endpoints {
		s.log.Info("listening", "listener", ep.kind, "addr", ep.listener.Addr().String())
		go s.acceptLoop(ep)
	}

	<-ctx.Done()
	s.Shutdown()
	return nil
}

// Shutdown stops the server as Serve describes and waits for its sessions.
func (s *Server) Shutdown() {
	if s.shutdown.Swap(true) {
		s.wg.Wait()
		return
	}
	s.log.Info("shutting down", "sessions", s.sessionCount())
	s.closeListeners()

	s.mu.Lock()
	for sess := range s.sessions {
		sess.interruptIfIdle()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.cfg.Limits.ShutdownTimeout.Duration):
		s.mu.Lock()
		n := len(s.sessions)
		for sess := range s.sessions {
			sess.conn.Close()
		}
		s.mu.Unlock()
		s.log.Warn("shutdown timeout: closed busy sessions", "sessions", n, "timeout", s.cfg.Limits.ShutdownTimeout.Duration)
		<-done
	}
	s.log.Info("stopped")
}

func (s *Server) closeListeners() {
	for _, ep := range s.endpoints {
		if ep.listener != nil {
			ep.listener.Close()
		}
	}
}

func (s *Server) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) acceptLoop(ep *endpoint) {
	var delay time.Duration
	for {
		conn, err := ep.listener.Accept()
		if err != nil {
			if s.shutdown.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary errors such as EMFILE: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "listener", ep.kind, "error", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.startSession(ep, conn)
	}
}

// startSession admits a connection within the session limits, or hands it
// to a bounded rejecter that replies 421.
func (s *Server) startSession(ep *endpoint, conn net.Conn) {
	remote := addrPortOf(conn.RemoteAddr())
	ip := remote.Addr().Unmap()

	s.mu.Lock()
	overTotal := len(s.sessions) >= s.cfg.Limits.MaxSessions
	overIP := s.perIP[ip] >= s.cfg.Limits.MaxSessionsPerIP
	var sess *session
	if !overTotal && !overIP && !s.shutdown.Load() {
		sess = newSession(s, ep, conn, remote)
		s.sessions[sess] = struct{}{}
		s.perIP[ip]++
		s.wg.Add(1)
	}
	s.mu.Unlock()

	if sess == nil {
		s.reject(ep, conn, remote, overTotal, overIP)
		return
	}

	go func() {
		defer s.wg.Done()
		defer s.endSession(sess, ip)
		sess.serve()
	}()
}

func (s *Server) endSession(sess *session, ip netip.Addr) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.perIP[ip]--
	if s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.mu.Unlock()
}

// reject replies 421 to a connection over the limits after the TLS
// handshake, so the client learns why, or closes it at once when too many
// rejections are already running.
func (s *Server) reject(ep *endpoint, conn net.Conn, remote netip.AddrPort, overTotal, overIP bool) {
	if suppressed, ok := s.rejectLog.allow(time.Now()); ok {
		s.log.Warn("connection rejected: session limit reached",
			"listener", ep.kind, "peer", remote.String(),
			"max_sessions_reached", overTotal, "max_sessions_per_ip_reached", overIP,
			"suppressed_since_last", suppressed)
	}

	select {
	case s.rejecters <- struct{}{}:
	default:
		conn.Close()
		return
	}

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.rejecters }()
		defer conn.Close()

		tlsConn := tls.Server(conn, ep.tls)
		deadline := time.Now().Add(s.cfg.Limits.HandshakeTimeout.Duration)
		conn.SetDeadline(deadline)
		if err := tlsConn.Handshake(); err != nil {
			return
		}
		fmt.Fprintf(tlsConn, "%d %s %s\r\n", replyTooManyConns.code, replyTooManyConns.enhanced, replyTooManyConns.text)
	}()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
