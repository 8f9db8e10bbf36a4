package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/amtp-toolkit/amtp/conformance/mpcsyntax"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// relayTimeout bounds each step of a relay: the DNS queries, the connect,
// the TLS handshake and each reply.
const relayTimeout = 5 * time.Second

// errRelayRejected wraps a 5yz reply of the next hop, which the breakable
// server bounces.
var errRelayRejected = errors.New("next hop rejected the message")

// relay sends the message to each remote recipient over AMTP, after an
// SRV lookup at the configured DNS server, and bounces it to a local
// sender when the next hop rejects it with a 5yz reply. It runs after the
// session accepted the message, so it reports errors only in the log.
func (s *breakableServer) relay(hostname string, tx transaction, message mailData) {
	for _, recipient := range tx.recipients {
		_, domain, remote := strings.Cut(recipient, "@")
		if !remote {
			continue
		}
		err := s.relayOne(hostname, domain, recipient, tx, message)
		switch {
		case errors.Is(err, errRelayRejected):
			s.config.logf("breakable server: relay to %s rejected: %v", recipient, err)
			if bounceErr := s.bounce(tx, recipient, err, message); bounceErr != nil {
				s.config.logf("breakable server: bounce to %s failed: %v", tx.sender, bounceErr)
			}
		case err != nil:
			s.config.logf("breakable server: relay to %s failed: %v", recipient, err)
		}
	}
}

// routed reports whether domain has a configured route: a gateway or a
// private network connection.
func (s *breakableServer) routed(domain string) bool {
	gateway, private := s.routeDomains()
	return (s.config.gatewaySink != "" && strings.EqualFold(domain, gateway)) ||
		(s.config.privateSink != "" && strings.EqualFold(domain, private))
}

// routeDomains returns the domains of the gateway and the private route.
func (s *breakableServer) routeDomains() (gateway, private string) {
	return "gateway." + s.config.manifest.Domain, "private-sink." + s.config.manifest.Domain
}

// relayOne runs one transaction with the next hop of domain. The gateway
// route gets plain SMTP with an MPC header field, the private route AMTP
// with the private client certificate, and any other domain AMTP to the
// targets of its SRV records.
func (s *breakableServer) relayOne(hostname, domain, recipient string, tx transaction, message mailData) error {
	conn, err := s.dialNextHop(domain)
	if err != nil {
		return err
	}
	defer conn.Close()
	reader := bufio.NewReader(conn)

	gateway, _ := s.routeDomains()
	overSMTP := strings.EqualFold(domain, gateway)
	mpcValue := tx.mpc
	if s.has(relayRewritesMPC) {
		mpcValue = strings.ToUpper(mpcValue)
	}
	var data bytes.Buffer
	if s.has(relayAddsMPCHeader) || (overSMTP && !s.has(gatewayOmitsMPCHeader)) {
		data.WriteString("MPC: " + tx.mpc + "\r\n")
	}
	for _, line := range message.lines {
		if bytes.HasPrefix(line, []byte(".")) {
			data.WriteByte('.')
		}
		data.Write(line)
	}
	data.WriteString(".\r\n")
	mail := "MAIL FROM:<" + tx.sender + "> MPC=" + mpcValue + "\r\n"
	if overSMTP {
		mail = "MAIL FROM:<" + tx.sender + ">\r\n"
	}

	steps := []struct {
		send string
		want int
	}{
		{"", 220},
		{"EHLO " + hostname + "\r\n", 250},
		{mail, 250},
		{"RCPT TO:<" + recipient + ">\r\n", 250},
		{"DATA\r\n", 354},
		{data.String(), 250},
	}
	for _, step := range steps {
		conn.SetDeadline(time.Now().Add(relayTimeout))
		if step.send != "" {
			if _, err := conn.Write([]byte(step.send)); err != nil {
				return err
			}
		}
		code, lines, err := readRelayReply(reader)
		if err != nil {
			return err
		}
		text := lines[len(lines)-1]
		if code != step.want {
			conn.Write([]byte("QUIT\r\n"))
			if code >= 500 {
				return fmt.Errorf("%w: %s", errRelayRejected, text)
			}
			return fmt.Errorf("next hop replied %q, expected %d", text, step.want)
		}
		if strings.HasPrefix(step.send, "EHLO") && !overSMTP && !s.has(relayIgnoresDeny) {
			if denial := deniedBy(lines, tx.mpc); denial != "" {
				conn.Write([]byte("QUIT\r\n"))
				return fmt.Errorf("%w: the next hop declares %s, which denies MPC=%s", errRelayRejected, denial, tx.mpc)
			}
		}
	}
	conn.Write([]byte("QUIT\r\n"))
	return nil
}

// deniedBy returns the MPC line of an EHLO reply whose declarations,
// evaluated in order, deny value, or "".
func deniedBy(lines []string, value string) string {
	for _, line := range lines {
		if len(line) < 4 || !mpcsyntax.IsMPCLine(line[4:]) {
			continue
		}
		decls, _, err := mpcsyntax.ParseLine(line[4:])
		if err == nil && !mpcsyntax.Allowed(decls, value) {
			return line[4:]
		}
	}
	return ""
}

// dialNextHop connects to the next hop of domain as relayOne describes.
func (s *breakableServer) dialNextHop(domain string) (net.Conn, error) {
	gateway, private := s.routeDomains()
	netDialer := &net.Dialer{Timeout: relayTimeout}
	switch {
	case s.config.gatewaySink != "" && strings.EqualFold(domain, gateway):
		return netDialer.Dial("tcp", s.config.gatewaySink)
	case s.config.privateSink != "" && strings.EqualFold(domain, private):
		certName := pki.CertPrivateClient
		if s.has(privateRouteWithPublicCert) {
			certName = pki.CertServer
		}
		return s.dialAMTP(s.config.privateSink, private, s.privateCA, certName)
	}

	records, err := s.lookupSRV(domain)
	if err != nil {
		return nil, err
	}
	var failures []error
	for _, record := range records {
		target := strings.TrimSuffix(record.Target, ".")
		addr, err := s.lookupA(target)
		if err != nil {
			failures = append(failures, err)
			continue
		}
		conn, err := s.dialAMTP(net.JoinHostPort(addr, strconv.Itoa(int(record.Port))), target, s.publicCA, pki.CertServer)
		if err == nil {
			return conn, nil
		}
		failures = append(failures, fmt.Errorf("connect to %s (%s port %d): %w", domain, target, record.Port, err))
	}
	return nil, errors.Join(failures...)
}

// dialAMTP opens an implicit-TLS connection to addr that verifies the
// server certificate for serverName against ca and presents the PKI's
// certificate certName.
func (s *breakableServer) dialAMTP(addr, serverName string, ca *x509.Certificate, certName string) (net.Conn, error) {
	cert, err := s.config.manifest.TLSCertificate(certName)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	dialer := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: relayTimeout},
		Config:    &tls.Config{RootCAs: roots, ServerName: serverName, Certificates: []tls.Certificate{cert}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), relayTimeout)
	defer cancel()
	return dialer.DialContext(ctx, "tcp", addr)
}

// readRelayReply reads one reply of up to 100 lines and returns its code
// and its lines.
func readRelayReply(reader *bufio.Reader) (int, []string, error) {
	var lines []string
	for range 100 {
		line, err := reader.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, nil, fmt.Errorf("malformed reply %q", line)
		}
		lines = append(lines, line)
		if len(line) > 3 && line[3] == '-' {
			continue
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, nil, fmt.Errorf("malformed reply %q", line)
		}
		return code, lines, nil
	}
	return 0, nil, errors.New("reply of more than 100 lines")
}

// bounce writes a bounce with the null reverse-path into the Maildir of
// the sender, when the sender is a local mailbox.
func (s *breakableServer) bounce(tx transaction, recipient string, reason error, message mailData) error {
	local, domain, _ := strings.Cut(strings.ToLower(tx.sender), "@")
	if domain != s.config.manifest.Domain {
		return fmt.Errorf("sender %s is not local", tx.sender)
	}
	value := "net/autoresponse"
	if s.has(bounceKeepsMPC) {
		value = tx.mpc
	}
	var b bytes.Buffer
	b.WriteString("Return-Path: <>\r\n")
	b.WriteString("MPC: " + value + "\r\n")
	b.WriteString("From: Mail Delivery System <MAILER-DAEMON@" + s.config.manifest.Domain + ">\r\n")
	b.WriteString("To: <" + tx.sender + ">\r\n")
	b.WriteString("Subject: Undelivered Mail Returned to Sender\r\n\r\n")
	b.WriteString("The message to <" + recipient + "> could not be delivered: " + reason.Error() + "\r\n\r\n")
	for _, line := range message.lines {
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		b.Write(line)
	}
	return s.writeMaildir(local, b.Bytes())
}

// lookupSRV returns the _amtp._tcp SRV records of domain by priority,
// lowest first. It ignores the weights.
func (s *breakableServer) lookupSRV(domain string) ([]*dns.SRV, error) {
	answer, err := s.query("_amtp._tcp."+domain+".", dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	var records []*dns.SRV
	for _, rr := range answer {
		if srv, ok := rr.(*dns.SRV); ok {
			records = append(records, srv)
		}
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("no _amtp._tcp SRV record for %s", domain)
	}
	slices.SortStableFunc(records, func(a, b *dns.SRV) int { return int(a.Priority) - int(b.Priority) })
	return records, nil
}

// lookupA returns the first A record of host.
func (s *breakableServer) lookupA(host string) (string, error) {
	answer, err := s.query(host+".", dns.TypeA)
	if err != nil {
		return "", err
	}
	for _, rr := range answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), nil
		}
	}
	return "", fmt.Errorf("no A record for %s", host)
}

func (s *breakableServer) query(name string, qtype uint16) ([]dns.RR, error) {
	query := new(dns.Msg)
	query.SetQuestion(name, qtype)
	client := &dns.Client{Timeout: relayTimeout}
	response, _, err := client.Exchange(query, s.config.dnsAddr)
	if err != nil {
		return nil, fmt.Errorf("%s query for %s to %s: %w", dns.TypeToString[qtype], name, s.config.dnsAddr, err)
	}
	return response.Answer, nil
}
