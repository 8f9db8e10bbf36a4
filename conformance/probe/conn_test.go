package probe_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/probe"
)

var _ = Describe("Dial", func() {
	It("connects from an IPv4 source", func() {
		server := startServer("127.0.0.1:0", sendThenHold("220 hello\r\n"))
		opts := plainOptions(server.addr, time.Second)
		opts.Source = netip.MustParseAddr("127.0.0.5")
		conn := dial(opts)

		var remote netip.AddrPort
		Eventually(server.remotes).Should(Receive(&remote))
		Expect(remote.Addr()).To(Equal(netip.MustParseAddr("127.0.0.5")))
		Expect(conn.LocalAddr()).To(Equal(remote))
		Expect(conn.RemoteAddr().String()).To(Equal(server.addr))
		Expect(conn.TLS().Enabled).To(BeFalse())
		Expect(conn.Transcript().Render()).To(ContainSubstring("* TCP connect to " + server.addr + " from 127.0.0.5\n"))
	})

	It("connects from the IPv6 loopback", func() {
		listener, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			Skip("IPv6 loopback is not available: " + err.Error())
		}
		Expect(listener.Close()).To(Succeed())

		server := startServer("[::1]:0", sendThenHold("220 hello\r\n"))
		opts := plainOptions(server.addr, time.Second)
		opts.Source = netip.IPv6Loopback()
		conn := dial(opts)

		var remote netip.AddrPort
		Eventually(server.remotes).Should(Receive(&remote))
		Expect(remote.Addr()).To(Equal(netip.IPv6Loopback()))
		reply, err := conn.ReadGreeting(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(reply.Code).To(Equal(220))
	})

	It("reports a refused connect", func() {
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := listener.Addr().String()
		Expect(listener.Close()).To(Succeed())

		conn, err := probe.Dial(context.Background(), plainOptions(addr, time.Second))

		Expect(conn).To(BeNil())
		var dialErr *probe.DialError
		Expect(errors.As(err, &dialErr)).To(BeTrue())
		Expect(dialErr.Stage).To(Equal("tcp"))
		Expect(dialErr.Transcript.Render()).To(ContainSubstring("* TCP connect failed: "))
		Expect(err.Error()).To(ContainSubstring("TCP connect to " + addr + " failed"))
	})

	DescribeTable("rejects invalid options",
		func(opts probe.Options, wantText string) {
			_, err := probe.Dial(context.Background(), opts)
			Expect(err).To(MatchError(probe.ErrInvalidOptions))
			Expect(err.Error()).To(ContainSubstring(wantText))
		},
		Entry("empty target", probe.Options{}, "Target is empty"),
		Entry("target without port", probe.Options{Target: "127.0.0.1"}, "is not host:port"),
		Entry("short line limit", probe.Options{Target: "127.0.0.1:25", MaxLineLength: 3}, "MaxLineLength 3"),
		Entry("negative step timeout", probe.Options{Target: "127.0.0.1:25", StepTimeout: -time.Second}, "StepTimeout"),
	)
})

var _ = Describe("Send", func() {
	It("writes bytes unchanged", func() {
		received := make(chan string, 1)
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			reader := bufio.NewReader(conn)
			var lines []string
			for range 3 {
				line, err := reader.ReadString('\n')
				if err != nil {
					break
				}
				lines = append(lines, line)
			}
			received <- strings.Join(lines, "")
			_, _ = io.WriteString(conn, "250 ok\r\n")
			hold(conn)
		})
		conn := dial(plainOptions(server.addr, time.Second))

		Expect(conn.Send([]byte("EHLO bare.example.test\n"))).To(Succeed())
		Expect(conn.Send([]byte("MAIL FROM:<a@example.test>"))).To(Succeed())
		Expect(conn.SendLine(" MPC=com/optin")).To(Succeed())
		Expect(conn.SendLine("\x00\xff")).To(Succeed())

		Eventually(received).Should(Receive(Equal("EHLO bare.example.test\nMAIL FROM:<a@example.test> MPC=com/optin\r\n\x00\xff\r\n")))
		_, err := conn.ReadReply(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(conn.Transcript().Render()).To(ContainSubstring(
			"C: EHLO bare.example.test\\n\nC: MAIL FROM:<a@example.test> [no line ending]\nC:  MPC=com/optin\nC: \\x00\\xff\nS: 250 ok\n"))
	})

	It("fails after Close", func() {
		server := startServer("127.0.0.1:0", hold)
		conn := dial(plainOptions(server.addr, time.Second))
		Expect(conn.Close()).To(Succeed())

		err := conn.SendLine("QUIT")

		Expect(err).To(MatchError(probe.ErrClosed))
	})
})

var _ = Describe("Conn lifecycle", func() {
	It("leaves no goroutines behind", func() {
		server := startServer("127.0.0.1:0", hold)
		tlsServer := startTLSServer(serverConfig(tls.NoClientCert, ""), hold)
		runtime.GC()
		baseline := runtime.NumGoroutine()

		for i := range 20 {
			conn, err := probe.Dial(context.Background(), plainOptions(server.addr, 50*time.Millisecond))
			Expect(err).NotTo(HaveOccurred())
			_, err = conn.ReadReply(context.Background())
			Expect(err).To(MatchError(probe.ErrTimeout))

			ctx, cancel := context.WithCancel(context.Background())
			if i%2 == 0 {
				cancel()
			} else {
				time.AfterFunc(10*time.Millisecond, cancel)
			}
			_, err = conn.ReadReply(ctx)
			Expect(err).To(MatchError(context.Canceled))
			cancel()
			Expect(conn.Close()).To(Succeed())

			tlsConn, err := probe.Dial(context.Background(), clientOptions(tlsServer.addr, ""))
			Expect(err).NotTo(HaveOccurred())
			waitCtx, waitCancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			closed, err := tlsConn.ExpectClose(waitCtx)
			waitCancel()
			Expect(err).NotTo(HaveOccurred())
			Expect(closed).To(BeFalse())
			Expect(tlsConn.Close()).To(Succeed())
		}

		Eventually(runtime.NumGoroutine).WithTimeout(3 * time.Second).Should(BeNumerically("<=", baseline+2))
	})
})
