package probe_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/probe"
)

// plainOptions returns options for a plain TCP connection to addr.
func plainOptions(addr string, stepTimeout time.Duration) probe.Options {
	return probe.Options{Target: addr, PlainTCP: true, StepTimeout: stepTimeout}
}

// serverEvents returns the data of the server events of conn's transcript,
// and whether each was partial.
func serverEvents(conn *probe.Conn) (data []string, partial []bool) {
	for _, event := range conn.Transcript().Events() {
		if event.Dir == probe.DirServer {
			data = append(data, string(event.Data))
			partial = append(partial, event.Partial)
		}
	}
	return data, partial
}

// readError returns err as a *probe.ReadError and fails the spec if it is
// not one.
func readError(err error) *probe.ReadError {
	GinkgoHelper()
	var failure *probe.ReadError
	Expect(errors.As(err, &failure)).To(BeTrue(), "error %v is not a *probe.ReadError", err)
	return failure
}

var _ = Describe("ReadReply", func() {
	It("parses a multiline reply", func() {
		ehloReply := "250-mx.example.test greets client.example.test\r\n250-MPC ALLOW */*\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			if _, err := io.WriteString(conn, "220 mx.example.test AMTP ready\r\n"); err != nil {
				return
			}
			line := make([]byte, 64)
			if _, err := conn.Read(line); err != nil {
				return
			}
			if _, err := io.WriteString(conn, ehloReply); err != nil {
				return
			}
			hold(conn)
		})
		conn := dial(plainOptions(server.addr, time.Second))

		greeting, err := conn.ReadGreeting(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(greeting.Code).To(Equal(220))
		Expect(greeting.Lines).To(Equal([]string{"220 mx.example.test AMTP ready"}))

		Expect(conn.SendLine("EHLO client.example.test")).To(Succeed())
		reply, err := conn.ReadReply(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(reply.Code).To(Equal(250))
		Expect(reply.Lines).To(HaveLen(4))
		Expect(reply.Lines[1]).To(Equal("250-MPC ALLOW */*"))
		Expect(reply.Texts()).To(Equal([]string{"mx.example.test greets client.example.test", "MPC ALLOW */*", "PIPELINING", "8BITMIME"}))
		Expect(reply.CRLF).To(BeTrue())
		Expect(reply.Defects).To(BeEmpty())
		Expect(string(reply.Raw)).To(Equal(ehloReply))

		data, partial := serverEvents(conn)
		Expect(data).To(HaveLen(5))
		Expect(data[2]).To(Equal("250-MPC ALLOW */*\r\n"))
		Expect(partial).NotTo(ContainElement(true))
	})

	It("counts one partial byte in the singular", func() {
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			if _, err := io.WriteString(conn, "2"); err != nil {
				return
			}
			hold(conn)
		})
		conn := dial(plainOptions(server.addr, 300*time.Millisecond))

		_, err := conn.ReadReply(context.Background())

		Expect(err).To(MatchError(probe.ErrTimeout))
		Expect(readError(err).Received).To(Equal(1))
		Expect(err.Error()).To(ContainSubstring("; 1 byte of it arrived"))
	})

	It("times out a dripping server", func() {
		greeting := "220 mx.example.test slowly says hello\r\n"
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			for i := range len(greeting) {
				if _, err := io.WriteString(conn, greeting[i:i+1]); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			hold(conn)
		})
		conn := dial(plainOptions(server.addr, time.Second))

		start := time.Now()
		reply, err := conn.ReadReply(context.Background())
		elapsed := time.Since(start)

		Expect(err).To(MatchError(probe.ErrTimeout))
		Expect(elapsed).To(BeNumerically(">=", 950*time.Millisecond))
		Expect(elapsed).To(BeNumerically("<", 1300*time.Millisecond))
		Expect(reply.Lines).To(BeEmpty())

		failure := readError(err)
		Expect(failure.Received).To(BeNumerically(">=", 3))
		Expect(failure.Received).To(BeNumerically("<=", 7))
		Expect(string(failure.Partial)).To(Equal(greeting[:failure.Received]))
		Expect(failure.Error()).To(ContainSubstring("bytes of it arrived"))

		data, partial := serverEvents(conn)
		Expect(data).To(Equal([]string{greeting[:failure.Received]}))
		Expect(partial).To(Equal([]bool{true}))
	})

	It("times out on a silent server", func() {
		server := startServer("127.0.0.1:0", hold)
		conn := dial(plainOptions(server.addr, 300*time.Millisecond))

		start := time.Now()
		_, err := conn.ReadGreeting(context.Background())
		elapsed := time.Since(start)

		Expect(err).To(MatchError(probe.ErrTimeout))
		Expect(readError(err).Received).To(Equal(0))
		Expect(elapsed).To(BeNumerically(">=", 280*time.Millisecond))
		Expect(elapsed).To(BeNumerically("<", 700*time.Millisecond))
		Expect(conn.Transcript().Render()).To(ContainSubstring("timed out"))
	})

	It("prefers the context deadline", func() {
		server := startServer("127.0.0.1:0", hold)
		conn := dial(plainOptions(server.addr, 10*time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()

		start := time.Now()
		_, err := conn.ReadReply(ctx)

		Expect(err).To(MatchError(probe.ErrTimeout))
		Expect(time.Since(start)).To(BeNumerically("<", time.Second))
	})

	It("returns on context cancel", func() {
		server := startServer("127.0.0.1:0", hold)
		conn := dial(plainOptions(server.addr, 10*time.Second))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)

		start := time.Now()
		_, err := conn.ReadReply(ctx)

		Expect(err).To(MatchError(context.Canceled))
		Expect(err).NotTo(MatchError(probe.ErrTimeout))
		Expect(time.Since(start)).To(BeNumerically("<", time.Second))
	})

	It("rereads a reply after a timeout", func() {
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			if _, err := io.WriteString(conn, "250-first\r\n250 sec"); err != nil {
				return
			}
			time.Sleep(600 * time.Millisecond)
			if _, err := io.WriteString(conn, "ond\r\n"); err != nil {
				return
			}
			hold(conn)
		})
		conn := dial(plainOptions(server.addr, 2*time.Second))

		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := conn.ReadReply(ctx)
		Expect(err).To(MatchError(probe.ErrTimeout))
		Expect(readError(err).Received).To(Equal(len("250-first\r\n250 sec")))

		reply, err := conn.ReadReply(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(reply.Lines).To(Equal([]string{"250-first", "250 second"}))

		data, partial := serverEvents(conn)
		Expect(data).To(Equal([]string{"250-first\r\n", "250 sec", "ond\r\n"}))
		Expect(partial).To(Equal([]bool{false, true, false}))
	})

	It("stops an endless line at MaxLineLength", func() {
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			chunk := strings.Repeat("a", 1024)
			for range 10 << 10 {
				if _, err := io.WriteString(conn, chunk); err != nil {
					return
				}
			}
		})
		opts := plainOptions(server.addr, 2*time.Second)
		opts.MaxLineLength = 1000
		conn := dial(opts)

		start := time.Now()
		_, err := conn.ReadReply(context.Background())

		Expect(err).To(MatchError(probe.ErrLineTooLong))
		Expect(time.Since(start)).To(BeNumerically("<", time.Second))
		failure := readError(err)
		Expect(failure.Received).To(BeNumerically(">=", 1000))
		Expect(failure.Received).To(BeNumerically("<=", 1000+4096))
		Expect(conn.Transcript().StoredSize()).To(BeNumerically("<", 64<<10))
	})

	It("stops endless continuation lines at MaxReplyLines", func() {
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			for range 100_000 {
				if _, err := io.WriteString(conn, "250-again\r\n"); err != nil {
					return
				}
			}
		})
		opts := plainOptions(server.addr, 2*time.Second)
		opts.MaxReplyLines = 50
		conn := dial(opts)

		reply, err := conn.ReadReply(context.Background())

		Expect(err).To(MatchError(probe.ErrTooManyLines))
		Expect(reply.Lines).To(HaveLen(50))
		Expect(reply.Code).To(Equal(250))
		Expect(readError(err).Received).To(Equal(50 * len("250-again\r\n")))
	})

	It("reports mixed codes", func() {
		server := startServer("127.0.0.1:0", sendThenHold("250-first\r\n251-second\r\n250 third\r\n220 next\r\n"))
		conn := dial(plainOptions(server.addr, time.Second))

		reply, err := conn.ReadReply(context.Background())
		Expect(err).To(MatchError(probe.ErrMalformedReply))
		Expect(reply.Lines).To(Equal([]string{"250-first", "251-second", "250 third"}))
		Expect(reply.Code).To(Equal(250))
		Expect(reply.Defects).To(HaveLen(1))
		Expect(reply.Defects[0].Line).To(Equal(2))
		Expect(reply.Defects[0].Kind).To(Equal(probe.DefectMixedCodes))
		Expect(readError(err).Defects).To(Equal(reply.Defects))

		next, err := conn.ReadReply(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(next.Code).To(Equal(220))
	})

	It("reports bare LF line endings", func() {
		server := startServer("127.0.0.1:0", sendThenHold("250-first\n250 second\r\n"))
		conn := dial(plainOptions(server.addr, time.Second))

		reply, err := conn.ReadReply(context.Background())

		Expect(err).To(MatchError(probe.ErrMalformedReply))
		Expect(reply.CRLF).To(BeFalse())
		Expect(reply.Lines).To(Equal([]string{"250-first", "250 second"}))
		Expect(reply.Defects).To(Equal([]probe.Defect{{Line: 1, Kind: probe.DefectBareLF, Detail: "the line ends in LF without CR"}}))
		Expect(conn.Transcript().Render()).To(ContainSubstring("S: 250-first\\n\nS: 250 second\n"))
	})

	DescribeTable("reply syntax",
		func(input string, wantCode int, wantDefects []probe.DefectKind) {
			server := startServer("127.0.0.1:0", sendThenHold(input))
			conn := dial(plainOptions(server.addr, time.Second))

			reply, err := conn.ReadReply(context.Background())

			Expect(reply.Code).To(Equal(wantCode))
			var kinds []probe.DefectKind
			for _, defect := range reply.Defects {
				kinds = append(kinds, defect.Kind)
			}
			Expect(kinds).To(Equal(wantDefects))
			if wantDefects == nil {
				Expect(err).NotTo(HaveOccurred())
			} else {
				Expect(err).To(MatchError(probe.ErrMalformedReply))
			}
		},
		Entry("code alone", "250\r\n", 250, nil),
		Entry("code and space", "250 \r\n", 250, nil),
		Entry("empty continuation text", "250-\r\n250 ok\r\n", 250, nil),
		Entry("letter in code", "2x0 hi\r\n", 0, []probe.DefectKind{probe.DefectBadCode}),
		Entry("first digit 6", "600 hi\r\n", 0, []probe.DefectKind{probe.DefectBadCode}),
		Entry("first digit 1", "160 hi\r\n", 0, []probe.DefectKind{probe.DefectBadCode}),
		Entry("second digit 6", "260 hi\r\n", 0, []probe.DefectKind{probe.DefectBadCode}),
		Entry("two-digit line", "25\r\n", 0, []probe.DefectKind{probe.DefectBadCode}),
		Entry("empty line", "\r\n", 0, []probe.DefectKind{probe.DefectBadCode}),
		Entry("no separator", "250ok\r\n", 250, []probe.DefectKind{probe.DefectMissingSeparator}),
		Entry("text without code on line 2", "250-first\r\nsecond\r\n", 250, []probe.DefectKind{probe.DefectBadCode}),
		Entry("bare LF and mixed codes", "250-a\n251 b\r\n", 250, []probe.DefectKind{probe.DefectBareLF, probe.DefectMixedCodes}),
	)

	It("reports a close mid-reply", func() {
		server := startServer("127.0.0.1:0", sendThenClose("250-first\r\n250-sec"))
		conn := dial(plainOptions(server.addr, time.Second))

		reply, err := conn.ReadReply(context.Background())

		Expect(err).To(MatchError(probe.ErrClosed))
		Expect(err).To(MatchError(io.EOF))
		Expect(reply.Lines).To(Equal([]string{"250-first"}))
		failure := readError(err)
		Expect(string(failure.Partial)).To(Equal("250-first\r\n250-sec"))
		Expect(failure.Received).To(Equal(len("250-first\r\n250-sec")))
		Expect(failure.Detail).To(ContainSubstring("the server closed the connection"))

		data, partial := serverEvents(conn)
		Expect(data).To(Equal([]string{"250-first\r\n", "250-sec"}))
		Expect(partial).To(Equal([]bool{false, true}))
	})

	It("returns when Close interrupts", func() {
		server := startServer("127.0.0.1:0", hold)
		conn := dial(plainOptions(server.addr, 10*time.Second))
		time.AfterFunc(100*time.Millisecond, func() { _ = conn.Close() })

		start := time.Now()
		_, err := conn.ReadReply(context.Background())

		Expect(err).To(MatchError(probe.ErrClosed))
		Expect(err).To(MatchError(net.ErrClosed))
		Expect(time.Since(start)).To(BeNumerically("<", time.Second))
		Expect(conn.Close()).To(Succeed())
	})
})

var _ = Describe("ExpectClose", func() {
	It("detects a close after a reply", func() {
		server := startServer("127.0.0.1:0", sendThenClose("554 no AMTP service here\r\n"))
		conn := dial(plainOptions(server.addr, time.Second))

		greeting, err := conn.ReadGreeting(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(greeting.Code).To(Equal(554))

		closed, err := conn.ExpectClose(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(closed).To(BeTrue())
		Expect(conn.Transcript().Render()).To(ContainSubstring("* the server closed the connection after"))
	})

	It("detects a connection reset", func() {
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			_ = conn.(*net.TCPConn).SetLinger(0)
			time.Sleep(100 * time.Millisecond)
		})
		conn := dial(plainOptions(server.addr, time.Second))

		closed, err := conn.ExpectClose(context.Background())

		Expect(err).NotTo(HaveOccurred())
		Expect(closed).To(BeTrue())
	})

	It("reports an open connection", func() {
		server := startServer("127.0.0.1:0", sendThenHold("220 hello\r\n250 unexpected\r\n"))
		conn := dial(plainOptions(server.addr, 300*time.Millisecond))

		start := time.Now()
		closed, err := conn.ExpectClose(context.Background())

		Expect(err).NotTo(HaveOccurred())
		Expect(closed).To(BeFalse())
		Expect(time.Since(start)).To(BeNumerically("<", 700*time.Millisecond))
		data, _ := serverEvents(conn)
		Expect(data).To(Equal([]string{"220 hello\r\n", "250 unexpected\r\n"}))
		Expect(conn.Transcript().Render()).To(ContainSubstring("connection still open after"))
	})

	It("fails after Close", func() {
		server := startServer("127.0.0.1:0", hold)
		conn := dial(plainOptions(server.addr, time.Second))
		Expect(conn.Close()).To(Succeed())

		closed, err := conn.ExpectClose(context.Background())

		Expect(closed).To(BeFalse())
		Expect(err).To(MatchError(probe.ErrClosed))
	})
})
