package run

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"
)

var _ = Describe("Options", func() {
	valid := func() Options {
		return Options{Target: "127.0.0.1:4025", PKIDir: "pki"}
	}

	It("fills in the defaults", func() {
		opts, err := valid().withDefaults()
		Expect(err).NotTo(HaveOccurred())
		Expect(opts.DNSMode).To(Equal(DNSServe))
		Expect(opts.DNSListen).To(Equal(DefaultDNSListen))
		Expect(opts.StepTimeout).To(Equal(DefaultStepTimeout))
		Expect(opts.Output).NotTo(BeNil())
	})

	It("leaves the DNS address empty in external mode", func() {
		opts := valid()
		opts.DNSMode = DNSExternal
		opts, err := opts.withDefaults()
		Expect(err).NotTo(HaveOccurred())
		Expect(opts.DNSListen).To(BeEmpty())
	})

	DescribeTable("rejects invalid options",
		func(change func(*Options), message string) {
			opts := valid()
			change(&opts)
			_, err := opts.withDefaults()
			Expect(err).To(MatchError(ErrInvalidOptions))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("missing target", func(o *Options) { o.Target = "" }, "the target is missing"),
		Entry("missing PKI", func(o *Options) { o.PKIDir = "" }, "the PKI folder is missing"),
		Entry("unknown DNS mode", func(o *Options) { o.DNSMode = "both" }, `DNS mode "both" is unknown`),
		Entry("short timeout", func(o *Options) { o.StepTimeout = time.Millisecond }, "too short"),
		Entry("target without port", func(o *Options) { o.Target = "127.0.0.1" }, "is not HOST:PORT"),
		Entry("remote target", func(o *Options) { o.Target = "192.0.2.1:25" }, "not a loopback address"),
		Entry("remote private target", func(o *Options) { o.PrivateTarget = "example.org:587" }, "--private-target"),
		Entry("remote DNS address", func(o *Options) { o.DNSListen = "0.0.0.0:53" }, "--dns-listen"),
		Entry("missing Maildir", func(o *Options) { o.Maildir = "/nonexistent/maildir" }, "is not a folder"),
		Entry("remote gateway sink", func(o *Options) { o.GatewaySink = "192.0.2.1:2525" }, "--gateway-sink"),
		Entry("remote private sink", func(o *Options) { o.PrivateSink = "192.0.2.1:4587" }, "--private-sink"),
		Entry("one address for both sinks", func(o *Options) {
			o.GatewaySink, o.PrivateSink = "127.0.0.1:2525", "127.0.0.1:2525"
		}, "give each sink its own port"),
		Entry("negative server timeout", func(o *Options) { o.ServerTimeout = -time.Second }, "server timeout -1s is negative"),
		Entry("unknown focus", func(o *Options) { o.Focus = []string{"4.9"} }, `--focus "4.9"`),
		Entry("broken label filter", func(o *Options) { o.LabelFilter = "(a" }, "label filter"),
	)

	It("accepts loopback names and IPv6", func() {
		opts := valid()
		opts.Target = "localhost:4025"
		opts.Target6 = "[::1]:4025"
		_, err := opts.withDefaults()
		Expect(err).NotTo(HaveOccurred())
	})
})

var _ = Describe("selectorLabels", func() {
	DescribeTable("maps a value to labels",
		func(value string, want []string) {
			Expect(selectorLabels(value)).To(Equal(want))
		},
		Entry("clause ID", "4.4.1-helo-rejected", []string{"4.4.1-helo-rejected"}),
		Entry("level", "must", []string{"level:MUST"}),
		Entry("two-word level with a space", "MUST NOT", []string{"level:MUST-NOT"}),
		Entry("two-word level with a hyphen", "must-not", []string{"level:MUST-NOT"}),
		Entry("section", "4.4.1", []string{"section:4.4.1"}),
		Entry("section with prefix", "section:4.5", []string{"section:4.5"}),
		Entry("parent section", "4.4", []string{"section:4.4.1", "section:4.4.2", "section:4.4.3", "section:4.4.4"}),
		Entry("RFC 5321 section", "rfc5321-4.1.1.4", []string{"section:rfc5321-4.1.1.4"}),
		Entry("RFC 5321 section with spaces", "RFC 5321 2.3.8", []string{"section:rfc5321-2.3.8"}),
	)

	It("rejects an unknown value", func() {
		_, err := selectorLabels("4.4.1-helo-accepted")
		Expect(err).To(MatchError(ContainSubstring("not a clause ID, section or level")))
	})
})

var _ = Describe("labelFilter", func() {
	It("combines focus, skip and the label filter", func() {
		opts := Options{
			Focus:       []string{"4.4.1", "SHOULD"},
			Skip:        []string{"4.4.1-helo-rejected"},
			LabelFilter: "!needs:maildir",
		}
		filter, err := opts.labelFilter()
		Expect(err).NotTo(HaveOccurred())
		Expect(filter).To(Equal("(section:4.4.1 || level:SHOULD) && !(4.4.1-helo-rejected) && (!needs:maildir)"))

		matches, err := types.ParseLabelFilter(filter)
		Expect(err).NotTo(HaveOccurred())
		Expect(matches([]string{"4.4.1-helo-rejected", "section:4.4.1", "level:MUST"})).To(BeFalse())
		Expect(matches([]string{"rfc5321-4.2.4-unknown-command-500", "section:rfc5321-4.2.4", "level:SHOULD"})).To(BeTrue())
		Expect(matches([]string{"x", "section:4.5", "level:SHOULD", "needs:maildir"})).To(BeFalse())
	})

	It("is empty without selectors", func() {
		filter, err := Options{}.labelFilter()
		Expect(err).NotTo(HaveOccurred())
		Expect(filter).To(BeEmpty())
	})
})

var _ = Describe("RerunCommand", func() {
	It("repeats the options that differ from the defaults", func() {
		opts := Options{
			Target:        "127.0.0.1:4025",
			PKIDir:        "/tmp/my pki",
			PrivateTarget: "127.0.0.1:4587",
			Maildir:       "/srv/mail",
			DNSListen:     "127.0.0.1:15353",
			StepTimeout:   3 * time.Second,
			Strict:        true,
		}
		Expect(RerunCommand(opts, "4.4.1-helo-rejected")).To(Equal(
			"amtpkit conform --target 127.0.0.1:4025 --pki '/tmp/my pki' --private-target 127.0.0.1:4587 --maildir /srv/mail " +
				"--dns-listen 127.0.0.1:15353 --timeout 3s --strict --focus 4.4.1-helo-rejected"))
	})

	It("repeats the sinks and the server timeout", func() {
		opts := Options{Target: "127.0.0.1:4025", PKIDir: "pki", GatewaySink: "127.0.0.1:2525",
			PrivateSink: "127.0.0.1:2587", ServerTimeout: 5 * time.Minute}
		Expect(RerunCommand(opts, "5.1-relay-over-private-connections")).To(Equal(
			"amtpkit conform --target 127.0.0.1:4025 --pki pki --gateway-sink 127.0.0.1:2525 --private-sink 127.0.0.1:2587 " +
				"--server-timeout 5m0s --focus 5.1-relay-over-private-connections"))
	})

	It("names external DNS", func() {
		opts := Options{Target: "[::1]:4025", PKIDir: "pki", DNSMode: DNSExternal, DNSListen: DefaultDNSListen, StepTimeout: DefaultStepTimeout}
		Expect(RerunCommand(opts, "4.5-mpc-individual-accepted")).To(Equal(
			"amtpkit conform --target '[::1]:4025' --pki pki --dns external --focus 4.5-mpc-individual-accepted"))
	})

	It("quotes single quotes", func() {
		Expect(shellQuote("it's")).To(Equal(`'it'\''s'`))
	})
})
