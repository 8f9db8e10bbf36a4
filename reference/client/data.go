package client

import (
	"bufio"
	"bytes"
	"fmt"

	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// normalizeLineEndings returns data with CRLF after every line: a bare LF
// and a bare CR each become CRLF, and a last line without a line ending
// gets one. So the message never puts a bare CR or LF on the wire, which
// RFC 5321 section 2.3.8 forbids and AMTP servers reject. Empty data stays
// empty.
func normalizeLineEndings(data []byte) []byte {
	out := make([]byte, 0, len(data)+len(data)/32+2)
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// checkLineLengths returns an error naming the first line of data (with
// CRLF line endings) that is longer than the 1000 octets, CRLF included,
// of RFC 5321 section 4.5.3.1.6.
func checkLineLengths(data []byte) error {
	for number := 1; len(data) > 0; number++ {
		end := bytes.Index(data, []byte("\r\n"))
		if end+2 > smtp.MaxTextLine {
			return fmt.Errorf("%w: line %d is %d octets long, but RFC 5321 allows %d plus CRLF; wrap it, or encode the body as quoted-printable or base64",
				ErrInvalidMessage, number, end, smtp.MaxTextLine-2)
		}
		data = data[end+2:]
	}
	return nil
}

// hasEightBit reports whether data contains an octet above 127.
func hasEightBit(data []byte) bool {
	for _, c := range data {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// writeDotStuffed writes data (with CRLF line endings) as a DATA section:
// each line that starts with "." gets a second "." (RFC 5321 section
// 4.5.2), and the section ends with "." CRLF.
func writeDotStuffed(w *bufio.Writer, data []byte) error {
	for len(data) > 0 {
		end := bytes.Index(data, []byte("\r\n")) + 2
		if data[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(data[:end])
		data = data[end:]
	}
	w.WriteString(".\r\n")
	return w.Flush()
}
