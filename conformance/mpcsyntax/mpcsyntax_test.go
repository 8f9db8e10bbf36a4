package mpcsyntax_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/mpcsyntax"
)

var _ = DescribeTable("WellFormed and Defined",
	func(value string, wellFormed, defined bool) {
		Expect(mpcsyntax.WellFormed(value)).To(Equal(wellFormed), "WellFormed")
		Expect(mpcsyntax.Defined(value)).To(Equal(defined), "Defined")
	},
	Entry("defined value", "per/individual", true, true),
	Entry("upper case", "COM/Confirmed", true, true),
	Entry("mpc/individual", "mpc/individual", true, true),
	Entry("mpc with another class", "mpc/optin", true, false),
	Entry("undefined role", "biz/individual", true, false),
	Entry("undefined class", "per/bulk", true, false),
	Entry("class as role", "individual/confirmed", true, false),
	Entry("autoresponder", "per/autoresponder", true, false),
	Entry("missing slash", "perindividual", false, false),
	Entry("leading hyphen", "-per/individual", false, false),
	Entry("wildcard", "*/individual", false, false),
	Entry("empty class", "per/", false, false),
)

var _ = Describe("DefinedValues", func() {
	It("lists 37 values", func() {
		values := mpcsyntax.DefinedValues()
		Expect(values).To(HaveLen(37))
		Expect(values).To(ContainElement("mpc/individual"))
		Expect(values).NotTo(ContainElement("mpc/optin"))
		for _, v := range values {
			Expect(mpcsyntax.Defined(v)).To(BeTrue(), v)
		}
	})
})

var _ = Describe("ParseLine", func() {
	It("parses the grammar form", func() {
		decls, form, err := mpcsyntax.ParseLine("MPC DENY=com/* ALLOW=com/individual")
		Expect(err).NotTo(HaveOccurred())
		Expect(form).To(Equal(mpcsyntax.FormGrammar))
		Expect(decls).To(Equal([]mpcsyntax.Declaration{
			{Keyword: "DENY", Role: "com", Class: "*"},
			{Keyword: "ALLOW", Role: "com", Class: "individual"},
		}))
	})

	It("parses the spaced form of the examples", func() {
		decls, form, err := mpcsyntax.ParseLine("MPC DENY */optout")
		Expect(err).NotTo(HaveOccurred())
		Expect(form).To(Equal(mpcsyntax.FormSpaced))
		Expect(decls).To(Equal([]mpcsyntax.Declaration{{Keyword: "DENY", Role: "*", Class: "optout"}}))
	})

	It("parses the hyphen form of the examples", func() {
		decls, form, err := mpcsyntax.ParseLine("MPC-ALLOW */individual")
		Expect(err).NotTo(HaveOccurred())
		Expect(form).To(Equal(mpcsyntax.FormHyphen))
		Expect(decls).To(Equal([]mpcsyntax.Declaration{{Keyword: "ALLOW", Role: "*", Class: "individual"}}))
	})

	DescribeTable("rejects broken lines",
		func(text string) {
			_, _, err := mpcsyntax.ParseLine(text)
			Expect(err).To(HaveOccurred())
		},
		Entry("no declaration", "MPC"),
		Entry("two spaces", "MPC  DENY=*/optout"),
		Entry("unknown keyword", "MPC DEFER=*/optout"),
		Entry("missing class", "MPC DENY=com"),
		Entry("trailing space", "MPC DENY=*/optout "),
		Entry("mixed forms", "MPC DENY=*/optout ALLOW com/confirmed"),
	)

	It("recognizes MPC lines", func() {
		Expect(mpcsyntax.IsMPCLine("MPC DENY=*/optout")).To(BeTrue())
		Expect(mpcsyntax.IsMPCLine("MPC-ALLOW */x")).To(BeTrue())
		Expect(mpcsyntax.IsMPCLine("MPC")).To(BeTrue())
		Expect(mpcsyntax.IsMPCLine("MPCX")).To(BeFalse())
		Expect(mpcsyntax.IsMPCLine("PIPELINING")).To(BeFalse())
	})
})

var _ = Describe("Allowed", func() {
	example, _, _ := mpcsyntax.ParseLine("MPC DENY=com/* ALLOW=com/individual ALLOW=com/confirmed")

	It("lets the last match decide", func() {
		Expect(mpcsyntax.Allowed(example, "com/individual")).To(BeTrue())
		Expect(mpcsyntax.Allowed(example, "com/optout")).To(BeFalse())
		Expect(mpcsyntax.Allowed(example, "per/optout")).To(BeTrue())
	})

	It("implies DENY */* before a leading ALLOW", func() {
		decls, _, _ := mpcsyntax.ParseLine("MPC ALLOW=*/individual")
		Expect(mpcsyntax.Allowed(decls, "per/individual")).To(BeTrue())
		Expect(mpcsyntax.Allowed(decls, "per/optin")).To(BeFalse())
	})

	It("allows everything without declarations", func() {
		Expect(mpcsyntax.Allowed(nil, "com/optout")).To(BeTrue())
	})

	It("reports any matching DENY", func() {
		Expect(mpcsyntax.DeniedByAny(example, "com/individual")).To(BeTrue())
		Expect(mpcsyntax.DeniedByAny(example, "per/individual")).To(BeFalse())
	})
})
