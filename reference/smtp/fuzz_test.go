package smtp_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// consumedOctets returns how many octets of the input the bufio.Reader r
// has handed out, given the unread rest of its source src.
func consumedOctets(input []byte, src *bytes.Reader, r *bufio.Reader) int {
	return len(input) - src.Len() - r.Buffered()
}

// FuzzReadCommandLine checks that ReadCommandLine never panics, returns
// only lines that fit the limit without CR or LF, and stops at a line
// boundary after every recoverable error.
func FuzzReadCommandLine(f *testing.F) {
	f.Add([]byte("EHLO client.example.test\r\nQUIT\r\n"))
	f.Add([]byte("NOOP\nQUIT\r\n"))
	f.Add([]byte("NO\rOP\r\n"))
	f.Add([]byte(strings.Repeat("x", 511) + "\r\n"))
	f.Add([]byte("NOOP\r"))

	f.Fuzz(func(t *testing.T, input []byte) {
		src := bytes.NewReader(input)
		r := bufio.NewReaderSize(src, 16)
		for {
			start := consumedOctets(input, src, r)
			line, err := smtp.ReadCommandLine(r)
			end := consumedOctets(input, src, r)
			raw := input[start:end]

			switch {
			case err == nil:
				if strings.ContainsAny(line, "\r\n") {
					t.Fatalf("line %q contains CR or LF", line)
				}
				if len(line)+2 > smtp.MaxCommandLine {
					t.Fatalf("line of %d octets exceeds the limit of %d", len(line)+2, smtp.MaxCommandLine)
				}
				if string(raw) != line+"\r\n" {
					t.Fatalf("consumed %q for line %q", raw, line)
				}

			case errors.Is(err, smtp.ErrLineTooLong), errors.Is(err, smtp.ErrBareLF), errors.Is(err, smtp.ErrBareCR):
				if len(raw) == 0 || raw[len(raw)-1] != '\n' {
					t.Fatalf("after %v the reader is not at a line boundary: consumed %q", err, raw)
				}

			case errors.Is(err, smtp.ErrDiscardCap):
				if len(raw) <= smtp.MaxCommandDiscard {
					t.Fatalf("ErrDiscardCap after only %d octets", len(raw))
				}
				return

			case errors.Is(err, io.EOF):
				if len(raw) != 0 {
					t.Fatalf("io.EOF after consuming %q", raw)
				}
				return

			case errors.Is(err, io.ErrUnexpectedEOF):
				if end != len(input) || bytes.IndexByte(raw, '\n') >= 0 {
					t.Fatalf("io.ErrUnexpectedEOF with input left or after a LF: consumed %q", raw)
				}
				return

			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}

// dotStuff encodes msg as a DATA section: each line that starts with "."
// gets another ".", and the terminator follows.
func dotStuff(msg []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(msg, []byte("\r\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(line)
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// FuzzReadData checks that ReadData never panics, that what it accepts
// is a clean CRLF message that reads back the same after dot-stuffing, and
// that it returns only at a real terminator, CRLF "." CRLF.
func FuzzReadData(f *testing.F) {
	f.Add([]byte("Subject: test\r\n\r\nbody\r\n.\r\n"), uint16(1000))
	f.Add([]byte("a\n.\nMAIL FROM:<spoof@example.test>\r\n.\r\n"), uint16(1000))
	f.Add([]byte("a\r.\rMAIL FROM:<spoof@example.test>\r\n.\r\n"), uint16(1000))
	f.Add([]byte("a\r\n.\nMAIL FROM:<spoof@example.test>\r\n.\r\n"), uint16(1000))
	f.Add([]byte("a\n.\r\nMAIL FROM:<spoof@example.test>\r\n.\r\n"), uint16(1000))
	f.Add([]byte("..\r\n...x\r\n.\r\n"), uint16(1000))
	f.Add([]byte(".."+strings.Repeat("x", 997)+"\r\n.\r\n"), uint16(2000))

	f.Fuzz(func(t *testing.T, input []byte, maxSize uint16) {
		const discardLimit = 1 << 16
		src := bytes.NewReader(input)
		r := bufio.NewReaderSize(src, 16)
		msg, err := smtp.ReadData(r, int64(maxSize), discardLimit)
		consumed := input[:consumedOctets(input, src, r)]

		var dataErr *smtp.DataError
		if errors.As(err, &dataErr) && dataErr.Unsynchronized {
			// The reader stopped at a "." line next to a bare LF, and the
			// session closes the connection: the consumed data must end
			// in such a line and must not be a clean CRLF terminator.
			if !bytes.HasSuffix(consumed, []byte(".\n")) && !bytes.HasSuffix(consumed, []byte("\n.\r\n")) {
				t.Fatalf("unsynchronized stop not at a dot line next to a bare LF: consumed %q", consumed)
			}
			if bytes.HasSuffix(consumed, []byte("\r\n.\r\n")) {
				t.Fatalf("unsynchronized stop at a clean terminator: consumed %q", consumed)
			}
			return
		}
		if err == nil || errors.As(err, &dataErr) {
			// Only CRLF "." CRLF ends the data, or "." CRLF as the first
			// line, after the CRLF of the DATA command.
			if !bytes.HasSuffix(consumed, []byte(".\r\n")) {
				t.Fatalf("returned %v without a terminator: consumed %q", err, consumed)
			}
			if len(consumed) > 3 && !bytes.HasSuffix(consumed, []byte("\r\n.\r\n")) {
				t.Fatalf("returned %v after a terminator not preceded by CRLF: consumed %q", err, consumed)
			}
		}
		if err != nil {
			return
		}

		if len(msg) > int(maxSize) {
			t.Fatalf("message of %d octets exceeds maxSize %d", len(msg), maxSize)
		}
		if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
			t.Fatalf("message %q does not end in CRLF", msg)
		}
		for _, line := range bytes.SplitAfter(msg, []byte("\r\n")) {
			if len(line) == 0 {
				continue
			}
			body := bytes.TrimSuffix(line, []byte("\r\n"))
			if bytes.ContainsAny(body, "\r\n") {
				t.Fatalf("line %q contains a bare CR or LF", line)
			}
			if len(body) > smtp.MaxTextLine-2 {
				t.Fatalf("line of %d octets exceeds %d plus CRLF", len(body), smtp.MaxTextLine-2)
			}
		}

		again, err := smtp.ReadData(bufio.NewReader(bytes.NewReader(dotStuff(msg))), int64(maxSize), discardLimit)
		if err != nil {
			t.Fatalf("reading the re-encoded message failed: %v", err)
		}
		if !bytes.Equal(again, msg) {
			t.Fatalf("re-encoded message reads as %q, want %q", again, msg)
		}
	})
}

// FuzzParseMail checks that ParseMail never panics and accepts only the
// null reverse-path or a mailbox that ValidateMailbox accepts.
func FuzzParseMail(f *testing.F) {
	f.Add("FROM:<alice@example.test> MPC=per/individual")
	f.Add("FROM:<> MPC=net/autoresponse")
	f.Add(`FROM:<"a>b"@example.test>`)
	f.Add("FROM:<@relay.example.test:a@example.test>")
	f.Add("FROM:<a@[IPv6:2001:db8::1]> MPC=")

	f.Fuzz(func(t *testing.T, arg string) {
		path, params, err := smtp.ParseMail(arg)
		if err != nil {
			return
		}
		if path != "" {
			if err := smtp.ValidateMailbox(path); err != nil {
				t.Fatalf("ParseMail(%q) accepted %q, which ValidateMailbox rejects: %v", arg, path, err)
			}
		}
		if len(path)+2 > smtp.MaxPath {
			t.Fatalf("ParseMail(%q) accepted a path of %d octets", arg, len(path)+2)
		}
		for _, p := range params {
			if p.Keyword == "" || p.Keyword != strings.ToUpper(p.Keyword) {
				t.Fatalf("ParseMail(%q) returned keyword %q, want non-empty upper case", arg, p.Keyword)
			}
			if p.HasValue && p.Value == "" {
				t.Fatalf("ParseMail(%q) returned an empty value for %s", arg, p.Keyword)
			}
		}
	})
}
