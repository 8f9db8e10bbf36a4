package loadgen_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// testServer is a test-only AMTP server on 127.0.0.1. It greets and replies to
// EHLO, MAIL, RCPT, DATA and QUIT. Its options make it stall, reject some
// connections or trust another CA.
type testServer struct {
	listener net.Listener
	start    time.Time
	// stallEvery and stallFor make the server hold every greeting that
	// falls into the last stallFor of each stallEvery period until the
	// period ends: the whole server stops for stallFor.
	stallEvery, stallFor time.Duration
	// rejectEvery makes every n-th connection get "421 4.3.2" as greeting.
	rejectEvery int64
	// silent makes the server never send its greeting.
	silent bool
	// serialDelay makes greetings go out one at a time, each after this
	// delay: a server with a capacity of 1/serialDelay connections per
	// second.
	serialDelay time.Duration
	serial      sync.Mutex
	// replyDelay delays every reply after the greeting.
	replyDelay time.Duration

	connections atomic.Int64
	wg          sync.WaitGroup
}

type testServerOptions struct {
	stallEvery, stallFor time.Duration
	rejectEvery          int64
	silent               bool
	serialDelay          time.Duration
	replyDelay           time.Duration
	// clientCA is the CA the server trusts for client certificates; the
	// default is the public CA.
	clientCA string
}

func startTestServer(opts testServerOptions) *testServer {
	cert, err := manifest.TLSCertificate(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())
	caName := opts.clientCA
	if caName == "" {
		caName = pki.PublicCA
	}
	pool, err := manifest.CAPool(caName)
	Expect(err).NotTo(HaveOccurred())

	listener, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	})
	Expect(err).NotTo(HaveOccurred())

	s := &testServer{
		listener: listener, start: time.Now(),
		stallEvery: opts.stallEvery, stallFor: opts.stallFor,
		rejectEvery: opts.rejectEvery, silent: opts.silent, serialDelay: opts.serialDelay,
		replyDelay: opts.replyDelay,
	}
	s.wg.Go(s.accept)
	DeferCleanup(func() {
		listener.Close()
		s.wg.Wait()
	})
	return s
}

func (s *testServer) addr() string {
	return s.listener.Addr().String()
}

func (s *testServer) accept() {
	var sessions sync.WaitGroup
	defer sessions.Wait()
	for {
		conn, err := s.listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		n := s.connections.Add(1)
		sessions.Go(func() {
			defer conn.Close()
			s.serve(conn.(*tls.Conn), n)
		})
	}
}

// stallUntil returns when a greeting requested at now may go out.
func (s *testServer) stallUntil(now time.Time) time.Time {
	if s.stallEvery == 0 {
		return now
	}
	elapsed := now.Sub(s.start)
	intoPeriod := elapsed % s.stallEvery
	if intoPeriod < s.stallEvery-s.stallFor {
		return now
	}
	return now.Add(s.stallEvery - intoPeriod)
}

func (s *testServer) serve(conn *tls.Conn, n int64) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := conn.Handshake(); err != nil {
		return
	}
	if s.silent {
		// Hold the connection until the client gives up.
		buf := make([]byte, 1)
		conn.Read(buf)
		return
	}
	time.Sleep(time.Until(s.stallUntil(time.Now())))
	if s.serialDelay > 0 {
		s.serial.Lock()
		time.Sleep(s.serialDelay)
		s.serial.Unlock()
	}

	writer := bufio.NewWriter(conn)
	greeted := false
	send := func(line string) bool {
		if greeted && s.replyDelay > 0 {
			time.Sleep(s.replyDelay)
		}
		greeted = true
		writer.WriteString(line + "\r\n")
		return writer.Flush() == nil
	}
	if s.rejectEvery > 0 && n%s.rejectEvery == 0 {
		send("421 4.3.2 test server is busy")
		return
	}
	if !send("220 mx.example.test test server ready") {
		return
	}

	reader := bufio.NewReader(conn)
	for range 1000 {
		line, err := reader.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			send("250-mx.example.test\r\n250-PIPELINING\r\n250 MPC")
		case "MAIL", "RCPT":
			send("250 2.0.0 OK")
		case "DATA":
			send("354 go ahead")
			for {
				line, err := reader.ReadString('\n')
				if err != nil {
					return
				}
				if line == ".\r\n" {
					break
				}
			}
			send("250 2.0.0 OK: queued")
		case "QUIT":
			send("221 2.0.0 bye")
			return
		default:
			send("502 5.5.1 not implemented")
		}
	}
}
