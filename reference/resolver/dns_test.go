package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
	"github.com/amtp-toolkit/amtp/reference/resolver"
)

// bigRecordCount A records make a response larger than the 1,232-byte EDNS0
// size that the Go resolver advertises (maxDNSPacketSize in
// net/dnsclient_unix.go, Go 1.26), so it has to retry over TCP.
const bigRecordCount = 150

// testZone uses 127.0.0.2 and up because the Go resolver resolves the PTR
// lookup of 127.0.0.1 from /etc/hosts.
var testZone = `
$TTL 300
$ORIGIN example.test.
@           IN SOA  ns1 hostmaster 2026010101 3600 600 86400 60
            IN NS   ns1
ns1         IN A    127.0.0.53
mx1         IN A    127.0.0.2
mx1         IN AAAA 2001:db8::2
mx2         IN A    127.0.0.3
backup      IN A    127.0.0.4
_amtp._tcp  IN SRV  20 0 2525 backup
_amtp._tcp  IN SRV  10 60 2525 mx1
_amtp._tcp  IN SRV  10 40 2525 mx2
` + bigRecords() + `
$ORIGIN 0.0.127.in-addr.arpa.
@   IN SOA ns1.example.test. hostmaster.example.test. 2026010101 3600 600 86400 60
2   IN PTR mx1.example.test.
3   IN PTR mx2.example.test.

$ORIGIN 8.b.d.0.1.0.0.2.ip6.arpa.
@   IN SOA ns1.example.test. hostmaster.example.test. 2026010101 3600 600 86400 60
2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 IN PTR mx1.example.test.
`

func bigRecords() string {
	var b strings.Builder
	for i := range bigRecordCount {
		fmt.Fprintf(&b, "big IN A 127.1.0.%d\n", i+1)
	}
	return b.String()
}

var _ = Describe("DNS", func() {
	var (
		server *dnsserver.Server
		logs   *gbytes.Buffer
		dns    *resolver.DNS
		ctx    context.Context
	)

	BeforeEach(func() {
		zone, err := dnsserver.ParseZone(strings.NewReader(testZone), "", "test.zone")
		Expect(err).NotTo(HaveOccurred())

		logs = gbytes.NewBuffer()
		logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		server, err = dnsserver.Start(context.Background(), "127.0.0.1:0", zone, logger)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(server.Close)

		dns = resolver.NewDNS(server.Addr(), 3*time.Second)
		ctx = context.Background()
	})

	It("looks up PTR in in-addr.arpa without the trailing dot", func() {
		names, err := dns.LookupPTR(ctx, netip.MustParseAddr("127.0.0.2"))

		Expect(err).NotTo(HaveOccurred())
		Expect(names).To(Equal([]string{"mx1.example.test"}))
	})

	It("looks up PTR in ip6.arpa", func() {
		names, err := dns.LookupPTR(ctx, netip.MustParseAddr("2001:db8::2"))

		Expect(err).NotTo(HaveOccurred())
		Expect(names).To(Equal([]string{"mx1.example.test"}))
	})

	It("looks up PTR for an IPv4-mapped IPv6 address in in-addr.arpa", func() {
		names, err := dns.LookupPTR(ctx, netip.MustParseAddr("::ffff:127.0.0.3"))

		Expect(err).NotTo(HaveOccurred())
		Expect(names).To(Equal([]string{"mx2.example.test"}))
	})

	It("returns SRV records in priority order", func() {
		for range 10 {
			records, err := dns.LookupSRV(ctx, "amtp", "tcp", "example.test")
			Expect(err).NotTo(HaveOccurred())
			Expect(records).To(HaveLen(3))

			var first []string
			for _, record := range records[:2] {
				Expect(record.Priority).To(Equal(uint16(10)))
				Expect(record.Port).To(Equal(uint16(2525)))
				first = append(first, record.Target)
			}
			Expect(first).To(ConsistOf("mx1.example.test.", "mx2.example.test."))
			Expect(records[2].Priority).To(Equal(uint16(20)))
			Expect(records[2].Target).To(Equal("backup.example.test."))
		}
	})

	It("looks up A and AAAA records", func() {
		addrs, err := dns.LookupAddr(ctx, "mx1.example.test")

		Expect(err).NotTo(HaveOccurred())
		Expect(addrs).To(ConsistOf(netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("2001:db8::2")))
	})

	It("returns an IP literal without a query", func() {
		addrs, err := dns.LookupAddr(ctx, "192.0.2.7")

		Expect(err).NotTo(HaveOccurred())
		Expect(addrs).To(Equal([]netip.Addr{netip.MustParseAddr("192.0.2.7")}))
	})

	It("matches names without regard to case", func() {
		addrs, err := dns.LookupAddr(ctx, "MX2.Example.TEST.")

		Expect(err).NotTo(HaveOccurred())
		Expect(addrs).To(Equal([]netip.Addr{netip.MustParseAddr("127.0.0.3")}))
	})

	It("retries over TCP after a truncated UDP response", func() {
		addrs, err := dns.LookupAddr(ctx, "big.example.test")

		Expect(err).NotTo(HaveOccurred())
		Expect(addrs).To(HaveLen(bigRecordCount))
		Expect(logs).To(gbytes.Say(`transport=udp question="big.example.test. A".*truncated=true`))
		Expect(logs).To(gbytes.Say(`transport=tcp question="big.example.test. A".*truncated=false`))
	})

	Context("with an NXDOMAIN response", func() {
		It("wraps ErrNotFound and the *net.DNSError", func() {
			_, err := dns.LookupPTR(ctx, netip.MustParseAddr("127.0.0.99"))

			Expect(err).To(MatchError(resolver.ErrNotFound))

			var dnsErr *net.DNSError
			Expect(errors.As(err, &dnsErr)).To(BeTrue())
			Expect(dnsErr.IsNotFound).To(BeTrue())
			Expect(dnsErr.Server).To(Equal(server.Addr()))
		})

		It("names the record and the server in the message", func() {
			_, err := dns.LookupPTR(ctx, netip.MustParseAddr("127.0.0.99"))

			Expect(err.Error()).To(ContainSubstring("PTR lookup of 127.0.0.99"))
			Expect(err.Error()).To(ContainSubstring("99.0.0.127.in-addr.arpa"))
			Expect(err.Error()).To(ContainSubstring(server.Addr()))
		})

		It("wraps ErrNotFound for SRV", func() {
			_, err := dns.LookupSRV(ctx, "amtp", "tcp", "nowhere.example.test")

			Expect(err).To(MatchError(resolver.ErrNotFound))
			Expect(err.Error()).To(ContainSubstring("_amtp._tcp.nowhere.example.test"))
		})
	})

	Context("with a NODATA response", func() {
		It("wraps ErrNotFound for SRV", func() {
			_, err := dns.LookupSRV(ctx, "amtp", "tcp", "mx1.example.test")

			Expect(err).To(MatchError(resolver.ErrNotFound))
		})

		It("wraps ErrNotFound for PTR", func() {
			_, err := dns.LookupPTR(ctx, netip.MustParseAddr("2001:db8::3"))

			Expect(err).To(MatchError(resolver.ErrNotFound))
		})
	})

	It("treats REFUSED as a temporary error", func() {
		_, err := dns.LookupAddr(ctx, "mx1.other.test")

		Expect(err).To(HaveOccurred())
		Expect(err).NotTo(MatchError(resolver.ErrNotFound))
		Expect(err.Error()).To(ContainSubstring("mx1.other.test"))
	})
})

var _ = Describe("DNS without a server", func() {
	It("times out when the server does not answer", func() {
		// A bound UDP socket that never reads, so queries get neither a
		// response nor an ICMP error.
		silent, err := net.ListenPacket("udp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(silent.Close)

		dns := resolver.NewDNS(silent.LocalAddr().String(), 300*time.Millisecond)
		start := time.Now()
		_, err = dns.LookupPTR(context.Background(), netip.MustParseAddr("127.0.0.2"))
		elapsed := time.Since(start)

		Expect(err).To(HaveOccurred())
		Expect(err).NotTo(MatchError(resolver.ErrNotFound))
		var dnsErr *net.DNSError
		Expect(errors.As(err, &dnsErr)).To(BeTrue())
		Expect(dnsErr.IsTimeout).To(BeTrue())
		Expect(err.Error()).To(ContainSubstring(silent.LocalAddr().String()))
		Expect(elapsed).To(BeNumerically("<", 3*time.Second))
	})

	It("fails without ErrNotFound when nothing listens on the port", func() {
		closed, err := net.ListenPacket("udp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := closed.LocalAddr().String()
		Expect(closed.Close()).To(Succeed())

		dns := resolver.NewDNS(addr, 300*time.Millisecond)
		start := time.Now()
		_, err = dns.LookupSRV(context.Background(), "amtp", "tcp", "example.test")

		Expect(err).To(HaveOccurred())
		Expect(err).NotTo(MatchError(resolver.ErrNotFound))
		Expect(err.Error()).To(ContainSubstring(addr))
		Expect(time.Since(start)).To(BeNumerically("<", 3*time.Second))
	})
})
