package client

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"

	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// maxReplyLines bounds the lines of one reply, so a server cannot keep the
// client reading one reply forever. EHLO replies, the longest, have about
// ten lines.
const maxReplyLines = 100

// Reply is one server reply (RFC 5321 section 4.2).
type Reply struct {
	Code int
	// Enhanced is the enhanced status code of RFC 3463, such as "5.7.1",
	// or "" when the reply has none.
	Enhanced string
	// Lines are the text lines without the reply code and without the
	// enhanced status code.
	Lines []string
}

// Text returns the text lines joined by spaces.
func (r Reply) Text() string {
	return strings.Join(r.Lines, " ")
}

// String returns the reply as code, enhanced code and text on one line,
// such as "550 5.7.1 MPC policy violation".
func (r Reply) String() string {
	parts := []string{strconv.Itoa(r.Code)}
	if r.Enhanced != "" {
		parts = append(parts, r.Enhanced)
	}
	if text := r.Text(); text != "" {
		parts = append(parts, text)
	}
	return strings.Join(parts, " ")
}

// Positive reports whether the reply is a 2xx completion reply.
func (r Reply) Positive() bool { return r.Code >= 200 && r.Code < 300 }

// Temporary reports whether the reply is a 4xx transient failure.
func (r Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// Permanent reports whether the reply is a 5xx permanent failure.
func (r Reply) Permanent() bool { return r.Code >= 500 && r.Code < 600 }

// readReply reads one reply, single- or multi-line. Every line must end in
// CRLF, fit the 512 octets of RFC 5321 section 4.5.3.1.5, and carry the
// same code. A malformed reply returns an error wrapping ErrProtocol;
// errors of r are returned as they are.
func readReply(r *bufio.Reader) (Reply, error) {
	var reply Reply
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return Reply{}, fmt.Errorf("%w: reply has more than %d lines", ErrProtocol, maxReplyLines)
		}
		line, err := smtp.ReadCommandLine(r)
		if err != nil {
			if isLineError(err) {
				return Reply{}, fmt.Errorf("%w: invalid reply line: %w", ErrProtocol, err)
			}
			return Reply{}, err
		}

		code, last, text, ok := splitReplyLine(line)
		if !ok {
			return Reply{}, fmt.Errorf("%w: invalid reply line %q", ErrProtocol, line)
		}
		if n > 0 && code != reply.Code {
			return Reply{}, fmt.Errorf("%w: reply line %q has code %d, but the reply began with %d", ErrProtocol, line, code, reply.Code)
		}
		reply.Code = code
		reply.Lines = append(reply.Lines, text)
		if last {
			break
		}
	}

	reply.Enhanced = enhancedCode(reply.Code, reply.Lines[0])
	if reply.Enhanced != "" {
		for i, text := range reply.Lines {
			if rest, ok := strings.CutPrefix(text, reply.Enhanced); ok && (rest == "" || rest[0] == ' ') {
				reply.Lines[i] = strings.TrimPrefix(rest, " ")
			}
		}
	}
	return reply, nil
}

// splitReplyLine splits "250-text", "250 text" or "250" into the code,
// whether it is the last line, and the text.
func splitReplyLine(line string) (code int, last bool, text string, ok bool) {
	if len(line) < 3 {
		return 0, false, "", false
	}
	for i := 0; i < 3; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", false
		}
	}
	code, _ = strconv.Atoi(line[:3])
	if code < 200 || code > 599 {
		return 0, false, "", false
	}

	switch {
	case len(line) == 3:
		return code, true, "", true
	case line[3] == ' ':
		return code, true, line[4:], true
	case line[3] == '-':
		return code, false, line[4:], true
	}
	return 0, false, "", false
}

// enhancedCode returns the RFC 3463 status code at the start of text, such
// as "5.7.1", when its class matches the first digit of the reply code, or
// "".
func enhancedCode(code int, text string) string {
	candidate, _, _ := strings.Cut(text, " ")
	parts := strings.Split(candidate, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return ""
	}
	for _, part := range parts[1:] {
		if part == "" || len(part) > 3 {
			return ""
		}
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return ""
			}
		}
	}
	return candidate
}
