package message_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/message"
)

var _ = Describe("HasMPCField", func() {
	DescribeTable("finds the field",
		func(msg string) {
			Expect(message.HasMPCField([]byte(msg))).To(BeTrue())
		},
		Entry("upper case", "From: a@example.test\r\nMPC: per/individual\r\n\r\nbody\r\n"),
		Entry("lower case", "From: a@example.test\r\nmpc: per/individual\r\n\r\nbody\r\n"),
		Entry("first field", "MPC: per/individual\r\nFrom: a@example.test\r\n\r\n"),
		Entry("obsolete space before colon", "From: a@example.test\r\nMpc : per/individual\r\n\r\n"),
		Entry("obsolete tab before colon", "From: a@example.test\r\nMPC\t: per/individual\r\n\r\n"),
		Entry("no space after colon", "MPC:per/individual\r\n\r\n"),
		Entry("after a folded field", "Subject: a\r\n long\r\n\tsubject\r\nMPC: com/optin\r\n\r\n"),
		Entry("folded MPC field", "MPC:\r\n com/optin\r\n\r\nbody\r\n"),
		Entry("no body", "From: a@example.test\r\nMPC: per/individual\r\n"),
		Entry("no trailing CRLF", "MPC: per/individual"),
	)

	DescribeTable("ignores other text",
		func(msg string) {
			Expect(message.HasMPCField([]byte(msg))).To(BeFalse())
		},
		Entry("MPC line in the body", "From: a@example.test\r\n\r\nMPC: per/individual\r\n"),
		Entry("X-MPC field", "X-MPC: per/individual\r\n\r\n"),
		Entry("MPC-Policy field", "MPC-Policy: per/individual\r\n\r\n"),
		Entry("continuation line", "Subject: a\r\n MPC: per/individual\r\n\r\n"),
		Entry("no header section", "\r\nMPC: per/individual\r\n"),
		Entry("empty message", ""),
		Entry("MPC in a field value", "Subject: MPC: per/individual\r\n\r\n"),
	)
})

var _ = Describe("HasField", func() {
	It("matches the name without case", func() {
		Expect(message.HasField([]byte("Return-Path: <>\r\n\r\n"), "return-path")).To(BeTrue())
	})

	It("does not match a prefix", func() {
		Expect(message.HasField([]byte("Return-Path: <>\r\n\r\n"), "Return")).To(BeFalse())
	})
})

var _ = Describe("HeaderSection", func() {
	It("ends after the last field", func() {
		msg := []byte("A: 1\r\nB: 2\r\n\r\nbody\r\n")
		Expect(string(message.HeaderSection(msg))).To(Equal("A: 1\r\nB: 2\r\n"))
	})

	It("is empty for a leading blank line", func() {
		Expect(message.HeaderSection([]byte("\r\nbody\r\n"))).To(BeEmpty())
	})

	It("is all of a message without a body", func() {
		msg := []byte("A: 1\r\nB: 2\r\n")
		Expect(string(message.HeaderSection(msg))).To(Equal("A: 1\r\nB: 2\r\n"))
	})
})

var _ = Describe("Prepend", func() {
	It("writes fields in order", func() {
		msg := []byte("Subject: hi\r\n\r\nbody\r\n")
		got := message.Prepend(msg,
			message.Field{Name: "Return-Path", Value: "<a@example.test>"},
			message.Field{Name: "MPC", Value: "per/individual"},
		)
		Expect(string(got)).To(Equal("Return-Path: <a@example.test>\r\nMPC: per/individual\r\nSubject: hi\r\n\r\nbody\r\n"))
	})

	It("makes the field findable", func() {
		got := message.Prepend([]byte("Subject: hi\r\n\r\nbody\r\n"), message.Field{Name: "MPC", Value: "com/optin"})
		Expect(message.HasMPCField(got)).To(BeTrue())
	})

	It("returns the message without fields", func() {
		msg := []byte("Subject: hi\r\n\r\nbody\r\n")
		Expect(message.Prepend(msg)).To(Equal(msg))
	})

	It("leaves the input unchanged", func() {
		msg := []byte("Subject: hi\r\n\r\nbody\r\n")
		message.Prepend(msg, message.Field{Name: "MPC", Value: "com/optin"})
		Expect(string(msg)).To(Equal("Subject: hi\r\n\r\nbody\r\n"))
	})

	It("adds a header to an empty message", func() {
		got := message.Prepend(nil, message.Field{Name: "MPC", Value: "per/individual"})
		Expect(string(got)).To(Equal("MPC: per/individual\r\n"))
	})
})
