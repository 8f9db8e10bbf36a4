// Package interrupttest runs the conformance suite in-process and cancels
// it while a check is in the middle of a session. Ginkgo runs one spec
// tree per process, so this test lives in a package of its own and uses
// Gomega without Ginkgo: a Ginkgo suite in this binary would take the one
// run that run.Run needs.
package interrupttest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/conformance/run"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// errTestInterrupt is the cause of the test's cancellation, which the
// result must name.
var errTestInterrupt = errors.New("test interrupt")

func TestRunCanceledMidSessionSkipsNotFails(t *testing.T) {
	g := NewWithT(t)
	m, err := pki.Init(pki.Options{Dir: filepath.Join(t.TempDir(), "pki")})
	g.Expect(err).NotTo(HaveOccurred())

	// The server greets and then never replies, so the first check waits
	// for the reply to its first command when the test cancels the run.
	commands := make(chan string, 1)
	target := startStalledServer(t, m, commands)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		select {
		case <-commands:
			cancel(errTestInterrupt)
		case <-time.After(time.Minute):
			cancel(errors.New("the server got no command within a minute"))
		}
	}()

	r, err := run.Run(ctx, run.Options{
		Target:      target,
		PKIDir:      m.Dir(),
		DNSListen:   "127.0.0.1:0",
		StepTimeout: 30 * time.Second,
	})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(r.Environment.Interrupted).To(BeTrue())
	g.Expect(r.Environment.InterruptReason).To(Equal(errTestInterrupt.Error()))

	cutShort := 0
	for _, c := range r.Clauses {
		g.Expect(c.Verdict).To(BeElementOf(result.Pass, result.Info, result.Skip, result.Untestable), "%s: %s", c.ID, c.Reason)
		if strings.HasPrefix(c.Reason, "not checked: the run was interrupted during this check (test interrupt)") {
			cutShort++
		}
	}
	g.Expect(cutShort).To(BeNumerically(">=", 1), "no clause records that the interruption cut its check short")

	notRun := 0
	for _, c := range r.Clauses {
		if c.Reason == "not run: the run was interrupted before this check (test interrupt)" {
			notRun++
		}
	}
	g.Expect(notRun).To(BeNumerically(">=", 1), "no clause records that the interruption kept its check from running")
}

// startStalledServer serves TLS on 127.0.0.1 with the PKI's server
// certificate. Each session gets a greeting, and the first command line
// of the server's life goes to commands; no command gets a reply.
func startStalledServer(t *testing.T, m *pki.Manifest, commands chan<- string) string {
	cert, err := m.TLSCertificate(pki.CertServer)
	if err != nil {
		t.Fatal(err)
	}
	listener, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var once sync.Once
	t.Cleanup(func() {
		listener.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(time.Minute))
				if _, err := conn.Write([]byte("220 mx.example.test stalled test server\r\n")); err != nil {
					return
				}
				reader := bufio.NewReader(conn)
				for {
					line, err := reader.ReadString('\n')
					if err != nil {
						return
					}
					once.Do(func() { commands <- line })
				}
			})
		}
	})
	return listener.Addr().String()
}
