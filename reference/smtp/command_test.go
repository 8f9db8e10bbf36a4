package smtp_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/smtp"
)

var _ = Describe("ParseCommand", func() {
	DescribeTable("splits verb and argument",
		func(line, verb, arg string) {
			cmd := smtp.ParseCommand(line)
			Expect(cmd.Verb).To(Equal(verb))
			Expect(cmd.Arg).To(Equal(arg))
		},
		Entry("verb only", "QUIT", "QUIT", ""),
		Entry("lower-case verb", "ehlo client.example.test", "EHLO", "client.example.test"),
		Entry("argument with spaces", "MAIL FROM:<a@example.test> MPC=per/individual", "MAIL", "FROM:<a@example.test> MPC=per/individual"),
		Entry("empty line", "", "", ""),
		Entry("trailing space", "NOOP ", "NOOP", ""),
	)
})

var _ = Describe("ParseMail", func() {
	It("parses a path and MPC", func() {
		path, params, err := smtp.ParseMail("FROM:<alice@example.test> MPC=per/individual")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("alice@example.test"))
		Expect(params).To(Equal([]smtp.Param{{Keyword: "MPC", Value: "per/individual", HasValue: true}}))
	})

	It("accepts the null reverse-path", func() {
		path, params, err := smtp.ParseMail("FROM:<> MPC=net/autoresponse")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(BeEmpty())
		Expect(params).To(HaveLen(1))
	})

	It("keeps parameters in order", func() {
		_, params, err := smtp.ParseMail("FROM:<a@example.test> size=100 BODY=8BITMIME SMTPUTF8")
		Expect(err).NotTo(HaveOccurred())
		Expect(params).To(Equal([]smtp.Param{
			{Keyword: "SIZE", Value: "100", HasValue: true},
			{Keyword: "BODY", Value: "8BITMIME", HasValue: true},
			{Keyword: "SMTPUTF8"},
		}))
	})

	It("ignores case of FROM:", func() {
		path, _, err := smtp.ParseMail("from:<a@example.test>")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("a@example.test"))
	})

	It("tolerates a space after the colon", func() {
		path, _, err := smtp.ParseMail("FROM: <a@example.test>")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("a@example.test"))
	})

	It("accepts a quoted local part", func() {
		path, _, err := smtp.ParseMail(`FROM:<"john q> doe"@example.test> MPC=per/individual`)
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal(`"john q> doe"@example.test`))
	})

	It("accepts escapes in a quoted local part", func() {
		path, _, err := smtp.ParseMail(`FROM:<"a\"b\\"@example.test>`)
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal(`"a\"b\\"@example.test`))
	})

	It("strips a source route", func() {
		path, _, err := smtp.ParseMail("FROM:<@relay1.example.test,@relay2.example.test:bob@example.test>")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("bob@example.test"))
	})

	It("accepts an IPv4 address literal", func() {
		path, _, err := smtp.ParseMail("FROM:<a@[192.0.2.1]>")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("a@[192.0.2.1]"))
	})

	It("accepts an IPv6 address literal", func() {
		path, _, err := smtp.ParseMail("FROM:<a@[IPv6:2001:db8::1]>")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("a@[IPv6:2001:db8::1]"))
	})

	It("accepts a path of 256 octets", func() {
		path := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
		Expect(len(path) + 2).To(Equal(smtp.MaxPath))
		got, _, err := smtp.ParseMail("FROM:<" + path + ">")
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(Equal(path))
	})

	It("rejects a path of 257 octets", func() {
		path := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 62)
		_, _, err := smtp.ParseMail("FROM:<" + path + ">")
		Expect(err).To(MatchError(smtp.ErrPathTooLong))
	})

	It("rejects a local part of 65 octets", func() {
		_, _, err := smtp.ParseMail("FROM:<" + strings.Repeat("a", 65) + "@example.test>")
		Expect(err).To(MatchError(smtp.ErrPathTooLong))
	})

	It("rejects a non-ASCII address", func() {
		_, _, err := smtp.ParseMail("FROM:<jürgen@example.test>")
		Expect(err).To(MatchError(smtp.ErrNonASCIIPath))
	})

	DescribeTable("rejects bad paths",
		func(arg string) {
			_, _, err := smtp.ParseMail(arg)
			Expect(err).To(MatchError(smtp.ErrPathSyntax))
		},
		Entry("missing FROM:", "<a@example.test>"),
		Entry("TO: instead of FROM:", "TO:<a@example.test>"),
		Entry("missing brackets", "FROM:a@example.test"),
		Entry("missing >", "FROM:<a@example.test"),
		Entry("missing > after a quote", `FROM:<"a>@example.test`),
		Entry("no domain", "FROM:<alice>"),
		Entry("empty local part", "FROM:<@example.test>"),
		Entry("trailing dot in domain", "FROM:<a@example.test.>"),
		Entry("double dot in local part", "FROM:<a..b@example.test>"),
		Entry("space in local part", "FROM:<a b@example.test>"),
		Entry("bad address literal", "FROM:<a@[999.0.2.1]>"),
		Entry("IPv6 without tag", "FROM:<a@[2001:db8::1]>"),
		Entry("empty source route mailbox", "FROM:<@relay.example.test:>"),
		Entry("bad source route domain", "FROM:<@relay_1:a@example.test>"),
		Entry("empty", ""),
	)

	DescribeTable("rejects bad parameters",
		func(arg string) {
			_, _, err := smtp.ParseMail(arg)
			Expect(err).To(MatchError(smtp.ErrParamSyntax))
		},
		Entry("empty MPC value", "FROM:<a@example.test> MPC="),
		Entry("double space", "FROM:<a@example.test>  MPC=per/individual"),
		Entry("double space between", "FROM:<a@example.test> SIZE=1  MPC=per/individual"),
		Entry("trailing space", "FROM:<a@example.test> MPC=per/individual "),
		Entry("no space after path", "FROM:<a@example.test>MPC=per/individual"),
		Entry("equals in value", "FROM:<a@example.test> MPC=a=b"),
		Entry("keyword with hyphen first", "FROM:<a@example.test> -MPC=x"),
		Entry("empty keyword", "FROM:<a@example.test> =x"),
		Entry("control octet in value", "FROM:<a@example.test> MPC=per/\x01"),
		Entry("non-ASCII value", "FROM:<a@example.test> MPC=pér"),
	)
})

var _ = Describe("ParseRcpt", func() {
	It("parses a forward-path", func() {
		path, params, err := smtp.ParseRcpt("TO:<bob@example.test>")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("bob@example.test"))
		Expect(params).To(BeEmpty())
	})

	It("accepts Postmaster", func() {
		path, _, err := smtp.ParseRcpt("TO:<Postmaster>")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("Postmaster"))
	})

	It("rejects the null path", func() {
		_, _, err := smtp.ParseRcpt("TO:<>")
		Expect(err).To(MatchError(smtp.ErrPathSyntax))
	})

	It("rejects other bare local parts", func() {
		_, _, err := smtp.ParseRcpt("TO:<root>")
		Expect(err).To(MatchError(smtp.ErrPathSyntax))
	})

	It("rejects FROM:", func() {
		_, _, err := smtp.ParseRcpt("FROM:<bob@example.test>")
		Expect(err).To(MatchError(smtp.ErrPathSyntax))
	})

	It("tolerates a space after the colon", func() {
		path, _, err := smtp.ParseRcpt("to: <bob@example.test>")
		Expect(err).NotTo(HaveOccurred())
		Expect(path).To(Equal("bob@example.test"))
	})

	It("parses parameters", func() {
		_, params, err := smtp.ParseRcpt("TO:<bob@example.test> NOTIFY=NEVER")
		Expect(err).NotTo(HaveOccurred())
		Expect(params).To(Equal([]smtp.Param{{Keyword: "NOTIFY", Value: "NEVER", HasValue: true}}))
	})
})

var _ = Describe("ValidateMailbox", func() {
	DescribeTable("accepts",
		func(s string) {
			Expect(smtp.ValidateMailbox(s)).To(Succeed())
		},
		Entry("plain", "alice@example.test"),
		Entry("atext symbols", "a!#$%&'*+-/=?^_`{|}~z@example.test"),
		Entry("dotted local part", "first.last@example.test"),
		Entry("quoted with @", `"a@b"@example.test`),
		Entry("single-label domain", "root@localhost"),
	)

	DescribeTable("rejects",
		func(s string) {
			Expect(smtp.ValidateMailbox(s)).NotTo(Succeed())
		},
		Entry("empty", ""),
		Entry("no @", "alice"),
		Entry("empty domain", "alice@"),
		Entry("leading dot", ".alice@example.test"),
		Entry("trailing dot", "alice.@example.test"),
		Entry("bracket in local part", "a<b@example.test"),
		Entry("unterminated quote", `"alice@example.test`),
		Entry("escaped final quote", `"a\"@example.test`),
		Entry("hyphen at label end", "a@example-.test"),
	)
})

var _ = Describe("IsDomain", func() {
	DescribeTable("accepts",
		func(s string) {
			Expect(smtp.IsDomain(s)).To(BeTrue())
		},
		Entry("two labels", "example.test"),
		Entry("single label", "localhost"),
		Entry("inner hyphen", "mx-1.example.test"),
		Entry("digits", "123.example.test"),
		Entry("63-octet label", strings.Repeat("a", 63)+".test"),
		Entry("255 octets", strings.Repeat(strings.Repeat("a", 63)+".", 3)+strings.Repeat("b", 63)),
	)

	DescribeTable("rejects",
		func(s string) {
			Expect(smtp.IsDomain(s)).To(BeFalse())
		},
		Entry("empty", ""),
		Entry("trailing dot", "example.test."),
		Entry("leading dot", ".example.test"),
		Entry("empty label", "example..test"),
		Entry("leading hyphen", "-mx.example.test"),
		Entry("trailing hyphen", "mx-.example.test"),
		Entry("underscore", "_amtp.example.test"),
		Entry("space", "example test"),
		Entry("64-octet label", strings.Repeat("a", 64)+".test"),
		Entry("256 octets", strings.Repeat(strings.Repeat("a", 63)+".", 3)+strings.Repeat("b", 64)),
	)
})

var _ = Describe("IsFQDN", func() {
	It("accepts a.b", func() {
		Expect(smtp.IsFQDN("a.b")).To(BeTrue())
	})

	It("accepts a host name", func() {
		Expect(smtp.IsFQDN("mx1.example.test")).To(BeTrue())
	})

	It("accepts a TLD with a digit", func() {
		Expect(smtp.IsFQDN("example.x1")).To(BeTrue())
	})

	It("rejects a single label", func() {
		Expect(smtp.IsFQDN("localhost")).To(BeFalse())
	})

	It("rejects a numeric TLD", func() {
		Expect(smtp.IsFQDN("example.123")).To(BeFalse())
	})

	It("rejects an IPv4 address", func() {
		Expect(smtp.IsFQDN("192.0.2.1")).To(BeFalse())
	})

	It("rejects a trailing dot", func() {
		Expect(smtp.IsFQDN("mx1.example.test.")).To(BeFalse())
	})

	It("rejects an invalid domain", func() {
		Expect(smtp.IsFQDN("mx_1.example.test")).To(BeFalse())
	})
})

var _ = Describe("IsAddressLiteral", func() {
	DescribeTable("accepts",
		func(s string) {
			Expect(smtp.IsAddressLiteral(s)).To(BeTrue())
		},
		Entry("IPv4", "[192.0.2.1]"),
		Entry("IPv6", "[IPv6:2001:db8::1]"),
		Entry("IPv6 tag in lower case", "[ipv6:2001:db8::1]"),
		Entry("IPv4-mapped IPv6", "[IPv6:::ffff:192.0.2.1]"),
	)

	DescribeTable("rejects",
		func(s string) {
			Expect(smtp.IsAddressLiteral(s)).To(BeFalse())
		},
		Entry("no brackets", "192.0.2.1"),
		Entry("empty", "[]"),
		Entry("IPv6 without tag", "[2001:db8::1]"),
		Entry("IPv4 with IPv6 tag", "[IPv6:192.0.2.1]"),
		Entry("zone", "[IPv6:fe80::1%eth0]"),
		Entry("out of range", "[192.0.2.256]"),
		Entry("host name", "[example.test]"),
		Entry("missing ]", "[192.0.2.1"),
	)
})
