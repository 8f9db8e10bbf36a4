package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/reference/config"
	"github.com/amtp-toolkit/amtp/reference/delivery"
	"github.com/amtp-toolkit/amtp/reference/maildir"
	"github.com/amtp-toolkit/amtp/reference/resolver"
	"github.com/amtp-toolkit/amtp/reference/server"
)

// discard is a Deliverer that drops every message, to measure the session
// without disk writes.
type discard struct{}

func (discard) Deliver(context.Context, *delivery.Envelope, []byte) error { return nil }

// benchServer starts an in-process server on 127.0.0.1 with a fixture PKI
// and the fixture DNS server, and returns its address and the manifest.
// With fsync set it delivers to Maildir, else it drops every message.
func benchServer(b *testing.B, fsync bool, keyType pki.KeyType) (string, *pki.Manifest) {
	if !fsync {
		return benchServerWith(b, discard{}, keyType)
	}
	return benchServerWith(b, nil, keyType)
}

// benchServerWith is benchServer with the given deliverer; nil means
// Maildir delivery.
func benchServerWith(b *testing.B, deliverer delivery.Deliverer, keyType pki.KeyType) (string, *pki.Manifest) {
	dir := b.TempDir()
	m, err := pki.Init(pki.Options{Dir: filepath.Join(dir, "pki"), KeyType: keyType})
	if err != nil {
		b.Fatal(err)
	}
	zone, err := dnsserver.LoadZone(m.Path(m.ZoneFile))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	dns, err := dnsserver.Start(ctx, "127.0.0.1:0", zone, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dns.Close() })

	serverCert, _ := m.Cert(pki.CertServer)
	var publicCA string
	for _, ca := range m.CAs {
		if ca.Name == pki.PublicCA {
			publicCA = m.Path(ca.Cert)
		}
	}
	cfgText := fmt.Sprintf(`
[tls]
cert = %q
key = %q
[dns]
server = %q
[public]
listen = ["127.0.0.1:0"]
client_ca = [%q]
[[domain]]
name = "example.test"
[delivery]
maildir = %q
[limits]
max_sessions_per_ip = 1000
`, m.Path(serverCert.Cert), m.Path(serverCert.Key), dns.Addr(), publicCA, filepath.Join(dir, "maildir"))
	cfgPath := filepath.Join(dir, "amtpd.toml")
	if err := writeFile(cfgPath, cfgText); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		b.Fatal(err)
	}

	if deliverer == nil {
		deliverer, err = maildir.New(cfg.Delivery.Maildir, "bench")
		if err != nil {
			b.Fatal(err)
		}
	}
	srv, err := server.New(server.Options{
		Config:    cfg,
		Resolver:  resolver.NewDNS(dns.Addr(), 2*time.Second),
		Deliverer: deliverer,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ctx)
	return srv.Addrs()["public"][0].String(), m
}

// runSession runs one session from the TCP connect to the reply to QUIT,
// sending messages messages of the standard test body.
func runSession(addr string, cfg *tls.Config, messages int) error {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)

	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("want %s, got %q", code, line)
			}
			if line[3] == ' ' {
				return nil
			}
		}
	}
	step := func(cmd, code string) error {
		if _, err := io.WriteString(conn, cmd); err != nil {
			return err
		}
		return expect(code)
	}

	if err := expect("220"); err != nil {
		return err
	}
	if err := step("EHLO client.example.test\r\n", "250"); err != nil {
		return err
	}
	for i := 0; i < messages; i++ {
		if err := step("MAIL FROM:<b@example.org> MPC=per/individual\r\n", "250"); err != nil {
			return err
		}
		if err := step("RCPT TO:<alice@example.test>\r\n", "250"); err != nil {
			return err
		}
		if err := step("DATA\r\n", "354"); err != nil {
			return err
		}
		if err := step("Subject: bench\r\n\r\n"+strings.Repeat("0123456789abcdef\r\n", 64)+".\r\n", "250"); err != nil {
			return err
		}
	}
	return step("QUIT\r\n", "221")
}

func benchmarkSession(b *testing.B, keyType pki.KeyType, messages int, fsync bool) {
	addr, m := benchServer(b, fsync, keyType)
	cert, err := m.TLSCertificate(pki.CertClient)
	if err != nil {
		b.Fatal(err)
	}
	roots, err := m.CAPool(pki.PublicCA)
	if err != nil {
		b.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "mx.example.test", Certificates: []tls.Certificate{cert}}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := runSession(addr, cfg, messages); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSession measures one full session on loopback, one client at a
// time: TCP connect, mutual-TLS handshake (TLS 1.3, no resumption), the
// identity checks with a PTR lookup against the fixture DNS server, EHLO,
// and QUIT, with no message or one 1 KiB message.
func BenchmarkSession(b *testing.B) {
	b.Run("ecdsa/handshake-ehlo-quit", func(b *testing.B) { benchmarkSession(b, pki.KeyECDSAP256, 0, false) })
	b.Run("ecdsa/one-message-discard", func(b *testing.B) { benchmarkSession(b, pki.KeyECDSAP256, 1, false) })
	b.Run("ecdsa/one-message-maildir-fsync", func(b *testing.B) { benchmarkSession(b, pki.KeyECDSAP256, 1, true) })
	b.Run("rsa/handshake-ehlo-quit", func(b *testing.B) { benchmarkSession(b, pki.KeyRSA2048, 0, false) })
}
