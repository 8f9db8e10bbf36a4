package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/reference/delivery"
	"github.com/amtp-toolkit/amtp/reference/queue"
)

// spoolDeliverer makes accepted messages durable in a spool and nothing
// more: the session's 250 reply waits for exactly the work that the
// durability promise needs.
type spoolDeliverer struct{ spool *queue.Spool }

func (d spoolDeliverer) Deliver(ctx context.Context, env *delivery.Envelope, msg []byte) error {
	qe := &queue.Envelope{ID: env.ID, From: env.From, MPC: env.MPC.String(), ReceivedAt: env.ReceivedAt}
	for _, r := range env.Recipients {
		qe.Recipients = append(qe.Recipients, queue.Recipient{Address: r})
	}
	_, err := d.spool.Put(ctx, qe, msg)
	return err
}

// messageBody is the 1 KiB body of every benchmark message.
var messageBody = "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 16)

// BenchmarkAcceptDurable measures messages per second accepted with a 250
// reply after a durable spool commit, over sessions concurrent mutual-TLS
// sessions that each send messages in a loop. Each sub-benchmark runs the
// spool with per-file fsync and with syncfs, and, as the ceiling, with no
// spool at all.
func BenchmarkAcceptDurable(b *testing.B) {
	for _, mode := range []string{"none", "fsync", "syncfs"} {
		for _, sessions := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/sessions=%d", mode, sessions), func(b *testing.B) {
				if mode == "syncfs" {
					if err := queue.SyncFilesystemSupported(); err != nil {
						b.Skip(err)
					}
				}
				if mode == "none" {
					// The ceiling: the same sessions with no disk write.
					addr, m := benchServerWith(b, discard{}, pki.KeyECDSAP256)
					runAcceptLoad(b, addr, m, sessions)
					return
				}
				spool, err := queue.Open(filepath.Join(b.TempDir(), "spool"), queue.Options{SyncFilesystem: mode == "syncfs", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				defer spool.Close()
				addr, m := benchServerWith(b, spoolDeliverer{spool}, pki.KeyECDSAP256)
				runAcceptLoad(b, addr, m, sessions)
			})
		}
	}
}

func runAcceptLoad(b *testing.B, addr string, m *pki.Manifest, sessions int) {
	cert, err := m.TLSCertificate(pki.CertClient)
	if err != nil {
		b.Fatal(err)
	}
	roots, err := m.CAPool(pki.PublicCA)
	if err != nil {
		b.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "mx.example.test", Certificates: []tls.Certificate{cert}}

	// Open every session before the clock starts.
	conns := make([]*benchConn, sessions)
	for i := range conns {
		if conns[i], err = openBenchConn(addr, cfg); err != nil {
			b.Fatal(err)
		}
		defer conns[i].conn.Close()
	}

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i, c := range conns {
		n := b.N / sessions
		if i < b.N%sessions {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n; j++ {
				if err := c.send(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

type benchConn struct {
	conn *tls.Conn
	r    *bufio.Reader
}

func openBenchConn(addr string, cfg *tls.Config) (*benchConn, error) {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	c := &benchConn{conn: conn, r: bufio.NewReader(conn)}
	if err := c.expect("220"); err != nil {
		return nil, err
	}
	if err := c.step("EHLO client.example.test\r\n", "250"); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *benchConn) expect(code string) error {
	c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
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

func (c *benchConn) step(cmd, code string) error {
	if _, err := io.WriteString(c.conn, cmd); err != nil {
		return err
	}
	return c.expect(code)
}

// send runs one pipelined mail transaction.
func (c *benchConn) send() error {
	if _, err := io.WriteString(c.conn, "MAIL FROM:<b@example.org> MPC=per/individual\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"); err != nil {
		return err
	}
	for _, code := range []string{"250", "250", "354"} {
		if err := c.expect(code); err != nil {
			return err
		}
	}
	return c.step(messageBody+".\r\n", "250")
}

// BenchmarkFsyncLoop is the baseline for BenchmarkAcceptDurable on the
// same disk: per message, create a file, write 1 KiB, fsync, close,
// rename it into place and fsync the directory, from goroutines writers.
func BenchmarkFsyncLoop(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			dir := b.TempDir()
			for _, sub := range []string{"tmp", "msg"} {
				if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
					b.Fatal(err)
				}
			}
			data := []byte(messageBody)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				n := b.N / writers
				if w < b.N%writers {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n; i++ {
						name := fmt.Sprintf("%d-%d", w, i)
						if err := durableWrite(dir, name, data); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

func durableWrite(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "msg", name)); err != nil {
		return err
	}
	d, err := os.Open(filepath.Join(dir, "msg"))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
