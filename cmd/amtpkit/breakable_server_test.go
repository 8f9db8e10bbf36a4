package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// The breakable server is a small AMTP server written for the tests of
// "amtpkit conform" alone. It shares no code with reference/, so that it
// checks the suite against a second reading of the draft. With no fault
// switched on it keeps every server-role clause that the suite has a spec
// for. Each fault switch breaks one behaviour, so that a test can show
// which clauses the suite then fails.

// fault names one way in which the breakable server departs from the draft
// or from RFC 5321. The comment of each fault names the behaviour it breaks.
type fault string

// Faults of the client certificate and the TLS layer.
const (
	// optionalClientCert lets a client finish the TLS handshake without a
	// certificate and checks a certificate at EHLO only when there is one.
	optionalClientCert fault = "optionalClientCert"
	// untrustedServerCert makes the public listener present a server
	// certificate from the CA that no client trusts.
	untrustedServerCert fault = "untrustedServerCert"
	// expiredServerCert makes the public listener present an expired server
	// certificate from the public CA.
	expiredServerCert fault = "expiredServerCert"
	// privateServerCertUntrusted makes the private listener present a server
	// certificate from the CA that no client trusts.
	privateServerCertUntrusted fault = "privateServerCertUntrusted"
	// acceptPlainText serves SMTP without TLS to a client whose first
	// byte is not a TLS handshake record, and skips the identity checks.
	acceptPlainText fault = "acceptPlainText"
	// acceptUntrustedCA accepts a client certificate from any issuer on
	// the public listener.
	acceptUntrustedCA fault = "acceptUntrustedCA"
	// acceptExpired accepts a client certificate after its NotAfter date.
	acceptExpired fault = "acceptExpired"
	// acceptNotYetValid accepts a client certificate before its NotBefore
	// date.
	acceptNotYetValid fault = "acceptNotYetValid"
	// acceptNoClientAuth accepts a client certificate whose extended key
	// usage lacks clientAuth.
	acceptNoClientAuth fault = "acceptNoClientAuth"
	// acceptNonFQDN accepts a client certificate whose CN is not a
	// fully-qualified domain name.
	acceptNonFQDN fault = "acceptNonFQDN"
	// acceptPTRMismatch accepts a client whose PTR records all name
	// another host than the certificate CN.
	acceptPTRMismatch fault = "acceptPTRMismatch"
	// acceptMissingPTR accepts a client whose source address has no PTR
	// record.
	acceptMissingPTR fault = "acceptMissingPTR"
	// skipPTRCheck makes no PTR lookup at all.
	skipPTRCheck fault = "skipPTRCheck"
	// skipIPv6PTRCheck makes no PTR lookup for IPv6 clients.
	skipIPv6PTRCheck fault = "skipIPv6PTRCheck"
	// skipEHLOMatch accepts an EHLO argument other than the certificate CN.
	skipEHLOMatch fault = "skipEHLOMatch"
	// acceptPublicOnPrivate makes the private listener accept certificates
	// from the public CA as well, with the PTR checks of a public
	// listener.
	acceptPublicOnPrivate fault = "acceptPublicOnPrivate"
	// noPTRMeansPrivate makes the private listener take a public-CA client
	// whose source address has no PTR record for a private client.
	noPTRMeansPrivate fault = "noPTRMeansPrivate"
	// rejectAtGreeting checks the client right after the TLS handshake,
	// which it lets a client finish without a certificate, and takes the
	// CN as the EHLO argument. It rejects a client that fails with a 421
	// greeting and a close, as Postfix 3.7 does with smtpd_tls_req_ccert.
	// It breaks a clause only under --strict.
	rejectAtGreeting fault = "rejectAtGreeting"
)

// Faults of the AMTP commands, the MPC parameter and the MPC header field.
const (
	// acceptHELO replies 250 to HELO.
	acceptHELO fault = "acceptHELO"
	// acceptHELOAfterEHLO replies 250 to HELO after a successful EHLO and
	// 504 only before it.
	acceptHELOAfterEHLO fault = "acceptHELOAfterEHLO"
	// badMPCLine sends the MPC line "MPC DENY=optout", whose value lacks
	// the slash of the grammar.
	badMPCLine fault = "badMPCLine"
	// ignoreMissingMPC accepts MAIL without an MPC parameter.
	ignoreMissingMPC fault = "ignoreMissingMPC"
	// keepSenderWithoutMPC rejects MAIL without an MPC parameter but keeps
	// its sender, so that RCPT and DATA after it succeed.
	keepSenderWithoutMPC fault = "keepSenderWithoutMPC"
	// acceptTwoMPC accepts MAIL with two MPC parameters and keeps the last.
	acceptTwoMPC fault = "acceptTwoMPC"
	// acceptUndefinedMPC accepts a well-formed MPC value whose role or class
	// section 4.5 does not define.
	acceptUndefinedMPC fault = "acceptUndefinedMPC"
	// acceptMPCOptin accepts the role "mpc" with any defined class.
	acceptMPCOptin fault = "acceptMPCOptin"
	// rejectMPCIndividual lets the server's MPC policy reject mpc/individual.
	rejectMPCIndividual fault = "rejectMPCIndividual"
	// wrongMPCRejectCode rejects a value that the MPC policy denies with 553
	// instead of 550.
	wrongMPCRejectCode fault = "wrongMPCRejectCode"
	// rejectEveryMPC makes the public listener reject every MAIL command
	// with an MPC parameter with 555, as Postfix 3.7 does because it does
	// not know the parameter.
	rejectEveryMPC fault = "rejectEveryMPC"
	// noMPCHeader delivers messages without an MPC header field.
	noMPCHeader fault = "noMPCHeader"
	// noMPCHeaderForMPCRole delivers messages whose MPC role is "mpc"
	// without an MPC header field.
	noMPCHeaderForMPCRole fault = "noMPCHeaderForMPCRole"
	// rewriteMPCHeader writes the MPC value in lower case into the header
	// field.
	rewriteMPCHeader fault = "rewriteMPCHeader"
	// keepExistingMPCHeader delivers a message that already has an MPC
	// header field.
	keepExistingMPCHeader fault = "keepExistingMPCHeader"
	// caseSensitiveHeaderSearch finds a pre-existing MPC header field only
	// when its name is written "MPC".
	caseSensitiveHeaderSearch fault = "caseSensitiveHeaderSearch"
	// shallowHeaderSearch searches only the first 20 header fields for a
	// pre-existing MPC header field.
	shallowHeaderSearch fault = "shallowHeaderSearch"
	// missFoldedMPCHeader misses a pre-existing MPC header field whose value
	// starts on a continuation line.
	missFoldedMPCHeader fault = "missFoldedMPCHeader"
	// missSpaceBeforeColon misses a pre-existing MPC header field written
	// "MPC :", the obsolete syntax of RFC 5322 section 4.5.8.
	missSpaceBeforeColon fault = "missSpaceBeforeColon"
	// caseSensitivePolicy denies the class optout only in lower case, so
	// that a denied value in mixed case is delivered.
	caseSensitivePolicy fault = "caseSensitivePolicy"
	// relayIgnoresDeny relays without reading the MPC lines of the next
	// hop's EHLO reply, so it goes on to MAIL for a denied value.
	relayIgnoresDeny fault = "relayIgnoresDeny"
	// gatewayOmitsMPCHeader relays over the gateway route without an MPC
	// header field.
	gatewayOmitsMPCHeader fault = "gatewayOmitsMPCHeader"
	// privateRouteWithPublicCert presents the server certificate, from the
	// public CA, on the private route.
	privateRouteWithPublicCert fault = "privateRouteWithPublicCert"
	// relayAnything accepts RCPT for any domain on the public listener too,
	// and relays the copies for domains that are not local.
	relayAnything fault = "relayAnything"
	// acceptRelayDrop accepts RCPT for any domain on the public listener
	// and drops the copies for domains that are not local, without
	// relaying or bouncing them.
	acceptRelayDrop fault = "acceptRelayDrop"
	// relayTempFail rejects RCPT for a domain that is not local with 451.
	relayTempFail fault = "relayTempFail"
	// relayDenied554 rejects RCPT for a domain that is not local with 554
	// instead of 550.
	relayDenied554 fault = "relayDenied554"
	// noAuthRequired accepts MAIL on the private listener without AUTH.
	noAuthRequired fault = "noAuthRequired"
	// noAuthAdvertised leaves AUTH out of the EHLO reply of the private
	// listener but still requires it.
	noAuthAdvertised fault = "noAuthAdvertised"
	// authIgnoresCN accepts AUTH as a user other than the certificate CN.
	authIgnoresCN fault = "authIgnoresCN"
	// wrongAuthFailureCode rejects a wrong password with 454 instead of 535.
	wrongAuthFailureCode fault = "wrongAuthFailureCode"
	// relayAddsMPCHeader adds an MPC header field to a message it relays
	// over AMTP.
	relayAddsMPCHeader fault = "relayAddsMPCHeader"
	// relayRewritesMPC relays the MPC value in upper case.
	relayRewritesMPC fault = "relayRewritesMPC"
	// bounceKeepsMPC gives a bounce the MPC value of the bounced message
	// instead of net/autoresponse.
	bounceKeepsMPC fault = "bounceKeepsMPC"
)

// Faults of the RFC 5321 behaviour that AMTP inherits.
const (
	// bareLFEndsCommand lets a bare LF end a command line.
	bareLFEndsCommand fault = "bareLFEndsCommand"
	// acceptRCPTBeforeMAIL accepts RCPT without a MAIL command before it.
	acceptRCPTBeforeMAIL fault = "acceptRCPTBeforeMAIL"
	// vrfyAlways250 replies 250 to VRFY of any address.
	vrfyAlways250 fault = "vrfyAlways250"
	// vrfyRejects550 replies 550 to VRFY of any address.
	vrfyRejects550 fault = "vrfyRejects550"
	// lowErrorLimit closes the session with 421 at its second syntax or
	// sequence error.
	lowErrorLimit fault = "lowErrorLimit"
	// trimmedDotEndsData ends the mail data at a line that is a dot with
	// spaces around it, such as " .".
	trimmedDotEndsData fault = "trimmedDotEndsData"
	// bareLFEndsData ends the mail data at a line "." whatever its line
	// endings and those of the line before, so "\n.\n" ends it.
	bareLFEndsData fault = "bareLFEndsData"
	// acceptBareLF accepts mail data whose lines end in a bare LF.
	acceptBareLF fault = "acceptBareLF"
	// rsetWithoutRecipientRejected replies 503 to RSET after MAIL and before
	// any RCPT.
	rsetWithoutRecipientRejected fault = "rsetWithoutRecipientRejected"
	// rsetKeepsRecipients makes RSET clear the sender but keep the
	// recipients.
	rsetKeepsRecipients fault = "rsetKeepsRecipients"
	// noopInTransactionRejected replies 503 to NOOP after MAIL.
	noopInTransactionRejected fault = "noopInTransactionRejected"
	// quitKeepsOpen replies 221 to QUIT but keeps the connection open.
	quitKeepsOpen fault = "quitKeepsOpen"
	// rejectCommandsBeforeEHLO replies 503 to RSET and VRFY before EHLO.
	rejectCommandsBeforeEHLO fault = "rejectCommandsBeforeEHLO"
	// dataWithoutRecipients replies 354 to DATA after MAIL even without a
	// recipient.
	dataWithoutRecipients fault = "dataWithoutRecipients"
	// dataErrorEndsTransaction replies 503 to DATA without a recipient and
	// ends the transaction, so RCPT after it gets 503 too.
	dataErrorEndsTransaction fault = "dataErrorEndsTransaction"
	// nestedMailResets starts a new transaction at a MAIL command inside a
	// transaction.
	nestedMailResets fault = "nestedMailResets"
	// extraReplyToRSET replies twice to an RSET that follows a delivered
	// message.
	extraReplyToRSET fault = "extraReplyToRSET"
	// wrongMultiline ends the last line of the EHLO reply with a tab
	// instead of a space after the code.
	wrongMultiline fault = "wrongMultiline"
	// mixedMultilineCodes gives one line of the EHLO reply the code 251.
	mixedMultilineCodes fault = "mixedMultilineCodes"
	// unknownCommand502 replies 502 instead of 500 to an unknown command.
	unknownCommand502 fault = "unknownCommand502"
	// advertiseUnimplemented lists EXPN in the EHLO reply but replies 502
	// to it.
	advertiseUnimplemented fault = "advertiseUnimplemented"
	// greetingWithoutDomain starts the greeting text with "(" instead of
	// the server's domain.
	greetingWithoutDomain fault = "greetingWithoutDomain"
	// noLineLimit accepts command lines of any length up to the read limit.
	noLineLimit fault = "noLineLimit"
	// shortCommandLimit rejects command lines of 511 octets or more with
	// CRLF, below the 512 of RFC 5321 section 4.5.3.1.4.
	shortCommandLimit fault = "shortCommandLimit"
	// helpBadReplyCode replies to HELP with the code 199.
	helpBadReplyCode fault = "helpBadReplyCode"
	// invalidEHLOReplyCode replies "999 what" to every EHLO, a code
	// outside the range of RFC 5321 section 4.3.2.
	invalidEHLOReplyCode fault = "invalidEHLOReplyCode"
	// noDotUnstuffing keeps the leading dot that the client doubled.
	noDotUnstuffing fault = "noDotUnstuffing"
	// limitBeforeUnstuffing measures text lines before it removes the
	// doubled dot, so a 1000-octet line that starts with a dot is too long.
	limitBeforeUnstuffing fault = "limitBeforeUnstuffing"
	// smallMessageLimit rejects messages of more than 60000 octets.
	smallMessageLimit fault = "smallMessageLimit"
	// recipientLimit50 rejects the 51st RCPT of a transaction with 452.
	recipientLimit50 fault = "recipientLimit50"
	// recipientLimitCode550 rejects the RCPT past the recipient limit with
	// 550 instead of 452.
	recipientLimitCode550 fault = "recipientLimitCode550"
)

// Limits and timeouts of the breakable server.
const (
	// maxCommandLine is the longest command line with CRLF (RFC 5321
	// section 4.5.3.1.4).
	maxCommandLine = 512
	// maxTextLine is the longest text line with CRLF, after the doubled
	// dot is removed (RFC 5321 section 4.5.3.1.6).
	maxTextLine = 1000
	// maxReadLine is how much of one line the server reads before it
	// closes the connection.
	maxReadLine = 64 << 10
	// maxMessageSize is the message size limit. Data past it is read and
	// dropped up to maxDataRead, and then the connection is closed.
	maxMessageSize = 10 << 20
	maxDataRead    = 2 * maxMessageSize
	// smallMessageMax is the message size limit of the fault
	// smallMessageLimit.
	smallMessageMax = 60000
	// maxRecipients is the recipient limit of a transaction, the minimum
	// of RFC 5321 section 4.5.3.1.8.
	maxRecipients = 100
	// maxErrors is the number of syntax and sequence errors after which
	// the server closes the session.
	maxErrors = 20
	// maxCommands bounds the commands of one session.
	maxCommands = 10000
	// ioTimeout bounds each read, write and TLS handshake.
	ioTimeout = 30 * time.Second
	// breakableCommandTimeout bounds the wait for a command, after which
	// the session gets 421 and is closed. It is short so that the idle
	// checks take seconds.
	breakableCommandTimeout = 4 * time.Second
	// dnsTimeout bounds each PTR query.
	dnsTimeout = 2 * time.Second
)

// localMailboxes are the local parts that the server accepts in its domain.
var localMailboxes = []string{"postmaster", "alice", "bob"}

// breakableConfig configures a breakable server.
type breakableConfig struct {
	manifest *pki.Manifest
	// dnsAddr is the DNS server that the PTR lookups go to, host:port.
	dnsAddr string
	// maildir is the root of the Maildir folders, one per local mailbox.
	maildir string
	// mpcLine is the MPC line of the EHLO reply. An empty one is left out.
	mpcLine string
	// gatewaySink and privateSink are the next hops, host:port, of the
	// routes for gateway.<domain> (plain SMTP) and private-sink.<domain>
	// (AMTP with the private-client certificate). Empty leaves a route
	// out.
	gatewaySink, privateSink string
	// ipv6 adds a public listener on ::1.
	ipv6   bool
	faults []fault
	// logf receives a line per rejected client and per error the server
	// catches.
	logf func(format string, args ...any)
}

// listenerKind is the public or the private listener.
type listenerKind string

const (
	publicKind  listenerKind = "public"
	privateKind listenerKind = "private"
)

// breakableServer is a running breakable server.
type breakableServer struct {
	config breakableConfig
	faults map[fault]bool

	// Addresses of the listeners. public6 is empty without IPv6.
	public, public6, private string

	publicCA, privateCA *x509.Certificate
	publicTLS           *tls.Config
	privateTLS          *tls.Config

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]bool
	closed    bool
	wg        sync.WaitGroup
	// deliveries numbers the delivered files, for unique names.
	deliveries int
}

// startBreakableServer starts the listeners on loopback ports that the
// system chooses. Close stops them.
func startBreakableServer(cfg breakableConfig) (*breakableServer, error) {
	s := &breakableServer{config: cfg, faults: map[fault]bool{}, conns: map[net.Conn]bool{}}
	for _, f := range cfg.faults {
		s.faults[f] = true
	}
	if s.config.logf == nil {
		s.config.logf = func(string, ...any) {}
	}

	var err error
	if s.publicCA, err = loadCA(cfg.manifest, pki.PublicCA); err != nil {
		return nil, err
	}
	if s.privateCA, err = loadCA(cfg.manifest, pki.PrivateCA); err != nil {
		return nil, err
	}
	if s.publicTLS, err = s.tlsConfig(publicKind); err != nil {
		return nil, err
	}
	if s.privateTLS, err = s.tlsConfig(privateKind); err != nil {
		return nil, err
	}

	if s.public, err = s.listen("127.0.0.1:0", publicKind); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.ipv6 {
		if s.public6, err = s.listen("[::1]:0", publicKind); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.private, err = s.listen("127.0.0.1:0", privateKind); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *breakableServer) has(f fault) bool {
	return s.faults[f]
}

// loadCA reads the certificate of the PKI's CA called name.
func loadCA(m *pki.Manifest, name string) (*x509.Certificate, error) {
	for _, ca := range m.CAs {
		if ca.Name != name {
			continue
		}
		data, err := os.ReadFile(m.Path(ca.Cert))
		if err != nil {
			return nil, fmt.Errorf("read CA %s: %w", name, err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("CA file %s contains no PEM block", m.Path(ca.Cert))
		}
		return x509.ParseCertificate(block.Bytes)
	}
	return nil, fmt.Errorf("CA %q is not in the PKI manifest", name)
}

// tlsConfig returns the TLS configuration of a listener. The TLS layer
// requires a client certificate but does not verify it: the server checks
// it at EHLO and replies 504 when it fails.
func (s *breakableServer) tlsConfig(kind listenerKind) (*tls.Config, error) {
	cert, err := s.serverCertificate(kind)
	if err != nil {
		return nil, err
	}
	clientAuth := tls.RequireAnyClientCert
	if s.has(optionalClientCert) || s.has(rejectAtGreeting) {
		clientAuth = tls.RequestClientCert
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   clientAuth,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// serverCertificate returns the PKI's server certificate, or one issued
// for a fault of the server certificate.
func (s *breakableServer) serverCertificate(kind listenerKind) (tls.Certificate, error) {
	m := s.config.manifest
	now := time.Now()
	var req *pki.IssueRequest
	switch {
	case kind == publicKind && s.has(untrustedServerCert), kind == privateKind && s.has(privateServerCertUntrusted):
		req = &pki.IssueRequest{Issuer: pki.UntrustedCA}
	case kind == publicKind && s.has(expiredServerCert):
		req = &pki.IssueRequest{Issuer: pki.PublicCA, NotBefore: now.Add(-47 * time.Hour), NotAfter: now.Add(-2 * time.Hour)}
	default:
		return m.TLSCertificate(pki.CertServer)
	}

	entry, err := m.Cert(pki.CertServer)
	if err != nil {
		return tls.Certificate{}, err
	}
	req.CommonName = entry.CN
	req.DNSNames = []string{entry.CN, "localhost"}
	req.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	req.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	issued, err := m.Issue(*req)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue the server certificate of the %s listener: %w", kind, err)
	}
	return issued.TLSCertificate()
}

// listen starts one listener and its accept loop, and returns its address.
func (s *breakableServer) listen(addr string, kind listenerKind) (string, error) {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, listener)
	s.mu.Unlock()

	s.wg.Go(func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			if !s.track(conn) {
				conn.Close()
				return
			}
			s.wg.Go(func() {
				defer s.untrack(conn)
				s.serve(conn, kind)
			})
		}
	})
	return listener.Addr().String(), nil
}

// track records an open connection, or returns false after Close.
func (s *breakableServer) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[conn] = true
	return true
}

func (s *breakableServer) untrack(conn net.Conn) {
	conn.Close()
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

// Close stops the listeners, closes every connection and waits for the
// sessions to end.
func (s *breakableServer) Close() {
	s.mu.Lock()
	s.closed = true
	for _, listener := range s.listeners {
		listener.Close()
	}
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// bufferedConn is a connection whose first bytes were peeked through
// reader.
type bufferedConn struct {
	net.Conn
	reader *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) {
	return c.reader.Read(p)
}

// tlsRecordHandshake is the first byte of a TLS handshake record.
const tlsRecordHandshake = 0x16

// serve runs one connection: the TLS handshake and the SMTP session.
func (s *breakableServer) serve(raw net.Conn, kind listenerKind) {
	source := netip.Addr{}
	if tcp, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		source = tcp.AddrPort().Addr().Unmap()
	}
	sess := &session{server: s, kind: kind, source: source}

	conn := raw
	if kind == publicKind && s.has(acceptPlainText) {
		reader := bufio.NewReader(raw)
		raw.SetReadDeadline(time.Now().Add(ioTimeout))
		first, err := reader.Peek(1)
		if err != nil {
			return
		}
		conn = bufferedConn{Conn: raw, reader: reader}
		if first[0] != tlsRecordHandshake {
			// The client spoke first, so it gets no greeting.
			sess.plain = true
			sess.run(conn, false)
			return
		}
	}

	config := s.publicTLS
	if kind == privateKind {
		config = s.privateTLS
	}
	tlsConn := tls.Server(conn, config)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	err := tlsConn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.config.logf("breakable server: %s listener: TLS handshake with %s failed: %v", kind, source, err)
		return
	}
	if certs := tlsConn.ConnectionState().PeerCertificates; len(certs) > 0 {
		sess.peer = certs[0]
	}
	sess.run(tlsConn, true)
}

// errTemporaryDNS marks a PTR lookup that failed for a reason other than
// an authoritative answer, such as a timeout or SERVFAIL.
var errTemporaryDNS = errors.New("temporary DNS failure")

// lookupPTR queries the configured DNS server for the PTR records of addr
// and returns their names without the trailing dot. It returns no names and
// no error when the DNS server replies that there are none.
func (s *breakableServer) lookupPTR(addr netip.Addr) ([]string, error) {
	name, err := dns.ReverseAddr(addr.String())
	if err != nil {
		return nil, err
	}
	query := new(dns.Msg)
	query.SetQuestion(name, dns.TypePTR)
	client := &dns.Client{Timeout: dnsTimeout}
	response, _, err := client.Exchange(query, s.config.dnsAddr)
	if err == nil && response.Truncated {
		client.Net = "tcp"
		response, _, err = client.Exchange(query, s.config.dnsAddr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: PTR query for %s to %s: %v", errTemporaryDNS, addr, s.config.dnsAddr, err)
	}
	if response.Rcode != dns.RcodeSuccess && response.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%w: PTR query for %s got %s", errTemporaryDNS, addr, dns.RcodeToString[response.Rcode])
	}
	var names []string
	for _, rr := range response.Answer {
		if ptr, ok := rr.(*dns.PTR); ok {
			names = append(names, strings.TrimSuffix(ptr.Ptr, "."))
		}
	}
	return names, nil
}

// hostLabel matches one label of a host name.
var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)

// isFQDN reports whether name has at least two labels of letters, digits
// and inner hyphens, the last of them not all digits.
func isFQDN(name string) bool {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	if len(labels) < 2 {
		return false
	}
	for _, label := range labels {
		if !hostLabel.MatchString(label) {
			return false
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// signedBy reports whether cert was issued and signed by ca.
func signedBy(cert, ca *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, ca.RawSubject) && cert.CheckSignatureFrom(ca) == nil
}

// hasClientAuth reports whether the extended key usage of cert allows
// client authentication. A certificate without the extension allows any
// usage (RFC 5280 section 4.2.1.12).
func hasClientAuth(cert *x509.Certificate) bool {
	if len(cert.ExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny)
}

// admission is the outcome of the identity check at EHLO.
type admission struct {
	// problem describes why the client is rejected. An empty one admits it.
	problem string
	// temporary marks a DNS failure, which gets 421 instead of 504.
	temporary bool
}

// checkIdentity checks the client certificate, the PTR records of the
// source address and the EHLO argument (draft sections 4.2, 4.3.2, 4.4.2
// and 7).
func (s *breakableServer) checkIdentity(kind listenerKind, cert *x509.Certificate, source netip.Addr, ehloArg string) admission {
	if cert == nil {
		if s.has(optionalClientCert) {
			return admission{}
		}
		return admission{problem: "no client certificate"}
	}

	issuedByPublic, issuedByPrivate := signedBy(cert, s.publicCA), signedBy(cert, s.privateCA)
	// checkPTR is false for a private network connection, which section 7
	// exempts from the DNS requirements.
	checkPTR := !(kind == privateKind && issuedByPrivate)
	switch {
	case kind == publicKind && !issuedByPublic && !s.has(acceptUntrustedCA):
		return admission{problem: "the client certificate is not issued by the public CA"}
	case kind == privateKind && issuedByPublic && s.has(noPTRMeansPrivate):
		names, err := s.lookupPTR(source)
		if err != nil {
			return admission{problem: err.Error(), temporary: true}
		}
		if len(names) > 0 {
			return admission{problem: "a public-CA client with a PTR record is a public network connection"}
		}
		checkPTR = false
	case kind == privateKind && issuedByPublic && s.has(acceptPublicOnPrivate):
		// Admitted as a public network connection, with the PTR checks below.
	case kind == privateKind && !issuedByPrivate:
		return admission{problem: "the client certificate is not issued by the private CA"}
	}

	now := time.Now()
	switch {
	case now.After(cert.NotAfter) && !s.has(acceptExpired):
		return admission{problem: "the client certificate expired at " + cert.NotAfter.Format(time.RFC3339)}
	case now.Before(cert.NotBefore) && !s.has(acceptNotYetValid):
		return admission{problem: "the client certificate is not valid before " + cert.NotBefore.Format(time.RFC3339)}
	case !hasClientAuth(cert) && !s.has(acceptNoClientAuth):
		return admission{problem: "the extended key usage of the client certificate lacks clientAuth"}
	}

	cn := cert.Subject.CommonName
	if !isFQDN(cn) && !s.has(acceptNonFQDN) {
		return admission{problem: fmt.Sprintf("the CN %q is not a fully-qualified domain name", cn)}
	}
	if checkPTR && !s.has(skipPTRCheck) && !(source.Is6() && s.has(skipIPv6PTRCheck)) {
		names, err := s.lookupPTR(source)
		switch {
		case err != nil:
			return admission{problem: err.Error(), temporary: true}
		case len(names) == 0 && !s.has(acceptMissingPTR):
			return admission{problem: fmt.Sprintf("the source address %s has no PTR record", source)}
		case len(names) > 0 && !containsFold(names, cn) && !s.has(acceptPTRMismatch):
			return admission{problem: fmt.Sprintf("the PTR records of %s (%s) do not name the CN %s", source, strings.Join(names, ", "), cn)}
		}
	}
	if !strings.EqualFold(strings.TrimSuffix(ehloArg, "."), cn) && !s.has(skipEHLOMatch) {
		return admission{problem: fmt.Sprintf("the EHLO argument %q is not the CN %s", ehloArg, cn)}
	}
	return admission{}
}

func containsFold(names []string, name string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
}
