package smtp_test

import (
	"bufio"
	"errors"
	"io"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// newReader returns a reader over s with the default buffer size.
func newReader(s string) *bufio.Reader {
	return bufio.NewReader(strings.NewReader(s))
}

// expectNext reads the next command line from r and expects it to be want,
// which shows that the previous read stopped at a line boundary.
func expectNext(r *bufio.Reader, want string) {
	GinkgoHelper()
	line, err := smtp.ReadCommandLine(r)
	Expect(err).NotTo(HaveOccurred())
	Expect(line).To(Equal(want))
}

// expectDataError expects err to be a *smtp.DataError wrapping want for
// the given 1-based line.
func expectDataError(err error, want error, line int) {
	GinkgoHelper()
	var dataErr *smtp.DataError
	Expect(errors.As(err, &dataErr)).To(BeTrue(), "error %v is not a *smtp.DataError", err)
	Expect(dataErr.Err).To(MatchError(want))
	Expect(dataErr.Line).To(Equal(line))
}

var _ = Describe("ReadCommandLine", func() {
	It("reads CRLF lines", func() {
		r := newReader("EHLO client.example.test\r\nNOOP\r\n")
		expectNext(r, "EHLO client.example.test")
		expectNext(r, "NOOP")
	})

	It("reads an empty line", func() {
		r := newReader("\r\nNOOP\r\n")
		expectNext(r, "")
		expectNext(r, "NOOP")
	})

	It("rejects a bare LF", func() {
		r := newReader("NOOP\nQUIT\r\n")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(smtp.ErrBareLF))
		expectNext(r, "QUIT")
	})

	It("rejects a lone LF", func() {
		r := newReader("\nQUIT\r\n")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(smtp.ErrBareLF))
		expectNext(r, "QUIT")
	})

	It("rejects a bare CR inside", func() {
		r := newReader("NO\rOP\r\nQUIT\r\n")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(smtp.ErrBareCR))
		expectNext(r, "QUIT")
	})

	It("rejects CR CR LF", func() {
		r := newReader("NOOP\r\r\nQUIT\r\n")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(smtp.ErrBareCR))
		expectNext(r, "QUIT")
	})

	It("accepts 512 octets", func() {
		long := strings.Repeat("x", smtp.MaxCommandLine-2)
		r := newReader(long + "\r\nQUIT\r\n")
		expectNext(r, long)
		expectNext(r, "QUIT")
	})

	It("rejects 513 octets", func() {
		long := strings.Repeat("x", smtp.MaxCommandLine-1)
		r := newReader(long + "\r\nQUIT\r\n")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(smtp.ErrLineTooLong))
		expectNext(r, "QUIT")
	})

	It("rejects a long line across buffer fills", func() {
		long := strings.Repeat("x", 10_000)
		r := newReader(long + "\r\nQUIT\r\n")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(smtp.ErrLineTooLong))
		expectNext(r, "QUIT")
	})

	It("joins chunks of a small buffer", func() {
		long := strings.Repeat("y", 100)
		r := bufio.NewReaderSize(strings.NewReader(long+"\r\nQUIT\r\n"), 16)
		expectNext(r, long)
		expectNext(r, "QUIT")
	})

	It("finds CR split from LF", func() {
		// With a 16-octet buffer the CR is the last octet of the first
		// chunk and the LF the first of the second.
		r := bufio.NewReaderSize(strings.NewReader(strings.Repeat("z", 15)+"\r\nQUIT\r\n"), 16)
		expectNext(r, strings.Repeat("z", 15))
		expectNext(r, "QUIT")
	})

	It("accepts discard limit as too long", func() {
		long := strings.Repeat("x", smtp.MaxCommandDiscard-2)
		r := newReader(long + "\r\nQUIT\r\n")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(smtp.ErrLineTooLong))
		expectNext(r, "QUIT")
	})

	It("gives up past the discard limit", func() {
		long := strings.Repeat("x", smtp.MaxCommandDiscard-1)
		r := newReader(long + "\r\nQUIT\r\n")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(smtp.ErrDiscardCap))
	})

	It("returns io.EOF at a line boundary", func() {
		r := newReader("NOOP\r\n")
		expectNext(r, "NOOP")
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(io.EOF))
	})

	It("returns io.EOF on empty input", func() {
		_, err := smtp.ReadCommandLine(newReader(""))
		Expect(err).To(MatchError(io.EOF))
	})

	It("reports EOF inside a line", func() {
		_, err := smtp.ReadCommandLine(newReader("NOOP"))
		Expect(err).To(MatchError(io.ErrUnexpectedEOF))
	})

	It("reports EOF after a CR", func() {
		_, err := smtp.ReadCommandLine(newReader("NOOP\r"))
		Expect(err).To(MatchError(io.ErrUnexpectedEOF))
	})

	It("reports EOF inside a long line", func() {
		_, err := smtp.ReadCommandLine(newReader(strings.Repeat("x", 5000)))
		Expect(err).To(MatchError(io.ErrUnexpectedEOF))
	})

	It("passes other read errors on", func() {
		failure := errors.New("connection reset")
		r := bufio.NewReader(io.MultiReader(strings.NewReader("NO"), &failingReader{err: failure}))
		_, err := smtp.ReadCommandLine(r)
		Expect(err).To(MatchError(failure))
	})
})

// failingReader returns err on every read.
type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

// Limits used by the ReadData specs where size does not matter.
const (
	bigSize    = 1 << 20
	bigDiscard = 4 << 20
)

var _ = Describe("ReadData", func() {
	It("reads up to the terminator", func() {
		r := newReader("Subject: test\r\n\r\nbody\r\n.\r\nQUIT\r\n")
		msg, err := smtp.ReadData(r, bigSize, bigDiscard)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(msg)).To(Equal("Subject: test\r\n\r\nbody\r\n"))
		expectNext(r, "QUIT")
	})

	It("reads an empty message", func() {
		r := newReader(".\r\nQUIT\r\n")
		msg, err := smtp.ReadData(r, bigSize, bigDiscard)
		Expect(err).NotTo(HaveOccurred())
		Expect(msg).To(BeEmpty())
		expectNext(r, "QUIT")
	})

	It("removes dot-stuffing", func() {
		r := newReader("..\r\n...\r\n..leading\r\n.x\r\nmid.dle\r\n.\r\n")
		msg, err := smtp.ReadData(r, bigSize, bigDiscard)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(msg)).To(Equal(".\r\n..\r\n.leading\r\nx\r\nmid.dle\r\n"))
	})

	It("keeps a dot line with a space", func() {
		r := newReader("a\r\n. \r\nb\r\n.\r\n")
		msg, err := smtp.ReadData(r, bigSize, bigDiscard)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(msg)).To(Equal("a\r\n \r\nb\r\n"))
	})

	DescribeTable("rejects smuggled terminators and stays in step",
		func(data string, want error, line int) {
			r := newReader(data + "MAIL FROM:<spoof@example.test>\r\n.\r\nQUIT\r\n")
			_, err := smtp.ReadData(r, bigSize, bigDiscard)
			expectDataError(err, want, line)
			var dataErr *smtp.DataError
			Expect(errors.As(err, &dataErr)).To(BeTrue())
			Expect(dataErr.Unsynchronized).To(BeFalse())
			expectNext(r, "QUIT")
		},
		Entry("CR . CR", "a\r\nb\r.\r", smtp.ErrBareCR, 2),
		Entry("CR . CRLF", "a\r\nb\r.\r\n", smtp.ErrBareCR, 2),
		Entry("CRLF . CR CRLF", "a\r\n.\r\r\n", smtp.ErrBareCR, 2),
		Entry("CRLF CR . CRLF", "a\r\n\r.\r\n", smtp.ErrBareCR, 2),
	)

	// A "." line next to a bare LF is where a client that ends lines with
	// LF thinks its message ends; the reader stops there and reports that
	// the session lost step, without reading what follows.
	DescribeTable("stops at a dot line next to a bare LF",
		func(data string, line int) {
			r := newReader(data + "MAIL FROM:<spoof@example.test>\r\n.\r\nQUIT\r\n")
			_, err := smtp.ReadData(r, bigSize, bigDiscard)
			expectDataError(err, smtp.ErrBareLF, line)
			var dataErr *smtp.DataError
			Expect(errors.As(err, &dataErr)).To(BeTrue())
			Expect(dataErr.Unsynchronized).To(BeTrue())
			expectNext(r, "MAIL FROM:<spoof@example.test>")
		},
		Entry("LF . LF", "a\r\nb\n.\n", 2),
		Entry("CRLF . LF", "a\r\n.\n", 2),
		Entry("LF . CRLF", "a\r\nb\n.\r\n", 2),
		Entry("LF only", "a\nb\n.\n", 1),
	)

	It("accepts a 1000-octet line", func() {
		line := strings.Repeat("x", smtp.MaxTextLine-2)
		r := newReader(line + "\r\n.\r\n")
		msg, err := smtp.ReadData(r, bigSize, bigDiscard)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(msg)).To(Equal(line + "\r\n"))
	})

	It("rejects a 1001-octet line", func() {
		line := strings.Repeat("x", smtp.MaxTextLine-1)
		r := newReader("a\r\n" + line + "\r\nb\r\n.\r\nQUIT\r\n")
		_, err := smtp.ReadData(r, bigSize, bigDiscard)
		expectDataError(err, smtp.ErrLineTooLong, 2)
		expectNext(r, "QUIT")
	})

	It("does not count the stuffed dot", func() {
		// RFC 5321 section 4.5.3.1.6 excludes the dot added for
		// transparency from the 1000-octet limit.
		line := "." + strings.Repeat("x", smtp.MaxTextLine-3)
		r := newReader("." + line + "\r\n.\r\n")
		msg, err := smtp.ReadData(r, bigSize, bigDiscard)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(msg)).To(Equal(line + "\r\n"))
	})

	It("rejects a stuffed line one octet longer", func() {
		line := "." + strings.Repeat("x", smtp.MaxTextLine-2)
		r := newReader("." + line + "\r\n.\r\nQUIT\r\n")
		_, err := smtp.ReadData(r, bigSize, bigDiscard)
		expectDataError(err, smtp.ErrLineTooLong, 1)
		expectNext(r, "QUIT")
	})

	It("accepts exactly maxSize octets", func() {
		r := newReader("0123456789\r\n.\r\n")
		msg, err := smtp.ReadData(r, 12, bigDiscard)
		Expect(err).NotTo(HaveOccurred())
		Expect(msg).To(HaveLen(12))
	})

	It("rejects one octet over maxSize", func() {
		r := newReader("0123456789\r\nrest\r\n.\r\nQUIT\r\n")
		_, err := smtp.ReadData(r, 11, bigDiscard)
		expectDataError(err, smtp.ErrTooLarge, 1)
		expectNext(r, "QUIT")
	})

	It("reports the first violation", func() {
		r := newReader("a\nb\r\n" + strings.Repeat("x", 2000) + "\r\n.\r\nQUIT\r\n")
		_, err := smtp.ReadData(r, 4, bigDiscard)
		expectDataError(err, smtp.ErrBareLF, 1)
		expectNext(r, "QUIT")
	})

	It("gives up past the discard limit", func() {
		data := strings.Repeat(strings.Repeat("x", 98)+"\r\n", 20) + ".\r\n"
		_, err := smtp.ReadData(newReader(data), 100, 1000)
		Expect(err).To(MatchError(smtp.ErrDiscardCap))
	})

	It("counts the terminator in the discard limit", func() {
		data := strings.Repeat(strings.Repeat("x", 98)+"\r\n", 10) + ".\r\n"
		_, err := smtp.ReadData(newReader(data), 100, 1003)
		expectDataError(err, smtp.ErrTooLarge, 2)
	})

	It("gives up on one endless line", func() {
		data := strings.Repeat("x", 10_000) + "\r\n.\r\n"
		_, err := smtp.ReadData(newReader(data), 100, 5000)
		Expect(err).To(MatchError(smtp.ErrDiscardCap))
	})

	It("reports EOF inside a line", func() {
		_, err := smtp.ReadData(newReader("a\r\nb"), bigSize, bigDiscard)
		Expect(err).To(MatchError(io.ErrUnexpectedEOF))
	})

	It("reports EOF at a line boundary", func() {
		_, err := smtp.ReadData(newReader("a\r\n"), bigSize, bigDiscard)
		Expect(err).To(MatchError(io.EOF))
	})

	It("formats DataError", func() {
		err := &smtp.DataError{Err: smtp.ErrBareLF, Line: 3}
		Expect(err.Error()).To(Equal("message data line 3: line ends with bare LF instead of CRLF"))
	})
})
