package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// sinkCommandLimit bounds the commands of one sink session.
const sinkCommandLimit = 100000

// sinkSessionTimeout bounds one read of a sink session.
const sinkSessionTimeout = time.Minute

// relaySink is the next hop of the relay scenario: an AMTP server on
// loopback that accepts every message, matches it to its send time by the
// load ID header and records the end-to-end delivery latency. It can also
// serve the PKI's DNS zone with the SRV record that routes the relay
// domain to it.
type relaySink struct {
	g        *generator
	listener net.Listener
	dns      *dnsserver.Server
	rec      *recorder
	domain   string

	mu   sync.Mutex
	sent map[int64]time.Time
	// conns are the open sessions, which close ends.
	conns map[net.Conn]bool

	sessions sync.WaitGroup
}

func startRelaySink(ctx context.Context, g *generator) (*relaySink, error) {
	m := g.cfg.PKI
	domain := g.cfg.relayDomain()
	listen := g.cfg.SinkListen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	listenAddr, err := netip.ParseAddrPort(listen)
	if err != nil || !listenAddr.Addr().IsLoopback() {
		return nil, invalidf("sink address %q must be a loopback IP:PORT such as 127.0.0.1:0", listen)
	}

	issued, err := m.Issue(pki.IssueRequest{
		Issuer:      pki.PublicCA,
		CommonName:  domain,
		DNSNames:    []string{domain},
		IPAddresses: []net.IP{listenAddr.Addr().AsSlice()},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("issue the relay sink's certificate for %s: %w", domain, err)
	}
	cert, err := issued.TLSCertificate()
	if err != nil {
		return nil, fmt.Errorf("load the relay sink's certificate: %w", err)
	}

	listener, err := tls.Listen("tcp", listen, &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
	})
	if err != nil {
		return nil, fmt.Errorf("start the relay sink on %s: %w; pass another --sink-listen", listen, err)
	}

	s := &relaySink{g: g, listener: listener, rec: newRecorder(), domain: domain,
		sent: map[int64]time.Time{}, conns: map[net.Conn]bool{}}
	g.recorders = append(g.recorders, s.rec)

	if g.cfg.DNSListen != "" {
		if err := s.serveDNS(ctx); err != nil {
			listener.Close()
			return nil, err
		}
	}

	go s.accept()
	g.cfg.Logger.Info("load: relay sink started", "addr", listener.Addr().String(), "domain", domain, "dns", g.cfg.DNSListen)
	return s, nil
}

// serveDNS serves the PKI's zone plus the relay domain's SRV and A
// records on cfg.DNSListen.
//
// NOTE: each shard of a sharded relay run starts its own sink. A server
// resolves through one DNS address, so only the shard that serves it
// receives deliveries, and the others count their messages as undelivered.
func (s *relaySink) serveDNS(ctx context.Context) error {
	m := s.g.cfg.PKI
	zoneText, err := os.ReadFile(m.Path(m.ZoneFile))
	if err != nil {
		return fmt.Errorf("read the PKI zone file: %w", err)
	}
	addr := netip.MustParseAddrPort(s.listener.Addr().String())
	records := fmt.Sprintf("\n%s. 300 IN SRV 0 0 %d %s.\n%s. 300 IN A %s\n",
		"_amtp._tcp."+s.domain, addr.Port(), s.domain, s.domain, addr.Addr())

	zone, err := dnsserver.ParseZone(strings.NewReader(string(zoneText)+records), "", m.Path(m.ZoneFile))
	if err != nil {
		return fmt.Errorf("add the relay sink's records to the PKI zone: %w", err)
	}
	s.dns, err = dnsserver.Start(ctx, s.g.cfg.DNSListen, zone, s.g.cfg.Logger)
	if err != nil {
		return fmt.Errorf("serve DNS for the relay sink on %s: %w; pass another --dns-listen", s.g.cfg.DNSListen, err)
	}
	return nil
}

// expect registers a message whose end of data is being sent now.
func (s *relaySink) expect(id int64) {
	s.mu.Lock()
	s.sent[id] = time.Now()
	s.mu.Unlock()
}

// forget removes a message the server did not accept.
func (s *relaySink) forget(id int64) {
	s.mu.Lock()
	delete(s.sent, id)
	s.mu.Unlock()
}

// pending returns the messages sent and not yet received.
func (s *relaySink) pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.sent))
}

func (s *relaySink) received(id int64) {
	now := time.Now()
	s.mu.Lock()
	sent, ok := s.sent[id]
	delete(s.sent, id)
	s.mu.Unlock()
	if !ok {
		s.g.cfg.Logger.Warn("load: relay sink received a message it did not expect", "load_id", id)
		return
	}
	s.rec.recordDelivery(now.Sub(sent))
	s.g.timeline.delivered(now)
}

func (s *relaySink) accept() {
	s.sessions.Add(1)
	defer s.sessions.Done()
	for {
		conn, err := s.listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.g.cfg.Logger.Warn("load: relay sink accept failed", "error", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		s.conns[conn] = true
		s.mu.Unlock()
		s.sessions.Go(func() {
			defer func() {
				conn.Close()
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
			}()
			if err := s.serve(conn); err != nil {
				s.g.cfg.Logger.Debug("load: relay sink session ended", "remote", conn.RemoteAddr().String(), "error", err)
			}
		})
	}
}

// serve runs one sink session: it accepts every command a relaying MTA
// sends and every message.
func (s *relaySink) serve(conn net.Conn) error {
	reader := bufio.NewReaderSize(conn, 64*1024)
	writer := bufio.NewWriter(conn)
	send := func(lines string) error {
		writer.WriteString(lines)
		return writer.Flush()
	}

	if err := send("220 " + s.domain + " amtpkit load sink ready\r\n"); err != nil {
		return err
	}
	for range sinkCommandLimit {
		conn.SetDeadline(time.Now().Add(sinkSessionTimeout))
		line, err := reader.ReadString('\n')
		if err != nil {
			return err
		}
		verb, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			err = send("250-" + s.domain + "\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SIZE 104857600\r\n")
		case "HELO":
			err = send("250 " + s.domain + "\r\n")
		case "MAIL", "RCPT", "RSET", "NOOP":
			err = send("250 2.0.0 OK\r\n")
		case "DATA":
			err = s.data(reader, send)
		case "QUIT":
			return send("221 2.0.0 bye\r\n")
		default:
			err = send("502 5.5.1 command not implemented\r\n")
		}
		if err != nil {
			return err
		}
	}
	return send("421 4.7.0 too many commands\r\n")
}

// data reads a message up to the "." line and records its delivery.
func (s *relaySink) data(reader *bufio.Reader, send func(string) error) error {
	if err := send("354 go ahead\r\n"); err != nil {
		return err
	}

	id := int64(-1)
	inHeader := true
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			return err
		}
		text := strings.TrimRight(line, "\r\n")
		if text == "." {
			break
		}
		if text == "" {
			inHeader = false
		}
		if name, value, ok := strings.Cut(text, ":"); inHeader && ok && strings.EqualFold(name, loadIDHeader) {
			if n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil {
				id = n
			}
		}
	}

	if id >= 0 {
		s.received(id)
	}
	return send("250 2.0.0 OK\r\n")
}

// close stops the sink, its sessions and its DNS server.
func (s *relaySink) close() {
	s.listener.Close()
	s.mu.Lock()
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	s.sessions.Wait()
	if s.dns != nil {
		s.dns.Close()
	}
}
