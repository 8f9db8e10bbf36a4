package probe_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// serverTimeout bounds the life of every test server connection.
const serverTimeout = 5 * time.Second

// testServer runs a handler for each connection to a loopback listener.
type testServer struct {
	addr string
	// remotes receives the client address of each accepted connection.
	remotes chan netip.AddrPort
	// handshakes receives the server side of each TLS handshake. It is nil
	// for plain TCP servers.
	handshakes chan handshakeResult
}

type handshakeResult struct {
	remote netip.AddrPort
	state  tls.ConnectionState
	err    error
}

// startServer listens on listenAddr, such as "127.0.0.1:0", and runs handle
// for each connection. Each connection has a deadline of serverTimeout.
// Cleanup closes the listener and every connection and waits for the
// handlers to return.
func startServer(listenAddr string, handle func(net.Conn)) *testServer {
	GinkgoHelper()
	listener, err := net.Listen("tcp", listenAddr)
	Expect(err).NotTo(HaveOccurred())
	server := &testServer{addr: listener.Addr().String(), remotes: make(chan netip.AddrPort, 16)}

	var mu sync.Mutex
	var conns []net.Conn
	var handlers sync.WaitGroup
	handlers.Add(1)
	go func() {
		defer handlers.Done()
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			select {
			case server.remotes <- conn.RemoteAddr().(*net.TCPAddr).AddrPort():
			default:
			}
			_ = conn.SetDeadline(time.Now().Add(serverTimeout))

			handlers.Add(1)
			go func() {
				defer handlers.Done()
				defer conn.Close()
				handle(conn)
			}()
		}
	}()

	DeferCleanup(func() {
		listener.Close()
		mu.Lock()
		for _, conn := range conns {
			conn.Close()
		}
		mu.Unlock()
		done := make(chan struct{})
		go func() {
			handlers.Wait()
			close(done)
		}()
		Eventually(done).WithTimeout(serverTimeout).Should(BeClosed(), "test server handlers did not return")
	})
	return server
}

// startTLSServer runs handle for each connection whose server-side TLS
// handshake with config succeeds. Every handshake result goes to
// handshakes.
func startTLSServer(config *tls.Config, handle func(net.Conn)) *testServer {
	GinkgoHelper()
	results := make(chan handshakeResult, 16)
	server := startServer("127.0.0.1:0", func(conn net.Conn) {
		tlsConn := tls.Server(conn, config)
		err := tlsConn.Handshake()
		select {
		case results <- handshakeResult{
			remote: conn.RemoteAddr().(*net.TCPAddr).AddrPort(),
			state:  tlsConn.ConnectionState(),
			err:    err,
		}:
		default:
		}
		if err == nil {
			handle(tlsConn)
		}
	})
	server.handshakes = results
	return server
}

// serverConfig returns a TLS server configuration with the PKI's server
// certificate. With a client auth type other than tls.NoClientCert, it
// trusts client certificates from the CA called clientCA.
func serverConfig(clientAuth tls.ClientAuthType, clientCA string) *tls.Config {
	GinkgoHelper()
	cert, err := manifest.TLSCertificate(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())
	config := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: clientAuth}
	if clientCA != "" {
		config.ClientCAs, err = manifest.CAPool(clientCA)
		Expect(err).NotTo(HaveOccurred())
	}
	return config
}

// clientOptions returns probe options for a TLS connection to addr that
// trust the public CA and present the certificate called certName, or none
// if certName is empty.
func clientOptions(addr, certName string) probe.Options {
	GinkgoHelper()
	roots, err := manifest.CAPool(pki.PublicCA)
	Expect(err).NotTo(HaveOccurred())
	opts := probe.Options{
		Target:      addr,
		RootCAs:     roots,
		ServerName:  "mx." + manifest.Domain,
		StepTimeout: time.Second,
	}
	if certName != "" {
		cert, err := manifest.TLSCertificate(certName)
		Expect(err).NotTo(HaveOccurred())
		opts.Certificate = &cert
	}
	return opts
}

// dial dials with opts, expects success and closes the connection at
// cleanup.
func dial(opts probe.Options) *probe.Conn {
	GinkgoHelper()
	conn, err := probe.Dial(context.Background(), opts)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(conn.Close)
	return conn
}

// sendThenHold returns a handler that writes each chunk and then keeps the
// connection open until the client closes it or the deadline passes.
func sendThenHold(chunks ...string) func(net.Conn) {
	return func(conn net.Conn) {
		for _, chunk := range chunks {
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
		}
		hold(conn)
	}
}

// sendThenClose returns a handler that writes data and closes the
// connection.
func sendThenClose(data string) func(net.Conn) {
	return func(conn net.Conn) {
		_, _ = io.WriteString(conn, data)
	}
}

// hold reads and discards until the client closes the connection or the
// deadline passes.
func hold(conn net.Conn) {
	_, _ = io.Copy(io.Discard, conn)
}
