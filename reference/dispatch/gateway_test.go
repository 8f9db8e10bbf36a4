package dispatch_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/dispatch"
	"github.com/amtp-toolkit/amtp/reference/router"
)

// gatewayMessage is one message for a recipient behind an SMTP gateway.
var gatewayMessage = dispatch.OutboundMessage{
	ID:         "GATEWAYTEST",
	From:       "sender@example.test",
	Recipients: []string{"rcpt@gateway.example"},
	MPC:        perIndividual,
	Data:       []byte("Subject: test\r\n\r\nHello.\r\n"),
}

// startGateway listens on loopback and runs serve on every connection it
// accepts. Cleanup closes the listener and the connections.
func startGateway(serve func(net.Conn)) router.Route {
	GinkgoHelper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())

	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	DeferCleanup(func() {
		listener.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	})

	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go serve(conn)
		}
	}()
	return router.Route{Domain: "gateway.example", Kind: router.Gateway, Smarthost: listener.Addr().String()}
}

var _ = Describe("Relay to an SMTP gateway", func() {
	var relay *dispatch.Relay

	BeforeEach(func() {
		relay = &dispatch.Relay{Hostname: "mx.example.test"}
	})

	It("stops a silent session on cancel", func() {
		accepted := make(chan struct{})
		route := startGateway(func(net.Conn) { close(accepted) })

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := relay.Send(ctx, route, gatewayMessage)
			done <- err
		}()

		Eventually(accepted, 5*time.Second).Should(BeClosed())
		cancel()
		var err error
		Eventually(done, 5*time.Second).Should(Receive(&err))
		Expect(err).To(MatchError(context.Canceled))
	})

	DescribeTable("stops reading an endless reply",
		func(first, repeated string) {
			const total = 64 << 20
			var written atomic.Int64
			finished := make(chan struct{})
			route := startGateway(func(conn net.Conn) {
				defer close(finished)
				defer conn.Close()
				conn.Write([]byte(first))
				chunk := []byte(strings.Repeat(repeated, (64<<10)/len(repeated)))
				for written.Load() < total {
					conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
					n, err := conn.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			})

			_, err := relay.Send(context.Background(), route, gatewayMessage)
			Expect(err).To(MatchError(ContainSubstring("exceed the size that a session needs")))

			// The gateway's writes fail once the relay has closed the
			// connection, long before the whole flood is out.
			Eventually(finished, 10*time.Second).Should(BeClosed())
			Expect(written.Load()).To(BeNumerically("<", total/4), "the relay read on after its budget")
		},
		Entry("one line without CRLF", "220 ", "a"),
		Entry("endless continuation lines", "", "220-greeting line\r\n"),
	)
})
