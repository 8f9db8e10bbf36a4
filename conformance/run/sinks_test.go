package run

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/miekg/dns"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

var _ = Describe("relaySinks", Ordered, func() {
	var (
		m     *pki.Manifest
		sinks *relaySinks
		z     *zoneServer
	)

	BeforeAll(func() {
		var err error
		m, err = pki.Init(pki.Options{Dir: filepath.Join(GinkgoT().TempDir(), "pki")})
		Expect(err).NotTo(HaveOccurred())
		sinks, err = startRelaySinks(m, 5*time.Second)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(sinks.Close)

		ctx, cancel := context.WithCancel(context.Background())
		DeferCleanup(cancel)
		z, err = startZoneServer(ctx, m, "127.0.0.1:0", sinks.records...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(z.Close)
	})

	// lookup queries the zone server for name and type and returns the
	// answer records.
	lookup := func(name string, qtype uint16) []dns.RR {
		query := new(dns.Msg)
		query.SetQuestion(name, qtype)
		client := &dns.Client{Timeout: 5 * time.Second}
		response, _, err := client.Exchange(query, z.Addr())
		Expect(err).NotTo(HaveOccurred())
		return response.Answer
	}

	It("routes each sink domain to its sink", func() {
		for _, target := range []struct {
			domain string
			addr   netip.AddrPort
		}{
			{"sink." + m.Domain, sinks.accepting.Server.Addr()},
			{"sink-deny." + m.Domain, sinks.denying.Server.Addr()},
			{"sink-policy." + m.Domain, sinks.policy.Server.Addr()},
		} {
			srv := lookup("_amtp._tcp."+target.domain+".", dns.TypeSRV)
			Expect(srv).To(HaveLen(1), target.domain)
			record, ok := srv[0].(*dns.SRV)
			Expect(ok).To(BeTrue(), target.domain)
			Expect(record.Port).To(Equal(target.addr.Port()), target.domain)
			Expect(record.Target).To(Equal(target.domain+"."), target.domain)

			a := lookup(target.domain+".", dns.TypeA)
			Expect(a).To(HaveLen(1), target.domain)
			Expect(a[0].(*dns.A).A.String()).To(Equal(target.addr.Addr().String()), target.domain)
		}
	})

	It("names the sink domains in the sinks", func() {
		Expect(sinks.accepting.Domain).To(Equal("sink." + m.Domain))
		Expect(sinks.accepting.Server.Hostname()).To(Equal(sinks.accepting.Domain))
		Expect(sinks.denying.Domain).To(Equal("sink-deny." + m.Domain))
	})

	It("lists the sink records among the zone changes", func() {
		Expect(z.PTROverrides()).To(ContainElements(sinks.records))
		Expect(sinks.records).To(HaveLen(9))
	})

	It("publishes the SRV fallback in priority order", func() {
		srv := lookup("_amtp._tcp.sink-srv."+m.Domain+".", dns.TypeSRV)
		Expect(srv).To(HaveLen(2))
		ports := map[uint16]uint16{}
		for _, rr := range srv {
			record := rr.(*dns.SRV)
			ports[record.Priority] = record.Port
		}
		Expect(ports).To(HaveKeyWithValue(uint16(10), sinks.closer.Addr().Port()))
		Expect(ports).To(HaveKeyWithValue(uint16(20), sinks.accepting.Server.Addr().Port()))
	})

	It("notes each connection to the closing listener", func() {
		since := time.Now()
		conn, err := net.DialTimeout("tcp", sinks.closer.Addr().String(), 5*time.Second)
		Expect(err).NotTo(HaveOccurred())
		Expect(conn.SetReadDeadline(time.Now().Add(5 * time.Second))).To(Succeed())
		_, err = conn.Read(make([]byte, 1))
		Expect(err).To(HaveOccurred())
		conn.Close()
		Eventually(func() int { return len(sinks.closer.Connections(since)) }, 5*time.Second).Should(Equal(1))
	})

	It("logs the questions it answers", func() {
		since := time.Now()
		lookup("_amtp._tcp.Sink."+m.Domain+".", dns.TypeSRV)
		Expect(z.Queries(since)).To(ContainElement("_amtp._tcp.sink." + m.Domain + ". srv"))
		Expect(z.Queries(time.Now().Add(time.Hour))).To(BeEmpty())
	})
})
