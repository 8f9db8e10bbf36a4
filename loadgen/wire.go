package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxReplyLines bounds the lines of one multi-line reply, so a server
// that never ends its reply cannot keep a unit reading forever.
const maxReplyLines = 100

// maxLineBytes bounds one reply line.
const maxLineBytes = 4096

// reply is one SMTP reply.
type reply struct {
	code int
	// enhanced is the RFC 3463 enhanced status code of the first line,
	// such as "5.7.1", or empty.
	enhanced string
	// lines are the texts after the code and separator.
	lines []string
}

// key returns the code and the enhanced code, such as "550 5.7.1", the
// key of a reply in the error taxonomy.
func (r reply) key() string {
	if r.enhanced == "" {
		return strconv.Itoa(r.code)
	}
	return strconv.Itoa(r.code) + " " + r.enhanced
}

func (r reply) String() string {
	return strconv.Itoa(r.code) + " " + strings.Join(r.lines, " / ")
}

// errProtocol marks a reply that is not valid SMTP.
var errProtocol = errors.New("invalid SMTP reply")

// unexpectedReply is the error of a unit that got a reply code other than
// the one its step expects.
type unexpectedReply struct {
	reply reply
}

func (e *unexpectedReply) Error() string {
	return "unexpected reply " + e.reply.String()
}

// readReply reads one reply, which may span several lines.
func readReply(r *bufio.Reader) (reply, error) {
	var out reply
	for i := range maxReplyLines {
		line, err := readLine(r)
		if err != nil {
			return out, err
		}
		if len(line) < 3 {
			return out, fmt.Errorf("%w: line %q is shorter than a reply code", errProtocol, line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 {
			return out, fmt.Errorf("%w: line %q does not start with a reply code", errProtocol, line)
		}
		if i > 0 && code != out.code {
			return out, fmt.Errorf("%w: line %q changes the code of a multi-line reply from %d", errProtocol, line, out.code)
		}
		out.code = code

		text, last := "", true
		if len(line) > 3 {
			if line[3] != ' ' && line[3] != '-' {
				return out, fmt.Errorf("%w: line %q has no space or hyphen after the code", errProtocol, line)
			}
			last = line[3] == ' '
			text = line[4:]
		}
		if i == 0 {
			out.enhanced = enhancedCode(code, text)
		}
		out.lines = append(out.lines, text)
		if last {
			return out, nil
		}
	}
	return out, fmt.Errorf("%w: reply has more than %d lines", errProtocol, maxReplyLines)
}

// readLine reads one CRLF- or LF-terminated line without its ending.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxLineBytes {
		return "", fmt.Errorf("%w: line longer than %d bytes", errProtocol, maxLineBytes)
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return "", fmt.Errorf("%w: connection closed in the middle of a line", errProtocol)
		}
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// enhancedCode returns the enhanced status code at the start of text when
// its class matches the reply code's first digit, or "".
func enhancedCode(code int, text string) string {
	word, _, _ := strings.Cut(text, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return ""
	}
	for _, p := range parts[1:] {
		if _, err := strconv.Atoi(p); err != nil || len(p) == 0 || len(p) > 3 {
			return ""
		}
	}
	return word
}
