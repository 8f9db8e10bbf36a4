package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// readChunkSize is the size of one read from the connection.
const readChunkSize = 4096

// Conn is one probe connection.
//
// Send may run concurrently with ReadReply or ExpectClose. ReadReply and
// ExpectClose take turns. Close may be called at any time from any
// goroutine and wakes a blocked read or write.
type Conn struct {
	opts          Options
	transcript    *Transcript
	raw           *tapConn // the TCP connection
	conn          net.Conn // raw, or the TLS client over it
	local, remote netip.AddrPort

	writeMu sync.Mutex

	readMu sync.Mutex
	// pending contains bytes read from the connection that no reply has
	// consumed yet. It holds at most MaxLineLength+readChunkSize bytes.
	pending  []byte
	chunk    []byte
	recorder lineRecorder
	// stickyErr is a read error that arrived together with data. The next
	// read returns it.
	stickyErr error

	factsMu sync.Mutex
	facts   TLSFacts

	closeOnce sync.Once
	closeErr  error
}

// DialError reports a failed Dial. It carries the transcript and TLS facts
// recorded up to the failure.
type DialError struct {
	Target string
	// Stage is "tcp" when the TCP connect failed and "tls" when the TLS
	// handshake failed.
	Stage      string
	Err        error
	TLS        TLSFacts
	Transcript *Transcript
}

func (e *DialError) Error() string {
	if e.Stage == "tls" {
		return fmt.Sprintf("probe: TLS handshake with %s failed: %v", e.Target, e.Err)
	}
	return fmt.Sprintf("probe: TCP connect to %s failed: %v", e.Target, e.Err)
}

// Unwrap returns the cause, and ErrTimeout too if the step timed out.
func (e *DialError) Unwrap() []error {
	if isTimeout(e.Err) {
		return []error{e.Err, ErrTimeout}
	}
	return []error{e.Err}
}

// Dial connects to opts.Target and, unless opts.PlainTCP is set, runs the
// TLS client handshake.
//
// The TCP connect and the handshake each end at ctx's deadline, or after
// opts.StepTimeout if ctx has none. On failure Dial returns a *DialError
// with the transcript so far, and the connection is closed. With TLS 1.3
// the handshake can succeed even though the server rejects the client
// certificate, because the server checks it after the client finishes: the
// rejection then shows as a TLS alert on the first read.
func Dial(ctx context.Context, opts Options) (*Conn, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Conn{
		opts:       opts,
		transcript: NewTranscript(opts.MaxEventSize, opts.MaxTranscriptSize),
		chunk:      make([]byte, readChunkSize),
	}
	c.recorder = lineRecorder{transcript: c.transcript, maxLine: opts.MaxLineLength}

	if err := c.dialTCP(ctx); err != nil {
		return nil, c.dialError("tcp", err)
	}
	if opts.PlainTCP {
		c.transcript.Note("plain TCP mode: no TLS handshake")
		c.conn = c.raw
		return c, nil
	}
	if err := c.handshake(ctx); err != nil {
		c.Close()
		return nil, c.dialError("tls", err)
	}
	return c, nil
}

func (c *Conn) dialError(stage string, err error) *DialError {
	return &DialError{Target: c.opts.Target, Stage: stage, Err: err, TLS: c.TLS(), Transcript: c.transcript}
}

func (c *Conn) dialTCP(ctx context.Context) error {
	var dialer net.Dialer
	source := "an address the system chooses"
	if c.opts.Source.IsValid() {
		dialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(c.opts.Source, 0))
		source = c.opts.Source.String()
	}

	stepCtx, cancel := context.WithDeadline(ctx, c.stepDeadline(ctx))
	defer cancel()

	c.transcript.Note("TCP connect to %s from %s", c.opts.Target, source)
	conn, err := dialer.DialContext(stepCtx, "tcp", c.opts.Target)
	if err != nil {
		c.transcript.Note("TCP connect failed: %v", err)
		return err
	}

	c.raw = &tapConn{Conn: conn}
	if addr, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		c.local = addr.AddrPort()
	}
	if addr, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		c.remote = addr.AddrPort()
	}
	c.transcript.Note("TCP connected from %s to %s", c.local, c.remote)
	return nil
}

// stepDeadline returns ctx's deadline, or StepTimeout from now if ctx has
// none.
func (c *Conn) stepDeadline(ctx context.Context) time.Time {
	if deadline, ok := ctx.Deadline(); ok {
		return deadline
	}
	return time.Now().Add(c.opts.StepTimeout)
}

// Send writes data as it is. The write ends after StepTimeout. A write
// that times out leaves a TLS connection unusable, as crypto/tls
// documents for tls.Conn.SetWriteDeadline.
func (c *Conn) Send(data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	c.transcript.add(DirClient, data, false)
	if c.conn == nil {
		return fmt.Errorf("probe: send to %s: %w: the connection was never established", c.opts.Target, ErrClosed)
	}
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.opts.StepTimeout)); err != nil {
		c.transcript.Note("send failed: %v", err)
		return fmt.Errorf("probe: send to %s: %w: %w", c.opts.Target, ErrClosed, err)
	}
	n, err := c.conn.Write(data)
	if err != nil {
		kind, detail := classifyIOError(nil, err)
		c.transcript.Note("send failed after %d of %d bytes: %s: %v", n, len(data), detail, err)
		return fmt.Errorf("probe: send to %s: wrote %d of %d bytes: %w: %w", c.opts.Target, n, len(data), kind, err)
	}
	return nil
}

// SendLine sends line followed by CRLF.
func (c *Conn) SendLine(line string) error {
	return c.Send([]byte(line + "\r\n"))
}

// Close closes the TCP connection at once, without a TLS close_notify
// alert, so that it cannot block on a server that stops reading. It wakes
// any blocked read or write. Calls after the first return the first
// result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		if c.raw == nil {
			return
		}
		c.closeErr = c.raw.Close()
		c.transcript.Note("probe closed the connection")
	})
	return c.closeErr
}

// Transcript returns the live transcript of the connection.
func (c *Conn) Transcript() *Transcript {
	return c.transcript
}

// TLS returns a copy of the TLS facts recorded so far.
func (c *Conn) TLS() TLSFacts {
	c.factsMu.Lock()
	defer c.factsMu.Unlock()
	facts := c.facts
	facts.PeerCertificates = slices.Clone(facts.PeerCertificates)
	facts.AcceptableCAs = slices.Clone(facts.AcceptableCAs)
	if facts.ClientCertificate != nil {
		client := *facts.ClientCertificate
		facts.ClientCertificate = &client
	}
	if facts.Alert != nil {
		alert := *facts.Alert
		facts.Alert = &alert
	}
	return facts
}

// LocalAddr returns the local address and port of the TCP connection.
func (c *Conn) LocalAddr() netip.AddrPort {
	return c.local
}

// RemoteAddr returns the server address and port of the TCP connection.
func (c *Conn) RemoteAddr() netip.AddrPort {
	return c.remote
}

// tapConn is the TCP connection. While tapping is on, it keeps the first
// tapLimit bytes that the server sends, so that a failed handshake can show
// what the server sent instead of TLS.
type tapConn struct {
	net.Conn

	mu       sync.Mutex
	tapping  bool
	tapped   []byte
	received int
}

const tapLimit = 256

func (t *tapConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	t.mu.Lock()
	if t.tapping && n > 0 {
		t.received += n
		if room := tapLimit - len(t.tapped); room > 0 {
			t.tapped = append(t.tapped, p[:min(n, room)]...)
		}
	}
	t.mu.Unlock()
	return n, err
}

func (t *tapConn) startTap() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tapping = true
	t.tapped = nil
	t.received = 0
}

// stopTap ends tapping and returns the first bytes seen and their total
// count.
func (t *tapConn) stopTap() (first []byte, received int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tapping = false
	return t.tapped, t.received
}
