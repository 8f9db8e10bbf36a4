package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/reference/client"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/resolver"
)

// testMessage is a message with a header section, as amtpd stores it after
// its own fields.
const testMessage = "From: sender@example.org\r\nTo: alice@example.test\r\nSubject: client test\r\n\r\nHello from the reference client.\r\n"

var _ = Describe("client against amtpd", Ordered, func() {
	var (
		st  *stage
		srv *amtpd
		m   *pki.Manifest
	)

	BeforeAll(func() {
		st = newStage("")
		m = st.manifest
		srv = st.startAmtpd("main", serverConfig{
			private: true,
			policy:  []string{"DENY */optout"},
			recipients: `
[[policy.recipient]]
match = "ringo@example.test"
mpc = ["ALLOW */individual", "ALLOW com/confirmed"]

[[policy.recipient]]
match = "carol@example.test"
mpc = ["DEFER com/optin"]
`,
		})
	})

	message := func(value string, to ...string) client.Message {
		GinkgoHelper()
		v, err := mpc.Parse(value)
		Expect(err).NotTo(HaveOccurred())
		return client.Message{From: "sender@example.org", To: to, MPC: v, Data: []byte(testMessage)}
	}

	It("reads the EHLO reply of amtpd", func() {
		conn := dial(srv.public, m, pki.CertClient, nil)
		name, ext, policy := conn.EHLOResult()
		Expect(name).To(Equal("mx.example.test"))
		Expect(ext.Pipelining).To(BeTrue())
		Expect(ext.SizeOffered).To(BeTrue())
		Expect(ext.Size).To(BeNumerically(">", 0))
		Expect(ext.EightBitMIME).To(BeTrue())
		Expect(ext.EnhancedStatusCodes).To(BeTrue())
		Expect(policy).To(Equal(mpc.Policy{{Action: mpc.Deny, Role: "*", Class: "optout"}}))
		Expect(conn.ServerName()).To(Equal("mx.example.test"))
	})

	It("delivers a message into the Maildir with its MPC header field", func() {
		log := gbytes.NewBuffer()
		conn := dial(srv.public, m, pki.CertClient, log)
		result, err := conn.Send(context.Background(), message("per/individual", "alice@example.test"))
		Expect(err).NotTo(HaveOccurred())
		Expect(result.Recipients).To(HaveLen(1))
		Expect(result.Recipients[0].Status).To(Equal(client.Delivered))
		Expect(result.Recipients[0].Reply.Text()).To(HavePrefix("OK: queued as "))
		Expect(conn.Quit()).To(Succeed())

		Expect(srv.delivered("alice@example.test")).To(ContainElement(SatisfyAll(
			ContainSubstring("MPC: per/individual\r\n"),
			ContainSubstring("Subject: client test\r\n"),
			HaveSuffix("\r\n\r\nHello from the reference client.\r\n"),
		)))
		Expect(string(log.Contents())).To(ContainSubstring("pipelined=true"))
		Expect(string(log.Contents())).To(ContainSubstring(`command="MAIL FROM:<sender@example.org> MPC=per/individual SIZE=`))
	})

	It("sends several messages on one connection", func() {
		before := len(srv.delivered("bob@example.test"))
		conn := dial(srv.public, m, pki.CertClient, nil)
		for _, value := range []string{"per/individual", "com/confirmed", "ngo/optin"} {
			result, err := conn.Send(context.Background(), message(value, "bob@example.test"))
			Expect(err).NotTo(HaveOccurred())
			Expect(result.AllDelivered()).To(BeTrue(), "MPC %s", value)
		}
		Expect(conn.Quit()).To(Succeed())

		delivered := srv.delivered("bob@example.test")
		Expect(delivered).To(HaveLen(before + 3))
		Expect(delivered).To(ContainElement(ContainSubstring("MPC: com/confirmed\r\n")))
		Expect(delivered).To(ContainElement(ContainSubstring("MPC: ngo/optin\r\n")))
	})

	It("delivers 8-bit data with BODY=8BITMIME", func() {
		conn := dial(srv.public, m, pki.CertClient, nil)
		msg := message("per/individual", "alice@example.test")
		msg.Data = []byte("Subject: 8bit\n\nna\xc3\xafve caf\xc3\xa9, with a bare LF\n.and a leading dot\n")

		result, err := conn.Send(context.Background(), msg)
		Expect(err).NotTo(HaveOccurred())
		Expect(result.AllDelivered()).To(BeTrue())
		Expect(srv.delivered("alice@example.test")).To(ContainElement(
			HaveSuffix("Subject: 8bit\r\n\r\nna\xc3\xafve caf\xc3\xa9, with a bare LF\r\n.and a leading dot\r\n")))
	})

	It("gives up with QUIT when the EHLO declarations deny the MPC value", func() {
		serverLogBefore := len(srv.log())
		log := gbytes.NewBuffer()
		conn := dial(srv.public, m, pki.CertClient, log)

		result, err := conn.Send(context.Background(), message("com/optout", "alice@example.test"))
		Expect(result).To(BeNil())
		var denied *client.PolicyDeniedError
		Expect(errors.As(err, &denied)).To(BeTrue(), "error: %v", err)
		Expect(denied.MPC.String()).To(Equal("com/optout"))
		Expect(denied.Policy).To(Equal(mpc.Policy{{Action: mpc.Deny, Role: "*", Class: "optout"}}))
		Expect(client.IsTemporary(err)).To(BeFalse())

		clientLog := string(log.Contents())
		Expect(clientLog).To(ContainSubstring(`command=QUIT`))
		Expect(clientLog).To(ContainSubstring(`reply="221 2.0.0 Bye"`))
		Expect(clientLog).NotTo(ContainSubstring("MAIL FROM"))

		// amtpd logs one line per session; this one saw QUIT and no MAIL.
		serverLog := func() string { return srv.log()[serverLogBefore:] }
		Eventually(serverLog).Should(MatchRegexp(`msg=session .*outcome=quit cn=client.example.test .*messages=0 rejected_messages=0 recipients=0 errors=0`))
		Expect(serverLog()).NotTo(ContainSubstring("MAIL"))

		_, err = conn.Send(context.Background(), message("per/individual", "alice@example.test"))
		Expect(err).To(MatchError(client.ErrClosed))
	})

	It("reports the outcome of each recipient", func() {
		conn := dial(srv.public, m, pki.CertClient, nil)
		result, err := conn.Send(context.Background(),
			message("com/optin", "alice@example.test", "ringo@example.test", "carol@example.test", "nobody@example.test"))
		Expect(err).NotTo(HaveOccurred())

		byAddress := map[string]client.RecipientResult{}
		for _, rcpt := range result.Recipients {
			byAddress[rcpt.Address] = rcpt
		}
		Expect(byAddress).To(HaveLen(4))

		Expect(byAddress["alice@example.test"].Status).To(Equal(client.Delivered))
		Expect(byAddress["ringo@example.test"].Status).To(Equal(client.PermanentFailure))
		Expect(byAddress["ringo@example.test"].Reply.Code).To(Equal(550))
		Expect(byAddress["ringo@example.test"].Reply.Enhanced).To(Equal("5.7.1"))
		Expect(byAddress["carol@example.test"].Status).To(Equal(client.TemporaryFailure))
		Expect(byAddress["carol@example.test"].Reply.Code).To(Equal(451))
		Expect(byAddress["nobody@example.test"].Status).To(Equal(client.PermanentFailure))
		Expect(byAddress["nobody@example.test"].Reply.Enhanced).To(Equal("5.1.1"))

		Expect(srv.delivered("ringo@example.test")).To(BeEmpty())
	})

	It("fails permanently at EHLO with 504 for a rejected identity", func() {
		_, err := client.Dial(context.Background(), srv.public, serverName(m), clientConfig(m, pki.CertExpired, nil))
		var e *client.Error
		Expect(errors.As(err, &e)).To(BeTrue(), "error: %v", err)
		Expect(e.Op).To(Equal("EHLO"))
		Expect(e.Reply).NotTo(BeNil())
		Expect(e.Reply.Code).To(Equal(504))
		Expect(client.IsTemporary(err)).To(BeFalse())
		Expect(err).To(MatchError(ContainSubstring("expired.example.test")))
		Eventually(srv.log).Should(ContainSubstring("check=expired"))
	})

	It("fails permanently when the server certificate does not match the name", func() {
		_, err := client.Dial(context.Background(), srv.public, "other.example.test", clientConfig(m, pki.CertClient, nil))
		var e *client.Error
		Expect(errors.As(err, &e)).To(BeTrue(), "error: %v", err)
		Expect(e.Op).To(Equal("TLS handshake"))
		Expect(client.IsTemporary(err)).To(BeFalse())
	})

	It("fails temporarily when the connection is refused", func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		closedAddr := ln.Addr().String()
		Expect(ln.Close()).To(Succeed())

		_, err = client.Dial(context.Background(), closedAddr, serverName(m), clientConfig(m, pki.CertClient, nil))
		var e *client.Error
		Expect(errors.As(err, &e)).To(BeTrue(), "error: %v", err)
		Expect(e.Op).To(Equal("connect"))
		Expect(err).To(MatchError(ContainSubstring("connection refused")))
		Expect(client.IsTemporary(err)).To(BeTrue())
	})

	It("authenticates on the private listener", func() {
		user := m.Users[0]
		cfg := clientConfig(m, pki.CertPrivateClient, nil)
		cfg.Auth = &client.PlainAuth{Username: user.Name, Password: user.Password}

		conn, err := client.Dial(context.Background(), srv.private, serverName(m), cfg)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(conn.Close)
		result, err := conn.Send(context.Background(), message("per/individual", "carol@example.test"))
		Expect(err).NotTo(HaveOccurred())
		Expect(result.AllDelivered()).To(BeTrue())
		Eventually(srv.log).Should(MatchRegexp(`msg="AUTH succeeded" .*user=` + regexp.QuoteMeta(user.Name)))
	})

	It("fails permanently on a wrong AUTH password", func() {
		cfg := clientConfig(m, pki.CertPrivateClient, nil)
		cfg.Auth = &client.PlainAuth{Username: m.Users[0].Name, Password: "wrong"}

		_, err := client.Dial(context.Background(), srv.private, serverName(m), cfg)
		var e *client.Error
		Expect(errors.As(err, &e)).To(BeTrue(), "error: %v", err)
		Expect(e.Op).To(Equal("AUTH"))
		Expect(e.Reply.Code).To(Equal(535))
		Expect(client.IsTemporary(err)).To(BeFalse())
		Expect(err).NotTo(MatchError(ContainSubstring("wrong")))
	})
})

var _ = Describe("client against amtpd with DENY */*", Ordered, func() {
	var (
		st  *stage
		srv *amtpd
	)

	BeforeAll(func() {
		st = newStage("")
		srv = st.startAmtpd("deny-all", serverConfig{policy: []string{"DENY */*"}})
	})

	It("still sends and delivers mpc/individual", func() {
		conn := dial(srv.public, st.manifest, pki.CertClient, nil)
		v := mpc.Individual
		result, err := conn.Send(context.Background(), client.Message{
			From: "postmaster@example.org", To: []string{"alice@example.test"}, MPC: v, Data: []byte(testMessage),
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(result.AllDelivered()).To(BeTrue())
		Expect(srv.delivered("alice@example.test")).To(ContainElement(ContainSubstring("MPC: mpc/individual\r\n")))
	})
})

var _ = Describe("LookupNextHops and DialNextHop with DNS", Ordered, func() {
	var (
		st  *stage
		srv *amtpd
		// closedPorts are two ports on 127.0.0.1 that were free when the
		// zone was written, so connections to them are refused.
		closedPorts [2]string
	)

	BeforeAll(func() {
		for i := range closedPorts {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			_, closedPorts[i], _ = strings.Cut(ln.Addr().String(), ":")
			Expect(ln.Close()).To(Succeed())
		}
		st = newStage(fmt.Sprintf(`
_amtp._tcp.closed.example.test.  IN SRV 0 0 0 .
_amtp._tcp.multi.example.test.   IN SRV 20 5 %s mx2.example.test.
_amtp._tcp.multi.example.test.   IN SRV 10 5 %s mx.example.test.
mx2.example.test.                IN A   127.0.0.1
`, closedPorts[1], closedPorts[0]))
		srv = st.startAmtpd("srv", serverConfig{})
		st.pointSRVAt(srv.public)
	})

	dnsResolver := func() *resolver.DNS {
		return resolver.NewDNS(st.dns.Addr(), 2*time.Second)
	}

	It("returns the SRV target of the PKI zone with its address", func() {
		hops, err := client.LookupNextHops(context.Background(), dnsResolver(), "example.test")
		Expect(err).NotTo(HaveOccurred())
		Expect(hops).To(HaveLen(1))
		Expect(hops[0].Target).To(Equal("mx.example.test"))
		Expect(hops[0].Addrs).To(ConsistOf(netip.MustParseAddr("127.0.0.1")))
		_, port, _ := strings.Cut(srv.public, ":")
		Expect(strconv.Itoa(int(hops[0].Port))).To(Equal(port))
	})

	It("orders records by priority", func() {
		hops, err := client.LookupNextHops(context.Background(), dnsResolver(), "multi.example.test")
		Expect(err).NotTo(HaveOccurred())
		Expect(hops).To(HaveLen(2))
		Expect(hops[0].Target).To(Equal("mx.example.test"))
		Expect(hops[0].Priority).To(BeEquivalentTo(10))
		Expect(hops[1].Target).To(Equal("mx2.example.test"))
		Expect(strconv.Itoa(int(hops[1].Port))).To(Equal(closedPorts[1]))
	})

	It("fails permanently for the target \".\"", func() {
		_, err := client.LookupNextHops(context.Background(), dnsResolver(), "closed.example.test")
		Expect(err).To(MatchError(client.ErrNoService))
		Expect(client.IsTemporary(err)).To(BeFalse())
	})

	It("fails permanently for a domain without SRV records", func() {
		_, err := client.LookupNextHops(context.Background(), dnsResolver(), "client.example.test")
		Expect(err).To(MatchError(client.ErrNoService))
		Expect(err).To(MatchError(ContainSubstring("does not fall back to MX")))
		Expect(client.IsTemporary(err)).To(BeFalse())
	})

	It("fails temporarily when the DNS server does not answer", func() {
		ln, err := net.ListenPacket("udp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(ln.Close)

		_, err = client.LookupNextHops(context.Background(), resolver.NewDNS(ln.LocalAddr().String(), 500*time.Millisecond), "example.test")
		Expect(err).To(HaveOccurred())
		Expect(client.IsTemporary(err)).To(BeTrue(), "error: %v", err)
	})

	It("delivers through the SRV target", func() {
		hops, err := client.LookupNextHops(context.Background(), dnsResolver(), "example.test")
		Expect(err).NotTo(HaveOccurred())

		conn, err := client.DialNextHop(context.Background(), hops, clientConfig(st.manifest, pki.CertClient, nil))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(conn.Close)
		Expect(conn.ServerName()).To(Equal("mx.example.test"))

		result, err := conn.Send(context.Background(), client.Message{
			From: "sender@example.org", To: []string{"bob@example.test"}, MPC: mpc.Value{Role: "per", Class: "individual"}, Data: []byte(testMessage),
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(result.AllDelivered()).To(BeTrue())
		Expect(srv.delivered("bob@example.test")).To(HaveLen(1))
	})

	It("moves on to the next hop when the first refuses connections", func() {
		hops, err := client.LookupNextHops(context.Background(), dnsResolver(), "multi.example.test")
		Expect(err).NotTo(HaveOccurred())
		// Both hops name closed ports; the live amtpd comes last.
		_, port, _ := strings.Cut(srv.public, ":")
		livePort, err := strconv.Atoi(port)
		Expect(err).NotTo(HaveOccurred())
		live := hops[0]
		live.Port = uint16(livePort)
		hops = append(hops, live)

		conn, err := client.DialNextHop(context.Background(), hops, clientConfig(st.manifest, pki.CertClient, nil))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(conn.Close)
		Expect(conn.Addr()).To(Equal(srv.public))
	})

	It("returns a temporary error when every hop refuses connections", func() {
		hops, err := client.LookupNextHops(context.Background(), dnsResolver(), "multi.example.test")
		Expect(err).NotTo(HaveOccurred())

		_, err = client.DialNextHop(context.Background(), hops, clientConfig(st.manifest, pki.CertClient, nil))
		Expect(err).To(MatchError(ContainSubstring("mx.example.test, mx2.example.test")))
		Expect(client.IsTemporary(err)).To(BeTrue())
		Expect(regexp.MustCompile(`connection refused`).FindAllString(err.Error(), -1)).To(HaveLen(2))
	})
})
