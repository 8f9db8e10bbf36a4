package run

import (
	"context"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/miekg/dns"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

var _ = Describe("zoneServer", Ordered, func() {
	var (
		m *pki.Manifest
		z *zoneServer
	)

	BeforeAll(func() {
		var err error
		m, err = pki.Init(pki.Options{Dir: filepath.Join(GinkgoT().TempDir(), "pki")})
		Expect(err).NotTo(HaveOccurred())
		ctx, cancel := context.WithCancel(context.Background())
		DeferCleanup(cancel)
		z, err = startZoneServer(ctx, m, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(z.Close)
	})

	// ptr queries the zone server directly, not through /etc/hosts, for the
	// PTR records of addr.
	ptr := func(addr string) []string {
		query := new(dns.Msg)
		query.SetQuestion(reverseName(netip.MustParseAddr(addr)), dns.TypePTR)
		client := &dns.Client{Timeout: 5 * time.Second}
		response, _, err := client.Exchange(query, z.Addr())
		Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, rr := range response.Answer {
			if record, ok := rr.(*dns.PTR); ok {
				names = append(names, record.Ptr)
			}
		}
		return names
	}

	It("serves the PKI's PTR records", func() {
		Expect(ptr("127.0.0.2")).To(ConsistOf("client." + m.Domain + "."))
	})

	It("points the cn-not-fqdn address at its single-label CN", func() {
		Expect(ptr("127.0.0.5")).To(ConsistOf("client."))
		Expect(z.PTROverrides()).To(ConsistOf("127.0.0.5 PTR client. (instead of nofqdn." + m.Domain + ".)"))
	})

	It("replaces and restores a PTR record", func() {
		restore, err := z.SetPTR(netip.MustParseAddr("127.0.0.2"), "elsewhere."+m.Domain+".")
		Expect(err).NotTo(HaveOccurred())
		Expect(ptr("127.0.0.2")).To(ConsistOf("elsewhere." + m.Domain + "."))
		restore()
		Expect(ptr("127.0.0.2")).To(ConsistOf("client." + m.Domain + "."))
	})

	It("gives ::1 a PTR record in a zone of its own", func() {
		restore, err := z.SetPTR(netip.IPv6Loopback(), "client."+m.Domain+".")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(restore)
		Expect(reverseName(netip.IPv6Loopback())).To(HavePrefix("1.0.0.0."))
		Expect(reverseName(netip.IPv6Loopback())).To(HaveSuffix(".ip6.arpa."))
		Expect(ptr("::1")).To(ConsistOf("client." + m.Domain + "."))
	})

	It("rejects a taken address", func() {
		_, err := startZoneServer(context.Background(), m, z.Addr())
		Expect(err).To(MatchError(ContainSubstring("another process (such as 'amtpkit dns serve') is listening on " + z.Addr())))
		Expect(err).To(MatchError(ContainSubstring("another address with --dns-listen")))
		Expect(err).To(MatchError(ContainSubstring("skips the relay and SRV checks")))
		Expect(err).NotTo(MatchError(ContainSubstring("port 0")))
	})
})
