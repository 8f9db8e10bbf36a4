package client_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/reference/client"
	"github.com/amtp-toolkit/amtp/reference/mpc"
)

// standardEHLO are the extension lines of a server like amtpd, without an
// MPC line.
var standardEHLO = []string{"PIPELINING", "SIZE 10000", "8BITMIME", "ENHANCEDSTATUSCODES"}

var _ = Describe("client against a scripted server", Ordered, func() {
	var m *pki.Manifest

	BeforeAll(func() {
		var err error
		m, err = pki.Init(pki.Options{Dir: filepath.Join(GinkgoT().TempDir(), "pki")})
		Expect(err).NotTo(HaveOccurred())
	})

	message := func(value string, to ...string) client.Message {
		GinkgoHelper()
		v, err := mpc.Parse(value)
		Expect(err).NotTo(HaveOccurred())
		return client.Message{
			From: "sender@example.org",
			To:   to,
			MPC:  v,
			Data: []byte("Subject: test\r\n\r\nHello.\r\n"),
		}
	}

	connect := func(f *fakeServer) *client.Conn {
		GinkgoHelper()
		return dial(f.addr, m, pki.CertClient, nil)
	}

	Describe("EHLO MPC declarations", func() {
		DescribeTable("reads each spelling of the draft",
			func(line string) {
				f := startFakeServer(m, &fakeServer{ehlo: append([]string{line}, standardEHLO...)})

				conn := connect(f)
				name, ext, policy := conn.EHLOResult()
				Expect(name).To(Equal("fake.example.test"))
				Expect(ext.Pipelining).To(BeTrue())
				Expect(policy).To(Equal(mpc.Policy{{Action: mpc.Deny, Role: "*", Class: "optout"}}))

				_, err := conn.Send(context.Background(), message("com/optout", "alice@example.test"))
				var denied *client.PolicyDeniedError
				Expect(errors.As(err, &denied)).To(BeTrue(), "error: %v", err)
				Expect(f.Verbs()).To(Equal([]string{"EHLO", "QUIT"}))

				conn = connect(f)
				result, err := conn.Send(context.Background(), message("per/individual", "alice@example.test"))
				Expect(err).NotTo(HaveOccurred())
				Expect(result.AllDelivered()).To(BeTrue())
				Expect(f.Verbs()).To(ContainElement("MAIL"))
			},
			Entry("ABNF form", "MPC DENY=*/optout"),
			Entry("example form with a space", "MPC DENY */optout"),
			Entry("one keyword per line", "MPC-DENY */optout"),
		)

		It("keeps the order of declarations across lines", func() {
			f := startFakeServer(m, &fakeServer{ehlo: []string{"MPC DENY com/*", "MPC-ALLOW com/individual", "PIPELINING"}})
			conn := connect(f)
			_, _, policy := conn.EHLOResult()
			Expect(policy).To(Equal(mpc.Policy{
				{Action: mpc.Deny, Role: "com", Class: "*"},
				{Action: mpc.Allow, Role: "com", Class: "individual"},
			}))
			Expect(conn.Allows(mpc.Value{Role: "com", Class: "individual"})).To(BeTrue())
			Expect(conn.Allows(mpc.Value{Role: "com", Class: "optin"})).To(BeFalse())
			Expect(conn.Allows(mpc.Value{Role: "per", Class: "optin"})).To(BeTrue())
		})

		It("fails EHLO with a temporary error on an unreadable MPC line", func() {
			f := startFakeServer(m, &fakeServer{ehlo: []string{"MPC DENY=*/nonsense"}})
			_, err := client.Dial(context.Background(), f.addr, serverName(m), clientConfig(m, pki.CertClient, nil))
			Expect(err).To(MatchError(client.ErrProtocol))
			Expect(client.IsTemporary(err)).To(BeTrue())
			Eventually(f.Verbs).Should(Equal([]string{"EHLO", "QUIT"}))
		})
	})

	Describe("mpc/individual", func() {
		It("goes to MAIL through DENY */*", func() {
			f := startFakeServer(m, &fakeServer{ehlo: append([]string{"MPC DENY=*/*"}, standardEHLO...)})
			conn := connect(f)
			Expect(conn.Allows(mpc.Individual)).To(BeTrue())

			result, err := conn.Send(context.Background(), message("mpc/individual", "postmaster@example.test"))
			Expect(err).NotTo(HaveOccurred())
			Expect(result.AllDelivered()).To(BeTrue())
			Expect(f.Commands()).To(ContainElement(HavePrefix("MAIL FROM:<sender@example.org> MPC=mpc/individual")))

			_, err = conn.Send(context.Background(), message("per/individual", "postmaster@example.test"))
			Expect(err).To(BeAssignableToTypeOf(&client.PolicyDeniedError{}))
			Expect(client.IsTemporary(err)).To(BeFalse())
		})
	})

	Describe("MAIL parameters", func() {
		It("sends the MPC value in its own spelling with SIZE", func() {
			f := startFakeServer(m, &fakeServer{ehlo: standardEHLO})
			conn := connect(f)
			msg := message("per/individual", "alice@example.test")
			msg.MPC = mpc.Value{Role: "PER", Class: "Individual"}

			_, err := conn.Send(context.Background(), msg)
			Expect(err).NotTo(HaveOccurred())
			size := len("Subject: test\r\n\r\nHello.\r\n")
			Expect(f.Commands()).To(ContainElement("MAIL FROM:<sender@example.org> MPC=PER/Individual SIZE=" + strconv.Itoa(size)))
		})

		It("adds BODY=8BITMIME for 8-bit data", func() {
			f := startFakeServer(m, &fakeServer{ehlo: standardEHLO})
			conn := connect(f)
			msg := message("per/individual", "alice@example.test")
			msg.Data = []byte("Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n")

			_, err := conn.Send(context.Background(), msg)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Commands()).To(ContainElement(HaveSuffix(" BODY=8BITMIME")))
		})

		It("sends neither SIZE nor BODY to a server without them", func() {
			f := startFakeServer(m, &fakeServer{ehlo: []string{"PIPELINING"}})
			conn := connect(f)
			_, err := conn.Send(context.Background(), message("per/individual", "alice@example.test"))
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Commands()).To(ContainElement("MAIL FROM:<sender@example.org> MPC=per/individual"))
		})

		It("refuses 8-bit data for a server without 8BITMIME before MAIL", func() {
			f := startFakeServer(m, &fakeServer{ehlo: []string{"PIPELINING"}})
			conn := connect(f)
			msg := message("per/individual", "alice@example.test")
			msg.Data = []byte("na\xc3\xafve\r\n")

			_, err := conn.Send(context.Background(), msg)
			Expect(err).To(MatchError(client.ErrInvalidMessage))
			Expect(client.IsTemporary(err)).To(BeFalse())
			Expect(f.Verbs()).NotTo(ContainElement("MAIL"))
		})

		It("refuses a message over the SIZE limit before MAIL", func() {
			f := startFakeServer(m, &fakeServer{ehlo: []string{"SIZE 100"}})
			conn := connect(f)
			msg := message("per/individual", "alice@example.test")
			msg.Data = []byte(strings.Repeat("x", 200) + "\r\n")

			_, err := conn.Send(context.Background(), msg)
			Expect(err).To(MatchError(ContainSubstring("at most 100")))
			Expect(errors.Is(err, client.ErrInvalidMessage)).To(BeTrue())
			Expect(f.Verbs()).NotTo(ContainElement("MAIL"))
		})

		DescribeTable("rejects an invalid message before MAIL",
			func(edit func(*client.Message), wantText string) {
				f := startFakeServer(m, &fakeServer{ehlo: standardEHLO})
				conn := connect(f)
				msg := message("per/individual", "alice@example.test")
				edit(&msg)

				_, err := conn.Send(context.Background(), msg)
				Expect(err).To(MatchError(client.ErrInvalidMessage))
				Expect(err).To(MatchError(ContainSubstring(wantText)))
				Expect(f.Verbs()).To(Equal([]string{"EHLO"}))
			},
			Entry("no recipients", func(msg *client.Message) { msg.To = nil }, "no recipients"),
			Entry("a command in a recipient", func(msg *client.Message) {
				msg.To = []string{"alice@example.test>\r\nRCPT TO:<bob@example.test"}
			}, "not a valid address"),
			Entry("a sender without domain", func(msg *client.Message) { msg.From = "sender" }, "not a valid address"),
			Entry("a missing MPC value", func(msg *client.Message) { msg.MPC = mpc.Value{} }, "MPC value is missing"),
			Entry("an undefined MPC value", func(msg *client.Message) { msg.MPC = mpc.Value{Role: "individual", Class: "confirmed"} }, "unknown role"),
			Entry("a line over 998 octets", func(msg *client.Message) { msg.Data = []byte(strings.Repeat("x", 999)) }, "line 1 is 999 octets"),
		)

		It("accepts a line of exactly 998 octets", func() {
			f := startFakeServer(m, &fakeServer{ehlo: standardEHLO})
			conn := connect(f)
			msg := message("per/individual", "alice@example.test")
			msg.Data = []byte(strings.Repeat("x", 998) + "\n")

			_, err := conn.Send(context.Background(), msg)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Data()).To(Equal([]string{strings.Repeat("x", 998) + "\r\n.\r\n"}))
		})
	})

	Describe("without PIPELINING", func() {
		It("waits for each reply and collects per-recipient results", func() {
			f := startFakeServer(m, &fakeServer{
				ehlo: []string{"8BITMIME", "ENHANCEDSTATUSCODES"},
				replies: map[string]string{
					"RCPT TO:<nobody@example.test>": "550 5.1.1 Mailbox unavailable",
					"RCPT TO:<carol@example.test>":  "451 4.7.1 MPC temporary failure, try again later",
				},
			})
			conn := connect(f)

			result, err := conn.Send(context.Background(),
				message("com/optin", "alice@example.test", "nobody@example.test", "carol@example.test"))
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Violations()).To(BeEmpty())
			Expect(f.Verbs()).To(Equal([]string{"EHLO", "MAIL", "RCPT", "RCPT", "RCPT", "DATA"}))

			Expect(result.Recipients).To(HaveLen(3))
			alice, nobody, carol := result.Recipients[0], result.Recipients[1], result.Recipients[2]
			Expect(alice.Address).To(Equal("alice@example.test"))
			Expect(alice.Status).To(Equal(client.Delivered))
			Expect(alice.Reply.Code).To(Equal(250))
			Expect(nobody.Status).To(Equal(client.PermanentFailure))
			Expect(nobody.Reply.Code).To(Equal(550))
			Expect(nobody.Reply.Enhanced).To(Equal("5.1.1"))
			Expect(nobody.Reply.Text()).To(Equal("Mailbox unavailable"))
			Expect(carol.Status).To(Equal(client.TemporaryFailure))
			Expect(carol.Reply.Enhanced).To(Equal("4.7.1"))
			Expect(result.AllDelivered()).To(BeFalse())
		})

		It("dot-stuffs and sends CRLF for every line ending", func() {
			f := startFakeServer(m, &fakeServer{ehlo: []string{"8BITMIME"}})
			conn := connect(f)
			msg := message("per/individual", "alice@example.test")
			msg.Data = []byte("Subject: dots\n\n.leading dot\n..two dots\nbare CR\rmixed\r\n.\n\nlast line")

			_, err := conn.Send(context.Background(), msg)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Data()).To(Equal([]string{
				"Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\nbare CR\r\nmixed\r\n..\r\n\r\nlast line\r\n.\r\n",
			}))
			Expect(msg.Data).To(HavePrefix("Subject: dots\n\n"), "Send must not modify Message.Data")
		})

		It("sends RSET instead of DATA when no recipient was accepted", func() {
			f := startFakeServer(m, &fakeServer{replies: map[string]string{"RCPT": "550 5.1.1 Mailbox unavailable"}})
			conn := connect(f)

			result, err := conn.Send(context.Background(), message("per/individual", "a@example.test", "b@example.test"))
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Verbs()).To(Equal([]string{"EHLO", "MAIL", "RCPT", "RCPT", "RSET"}))
			for _, rcpt := range result.Recipients {
				Expect(rcpt.Status).To(Equal(client.PermanentFailure))
			}
		})
	})

	Describe("with PIPELINING", func() {
		It("sends MAIL, RCPT and DATA as one group", func() {
			// The scripted server replies only after DATA, so a client
			// that waited for the MAIL reply would time out.
			f := startFakeServer(m, &fakeServer{
				ehlo:    standardEHLO,
				replies: map[string]string{"RCPT TO:<nobody@example.test>": "550 5.1.1 Mailbox unavailable"},
			})
			cfg := clientConfig(m, pki.CertClient, nil)
			cfg.Timeouts.Mail = 2 * time.Second
			conn, err := client.Dial(context.Background(), f.addr, serverName(m), cfg)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(conn.Close)

			result, err := conn.Send(context.Background(), message("per/individual", "alice@example.test", "nobody@example.test"))
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Verbs()).To(Equal([]string{"EHLO", "MAIL", "RCPT", "RCPT", "DATA"}))
			Expect(result.Recipients[0].Status).To(Equal(client.Delivered))
			Expect(result.Recipients[1].Status).To(Equal(client.PermanentFailure))
			Expect(f.Data()).To(HaveLen(1))
		})

		It("sends RSET after a rejected DATA when no recipient was accepted", func() {
			f := startFakeServer(m, &fakeServer{ehlo: standardEHLO, replies: map[string]string{"RCPT": "550 5.7.1 MPC policy violation"}})
			conn := connect(f)

			result, err := conn.Send(context.Background(), message("com/optin", "a@example.test"))
			Expect(err).NotTo(HaveOccurred())
			Expect(result.Recipients[0].Status).To(Equal(client.PermanentFailure))
			Expect(f.Verbs()).To(Equal([]string{"EHLO", "MAIL", "RCPT", "DATA", "RSET"}))
			Expect(f.Data()).To(BeEmpty())
		})

		It("reports a rejected MAIL and keeps the session", func() {
			f := startFakeServer(m, &fakeServer{ehlo: standardEHLO, replies: map[string]string{
				"MAIL": "550 5.7.1 MPC policy violation",
				"RCPT": "503 5.5.1 Send MAIL first",
			}})
			conn := connect(f)
			msg := message("com/optout", "alice@example.test")
			msg.From = "spammer@example.org"

			result, err := conn.Send(context.Background(), msg)
			Expect(result).To(BeNil())
			var e *client.Error
			Expect(errors.As(err, &e)).To(BeTrue(), "error: %v", err)
			Expect(e.Op).To(Equal("MAIL"))
			Expect(e.Reply.Code).To(Equal(550))
			Expect(client.IsTemporary(err)).To(BeFalse())
			Expect(f.Verbs()).To(Equal([]string{"EHLO", "MAIL", "RCPT", "DATA", "RSET"}))
		})
	})

	Describe("session errors", func() {
		It("treats 4xx at MAIL as temporary and goes on", func() {
			f := startFakeServer(m, &fakeServer{replies: map[string]string{
				"MAIL FROM:<sender@example.org> MPC=com/optin": "451 4.7.1 MPC temporary failure, try again later",
			}})
			conn := connect(f)

			_, err := conn.Send(context.Background(), message("com/optin", "alice@example.test"))
			Expect(client.IsTemporary(err)).To(BeTrue(), "error: %v", err)
			Expect(err).To(MatchError(ContainSubstring("451 4.7.1")))

			result, err := conn.Send(context.Background(), message("per/individual", "alice@example.test"))
			Expect(err).NotTo(HaveOccurred())
			Expect(result.AllDelivered()).To(BeTrue())
			Expect(f.Verbs()).To(Equal([]string{"EHLO", "MAIL", "RSET", "MAIL", "RCPT", "DATA"}))
		})

		DescribeTable("classifies the greeting",
			func(greeting string, temporary bool) {
				f := startFakeServer(m, &fakeServer{greeting: greeting})
				_, err := client.Dial(context.Background(), f.addr, serverName(m), clientConfig(m, pki.CertClient, nil))
				var e *client.Error
				Expect(errors.As(err, &e)).To(BeTrue(), "error: %v", err)
				Expect(e.Op).To(Equal("greeting"))
				Expect(client.IsTemporary(err)).To(Equal(temporary))
			},
			Entry("421 is temporary", "421 4.3.2 Service not available", true),
			Entry("554 is permanent", "554 5.7.1 No service for you", false),
		)

		It("fails a hung MAIL within Timeouts.Mail and closes the session", func() {
			f := startFakeServer(m, &fakeServer{hangOn: "MAIL"})
			cfg := clientConfig(m, pki.CertClient, nil)
			cfg.Timeouts.Mail = 300 * time.Millisecond
			conn, err := client.Dial(context.Background(), f.addr, serverName(m), cfg)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(conn.Close)

			start := time.Now()
			_, err = conn.Send(context.Background(), message("per/individual", "alice@example.test"))
			Expect(time.Since(start)).To(BeNumerically("<", 3*time.Second))
			Expect(err).To(MatchError(ContainSubstring("no progress within 300ms")))
			Expect(client.IsTemporary(err)).To(BeTrue())

			_, err = conn.Send(context.Background(), message("per/individual", "alice@example.test"))
			Expect(err).To(MatchError(client.ErrClosed))
		})

		It("stops when the context ends", func() {
			f := startFakeServer(m, &fakeServer{hangOn: "RCPT"})
			conn := connect(f)

			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := conn.Send(ctx, message("per/individual", "alice@example.test"))
			Expect(time.Since(start)).To(BeNumerically("<", 3*time.Second))
			Expect(err).To(MatchError(context.DeadlineExceeded))
			Expect(client.IsTemporary(err)).To(BeTrue())
		})
	})

	Describe("AUTH PLAIN", func() {
		It("sends the credentials and never logs them", func() {
			f := startFakeServer(m, &fakeServer{ehlo: []string{"AUTH PLAIN LOGIN"}})
			log := gbytes.NewBuffer()
			cfg := clientConfig(m, pki.CertClient, log)
			cfg.Auth = &client.PlainAuth{Username: "roaming.example.test", Password: "s3cret-Passw0rd"}

			conn, err := client.Dial(context.Background(), f.addr, serverName(m), cfg)
			Expect(err).NotTo(HaveOccurred())
			Expect(conn.Quit()).To(Succeed())

			encoded := base64.StdEncoding.EncodeToString([]byte("\x00roaming.example.test\x00s3cret-Passw0rd"))
			Expect(f.Commands()).To(ContainElement("AUTH PLAIN " + encoded))
			Expect(string(log.Contents())).To(ContainSubstring("AUTH PLAIN <credentials omitted>"))
			Expect(string(log.Contents())).NotTo(ContainSubstring("s3cret-Passw0rd"))
			Expect(string(log.Contents())).NotTo(ContainSubstring(encoded))
		})

		It("fails permanently when the server does not offer AUTH PLAIN", func() {
			f := startFakeServer(m, &fakeServer{ehlo: standardEHLO})
			cfg := clientConfig(m, pki.CertClient, nil)
			cfg.Auth = &client.PlainAuth{Username: "user", Password: "password"}

			_, err := client.Dial(context.Background(), f.addr, serverName(m), cfg)
			Expect(err).To(MatchError(ContainSubstring("does not offer AUTH PLAIN")))
			Expect(client.IsTemporary(err)).To(BeFalse())
			Eventually(f.Verbs).Should(Equal([]string{"EHLO", "QUIT"}))
		})

		It("omits the password when formatted", func() {
			auth := client.PlainAuth{Username: "user", Password: "hunter2"}
			Expect(auth.String()).NotTo(ContainSubstring("hunter2"))
			Expect(fmt.Sprintf("%v %+v %#v", auth, &auth, auth)).NotTo(ContainSubstring("hunter2"))
		})
	})
})
