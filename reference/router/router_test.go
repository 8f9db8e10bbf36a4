package router_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/router"
)

var _ = Describe("Router", func() {
	var r *router.Router

	BeforeEach(func() {
		var err error
		r, err = router.New([]string{"example.test", "Lists.Example.Test"}, []router.Route{
			{Domain: "p.example.test", Kind: router.Private, Smarthost: "10.0.0.1:4587"},
			{Domain: "G.Example.Test", Kind: router.Gateway, Smarthost: "10.0.0.2:25"},
		})
		Expect(err).NotTo(HaveOccurred())
	})

	Describe("local domains", func() {
		It("routes local domains to Maildir", func() {
			for _, origin := range []router.Origin{router.FromPublic, router.FromPrivate, router.FromLocal} {
				route, err := r.Lookup("example.test", origin)
				Expect(err).NotTo(HaveOccurred())
				Expect(route.Kind).To(Equal(router.Local))
				Expect(route.Domain).To(Equal("example.test"))
			}
		})

		It("matches local domains case-insensitively", func() {
			route, err := r.Lookup("LISTS.example.TEST", router.FromPublic)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Kind).To(Equal(router.Local))
			Expect(route.Domain).To(Equal("lists.example.test"))
			Expect(r.IsLocal("Example.Test")).To(BeTrue())
			Expect(r.IsLocal("p.example.test")).To(BeFalse())
		})
	})

	Describe("configured routes", func() {
		It("routes a domain to its private route", func() {
			route, err := r.Lookup("P.example.test", router.FromPublic)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Kind).To(Equal(router.Private))
			Expect(route.Smarthost).To(Equal("10.0.0.1:4587"))
			Expect(route.Domain).To(Equal("p.example.test"))
		})

		// Section 5.1 forbids public-in, public-out relay. The router lets
		// public mail leave over a gateway route, as over a private one.
		It("routes public mail to a gateway route", func() {
			route, err := r.Lookup("g.example.test", router.FromPublic)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Kind).To(Equal(router.Gateway))
			Expect(route.Smarthost).To(Equal("10.0.0.2:25"))
			Expect(route.Domain).To(Equal("g.example.test"))
		})

		It("skips subdomains of routed domains", func() {
			_, err := r.Lookup("sub.p.example.test", router.FromPublic)
			Expect(err).To(MatchError(router.ErrRelayDenied))
		})
	})

	Describe("the wildcard route", func() {
		var wild *router.Router

		BeforeEach(func() {
			var err error
			wild, err = router.New([]string{"example.test"}, []router.Route{
				{Domain: "*", Kind: router.Gateway, Smarthost: "10.0.0.9:25"},
				{Domain: "p.example.test", Kind: router.Private, Smarthost: "10.0.0.1:4587"},
			})
			Expect(err).NotTo(HaveOccurred())
		})

		It("carries every other remote domain", func() {
			route, err := wild.Lookup("Elsewhere.Example.Org", router.FromPublic)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Kind).To(Equal(router.Gateway))
			Expect(route.Smarthost).To(Equal("10.0.0.9:25"))
			Expect(route.Domain).To(Equal("elsewhere.example.org"))
		})

		It("yields to a domain's own route", func() {
			route, err := wild.Lookup("p.example.test", router.FromPublic)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Kind).To(Equal(router.Private))
		})

		It("yields to a local domain", func() {
			route, err := wild.Lookup("example.test", router.FromPublic)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Kind).To(Equal(router.Local))
		})

		It("keeps the stored route unchanged", func() {
			_, err := wild.Lookup("one.example.org", router.FromPrivate)
			Expect(err).NotTo(HaveOccurred())
			route, err := wild.Lookup("two.example.org", router.FromPrivate)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Domain).To(Equal("two.example.org"))
		})
	})

	Describe("the public relay rule of section 5.1", func() {
		It("denies unrouted public mail", func() {
			route, err := r.Lookup("b.example.org", router.FromPublic)
			Expect(err).To(MatchError(router.ErrRelayDenied))
			Expect(err.Error()).To(ContainSubstring("b.example.org"))
			Expect(route).To(BeZero())
		})

		It("sends private mail by SRV", func() {
			route, err := r.Lookup("B.Example.Org", router.FromPrivate)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Kind).To(Equal(router.Public))
			Expect(route.Domain).To(Equal("b.example.org"))
			Expect(route.Smarthost).To(BeEmpty())
		})

		It("sends bounces by SRV", func() {
			route, err := r.Lookup("b.example.org", router.FromLocal)
			Expect(err).NotTo(HaveOccurred())
			Expect(route.Kind).To(Equal(router.Public))
		})
	})

	Describe("configuration errors", func() {
		DescribeTable("rejects an invalid route",
			func(routes []router.Route, want string) {
				_, err := router.New([]string{"example.test"}, routes)
				Expect(err).To(HaveOccurred())
				Expect(err.Error()).To(ContainSubstring(want))
			},
			Entry("kind public", []router.Route{{Domain: "x.example.org", Kind: router.Public, Smarthost: "10.0.0.1:25"}},
				`kind "public" is invalid`),
			Entry("kind local", []router.Route{{Domain: "x.example.org", Kind: router.Local}},
				`kind "local" is invalid`),
			Entry("empty kind", []router.Route{{Domain: "x.example.org", Smarthost: "10.0.0.1:25"}},
				`kind "" is invalid`),
			Entry("a route for a local domain", []router.Route{{Domain: "Example.Test", Kind: router.Private, Smarthost: "10.0.0.1:25"}},
				"the domain is delivered locally"),
			Entry("the same domain twice, in another case", []router.Route{
				{Domain: "x.example.org", Kind: router.Private, Smarthost: "10.0.0.1:25"},
				{Domain: "X.Example.Org", Kind: router.Gateway, Smarthost: "10.0.0.2:25"},
			}, "configured twice"),
			Entry("the wildcard twice", []router.Route{
				{Domain: "*", Kind: router.Private, Smarthost: "10.0.0.1:25"},
				{Domain: "*", Kind: router.Gateway, Smarthost: "10.0.0.2:25"},
			}, "configured twice"),
		)

		It("accepts no routes at all", func() {
			r, err := router.New([]string{"example.test"}, nil)
			Expect(err).NotTo(HaveOccurred())
			_, err = r.Lookup("x.example.org", router.FromPublic)
			Expect(err).To(MatchError(router.ErrRelayDenied))
		})
	})
})
