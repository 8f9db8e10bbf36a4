package run

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/amtp-toolkit/amtp/conformance/sink"
	"github.com/amtp-toolkit/amtp/conformance/specs"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// sinkDeniedReply is the reply of the denying sink to every RCPT, so that
// the server under test must bounce the message.
const sinkDeniedReply = "550 5.7.1 This sink of the conformance suite accepts no mail"

// relaySinks are the AMTP sinks of a run in DNS mode "serve", and the zone
// records that route their domains to them.
type relaySinks struct {
	accepting, denying, policy *specs.RelaySink
	// fallback is the domain whose first SRV target closes every
	// connection and whose second is the accepting sink.
	fallback *specs.SRVFallback
	closer   *closingListener
	servers  []*sink.Server
	// records are zone file lines: an _amtp._tcp SRV record and an A
	// record for each sink.
	records []string
}

// startRelaySinks starts three sinks on 127.0.0.1: one that accepts every
// message for sink.<domain>, one for sink-deny.<domain> that declares
// "MPC DENY=*/optout" and rejects every recipient with 550, and one for
// sink-policy.<domain> that declares specs.PolicySinkMPCLine and accepts every
// recipient. Each sink ends a session that sends no command within
// commandTimeout, so that a client that stalls is recorded in time.
func startRelaySinks(m *pki.Manifest, commandTimeout time.Duration) (*relaySinks, error) {
	loopback := netip.MustParseAddr("127.0.0.1")
	sinks := &relaySinks{}
	setups := []struct {
		domain string
		cfg    sink.Config
		target **specs.RelaySink
	}{
		{"sink." + m.Domain, sink.Config{}, &sinks.accepting},
		{"sink-deny." + m.Domain, sink.Config{MPCLines: []string{"MPC DENY=*/optout"}, RCPTReply: sinkDeniedReply}, &sinks.denying},
		{"sink-policy." + m.Domain, sink.Config{MPCLines: []string{specs.PolicySinkMPCLine}}, &sinks.policy},
	}
	for _, setup := range setups {
		cert, err := sink.IssueCertificate(m, pki.PublicCA, setup.domain, loopback)
		if err != nil {
			sinks.Close()
			return nil, err
		}
		cfg := setup.cfg
		cfg.Listen = loopback.String() + ":0"
		cfg.Hostname = setup.domain
		cfg.Certificate = cert
		cfg.CommandTimeout = commandTimeout
		server, err := sink.Start(cfg)
		if err != nil {
			sinks.Close()
			return nil, err
		}
		sinks.servers = append(sinks.servers, server)
		*setup.target = &specs.RelaySink{Domain: setup.domain, Server: server}
		sinks.records = append(sinks.records,
			fmt.Sprintf("_amtp._tcp.%s. IN SRV 0 0 %d %s.", setup.domain, server.Addr().Port(), setup.domain),
			fmt.Sprintf("%s. IN A %s", setup.domain, loopback))
	}
	if err := sinks.startFallback(m, loopback); err != nil {
		sinks.Close()
		return nil, err
	}
	return sinks, nil
}

// startFallback publishes two SRV records for sink-srv.<domain>: priority
// 10 for a listener that closes every connection at once, and priority 20
// for the accepting sink.
func (s *relaySinks) startFallback(m *pki.Manifest, loopback netip.Addr) error {
	closer, err := startClosingListener(loopback.String() + ":0")
	if err != nil {
		return err
	}
	s.closer = closer
	domain := "sink-srv." + m.Domain
	down := "sink-srv-down." + m.Domain
	s.fallback = &specs.SRVFallback{Domain: domain, Down: closer, Sink: s.accepting}
	s.records = append(s.records,
		fmt.Sprintf("_amtp._tcp.%s. IN SRV 10 0 %d %s.", domain, closer.Addr().Port(), down),
		fmt.Sprintf("%s. IN A %s", down, loopback),
		fmt.Sprintf("_amtp._tcp.%s. IN SRV 20 0 %d %s.", domain, s.accepting.Server.Addr().Port(), s.accepting.Domain))
	return nil
}

// Close stops the sinks.
func (s *relaySinks) Close() error {
	var errs []error
	if s.closer != nil {
		errs = append(errs, s.closer.Close())
	}
	return errors.Join(append(errs, closeAll(s.servers))...)
}

// maxLoggedConnections bounds the connection log of a closingListener.
const maxLoggedConnections = 1000

// closingListener accepts TCP connections, notes when each arrived and
// closes it at once, as an SRV target that is down. It implements
// specs.ConnectionLog.
type closingListener struct {
	listener net.Listener
	done     chan struct{}

	mu    sync.Mutex
	times []time.Time
}

func startClosingListener(addr string) (*closingListener, error) {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start the listener of the SRV fallback check on %s: %w", addr, err)
	}
	l := &closingListener{listener: listener, done: make(chan struct{})}
	go l.accept()
	return l, nil
}

func (l *closingListener) accept() {
	defer close(l.done)
	for {
		conn, err := l.listener.Accept()
		if err != nil {
			// Close ends the loop, and a closing listener needs no other
			// error handling: a missed connection only fails the check.
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		conn.Close()
		l.mu.Lock()
		if len(l.times) < maxLoggedConnections {
			l.times = append(l.times, time.Now())
		}
		l.mu.Unlock()
	}
}

// Addr returns the address the listener listens on.
func (l *closingListener) Addr() netip.AddrPort {
	return l.listener.Addr().(*net.TCPAddr).AddrPort()
}

// Connections returns when the connections since the time given arrived.
func (l *closingListener) Connections(since time.Time) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var times []time.Time
	for _, t := range l.times {
		if !t.Before(since) {
			times = append(times, t)
		}
	}
	return times
}

// Close stops the listener and waits for its loop.
func (l *closingListener) Close() error {
	err := l.listener.Close()
	<-l.done
	return err
}

func closeAll(servers []*sink.Server) error {
	var errs []error
	for _, server := range servers {
		errs = append(errs, server.Close())
	}
	return errors.Join(errs...)
}

// Domains of the sinks that the server under test reaches by a configured
// route, below the PKI's domain.
const (
	GatewaySinkLabel = "gateway"
	PrivateSinkLabel = "private-sink"
)

// routeSinks are the sinks that the server under test reaches by routes
// its operator configures, not by the suite's DNS. The gateway sink is a
// plain SMTP next hop, and the private sink an AMTP next hop with a
// private-CA certificate.
type routeSinks struct {
	gateway, private *specs.RelaySink
	servers          []*sink.Server
}

// startRouteSinks starts the sinks whose listen addresses are set. The
// gateway sink speaks plain SMTP for gateway.<domain>. The private sink
// serves a certificate from the PKI's private CA for private-sink.<domain>
// and the address it listens on.
func startRouteSinks(m *pki.Manifest, gatewayListen, privateListen string) (*routeSinks, error) {
	sinks := &routeSinks{}
	if gatewayListen != "" {
		domain := GatewaySinkLabel + "." + m.Domain
		server, err := sink.Start(sink.Config{Listen: gatewayListen, Hostname: domain, PlainText: true})
		if err != nil {
			return nil, fmt.Errorf("%w; pass another --gateway-sink", err)
		}
		sinks.servers = append(sinks.servers, server)
		sinks.gateway = &specs.RelaySink{Domain: domain, Server: server}
	}
	if privateListen != "" {
		domain := PrivateSinkLabel + "." + m.Domain
		addr, err := netip.ParseAddrPort(privateListen)
		if err != nil {
			sinks.Close()
			return nil, invalidf("--private-sink %q is not IP:PORT: %v", privateListen, err)
		}
		cert, err := sink.IssueCertificate(m, pki.PrivateCA, domain, addr.Addr())
		if err != nil {
			sinks.Close()
			return nil, err
		}
		server, err := sink.Start(sink.Config{Listen: privateListen, Hostname: domain, Certificate: cert})
		if err != nil {
			sinks.Close()
			return nil, fmt.Errorf("%w; pass another --private-sink", err)
		}
		sinks.servers = append(sinks.servers, server)
		sinks.private = &specs.RelaySink{Domain: domain, Server: server}
	}
	return sinks, nil
}

// Close stops the sinks.
func (s *routeSinks) Close() error {
	return closeAll(s.servers)
}
