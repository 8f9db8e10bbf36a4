package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// readLine returns the next line from the connection, LF included. It
// returns ErrLineTooLong, without consuming anything, as soon as the line
// cannot fit MaxLineLength, so it never buffers more than MaxLineLength
// plus one read.
func (c *Conn) readLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(c.pending, '\n'); i >= 0 {
			if i+1 > c.opts.MaxLineLength {
				return nil, ErrLineTooLong
			}
			line := bytes.Clone(c.pending[:i+1])
			c.pending = append(c.pending[:0], c.pending[i+1:]...)
			return line, nil
		}
		if len(c.pending) >= c.opts.MaxLineLength {
			return nil, ErrLineTooLong
		}
		if _, err := c.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads once from the connection into pending and records the bytes
// in the transcript as they arrive.
func (c *Conn) fill() (int, error) {
	if err := c.stickyErr; err != nil {
		c.stickyErr = nil
		return 0, err
	}
	if c.conn == nil {
		return 0, net.ErrClosed
	}

	n, err := c.conn.Read(c.chunk)
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return 0, err
	}

	c.pending = append(c.pending, c.chunk[:n]...)
	c.recorder.feed(c.chunk[:n])
	// A timeout that comes with data is dropped, because the deadline has
	// passed and the next read times out again. Any other error is kept
	// for the next read, so that the data is used first.
	if err != nil && !isTimeout(err) {
		c.stickyErr = err
	}
	return n, nil
}

// armReadDeadline sets the read deadline and makes cancellation of ctx
// wake a blocked read. The returned function undoes the ctx watch and
// returns only after a running wake-up has finished, so that the wake-up
// cannot overwrite the deadline of a later call.
func (c *Conn) armReadDeadline(ctx context.Context, deadline time.Time) (stop func(), err error) {
	if c.conn == nil {
		return nil, net.ErrClosed
	}
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	woken := make(chan struct{})
	stopWatch := context.AfterFunc(ctx, func() {
		defer close(woken)
		// A deadline in the past makes a blocked Read return at once.
		_ = c.conn.SetReadDeadline(time.Unix(1, 0))
	})
	return func() {
		if !stopWatch() {
			<-woken
		}
	}, nil
}

// readFailure builds the *ReadError for an I/O error err, records it in
// the transcript, and records any TLS alert in the TLS facts. consumed
// contains the complete lines of the reply read before the failure.
func (c *Conn) readFailure(ctx context.Context, op string, start time.Time, err error, consumed []byte) *ReadError {
	c.recorder.flush()
	kind, detail := classifyIOError(ctx, err)
	alert := remoteAlert(err)
	c.recordAlert(alert)

	partial := append(bytes.Clone(consumed), c.pending...)
	failure := &ReadError{
		Op:       op,
		Err:      kind,
		Cause:    err,
		Received: len(partial),
		Partial:  partial,
		Waited:   time.Since(start),
		Alert:    alert,
	}
	switch kind {
	case ErrTimeout:
		failure.Detail = fmt.Sprintf("no complete reply after %s; %s of it arrived",
			failure.Waited.Round(time.Millisecond), byteCount(failure.Received))
	default:
		failure.Detail = fmt.Sprintf("%s after %s of the reply", detail, byteCount(failure.Received))
	}
	c.transcript.Note("%s", failure.description())
	return failure
}

// recordAlert stores alert in the TLS facts and the transcript. A nil
// alert is ignored.
func (c *Conn) recordAlert(alert *Alert) {
	if alert == nil {
		return
	}
	c.factsMu.Lock()
	c.facts.Alert = alert
	c.factsMu.Unlock()
	c.transcript.Note("TLS alert from server: %s (%d)", alert.Name, alert.Code)
}

// classifyIOError maps a read or write error to ErrTimeout, ErrClosed or
// context.Canceled, with a description of the cause. ctx may be nil.
func classifyIOError(ctx context.Context, err error) (kind error, detail string) {
	var errno syscall.Errno
	switch {
	case errors.Is(err, net.ErrClosed):
		return ErrClosed, "the probe closed the connection"
	case isTimeout(err) && ctx != nil && errors.Is(ctx.Err(), context.Canceled):
		return context.Canceled, "the context was canceled"
	case isTimeout(err):
		return ErrTimeout, "the deadline passed"
	case remoteAlert(err) != nil:
		return ErrClosed, "the server sent a TLS alert"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrClosed, "the server closed the connection"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED):
		return ErrClosed, "the server reset the connection"
	case errors.Is(err, syscall.EPIPE):
		return ErrClosed, "the server no longer accepts data"
	case errors.As(err, &errno):
		return ErrClosed, "the connection failed with " + errno.Error()
	default:
		return ErrClosed, "the connection failed"
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// lineRecorder splits received bytes into lines and adds each line to the
// transcript as a server event once its LF arrives. It holds at most
// maxLine bytes of an unfinished line, and adds them as a partial event
// when they reach maxLine or when flush is called.
type lineRecorder struct {
	transcript *Transcript
	maxLine    int
	tail       []byte
}

func (r *lineRecorder) feed(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			take := min(len(data), r.maxLine-len(r.tail))
			r.tail = append(r.tail, data[:take]...)
			data = data[take:]
			if len(r.tail) >= r.maxLine {
				r.flush()
			}
			continue
		}

		r.tail = append(r.tail, data[:i+1]...)
		data = data[i+1:]
		r.transcript.add(DirServer, r.tail, false)
		r.tail = r.tail[:0]
	}
}

// flush adds the unfinished line, if any, as a partial event.
func (r *lineRecorder) flush() {
	if len(r.tail) == 0 {
		return
	}
	r.transcript.add(DirServer, r.tail, true)
	r.tail = r.tail[:0]
}
