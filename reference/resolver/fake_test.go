package resolver_test

import (
	"context"
	"errors"
	"net"
	"net/netip"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/resolver"
)

var _ = Describe("Fake", func() {
	var (
		fake *resolver.Fake
		ctx  context.Context
	)

	BeforeEach(func() {
		fake = resolver.NewFake()
		ctx = context.Background()
	})

	Describe("LookupPTR", func() {
		It("returns the names without the trailing dot", func() {
			fake.AddPTR(netip.MustParseAddr("192.0.2.1"), "mx1.example.test.", "alias.example.test")

			names, err := fake.LookupPTR(ctx, netip.MustParseAddr("192.0.2.1"))
			Expect(err).NotTo(HaveOccurred())
			Expect(names).To(Equal([]string{"mx1.example.test", "alias.example.test"}))
		})

		It("matches an IPv4-mapped IPv6 address to its IPv4 form", func() {
			fake.AddPTR(netip.MustParseAddr("192.0.2.1"), "mx1.example.test")

			names, err := fake.LookupPTR(ctx, netip.MustParseAddr("::ffff:192.0.2.1"))
			Expect(err).NotTo(HaveOccurred())
			Expect(names).To(Equal([]string{"mx1.example.test"}))
		})

		It("wraps ErrNotFound and a *net.DNSError for an unknown address", func() {
			_, err := fake.LookupPTR(ctx, netip.MustParseAddr("2001:db8::9"))

			Expect(err).To(MatchError(resolver.ErrNotFound))
			var dnsErr *net.DNSError
			Expect(errors.As(err, &dnsErr)).To(BeTrue())
			Expect(dnsErr.IsNotFound).To(BeTrue())
			Expect(err.Error()).To(ContainSubstring("2001:db8::9"))
		})

		It("returns a copy", func() {
			fake.AddPTR(netip.MustParseAddr("192.0.2.1"), "mx1.example.test")

			names, err := fake.LookupPTR(ctx, netip.MustParseAddr("192.0.2.1"))
			Expect(err).NotTo(HaveOccurred())
			names[0] = "changed.example.test"

			again, err := fake.LookupPTR(ctx, netip.MustParseAddr("192.0.2.1"))
			Expect(err).NotTo(HaveOccurred())
			Expect(again).To(Equal([]string{"mx1.example.test"}))
		})
	})

	Describe("LookupSRV", func() {
		BeforeEach(func() {
			fake.AddSRV("amtp", "tcp", "example.test",
				net.SRV{Target: "backup.example.test.", Port: 2525, Priority: 20},
				net.SRV{Target: "mx1.example.test.", Port: 2525, Priority: 10, Weight: 5},
				net.SRV{Target: "mx2.example.test.", Port: 2525, Priority: 10, Weight: 50},
			)
		})

		It("sorts by priority and keeps the order within a priority", func() {
			records, err := fake.LookupSRV(ctx, "amtp", "tcp", "example.test")

			Expect(err).NotTo(HaveOccurred())
			var targets []string
			for _, record := range records {
				targets = append(targets, record.Target)
			}
			Expect(targets).To(Equal([]string{"mx1.example.test.", "mx2.example.test.", "backup.example.test."}))
		})

		It("matches the name without regard to case or a trailing dot", func() {
			records, err := fake.LookupSRV(ctx, "AMTP", "TCP", "Example.Test.")

			Expect(err).NotTo(HaveOccurred())
			Expect(records).To(HaveLen(3))
		})

		It("returns copies of the records", func() {
			records, err := fake.LookupSRV(ctx, "amtp", "tcp", "example.test")
			Expect(err).NotTo(HaveOccurred())
			records[0].Port = 1

			again, err := fake.LookupSRV(ctx, "amtp", "tcp", "example.test")
			Expect(err).NotTo(HaveOccurred())
			Expect(again[0].Port).To(Equal(uint16(2525)))
		})

		It("wraps ErrNotFound for another name", func() {
			_, err := fake.LookupSRV(ctx, "amtp", "tcp", "other.test")

			Expect(err).To(MatchError(resolver.ErrNotFound))
			Expect(err.Error()).To(ContainSubstring("_amtp._tcp.other.test"))
		})
	})

	Describe("LookupAddr", func() {
		It("returns the addresses of the host", func() {
			fake.AddAddr("mx1.example.test", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"))

			addrs, err := fake.LookupAddr(ctx, "MX1.example.test.")
			Expect(err).NotTo(HaveOccurred())
			Expect(addrs).To(Equal([]netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}))
		})

		It("returns an IP literal as is", func() {
			addrs, err := fake.LookupAddr(ctx, "192.0.2.7")

			Expect(err).NotTo(HaveOccurred())
			Expect(addrs).To(Equal([]netip.Addr{netip.MustParseAddr("192.0.2.7")}))
		})

		It("wraps ErrNotFound for an unknown host", func() {
			_, err := fake.LookupAddr(ctx, "nowhere.example.test")

			Expect(err).To(MatchError(resolver.ErrNotFound))
		})
	})

	Describe("SetTemporaryError", func() {
		BeforeEach(func() {
			fake.AddPTR(netip.MustParseAddr("192.0.2.1"), "mx1.example.test")
			fake.AddSRV("amtp", "tcp", "example.test", net.SRV{Target: "mx1.example.test.", Port: 2525})
			fake.AddAddr("mx1.example.test", netip.MustParseAddr("192.0.2.1"))
		})

		It("fails PTR lookups with a temporary error", func() {
			fake.SetTemporaryError("192.0.2.1")

			_, err := fake.LookupPTR(ctx, netip.MustParseAddr("192.0.2.1"))
			Expect(err).To(HaveOccurred())
			Expect(err).NotTo(MatchError(resolver.ErrNotFound))
			var dnsErr *net.DNSError
			Expect(errors.As(err, &dnsErr)).To(BeTrue())
			Expect(dnsErr.IsTemporary).To(BeTrue())
		})

		It("fails SRV lookups by the whole name", func() {
			fake.SetTemporaryError("_amtp._tcp.EXAMPLE.test.")

			_, err := fake.LookupSRV(ctx, "amtp", "tcp", "example.test")
			Expect(err).To(HaveOccurred())
			Expect(err).NotTo(MatchError(resolver.ErrNotFound))
			Expect(err.Error()).To(ContainSubstring("_amtp._tcp.example.test"))
		})

		It("fails address lookups of the host only", func() {
			fake.SetTemporaryError("mx1.example.test")

			_, err := fake.LookupAddr(ctx, "mx1.example.test")
			Expect(err).To(HaveOccurred())
			Expect(err).NotTo(MatchError(resolver.ErrNotFound))

			names, err := fake.LookupPTR(ctx, netip.MustParseAddr("192.0.2.1"))
			Expect(err).NotTo(HaveOccurred())
			Expect(names).To(Equal([]string{"mx1.example.test"}))
		})

		It("is cleared by SetError with nil", func() {
			fake.SetTemporaryError("mx1.example.test")
			fake.SetError("mx1.example.test", nil)

			addrs, err := fake.LookupAddr(ctx, "mx1.example.test")
			Expect(err).NotTo(HaveOccurred())
			Expect(addrs).To(Equal([]netip.Addr{netip.MustParseAddr("192.0.2.1")}))
		})
	})

	It("returns the error given to SetError", func() {
		injected := errors.New("injected failure")
		fake.SetError("mx1.example.test", injected)

		_, err := fake.LookupAddr(ctx, "mx1.example.test")
		Expect(err).To(MatchError(injected))
		Expect(err.Error()).To(ContainSubstring("A/AAAA lookup of mx1.example.test"))
	})
})
