package maildir_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/delivery"
	"github.com/amtp-toolkit/amtp/reference/maildir"
	"github.com/amtp-toolkit/amtp/reference/mpc"
)

const testMessage = "From: alice@example.org\r\nSubject: hello\r\n\r\nMPC: not a header\r\nbody\r\n"

// readDir returns the names of the entries of dir, which must exist.
func readDir(dir string) []string {
	GinkgoHelper()
	entries, err := os.ReadDir(dir)
	Expect(err).NotTo(HaveOccurred())
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// readOnlyFile returns the content of the single file in dir.
func readOnlyFile(dir string) string {
	GinkgoHelper()
	names := readDir(dir)
	Expect(names).To(HaveLen(1))
	data, err := os.ReadFile(filepath.Join(dir, names[0]))
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}

var _ = Describe("Deliverer", func() {
	var (
		root string
		d    *maildir.Deliverer
		env  *delivery.Envelope
		ctx  context.Context
	)

	BeforeEach(func() {
		root = filepath.Join(GinkgoT().TempDir(), "maildir")
		var err error
		d, err = maildir.New(root, "mx.example.test")
		Expect(err).NotTo(HaveOccurred())

		env = &delivery.Envelope{
			ID:         "Q1",
			From:       "alice@example.org",
			Recipients: []string{"bob@example.test", "Carol@Example.TEST"},
			MPC:        mpc.Value{Role: "per", Class: "individual"},
		}
		ctx = context.Background()
	})

	It("creates the root", func() {
		Expect(root).To(BeADirectory())
	})

	It("writes one file per recipient", func() {
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		Expect(readDir(filepath.Join(root, "example.test", "bob", "new"))).To(HaveLen(1))
		Expect(readDir(filepath.Join(root, "example.test", "carol", "new"))).To(HaveLen(1))
	})

	It("prepends Return-Path and MPC", func() {
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		content := readOnlyFile(filepath.Join(root, "example.test", "bob", "new"))
		Expect(content).To(Equal("Return-Path: <alice@example.org>\r\nMPC: per/individual\r\n" + testMessage))
	})

	It("writes the same content for each recipient", func() {
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		bob := readOnlyFile(filepath.Join(root, "example.test", "bob", "new"))
		carol := readOnlyFile(filepath.Join(root, "example.test", "carol", "new"))
		Expect(carol).To(Equal(bob))
	})

	It("leaves tmp empty", func() {
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		Expect(readDir(filepath.Join(root, "example.test", "bob", "tmp"))).To(BeEmpty())
		Expect(readDir(filepath.Join(root, "example.test", "carol", "tmp"))).To(BeEmpty())
	})

	It("creates cur", func() {
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		Expect(filepath.Join(root, "example.test", "bob", "cur")).To(BeADirectory())
	})

	It("writes the null reverse-path", func() {
		env.From = ""
		env.MPC = mpc.Bounce
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		content := readOnlyFile(filepath.Join(root, "example.test", "bob", "new"))
		Expect(content).To(HavePrefix("Return-Path: <>\r\nMPC: net/autoresponse\r\n"))
	})

	It("keeps the MPC spelling", func() {
		env.MPC = mpc.Value{Role: "Com", Class: "OptIn"}
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		content := readOnlyFile(filepath.Join(root, "example.test", "bob", "new"))
		Expect(content).To(ContainSubstring("\r\nMPC: Com/OptIn\r\n"))
	})

	It("names files uniquely", func() {
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		names := readDir(filepath.Join(root, "example.test", "bob", "new"))
		Expect(names).To(HaveLen(2))
		Expect(names[0]).NotTo(Equal(names[1]))
	})

	It("ends file names with the host name", func() {
		Expect(d.Deliver(ctx, env, []byte(testMessage))).To(Succeed())
		names := readDir(filepath.Join(root, "example.test", "bob", "new"))
		Expect(names[0]).To(HaveSuffix(".mx.example.test"))
	})

	It("escapes / and : in the host name", func() {
		other, err := maildir.New(root, "mx/1:2")
		Expect(err).NotTo(HaveOccurred())
		Expect(other.Hostname).To(Equal(`mx\0571\0722`))
	})

	It("rejects a message with an MPC field", func() {
		msg := []byte("Subject: hello\r\nmpc: com/optout\r\n\r\nbody\r\n")
		err := d.Deliver(ctx, env, msg)
		Expect(err).To(MatchError(maildir.ErrMPCFieldPresent))
		Expect(filepath.Join(root, "example.test")).NotTo(BeAnExistingFile())
	})

	It("names the message in errors", func() {
		err := d.Deliver(ctx, env, []byte("MPC: com/optout\r\n\r\n"))
		Expect(err).To(MatchError(ContainSubstring("Q1")))
	})

	It("stops on a canceled context", func() {
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		err := d.Deliver(canceled, env, []byte(testMessage))
		Expect(err).To(MatchError(context.Canceled))
		Expect(filepath.Join(root, "example.test")).NotTo(BeAnExistingFile())
	})

	It("rejects an unsafe recipient", func() {
		env.Recipients = []string{"../x@example.test"}
		Expect(d.Deliver(ctx, env, []byte(testMessage))).NotTo(Succeed())
		Expect(readDir(root)).To(BeEmpty())
	})

	It("delivers one copy with DeliverTo", func() {
		Expect(d.DeliverTo("dave@example.test", "alice@example.org", "com/confirmed", []byte(testMessage))).To(Succeed())
		content := readOnlyFile(filepath.Join(root, "example.test", "dave", "new"))
		Expect(content).To(Equal("Return-Path: <alice@example.org>\r\nMPC: com/confirmed\r\n" + testMessage))
	})

	It("rejects an MPC field in DeliverTo", func() {
		err := d.DeliverTo("dave@example.test", "", "com/confirmed", []byte("MPC : com/optout\r\n\r\n"))
		Expect(err).To(MatchError(maildir.ErrMPCFieldPresent))
	})
})

var _ = Describe("MailboxDir", func() {
	var d *maildir.Deliverer

	BeforeEach(func() {
		var err error
		d, err = maildir.New(GinkgoT().TempDir(), "mx.example.test")
		Expect(err).NotTo(HaveOccurred())
	})

	DescribeTable("maps safe recipients",
		func(recipient string, elements ...string) {
			dir, err := d.MailboxDir(recipient)
			Expect(err).NotTo(HaveOccurred())
			Expect(dir).To(Equal(filepath.Join(append([]string{d.Root}, elements...)...)))
		},
		Entry("plain", "bob@example.test", "example.test", "bob"),
		Entry("lower-cased", "Bob@Example.TEST", "example.test", "bob"),
		Entry("dots and plus", "first.last+tag@example.test", "example.test", "first.last+tag"),
		Entry("hyphen, underscore and equals", "a-b_c=d@example.test", "example.test", "a-b_c=d"),
	)

	DescribeTable("rejects unsafe recipients",
		func(recipient string) {
			_, err := d.MailboxDir(recipient)
			Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("%q", recipient))))
			Expect(d.CheckRecipient(recipient)).NotTo(Succeed())
		},
		Entry("parent folder", "../x@example.test"),
		Entry("dot-dot", "..@example.test"),
		Entry("hidden file", ".hidden@example.test"),
		Entry("slash", "a/b@example.test"),
		Entry("backslash", `a\b@example.test`),
		Entry("quoted local part", `"a b"@example.test`),
		Entry("NUL", "a\x00b@example.test"),
		Entry("parent folder as domain", "bob@.."),
		Entry("slash in domain", "bob@example.test/x"),
		Entry("address literal", "bob@[192.0.2.1]"),
		Entry("no domain", "bob@"),
		Entry("no local part", "@example.test"),
		Entry("no @", "postmaster"),
		Entry("empty", ""),
		Entry("non-ASCII", "jürgen@example.test"),
	)

	It("accepts a safe recipient", func() {
		Expect(d.CheckRecipient("bob@example.test")).To(Succeed())
	})

	It("names the allowed characters", func() {
		_, err := d.MailboxDir("a/b@example.test")
		for _, c := range []string{".", "_", "+", "-", "="} {
			Expect(err).To(MatchError(ContainSubstring(c)), "character %s", c)
		}
		Expect(strings.Count(err.Error(), "=")).To(Equal(1))
	})
})
