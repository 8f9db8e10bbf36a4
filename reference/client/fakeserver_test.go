package client_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// silenceWindow is how long the fake server waits for unexpected bytes
// after a command that a client without PIPELINING must wait on.
const silenceWindow = 200 * time.Millisecond

// fakeServer is a scripted AMTP server on 127.0.0.1 for checks that amtpd
// cannot make: it advertises the EHLO lines a test chooses, records every
// command line and DATA section exactly as received, and replies from a
// table. It serves one connection at a time.
//
// When its EHLO lines include PIPELINING, it replies to MAIL and RCPT only
// after it has read the DATA command, so a client that waits for each
// reply times out. Without PIPELINING it checks that nothing arrives
// within silenceWindow after MAIL and after each RCPT, and records a
// violation otherwise.
type fakeServer struct {
	addr string

	// greeting is the first reply; the default is a 220 reply.
	greeting string
	// ehlo lists the lines of the EHLO reply after the first.
	ehlo []string
	// replies overrides the reply to a command line, looked up first by
	// the whole line and then by the verb. "." is the reply after the
	// message data.
	replies map[string]string
	// hangOn is a verb that gets no reply: the server waits until the
	// client gives up.
	hangOn string

	mu         sync.Mutex
	commands   []string
	data       []string
	violations []string
}

// startFakeServer listens on 127.0.0.1 with the PKI's server certificate
// and requires a client certificate. It stops when the spec ends.
func startFakeServer(m *pki.Manifest, f *fakeServer) *fakeServer {
	GinkgoHelper()
	cert, err := m.TLSCertificate(pki.CertServer)
	Expect(err).NotTo(HaveOccurred())

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
	})
	Expect(err).NotTo(HaveOccurred())
	f.addr = ln.Addr().String()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.serve(conn)
		}
	}()
	DeferCleanup(func() {
		ln.Close()
		Eventually(done, testTimeout).Should(BeClosed())
	})
	return f
}

// Commands returns the command lines received so far.
func (f *fakeServer) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.commands)
}

// Verbs returns the verbs of the command lines received so far.
func (f *fakeServer) Verbs() []string {
	var verbs []string
	for _, line := range f.Commands() {
		verb, _, _ := strings.Cut(line, " ")
		verbs = append(verbs, verb)
	}
	return verbs
}

// Data returns the DATA sections received so far, as sent on the wire,
// dot-stuffing and the final "." CRLF included.
func (f *fakeServer) Data() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.data)
}

// Violations returns the protocol violations seen so far.
func (f *fakeServer) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

func (f *fakeServer) record(list *[]string, item string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*list = append(*list, item)
}

func (f *fakeServer) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testTimeout))
	r := bufio.NewReader(conn)

	greeting := f.greeting
	if greeting == "" {
		greeting = "220 fake.example.test AMTP service ready"
	}
	if _, err := fmt.Fprintf(conn, "%s\r\n", greeting); err != nil {
		return
	}

	pipelining := slices.Contains(f.ehlo, "PIPELINING")
	var (
		pending  []string // replies held back in a pipelined group
		mailOK   bool
		accepted int
	)
	for {
		line, err := f.readLine(r)
		if err != nil {
			return
		}
		f.record(&f.commands, line)
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")

		if verb == f.hangOn {
			r.ReadByte() // returns when the client closes or the deadline passes
			return
		}

		reply := f.replyTo(line, verb)
		startData := false
		switch verb {
		case "EHLO":
			lines := append([]string{"fake.example.test greets the client"}, f.ehlo...)
			var b strings.Builder
			for i, text := range lines {
				separator := "-"
				if i == len(lines)-1 {
					separator = " "
				}
				fmt.Fprintf(&b, "250%s%s\r\n", separator, text)
			}
			reply = strings.TrimSuffix(b.String(), "\r\n")

		case "MAIL", "RCPT":
			if verb == "MAIL" {
				mailOK, accepted = strings.HasPrefix(reply, "2"), 0
			} else if mailOK && strings.HasPrefix(reply, "2") {
				accepted++
			}
			if pipelining {
				pending = append(pending, reply)
				continue
			}
			f.expectSilence(conn, r, verb)

		case "DATA":
			if !mailOK || accepted == 0 {
				reply = "554 5.5.1 No valid recipients"
			}
			startData = strings.HasPrefix(reply, "354")
			pending = append(pending, reply)
			reply = strings.Join(pending, "\r\n")
			pending = nil

		case "QUIT":
			fmt.Fprintf(conn, "%s\r\n", reply)
			return
		}

		if _, err := fmt.Fprintf(conn, "%s\r\n", reply); err != nil {
			return
		}
		if startData {
			data, err := readRawData(r)
			if err != nil {
				return
			}
			f.record(&f.data, data)
			if _, err := fmt.Fprintf(conn, "%s\r\n", f.replyTo(".", ".")); err != nil {
				return
			}
		}
	}
}

// readLine reads one command line and records a violation unless it ends
// in CRLF.
func (f *fakeServer) readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") {
		f.record(&f.violations, fmt.Sprintf("command line %q does not end in CRLF", line))
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// expectSilence records a violation when the client sends anything within
// silenceWindow after verb, before it got the reply.
func (f *fakeServer) expectSilence(conn net.Conn, r *bufio.Reader, verb string) {
	conn.SetReadDeadline(time.Now().Add(silenceWindow))
	_, err := r.Peek(1)
	if err == nil {
		f.record(&f.violations, "the client sent more before the reply to "+verb)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		f.record(&f.violations, fmt.Sprintf("reading after %s failed: %v", verb, err))
	}
	conn.SetReadDeadline(time.Now().Add(testTimeout))
}

// replyTo returns the scripted reply to a command line, or the default for
// its verb.
func (f *fakeServer) replyTo(line, verb string) string {
	if reply, ok := f.replies[line]; ok {
		return reply
	}
	if reply, ok := f.replies[verb]; ok {
		return reply
	}
	switch verb {
	case "MAIL":
		return "250 2.1.0 Sender OK"
	case "RCPT":
		return "250 2.1.5 Recipient OK"
	case "DATA":
		return "354 Start mail input"
	case ".":
		return "250 2.0.0 OK: queued"
	case "QUIT":
		return "221 2.0.0 Bye"
	case "AUTH":
		return "235 2.7.0 Authentication successful"
	case "RSET", "NOOP":
		return "250 2.0.0 OK"
	}
	return "500 5.5.1 Command unrecognized"
}

// readRawData reads a DATA section up to and including CRLF "." CRLF, as
// it is on the wire, at most 1 MiB.
func readRawData(r *bufio.Reader) (string, error) {
	var data []byte
	for len(data) < 1<<20 {
		line, err := r.ReadBytes('\n')
		data = append(data, line...)
		if err != nil {
			return "", err
		}
		if bytes.Equal(data, []byte(".\r\n")) || bytes.HasSuffix(data, []byte("\r\n.\r\n")) {
			return string(data), nil
		}
	}
	return "", errors.New("DATA section over 1 MiB")
}
