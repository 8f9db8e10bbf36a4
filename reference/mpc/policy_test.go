package mpc_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/mpc"
)

// mustParse returns the value of s and fails the spec on an error.
func mustParse(s string) mpc.Value {
	GinkgoHelper()
	v, err := mpc.Parse(s)
	Expect(err).NotTo(HaveOccurred())
	return v
}

// mustPolicy returns the policy of space-separated "KEYWORD role/class"
// pairs and fails the spec on an error.
func mustPolicy(s string) mpc.Policy {
	GinkgoHelper()
	if s == "" {
		return nil
	}
	fields := strings.Fields(s)
	Expect(len(fields)%2).To(BeZero(), "policy %q", s)
	var lines []string
	for i := 0; i < len(fields); i += 2 {
		lines = append(lines, fields[i]+" "+fields[i+1])
	}
	p, err := mpc.ParsePolicy(lines, true)
	Expect(err).NotTo(HaveOccurred())
	return p
}

var _ = Describe("Policy.Evaluate", func() {
	DescribeTable("ordered evaluation",
		func(policy, value string, want mpc.Action) {
			Expect(mustPolicy(policy).Evaluate(mustParse(value))).To(Equal(want))
		},
		Entry("empty allows", "", "com/optout", mpc.Allow),
		Entry("first DENY implies ALLOW */*", "DENY com/optout", "per/individual", mpc.Allow),
		Entry("first ALLOW implies DENY */*", "ALLOW per/individual", "com/optin", mpc.Deny),
		Entry("first ALLOW allows its match", "ALLOW per/individual", "per/individual", mpc.Allow),
		Entry("last match decides", "ALLOW */* DENY com/* ALLOW com/optin", "com/optin", mpc.Allow),
		Entry("later DENY overrides", "ALLOW com/optin DENY */optin", "com/optin", mpc.Deny),
		Entry("case-insensitive pattern", "DENY COM/OPTOUT", "com/optout", mpc.Deny),
		Entry("DEFER as the decision", "DENY com/* DEFER com/optin", "com/optin", mpc.Defer),
		Entry("first DEFER implies ALLOW */*", "DEFER com/optin", "per/optin", mpc.Allow),

		Entry("example 1: com/individual allowed", "DENY com/* ALLOW com/individual ALLOW com/confirmed", "com/individual", mpc.Allow),
		Entry("example 1: com/confirmed allowed", "DENY com/* ALLOW com/individual ALLOW com/confirmed", "com/confirmed", mpc.Allow),
		Entry("example 1: com/optout denied", "DENY com/* ALLOW com/individual ALLOW com/confirmed", "com/optout", mpc.Deny),
		Entry("example 1: per/optout allowed", "DENY com/* ALLOW com/individual ALLOW com/confirmed", "per/optout", mpc.Allow),

		Entry("example 2: com/optout denied", "DENY */optout", "com/optout", mpc.Deny),
		Entry("example 2: per/optout denied", "DENY */optout", "per/optout", mpc.Deny),
		Entry("example 2: com/optin allowed", "DENY */optout", "com/optin", mpc.Allow),

		Entry("example 3: per/individual allowed", "ALLOW */individual", "per/individual", mpc.Allow),
		Entry("example 3: com/optin denied", "ALLOW */individual", "com/optin", mpc.Deny),
		Entry("example 3: net/autoresponse denied", "ALLOW */individual", "net/autoresponse", mpc.Deny),
	)
})

var _ = Describe("Policy.EHLOLine", func() {
	It("uses the ABNF form", func() {
		p := mustPolicy("DENY com/* ALLOW com/individual")
		Expect(p.EHLOLine()).To(Equal("MPC DENY=com/* ALLOW=com/individual"))
	})

	It("is empty for an empty policy", func() {
		Expect(mpc.Policy{}.EHLOLine()).To(BeEmpty())
	})

	It("round-trips through ParseEHLO", func() {
		p := mustPolicy("DENY */optout ALLOW pol/confirmed")
		parsed, err := mpc.ParseEHLO([]string{p.EHLOLine()})
		Expect(err).NotTo(HaveOccurred())
		Expect(parsed).To(Equal(p))
	})
})

var _ = Describe("Policy.Advertised", func() {
	It("accepts ALLOW and DENY", func() {
		Expect(mustPolicy("ALLOW */individual DENY com/*").Advertised()).To(BeTrue())
	})

	It("rejects DEFER", func() {
		Expect(mustPolicy("DENY com/* DEFER com/optin").Advertised()).To(BeFalse())
	})
})

var _ = Describe("ParseEHLO", func() {
	want := mpc.Policy{
		{Action: mpc.Deny, Role: "com", Class: "*"},
		{Action: mpc.Allow, Role: "com", Class: "individual"},
	}

	DescribeTable("spellings of the draft",
		func(lines ...string) {
			p, err := mpc.ParseEHLO(lines)
			Expect(err).NotTo(HaveOccurred())
			Expect(p).To(Equal(want))
		},
		Entry("ABNF form", "MPC DENY=com/* ALLOW=com/individual"),
		Entry("example form", "MPC DENY com/* ALLOW com/individual"),
		Entry("mixed form", "MPC DENY=com/* ALLOW com/individual"),
		Entry("one keyword per line", "MPC-DENY com/*", "MPC-ALLOW com/individual"),
		Entry("lower-case keywords", "mpc deny=com/* allow=com/individual"),
		Entry("among other lines", "Greetings and felicitations", "MPC DENY com/*", "PIPELINING", "MPC ALLOW=com/individual", "8BITMIME"),
	)

	It("parses MPC-ALLOW of the third example", func() {
		p, err := mpc.ParseEHLO([]string{"MPC-ALLOW */individual"})
		Expect(err).NotTo(HaveOccurred())
		Expect(p).To(Equal(mpc.Policy{{Action: mpc.Allow, Role: "*", Class: "individual"}}))
	})

	It("returns nothing without an MPC line", func() {
		p, err := mpc.ParseEHLO([]string{"PIPELINING", "", "8BITMIME"})
		Expect(err).NotTo(HaveOccurred())
		Expect(p).To(BeEmpty())
	})

	It("ignores a longer keyword", func() {
		p, err := mpc.ParseEHLO([]string{"MPCX DENY=com/*"})
		Expect(err).NotTo(HaveOccurred())
		Expect(p).To(BeEmpty())
	})

	DescribeTable("rejects garbage",
		func(line string) {
			_, err := mpc.ParseEHLO([]string{"PIPELINING", line})
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(line))
		},
		Entry("MPC alone", "MPC"),
		Entry("keyword without value", "MPC DENY"),
		Entry("trailing keyword", "MPC DENY=com/* ALLOW"),
		Entry("unknown keyword", "MPC REJECT=com/*"),
		Entry("DEFER", "MPC DEFER=com/*"),
		Entry("unknown role", "MPC DENY=biz/*"),
		Entry("unknown class", "MPC DENY=com/spam"),
		Entry("no slash", "MPC DENY=com"),
		Entry("value without keyword", "MPC com/*"),
		Entry("MPC-ALLOW alone", "MPC-ALLOW"),
		Entry("MPC-DENY with bad pattern", "MPC-DENY com"),
	)
})

var _ = Describe("ParseDeclaration", func() {
	DescribeTable("accepts",
		func(s string, allowDefer bool, want mpc.Declaration) {
			d, err := mpc.ParseDeclaration(s, allowDefer)
			Expect(err).NotTo(HaveOccurred())
			Expect(d).To(Equal(want))
		},
		Entry("ABNF form", "DENY=com/*", false, mpc.Declaration{Action: mpc.Deny, Role: "com", Class: "*"}),
		Entry("space form", "ALLOW */individual", false, mpc.Declaration{Action: mpc.Allow, Role: "*", Class: "individual"}),
		Entry("lower-case keyword", "deny */optout", false, mpc.Declaration{Action: mpc.Deny, Role: "*", Class: "optout"}),
		Entry("surrounding spaces", "  DENY  com/optout ", false, mpc.Declaration{Action: mpc.Deny, Role: "com", Class: "optout"}),
		Entry("DEFER where allowed", "DEFER com/optin", true, mpc.Declaration{Action: mpc.Defer, Role: "com", Class: "optin"}),
		Entry("DEFER in ABNF form", "DEFER=*/*", true, mpc.Declaration{Action: mpc.Defer, Role: "*", Class: "*"}),
	)

	DescribeTable("rejects",
		func(s string, allowDefer bool) {
			_, err := mpc.ParseDeclaration(s, allowDefer)
			Expect(err).To(MatchError(ContainSubstring(s)))
		},
		Entry("DEFER where not allowed", "DEFER com/optin", false),
		Entry("unknown keyword", "REJECT com/optin", true),
		Entry("no pattern", "DENY", true),
		Entry("no slash", "DENY com", true),
		Entry("unknown role", "DENY biz/*", true),
		Entry("unknown class", "DENY */autoresponder", true),
		Entry("extra field", "DENY com/* ALLOW", true),
		Entry("empty", "", true),
	)

	It("formats as KEYWORD=role/class", func() {
		d := mpc.Declaration{Action: mpc.Defer, Role: "com", Class: "optin"}
		Expect(d.String()).To(Equal("DEFER=com/optin"))
	})
})

var _ = Describe("Action", func() {
	It("names unknown actions", func() {
		Expect(mpc.Action(7).String()).To(Equal("Action(7)"))
	})
})
