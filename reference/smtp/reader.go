// Package smtp reads the SMTP wire format that AMTP inherits from RFC 5321:
// command lines, the DATA section, and the arguments of MAIL and RCPT. It
// enforces the size limits of RFC 5321 section 4.5.3.1 and accepts only CRLF
// as a line ending, so a message can end only at CRLF "." CRLF and SMTP
// smuggling through bare LF or bare CR cannot pass.
package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Limits from RFC 5321 section 4.5.3.1, each counting the CRLF.
const (
	MaxCommandLine = 512  // section 4.5.3.1.4
	MaxTextLine    = 1000 // section 4.5.3.1.6
	MaxPath        = 256  // section 4.5.3.1.3
	MaxLocalPart   = 64   // section 4.5.3.1.1
	MaxDomain      = 255  // section 4.5.3.1.2
)

// Errors of the line and DATA readers. Each leaves the reader at a line
// boundary, so the session can reply and read the next command, except
// for errors of the underlying connection.
var (
	ErrLineTooLong = errors.New("line too long")
	ErrBareLF      = errors.New("line ends with bare LF instead of CRLF")
	ErrBareCR      = errors.New("bare CR inside a line")
	ErrTooLarge    = errors.New("message exceeds the maximum size")
	ErrDiscardCap  = errors.New("message data exceeds the discard limit")
)

// MaxCommandDiscard is the number of octets of an overlong command line
// that ReadCommandLine reads and discards before it gives up with
// ErrDiscardCap, after which the session must close the connection.
const MaxCommandDiscard = 64 << 10

// ReadCommandLine reads one command line of at most MaxCommandLine octets
// including its CRLF and returns it without the CRLF. A longer line is
// consumed up to its LF and reported as ErrLineTooLong, or as ErrDiscardCap
// when it goes on past MaxCommandDiscard octets. A line ending in a bare
// LF, or containing a CR that is not followed by LF, is consumed and
// reported as ErrBareLF or ErrBareCR.
func ReadCommandLine(r *bufio.Reader) (string, error) {
	line, _, _, err := readLine(r, MaxCommandLine, MaxCommandDiscard)
	if err != nil {
		return "", err
	}
	return string(line), nil
}

// readLine reads bytes up to and including the next LF. It returns the
// line without CRLF, the number of octets it consumed and whether the line
// ended in CRLF, which is also reported for a violating line once its LF
// is read. The line must be at most limit octets, end in CRLF and contain
// no other CR. On a violation readLine consumes the rest of the line and
// returns the corresponding error, unless the line goes on past maxConsume
// octets, in which case it stops with ErrDiscardCap. io.EOF before any
// byte is returned as io.EOF; EOF inside a line is io.ErrUnexpectedEOF.
func readLine(r *bufio.Reader, limit int, maxConsume int64) ([]byte, int64, bool, error) {
	var (
		line     []byte
		consumed int64
		tooLong  bool
		previous byte // last octet of the previous chunk
		beforeLF byte // octet before the final LF
	)
	for {
		chunk, err := r.ReadSlice('\n')
		consumed += int64(len(chunk))
		if n := len(chunk); n > 0 {
			if chunk[n-1] == '\n' {
				beforeLF = previous
				if n >= 2 {
					beforeLF = chunk[n-2]
				}
			}
			previous = chunk[n-1]
		}
		if !tooLong {
			if len(line)+len(chunk) > limit {
				tooLong = true
				line = nil
			} else {
				line = append(line, chunk...)
			}
		}
		if consumed > maxConsume {
			return nil, consumed, false, ErrDiscardCap
		}

		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && consumed == 0 {
			return nil, 0, false, io.EOF
		}
		if err == io.EOF {
			return nil, consumed, false, io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, consumed, false, err
		}
		break
	}

	crlf := beforeLF == '\r'
	if tooLong {
		return nil, consumed, crlf, ErrLineTooLong
	}
	if !crlf {
		return line[:len(line)-1], consumed, false, ErrBareLF
	}
	line = line[:len(line)-2]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, consumed, true, ErrBareCR
	}
	return line, consumed, true, nil
}

// DataError describes why a DATA section was rejected. The reader
// consumes the section up to its terminating CRLF "." CRLF before it
// returns a DataError, so the session stays in step with the client,
// except when Unsynchronized is set.
type DataError struct {
	Err  error // ErrLineTooLong, ErrBareLF, ErrBareCR or ErrTooLarge
	Line int   // 1-based line number of the first violation

	// Unsynchronized reports a "." line next to a bare LF ("\n.\n",
	// "\r\n.\n" or "\n.\r\n"): a client that ends lines with LF
	// believes its message ended there, while the data has not ended for
	// this reader. The reader stops at that line, and the session cannot
	// know where the client is, so it must reply and close the connection.
	// This is also how SMTP smuggling attempts end.
	Unsynchronized bool
}

func (e *DataError) Error() string {
	return fmt.Sprintf("message data line %d: %v", e.Line, e.Err)
}

func (e *DataError) Unwrap() error { return e.Err }

// ReadData reads a DATA section after the 354 reply, up to the line that
// holds a single ".", and returns the message with dot-stuffing removed
// (RFC 5321 section 4.5.2) and CRLF line endings.
//
// Only CRLF "." CRLF ends the section. A bare LF or a bare CR anywhere, a
// text line over MaxTextLine octets (not counting a dot added by
// dot-stuffing), or a message over maxSize octets makes ReadData return a
// *DataError after it has read the rest of the section.
// Data past maxSize is discarded, not stored; if the client sends more than
// discardLimit octets in total, ReadData stops with ErrDiscardCap and the
// session must close the connection. Errors of r are returned as they are.
func ReadData(r *bufio.Reader, maxSize, discardLimit int64) ([]byte, error) {
	var (
		msg      bytes.Buffer
		firstErr *DataError
		total    int64
		lineNo   int
		// afterCRLF is whether the previous line ended in CRLF. The
		// DATA command line did, so the first line may be the terminator.
		afterCRLF = true
	)
	for {
		lineNo++
		// One octet over MaxTextLine is allowed here for the dot that
		// dot-stuffing adds, which RFC 5321 section 4.5.3.1.6 does not
		// count. Lines without a leading dot are checked below.
		line, consumed, crlf, err := readLine(r, MaxTextLine+1, discardLimit-total)
		total += consumed
		if errors.Is(err, ErrDiscardCap) || total > discardLimit {
			return nil, ErrDiscardCap
		}
		if err == nil && len(line)+2 > MaxTextLine && line[0] != '.' {
			err = ErrLineTooLong
		}
		terminatorAllowed := afterCRLF
		afterCRLF = crlf

		isDot := len(line) == 1 && line[0] == '.'
		if isDot && (errors.Is(err, ErrBareLF) || err == nil && !terminatorAllowed) {
			first := lineNo
			if firstErr != nil {
				first = firstErr.Line
			}
			return nil, &DataError{Err: ErrBareLF, Line: first, Unsynchronized: true}
		}

		switch {
		case err == nil:
		case errors.Is(err, ErrLineTooLong), errors.Is(err, ErrBareLF), errors.Is(err, ErrBareCR):
			// A violating line is never the terminator: the terminator is
			// exactly "." CRLF. Record the first violation and go on.
			if firstErr == nil {
				firstErr = &DataError{Err: err, Line: lineNo}
			}
			continue
		default:
			return nil, err
		}

		// A "." line ends the data only after a CRLF: "\n.\r\n" is the
		// start of an SMTP smuggling attack, not a terminator.
		if len(line) == 1 && line[0] == '.' && terminatorAllowed {
			break
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}

		if firstErr != nil {
			continue
		}
		if int64(msg.Len()+len(line)+2) > maxSize {
			firstErr = &DataError{Err: ErrTooLarge, Line: lineNo}
			msg = bytes.Buffer{}
			continue
		}
		msg.Write(line)
		msg.WriteString("\r\n")
	}

	if firstErr != nil {
		return nil, firstErr
	}
	return msg.Bytes(), nil
}
