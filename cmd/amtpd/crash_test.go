package main_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// Bounds of the crash test. The kill phase ends after crashKills kills or
// crashKillPhase, whichever comes first, so the spec ends within its
// SpecTimeout.
const (
	crashKills        = 20
	crashKillPhase    = 35 * time.Second
	crashMinUptime    = 50 * time.Millisecond
	crashMaxUptime    = 400 * time.Millisecond
	crashMaxMessages  = 5000
	crashMaxFailures  = 200 // consecutive connection or transaction failures
	crashRetryPause   = 20 * time.Millisecond
	crashMessagePause = 5 * time.Millisecond // keeps the load modest on two cores
	crashIOTimeout    = 5 * time.Second
)

// crashClient sends messages one after another to a server that is killed
// and restarted under it, and records which ones got 250 to DATA. Its
// methods never call Expect, because they run on their own goroutine.
type crashClient struct {
	addr   string
	source string // source IP address matching the certificate's PTR record
	ehlo   string
	tls    *tls.Config
	rng    *rand.Rand

	acked     []string // tokens of the messages that got 250
	sent      int      // messages whose data was sent in full
	connects  int
	failures  int // failed connections and transactions
	lastError error
}

// crashConn is one open session of crashClient.
type crashConn struct {
	conn *tls.Conn
	r    *bufio.Reader
}

// run sends messages until stop is closed, and returns an error only when
// it gave up: too many failures in a row or too many messages.
func (cc *crashClient) run(stop <-chan struct{}) error {
	var conn *crashConn
	defer func() {
		if conn != nil {
			conn.conn.Close()
		}
	}()
	pause := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-time.After(d):
			return true
		}
	}

	consecutive, onThisConn, reuse := 0, 0, 0
	for next := 0; next < crashMaxMessages; {
		select {
		case <-stop:
			return nil
		default:
		}
		if consecutive > crashMaxFailures {
			return fmt.Errorf("gave up after %d failures in a row, the last: %w", consecutive, cc.lastError)
		}

		if conn == nil {
			c, err := cc.connect()
			if err != nil {
				cc.failures++
				consecutive++
				cc.lastError = err
				if !pause(crashRetryPause) {
					return nil
				}
				continue
			}
			conn, onThisConn, reuse = c, 0, 1+cc.rng.IntN(4)
			cc.connects++
		}

		token := fmt.Sprintf("crash-%05d", next)
		next++
		if err := cc.send(conn, token); err != nil {
			cc.failures++
			consecutive++
			cc.lastError = err
			conn.conn.Close()
			conn = nil
			continue
		}
		cc.acked = append(cc.acked, token)
		consecutive = 0

		onThisConn++
		if onThisConn >= reuse {
			conn.command("QUIT", 221)
			conn.conn.Close()
			conn = nil
		}
		if !pause(crashMessagePause) {
			return nil
		}
	}
	return fmt.Errorf("sent the maximum of %d messages before the test stopped", crashMaxMessages)
}

func (cc *crashClient) connect() (*crashConn, error) {
	dialer := &net.Dialer{Timeout: crashIOTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(cc.source)}}
	raw, err := dialer.Dial("tcp", cc.addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cc.tls)
	conn.SetDeadline(time.Now().Add(crashIOTimeout))
	if err := conn.Handshake(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	c := &crashConn{conn: conn, r: bufio.NewReader(conn)}
	if err := c.expect(220); err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if err := c.command("EHLO "+cc.ehlo, 250); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// send runs one mail transaction with token in the Subject field. It
// returns nil only when the server replied 250 to DATA.
func (cc *crashClient) send(c *crashConn, token string) error {
	steps := []struct {
		line string
		code int
	}{
		{"MAIL FROM:<crash@example.org> MPC=per/individual", 250},
		{"RCPT TO:<alice@example.test>", 250},
		{"DATA", 354},
	}
	for _, step := range steps {
		if err := c.command(step.line, step.code); err != nil {
			return err
		}
	}
	body := "From: crash@example.org\r\nTo: alice@example.test\r\nSubject: " + token + "\r\n\r\nSent while amtpd was being killed.\r\n.\r\n"
	c.conn.SetDeadline(time.Now().Add(crashIOTimeout))
	if _, err := c.conn.Write([]byte(body)); err != nil {
		return err
	}
	cc.sent++
	return c.expect(250)
}

// command sends one command line and reads a reply with the given code.
func (c *crashConn) command(line string, code int) error {
	c.conn.SetDeadline(time.Now().Add(crashIOTimeout))
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		return err
	}
	if err := c.expect(code); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(line)[0], err)
	}
	return nil
}

// expect reads one reply, which may have several lines, and returns an
// error unless its code is code.
func (c *crashConn) expect(code int) error {
	c.conn.SetDeadline(time.Now().Add(crashIOTimeout))
	for range 100 {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		if len(line) < 4 {
			return fmt.Errorf("malformed reply line %q", line)
		}
		if line[3] == '-' {
			continue
		}
		got, err := strconv.Atoi(line[:3])
		if err != nil || got != code {
			return fmt.Errorf("expected %d, got %q", code, strings.TrimSpace(line))
		}
		return nil
	}
	return errors.New("reply longer than 100 lines")
}

// freeLoopbackPort returns a TCP port that is free on 127.0.0.1 right now.
func freeLoopbackPort() int {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var crashSubject = regexp.MustCompile(`(?m)^Subject: (crash-\d+)\r$`)

var _ = Describe("amtpd killed with SIGKILL", func() {
	It("delivers every message it acknowledged", SpecTimeout(60*time.Second), func(ctx SpecContext) {
		began := time.Now()
		st := newStage("")
		m := st.manifest
		addr := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort())
		config := st.customConfig("crash", customServer{
			listen:   addr,
			logLevel: "info",
			queue:    "retry_base = \"100ms\"\nretry_max_interval = \"200ms\"",
		})
		srv := st.runAmtpd("crash", config, false, false)
		Expect(srv.public).To(Equal(addr))

		entry, err := m.Cert(pki.CertClient)
		Expect(err).NotTo(HaveOccurred())
		cert, err := m.TLSCertificate(pki.CertClient)
		Expect(err).NotTo(HaveOccurred())
		roots, err := m.CAPool(pki.PublicCA)
		Expect(err).NotTo(HaveOccurred())
		seed := uint64(GinkgoRandomSeed())
		cc := &crashClient{
			addr:   addr,
			source: entry.SourceAddr,
			ehlo:   entry.CN,
			tls:    &tls.Config{RootCAs: roots, ServerName: "mx." + m.Domain, Certificates: []tls.Certificate{cert}},
			rng:    rand.New(rand.NewPCG(seed, 1)),
		}

		stop := make(chan struct{})
		var stopOnce sync.Once
		stopClient := func() { stopOnce.Do(func() { close(stop) }) }
		finished := make(chan struct{})
		var clientErr error
		go func() {
			defer GinkgoRecover()
			defer close(finished)
			clientErr = cc.run(stop)
		}()
		// The client must be gone before the spec's folders are removed,
		// also when the spec fails early.
		DeferCleanup(func() {
			stopClient()
			Eventually(finished, 2*crashIOTimeout).Should(BeClosed())
		})

		killer := rand.New(rand.NewPCG(seed, 2))
		kills := 0
		for kills < crashKills && time.Since(began) < crashKillPhase {
			uptime := crashMinUptime + time.Duration(killer.Int64N(int64(crashMaxUptime-crashMinUptime)))
			select {
			case <-time.After(uptime):
			case <-ctx.Done():
				Fail("the spec timed out during the kill phase")
			}
			srv.session.Kill()
			Eventually(srv.session, 5*time.Second).Should(gexec.Exit())
			kills++
			srv = st.runAmtpd("crash", config, false, false)
		}
		Expect(kills).To(Equal(crashKills), "kills before the kill phase ended")

		// Let the last server take messages for a while, then stop the
		// client.
		time.Sleep(crashMaxUptime)
		stopClient()
		Eventually(finished, 2*crashIOTimeout).Should(BeClosed())
		Expect(clientErr).NotTo(HaveOccurred())
		Expect(len(cc.acked)).To(BeNumerically(">=", 2*crashKills), "messages acknowledged")

		srv.settle()
		copies := map[string]int{}
		for _, msg := range srv.delivered("alice@example.test") {
			match := crashSubject.FindStringSubmatch(msg)
			Expect(match).NotTo(BeNil(), "a delivered message without a crash token:\n%s", msg)
			copies[match[1]]++
		}
		var missing []string
		for _, token := range cc.acked {
			if copies[token] == 0 {
				missing = append(missing, token)
			}
		}
		duplicates := 0
		for _, n := range copies {
			duplicates += n - 1
		}
		corrupt, err := os.ReadDir(filepath.Join(srv.spool, "corrupt"))
		Expect(err).NotTo(HaveOccurred())

		AddReportEntry("crash test", fmt.Sprintf(
			"%d kills in %s; %d messages acknowledged of %d sent in full; %d delivered, %d of them never acknowledged; %d duplicate copies; %d connections, %d failures; seed %d",
			kills, time.Since(began).Round(time.Millisecond), len(cc.acked), cc.sent,
			len(copies), len(copies)-(len(cc.acked)-len(missing)), duplicates, cc.connects, cc.failures, seed))
		Expect(missing).To(BeEmpty(), "acknowledged with 250 but not in the Maildir")
		Expect(corrupt).To(BeEmpty(), "spool files moved to corrupt/")
	})
})
