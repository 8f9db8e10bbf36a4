package mpc_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/mpc"
)

var _ = Describe("Parse", func() {
	It("accepts every registry value", func() {
		for _, role := range mpc.Roles {
			if role == "mpc" {
				continue
			}
			for _, class := range mpc.Classes {
				v, err := mpc.Parse(role + "/" + class)
				Expect(err).NotTo(HaveOccurred(), "%s/%s", role, class)
				Expect(v.Role).To(Equal(role))
				Expect(v.Class).To(Equal(class))
			}
		}
	})

	It("accepts mpc/individual", func() {
		v, err := mpc.Parse("mpc/individual")
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(Equal(mpc.Individual))
		Expect(v.IsIndividualMPC()).To(BeTrue())
	})

	It("rejects mpc with other classes", func() {
		for _, class := range mpc.Classes {
			if class == "individual" {
				continue
			}
			_, err := mpc.Parse("mpc/" + class)
			Expect(err).To(MatchError(mpc.ErrUndefined), "mpc/%s", class)
		}
	})

	DescribeTable("rejects undefined values",
		func(s string) {
			_, err := mpc.Parse(s)
			Expect(err).To(MatchError(mpc.ErrUndefined))
			Expect(err).NotTo(MatchError(mpc.ErrSyntax))
		},
		Entry("class used as role", "individual/confirmed"),
		Entry("misspelt class autoresponder", "com/autoresponder"),
		Entry("unknown role", "biz/optin"),
		Entry("unknown class", "per/bulk"),
		Entry("digits", "123/456"),
	)

	DescribeTable("rejects bad syntax",
		func(s string) {
			_, err := mpc.Parse(s)
			Expect(err).To(MatchError(mpc.ErrSyntax))
			Expect(err).NotTo(MatchError(mpc.ErrUndefined))
		},
		Entry("empty", ""),
		Entry("no slash", "perindividual"),
		Entry("two slashes", "per/individual/x"),
		Entry("empty role", "/individual"),
		Entry("empty class", "per/"),
		Entry("leading hyphen in role", "-per/individual"),
		Entry("leading hyphen in class", "per/-individual"),
		Entry("leading space", " per/individual"),
		Entry("trailing space", "per/individual "),
		Entry("space around slash", "per / individual"),
		Entry("wildcards", "*/*"),
		Entry("wildcard role", "*/individual"),
		Entry("wildcard class", "com/*"),
		Entry("underscore", "per/in_dividual"),
		Entry("non-ASCII letter", "pér/individual"),
	)

	It("names the value in the error", func() {
		_, err := mpc.Parse("com/autoresponder")
		Expect(err).To(MatchError(ContainSubstring(`"com/autoresponder"`)))
	})

	It("ignores case and keeps spelling", func() {
		v, err := mpc.Parse("Com/OptIn")
		Expect(err).NotTo(HaveOccurred())
		Expect(v.String()).To(Equal("Com/OptIn"))
		Expect(v.Equal(mpc.Value{Role: "com", Class: "optin"})).To(BeTrue())
	})

	It("accepts MPC/INDIVIDUAL as mpc/individual", func() {
		v, err := mpc.Parse("MPC/INDIVIDUAL")
		Expect(err).NotTo(HaveOccurred())
		Expect(v.IsIndividualMPC()).To(BeTrue())
	})

	It("rejects MPC/OPTIN in upper case", func() {
		_, err := mpc.Parse("MPC/OPTIN")
		Expect(err).To(MatchError(mpc.ErrUndefined))
	})
})

var _ = Describe("Value", func() {
	It("formats the bounce value", func() {
		Expect(mpc.Bounce.String()).To(Equal("net/autoresponse"))
	})

	It("compares without case", func() {
		a := mpc.Value{Role: "PER", Class: "Individual"}
		b := mpc.Value{Role: "per", Class: "individual"}
		Expect(a.Equal(b)).To(BeTrue())
	})

	It("tells different values apart", func() {
		a := mpc.Value{Role: "per", Class: "individual"}
		b := mpc.Value{Role: "com", Class: "individual"}
		Expect(a.Equal(b)).To(BeFalse())
	})
})
