package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Sentinel errors of ReadReply, ExpectClose and Send. A *ReadError wraps
// exactly one of them, or context.Canceled.
var (
	// ErrTimeout means the deadline passed before a complete reply
	// arrived. ReadError.Received is the number of bytes that did arrive.
	ErrTimeout = errors.New("timed out")
	// ErrLineTooLong means a reply line exceeded MaxLineLength.
	ErrLineTooLong = errors.New("reply line too long")
	// ErrTooManyLines means a reply continued beyond MaxReplyLines lines.
	ErrTooManyLines = errors.New("too many reply lines")
	// ErrMalformedReply means the reply was complete but broke the reply
	// syntax of RFC 5321 section 4.2. ReadError.Defects lists how.
	ErrMalformedReply = errors.New("malformed reply")
	// ErrClosed means the connection can no longer deliver data: the server
	// closed or reset it, sent a TLS alert, or the probe closed it.
	// ReadError.Cause is the underlying error.
	ErrClosed = errors.New("connection closed")
)

// DefectKind names a syntax error in a reply.
type DefectKind string

// Reply defects, from RFC 5321 section 4.2:
//
//	Reply-line = *( Reply-code "-" [ textstring ] CRLF )
//	             Reply-code [ SP textstring ] CRLF
//	Reply-code = %x32-35 %x30-35 %x30-39
const (
	// DefectBadCode: the line does not start with a reply code from 200 to
	// 559 whose second digit is 0 to 5.
	DefectBadCode DefectKind = "bad-code"
	// DefectMixedCodes: a line of a multiline reply has another code than
	// the first line.
	DefectMixedCodes DefectKind = "mixed-codes"
	// DefectMissingSeparator: the code is followed by a byte other than a
	// space or a hyphen.
	DefectMissingSeparator DefectKind = "missing-separator"
	// DefectBareLF: the line ends in LF without CR.
	DefectBareLF DefectKind = "bare-lf"
)

// Defect is one syntax error in a reply.
type Defect struct {
	// Line is the 1-based line number within the reply.
	Line   int        `json:"line"`
	Kind   DefectKind `json:"kind"`
	Detail string     `json:"detail"`
}

func (d Defect) String() string {
	return fmt.Sprintf("line %d: %s", d.Line, d.Detail)
}

// Reply is one SMTP reply as it arrived.
//
// A line whose fourth byte is a hyphen continues the reply, and any other
// line ends it, so a reply ends even at a line with a broken code.
// Characters inside the text are not checked: a bare CR or an 8-bit byte
// in the text is not a defect.
type Reply struct {
	// Code is the reply code of the first line, or 0 if that line has no
	// valid code.
	Code int `json:"code"`
	// Lines are the reply lines without their line endings, code included.
	// JSON replaces invalid UTF-8 in them with U+FFFD, while Raw keeps the
	// exact bytes.
	Lines []string `json:"lines"`
	// CRLF is true if every line ended in CRLF.
	CRLF bool `json:"crlf"`
	// Raw contains the bytes of the complete lines, line endings included.
	Raw     Bytes    `json:"raw"`
	Defects []Defect `json:"defects,omitempty"`
}

// Texts returns the text of each line after the code and its separator.
func (r Reply) Texts() []string {
	texts := make([]string, len(r.Lines))
	for i, line := range r.Lines {
		if len(line) > 4 {
			texts[i] = line[4:]
		}
	}
	return texts
}

// String returns the lines joined by newlines.
func (r Reply) String() string {
	return strings.Join(r.Lines, "\n")
}

// addLine appends one line, which ends in LF, checks its syntax and
// reports whether it is the last line of the reply.
func (r *Reply) addLine(line []byte) (last bool) {
	number := len(r.Lines) + 1
	r.Raw = append(r.Raw, line...)

	body := bytes.TrimSuffix(line, []byte("\n"))
	if trimmed, ok := bytes.CutSuffix(body, []byte("\r")); ok {
		body = trimmed
	} else {
		r.CRLF = false
		r.addDefect(number, DefectBareLF, "the line ends in LF without CR")
	}
	r.Lines = append(r.Lines, string(body))

	code, valid := parseReplyCode(body)
	switch {
	case !valid:
		r.addDefect(number, DefectBadCode, fmt.Sprintf("%q does not start with a reply code from 200 to 559", escapeForRender(body[:min(len(body), 16)])))
	case len(body) > 3 && body[3] != ' ' && body[3] != '-':
		r.addDefect(number, DefectMissingSeparator, fmt.Sprintf("the code is followed by %q instead of a space or hyphen", escapeForRender(body[3:4])))
	}

	switch {
	case number == 1 && valid:
		r.Code = code
	case number > 1 && valid && r.Code != 0 && code != r.Code:
		r.addDefect(number, DefectMixedCodes, fmt.Sprintf("code %d differs from code %d on line 1", code, r.Code))
	}

	return len(body) < 4 || body[3] != '-'
}

func (r *Reply) addDefect(line int, kind DefectKind, detail string) {
	r.Defects = append(r.Defects, Defect{Line: line, Kind: kind, Detail: detail})
}

// parseReplyCode parses the Reply-code at the start of line.
func parseReplyCode(line []byte) (int, bool) {
	if len(line) < 3 {
		return 0, false
	}
	first, second, third := line[0], line[1], line[2]
	if first < '2' || first > '5' || second < '0' || second > '5' || third < '0' || third > '9' {
		return 0, false
	}
	return int(first-'0')*100 + int(second-'0')*10 + int(third-'0'), true
}

// ReadError reports a failed ReadReply or ExpectClose.
type ReadError struct {
	// Op is "read reply" or "expect close".
	Op string
	// Err is ErrTimeout, ErrLineTooLong, ErrTooManyLines,
	// ErrMalformedReply, ErrClosed or context.Canceled.
	Err error
	// Cause is the I/O error behind Err, if any.
	Cause error
	// Detail describes the failure in words, such as "the server closed
	// the connection".
	Detail string
	// Received is the number of bytes of this reply that arrived,
	// including an incomplete last line.
	Received int
	// Partial contains those bytes.
	Partial Bytes
	// Waited is the time from the start of the call to the failure.
	Waited time.Duration
	// Defects lists the syntax errors of a malformed reply.
	Defects []Defect
	// Alert is the TLS alert that closed the connection, if any.
	Alert *Alert
}

func (e *ReadError) Error() string {
	return "probe: " + e.description()
}

// description returns the error text without the package prefix, for
// transcript notes.
func (e *ReadError) description() string {
	text := fmt.Sprintf("%s: %v", e.Op, e.Err)
	if e.Detail != "" {
		text += ": " + e.Detail
	}
	if e.Cause != nil {
		text += ": " + e.Cause.Error()
	}
	return text
}

// Unwrap returns Err and Cause, so errors.Is matches either.
func (e *ReadError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// ReadGreeting reads the server greeting. It is ReadReply under the name
// of the protocol step.
func (c *Conn) ReadGreeting(ctx context.Context) (Reply, error) {
	return c.ReadReply(ctx)
}

// ReadReply reads one reply, line by line, until a line that does not
// continue it.
//
// The whole reply must arrive before ctx's deadline, or within StepTimeout
// if ctx has none. The deadline is absolute, so a server that sends one
// byte at a time cannot stretch it. A line longer than MaxLineLength fails
// with ErrLineTooLong and a reply longer than MaxReplyLines lines with
// ErrTooManyLines. Both consume what they read, so the connection is left
// inside the reply. A complete reply with syntax errors fails with
// ErrMalformedReply after its last line, so the next reply can still be
// read. On a timeout, cancellation or close the bytes of the reply stay
// unread, and a later call reads them again.
//
// The returned Reply holds the complete lines read, even when err is not
// nil. Every error is a *ReadError.
func (c *Conn) ReadReply(ctx context.Context) (Reply, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()

	start := time.Now()
	reply := Reply{CRLF: true}
	stop, err := c.armReadDeadline(ctx, c.stepDeadline(ctx))
	if err != nil {
		return reply, c.readFailure(ctx, "read reply", start, err, nil)
	}
	defer stop()

	for {
		line, err := c.readLine()
		if errors.Is(err, ErrLineTooLong) {
			return reply, c.lineTooLong(start, &reply)
		}
		if err != nil {
			failure := c.readFailure(ctx, "read reply", start, err, reply.Raw)
			c.pending = append(bytes.Clone(reply.Raw), c.pending...)
			return reply, failure
		}

		if last := reply.addLine(line); last {
			break
		}
		if len(reply.Lines) >= c.opts.MaxReplyLines {
			failure := &ReadError{
				Op:       "read reply",
				Err:      ErrTooManyLines,
				Detail:   fmt.Sprintf("the reply continues beyond %d lines (MaxReplyLines)", c.opts.MaxReplyLines),
				Received: len(reply.Raw),
				Partial:  bytes.Clone(reply.Raw),
				Waited:   time.Since(start),
				Defects:  reply.Defects,
			}
			c.transcript.Note("%s", failure.description())
			return reply, failure
		}
	}

	if len(reply.Defects) > 0 {
		details := make([]string, len(reply.Defects))
		for i, defect := range reply.Defects {
			details[i] = defect.String()
		}
		failure := &ReadError{
			Op:       "read reply",
			Err:      ErrMalformedReply,
			Detail:   strings.Join(details, "; "),
			Received: len(reply.Raw),
			Partial:  bytes.Clone(reply.Raw),
			Waited:   time.Since(start),
			Defects:  reply.Defects,
		}
		c.transcript.Note("%s", failure.description())
		return reply, failure
	}
	return reply, nil
}

// lineTooLong builds the ErrLineTooLong failure and drops the pending
// bytes of the long line. The rest of that line stays unread.
func (c *Conn) lineTooLong(start time.Time, reply *Reply) error {
	c.recorder.flush()
	partial := append(bytes.Clone(reply.Raw), c.pending...)
	failure := &ReadError{
		Op:  "read reply",
		Err: ErrLineTooLong,
		Detail: fmt.Sprintf("line %d is longer than %d octets (MaxLineLength); stopped reading it",
			len(reply.Lines)+1, c.opts.MaxLineLength),
		Received: len(partial),
		Partial:  partial,
		Waited:   time.Since(start),
		Defects:  reply.Defects,
	}
	c.pending = c.pending[:0]
	c.transcript.Note("%s", failure.description())
	return failure
}

// ExpectClose waits until the server closes the connection or the
// deadline passes. The deadline is ctx's deadline, or StepTimeout from now
// if ctx has none.
//
// It returns true if the server closed or reset the connection or sent a
// TLS alert, and false with a nil error if the connection was still open
// at the deadline. Bytes that arrive while it waits, and unread bytes from
// earlier calls, go to the transcript only and are discarded. It returns
// false and a *ReadError if ctx is canceled or the probe itself closed the
// connection.
func (c *Conn) ExpectClose(ctx context.Context) (closed bool, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()

	start := time.Now()
	deadline := c.stepDeadline(ctx)
	stop, err := c.armReadDeadline(ctx, deadline)
	if err != nil {
		return false, c.readFailure(ctx, "expect close", start, err, nil)
	}
	defer stop()

	received := 0
	c.pending = c.pending[:0]
	for {
		n, err := c.fill()
		received += n
		c.pending = c.pending[:0]
		if err == nil {
			continue
		}

		kind, detail := classifyIOError(ctx, err)
		switch {
		case kind == ErrTimeout:
			c.recorder.flush()
			c.transcript.Note("connection still open after %s; %s arrived while waiting for the close",
				time.Since(start).Round(time.Millisecond), byteCount(received))
			return false, nil
		case kind == ErrClosed && !errors.Is(err, net.ErrClosed):
			c.recorder.flush()
			c.recordAlert(remoteAlert(err))
			c.transcript.Note("%s after %s; %s arrived while waiting for the close",
				detail, time.Since(start).Round(time.Millisecond), byteCount(received))
			return true, nil
		default:
			return false, c.readFailure(ctx, "expect close", start, err, nil)
		}
	}
}
