package dispatch_test

import (
	"bufio"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/dispatch"
	"github.com/amtp-toolkit/amtp/reference/mpc"
)

// mimePart is one decoded part of a multipart message.
type mimePart struct {
	contentType string
	body        string
}

// readParts splits a multipart body with the given boundary into parts.
func readParts(body io.Reader, boundary string) []mimePart {
	GinkgoHelper()
	var parts []mimePart
	mr := multipart.NewReader(body, boundary)
	for range 10 {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		Expect(err).NotTo(HaveOccurred())
		data, err := io.ReadAll(p)
		Expect(err).NotTo(HaveOccurred())
		parts = append(parts, mimePart{contentType: p.Header.Get("Content-Type"), body: string(data)})
	}
	Fail("bounce has more than 10 MIME parts")
	return nil
}

// readFieldGroups parses a message/delivery-status body (RFC 3464 section
// 2.1): groups of header fields separated by empty lines.
func readFieldGroups(body string) []textproto.MIMEHeader {
	GinkgoHelper()
	var groups []textproto.MIMEHeader
	for _, block := range strings.Split(strings.TrimRight(body, "\r\n"), "\r\n\r\n") {
		r := textproto.NewReader(bufio.NewReader(strings.NewReader(block + "\r\n\r\n")))
		h, err := r.ReadMIMEHeader()
		Expect(err).NotTo(HaveOccurred(), "field group %q", block)
		groups = append(groups, h)
	}
	return groups
}

var _ = Describe("bounce message", func() {
	var bounce localCopy

	BeforeEach(func() {
		r := newRig(slowRetry, 1)
		r.out.result = results(map[string]dispatch.RecipientResult{
			"carol@remote.example.org": {Outcome: dispatch.Failed, Code: 550, Text: "550 5.1.1 <carol@remote.example.org> no such user"},
			"dave@remote.example.org":  {Outcome: dispatch.Failed, Code: 552, Text: "552 5.2.2 mailbox full"},
		})
		r.run()
		r.deliver("REPORT1", "alice@example.test", true, mpc.Value{Role: "com", Class: "confirmed"}, testMessage,
			"carol@remote.example.org", "dave@remote.example.org", "erin@remote.example.org")

		r.waitEmpty()
		copies := r.local.delivered()
		Expect(copies).To(HaveLen(1))
		bounce = copies[0]
		Expect(r.metrics.Bounced.Load()).To(BeEquivalentTo(1))
	})

	It("goes to the sender as net/autoresponse", func() {
		Expect(bounce.recipient).To(Equal("alice@example.test"))
		Expect(bounce.from).To(BeEmpty())
		Expect(bounce.mpc).To(Equal(mpc.Bounce.String()))
	})

	It("has the multipart/report structure of RFC 3464", func() {
		msg, err := mail.ReadMessage(strings.NewReader(bounce.msg))
		Expect(err).NotTo(HaveOccurred())
		Expect(msg.Header.Get("From")).To(Equal("Mail Delivery System <MAILER-DAEMON@mx.example.test>"))
		Expect(msg.Header.Get("To")).To(Equal("<alice@example.test>"))
		Expect(msg.Header.Get("Auto-Submitted")).To(Equal("auto-replied"))
		Expect(msg.Header.Get("MIME-Version")).To(Equal("1.0"))
		Expect(msg.Header.Get("Message-Id")).To(HavePrefix("<REPORT1."))
		_, err = msg.Header.Date()
		Expect(err).NotTo(HaveOccurred())

		mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		Expect(err).NotTo(HaveOccurred())
		Expect(mediaType).To(Equal("multipart/report"))
		Expect(params).To(HaveKeyWithValue("report-type", "delivery-status"))
		Expect(params).To(HaveKey("boundary"))

		parts := readParts(msg.Body, params["boundary"])
		Expect(parts).To(HaveLen(3))
		Expect(parts[0].contentType).To(HavePrefix("text/plain"))
		Expect(parts[1].contentType).To(Equal("message/delivery-status"))
		Expect(parts[2].contentType).To(Equal("text/rfc822-headers"))
	})

	It("names each failed recipient with its reason", func() {
		msg, err := mail.ReadMessage(strings.NewReader(bounce.msg))
		Expect(err).NotTo(HaveOccurred())
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		Expect(err).NotTo(HaveOccurred())
		parts := readParts(msg.Body, params["boundary"])
		Expect(parts).To(HaveLen(3))

		text := parts[0].body
		Expect(text).To(ContainSubstring("Your message REPORT1 (MPC com/confirmed)"))
		Expect(text).To(ContainSubstring("<carol@remote.example.org>: 550 5.1.1 <carol@remote.example.org> no such user\r\n"))
		Expect(text).To(ContainSubstring("<dave@remote.example.org>: 552 5.2.2 mailbox full\r\n"))
		Expect(text).NotTo(ContainSubstring("erin@"), "a delivered recipient is not reported")

		groups := readFieldGroups(parts[1].body)
		Expect(groups).To(HaveLen(3), "one per-message group and one group per failed recipient")
		Expect(groups[0].Get("Reporting-MTA")).To(Equal("dns; mx.example.test"))
		Expect(groups[0].Get("Arrival-Date")).NotTo(BeEmpty())
		Expect(groups[0].Get("X-AMTP-Queue-ID")).To(Equal("REPORT1"))

		byRecipient := map[string]textproto.MIMEHeader{}
		for _, g := range groups[1:] {
			byRecipient[g.Get("Final-Recipient")] = g
		}
		carol := byRecipient["rfc822; carol@remote.example.org"]
		Expect(carol).NotTo(BeNil())
		Expect(carol.Get("Action")).To(Equal("failed"))
		Expect(carol.Get("Status")).To(HavePrefix("5."))
		Expect(carol.Get("Diagnostic-Code")).To(Equal("smtp; 550 5.1.1 <carol@remote.example.org> no such user"))
		dave := byRecipient["rfc822; dave@remote.example.org"]
		Expect(dave).NotTo(BeNil())
		Expect(dave.Get("Action")).To(Equal("failed"))
		Expect(dave.Get("Status")).To(HavePrefix("5."))
		Expect(dave.Get("Diagnostic-Code")).To(Equal("smtp; 552 5.2.2 mailbox full"))
	})

	It("returns the original header section only", func() {
		msg, err := mail.ReadMessage(strings.NewReader(bounce.msg))
		Expect(err).NotTo(HaveOccurred())
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		Expect(err).NotTo(HaveOccurred())
		parts := readParts(msg.Body, params["boundary"])
		Expect(parts).To(HaveLen(3))

		Expect(parts[2].body).To(ContainSubstring("Subject: quarterly report\r\n"))
		Expect(parts[2].body).To(ContainSubstring("Message-ID: <q1@example.test>\r\n"))
		Expect(parts[2].body).NotTo(ContainSubstring("The figures are attached."))
	})
})
