package client_test

import (
	"context"
	"errors"
	"net"
	"net/netip"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/client"
	"github.com/amtp-toolkit/amtp/reference/resolver"
)

var _ = Describe("LookupNextHops with a fake resolver", func() {
	var dns *resolver.Fake

	BeforeEach(func() {
		dns = resolver.NewFake()
	})

	targets := func(hops []client.NextHop) []string {
		names := make([]string, len(hops))
		for i, hop := range hops {
			names[i] = hop.Target
		}
		return names
	}

	It("orders hops by priority", func() {
		dns.AddSRV("amtp", "tcp", "example.org",
			net.SRV{Target: "backup.example.org.", Port: 2525, Priority: 20, Weight: 0},
			net.SRV{Target: "mx1.example.org.", Port: 2525, Priority: 10, Weight: 0},
		)
		dns.AddAddr("backup.example.org", netip.MustParseAddr("192.0.2.20"))
		dns.AddAddr("mx1.example.org", netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10"))

		hops, err := client.LookupNextHops(context.Background(), dns, "example.org")
		Expect(err).NotTo(HaveOccurred())
		Expect(targets(hops)).To(Equal([]string{"mx1.example.org", "backup.example.org"}))
		Expect(hops[0].Addrs).To(Equal([]netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}))
		Expect(hops[0].Port).To(BeEquivalentTo(2525))
		Expect(hops[0].Priority).To(BeEquivalentTo(10))
	})

	It("keeps the resolver's weighted order within a priority", func() {
		// Fake returns records of one priority in the order added, where
		// DNS shuffles them by weight; LookupNextHops must not reorder.
		dns.AddSRV("amtp", "tcp", "example.org",
			net.SRV{Target: "light.example.org.", Port: 2525, Priority: 10, Weight: 1},
			net.SRV{Target: "heavy.example.org.", Port: 2525, Priority: 10, Weight: 90},
			net.SRV{Target: "zero.example.org.", Port: 2525, Priority: 10, Weight: 0},
		)
		for _, host := range []string{"light.example.org", "heavy.example.org", "zero.example.org"} {
			dns.AddAddr(host, netip.MustParseAddr("192.0.2.1"))
		}

		hops, err := client.LookupNextHops(context.Background(), dns, "example.org")
		Expect(err).NotTo(HaveOccurred())
		Expect(targets(hops)).To(Equal([]string{"light.example.org", "heavy.example.org", "zero.example.org"}))
		Expect(hops[1].Weight).To(BeEquivalentTo(90))
	})

	It("fails permanently for a lone target \".\"", func() {
		dns.AddSRV("amtp", "tcp", "example.org", net.SRV{Target: ".", Port: 0, Priority: 0, Weight: 0})

		_, err := client.LookupNextHops(context.Background(), dns, "example.org")
		Expect(err).To(MatchError(client.ErrNoService))
		Expect(err).To(MatchError(ContainSubstring(`target "."`)))
		Expect(client.IsTemporary(err)).To(BeFalse())
	})

	It("fails permanently without SRV records and never asks for addresses", func() {
		dns.AddAddr("example.org", netip.MustParseAddr("192.0.2.1"))

		_, err := client.LookupNextHops(context.Background(), dns, "example.org")
		Expect(err).To(MatchError(client.ErrNoService))
		Expect(errors.Is(err, resolver.ErrNotFound)).To(BeTrue())
		Expect(client.IsTemporary(err)).To(BeFalse())
	})

	It("fails temporarily when the SRV lookup fails", func() {
		dns.AddSRV("amtp", "tcp", "example.org", net.SRV{Target: "mx.example.org.", Port: 2525})
		dns.SetTemporaryError("_amtp._tcp.example.org")

		_, err := client.LookupNextHops(context.Background(), dns, "example.org")
		var e *client.Error
		Expect(errors.As(err, &e)).To(BeTrue(), "error: %v", err)
		Expect(e.Op).To(Equal("SRV lookup"))
		Expect(client.IsTemporary(err)).To(BeTrue())
	})

	It("leaves out a target without addresses while another resolves", func() {
		dns.AddSRV("amtp", "tcp", "example.org",
			net.SRV{Target: "gone.example.org.", Port: 2525, Priority: 10},
			net.SRV{Target: "mx.example.org.", Port: 2525, Priority: 20},
		)
		dns.AddAddr("mx.example.org", netip.MustParseAddr("192.0.2.1"))

		hops, err := client.LookupNextHops(context.Background(), dns, "example.org")
		Expect(err).NotTo(HaveOccurred())
		Expect(targets(hops)).To(Equal([]string{"mx.example.org"}))
	})

	It("fails temporarily when a target's address lookup fails temporarily", func() {
		dns.AddSRV("amtp", "tcp", "example.org",
			net.SRV{Target: "gone.example.org.", Port: 2525, Priority: 10},
			net.SRV{Target: "mx.example.org.", Port: 2525, Priority: 20},
		)
		dns.AddAddr("mx.example.org", netip.MustParseAddr("192.0.2.1"))
		dns.SetTemporaryError("mx.example.org")

		_, err := client.LookupNextHops(context.Background(), dns, "example.org")
		Expect(err).To(MatchError(client.ErrNoService))
		Expect(client.IsTemporary(err)).To(BeTrue(), "error: %v", err)
	})

	It("fails permanently when no target has an address", func() {
		dns.AddSRV("amtp", "tcp", "example.org", net.SRV{Target: "gone.example.org.", Port: 2525, Priority: 10})

		_, err := client.LookupNextHops(context.Background(), dns, "example.org")
		Expect(err).To(MatchError(client.ErrNoService))
		Expect(client.IsTemporary(err)).To(BeFalse())
	})

	It("rejects a name that is not a domain", func() {
		_, err := client.LookupNextHops(context.Background(), dns, "exa mple")
		Expect(err).To(MatchError(client.ErrNoService))
		Expect(client.IsTemporary(err)).To(BeFalse())
	})

	It("accepts a trailing dot on the domain", func() {
		dns.AddSRV("amtp", "tcp", "example.org", net.SRV{Target: "mx.example.org.", Port: 2525})
		dns.AddAddr("mx.example.org", netip.MustParseAddr("192.0.2.1"))

		hops, err := client.LookupNextHops(context.Background(), dns, "example.org.")
		Expect(err).NotTo(HaveOccurred())
		Expect(targets(hops)).To(Equal([]string{"mx.example.org"}))
	})
})

var _ = Describe("IsTemporary", func() {
	It("classifies the error types", func() {
		Expect(client.IsTemporary(nil)).To(BeFalse())
		Expect(client.IsTemporary(&client.PolicyDeniedError{})).To(BeFalse())
		Expect(client.IsTemporary(&client.Error{Temporary: true})).To(BeTrue())
		Expect(client.IsTemporary(&client.Error{Temporary: false})).To(BeFalse())
		Expect(client.IsTemporary(errors.Join(errors.New("context"), &client.Error{}))).To(BeFalse())
		Expect(client.IsTemporary(context.Canceled)).To(BeTrue())
	})
})
