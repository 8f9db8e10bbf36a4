package maildir_test

import (
	"context"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/maildir"
)

// deliver writes a message file into root/rel.
func deliver(root, rel, data string) string {
	path := filepath.Join(root, rel)
	Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
	Expect(os.WriteFile(path, []byte(data), 0o644)).To(Succeed())
	return path
}

var _ = Describe("Watcher", func() {
	var (
		root    string
		watcher *maildir.Watcher
	)

	BeforeEach(func() {
		root = GinkgoT().TempDir()
		var err error
		watcher, err = maildir.New(root)
		Expect(err).NotTo(HaveOccurred())
	})

	It("rejects a missing root", func() {
		_, err := maildir.New(filepath.Join(root, "missing"))
		Expect(err).To(MatchError(ContainSubstring("Maildir root")))
	})

	It("rejects a file as root", func() {
		path := deliver(root, "file", "x")
		_, err := maildir.New(path)
		Expect(err).To(MatchError(ContainSubstring("is not a folder")))
	})

	It("finds a message by token in any layout", func() {
		path := deliver(root, "example.test/alice/new/1.host", "Subject: x\r\nX-AMTP-Conformance: run1.7\r\n\r\nbody\r\n")
		deliver(root, "deep/er/cur/2.host:2,S", "X-AMTP-Conformance: run1.8\n\nbody\n")

		found, err := watcher.Find("run1.7")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(HaveLen(1))
		Expect(found[0].Path).To(Equal(path))
		Expect(string(found[0].Data)).To(HaveSuffix("body\r\n"))

		found, err = watcher.Find("run1.8")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(HaveLen(1))
	})

	It("ignores files outside new and cur", func() {
		deliver(root, "example.test/alice/tmp/1.host", "X-AMTP-Conformance: run1.1\r\n\r\n")
		found, err := watcher.Find("run1.1")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeEmpty())
	})

	It("ignores a token in the body", func() {
		deliver(root, "a/new/1", "Subject: x\r\n\r\nX-AMTP-Conformance: run1.2\r\n")
		found, err := watcher.Find("run1.2")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeEmpty())
	})

	It("finds every copy of a token", func() {
		deliver(root, "a/new/1", "x-amtp-conformance:run1.3\r\n\r\n")
		deliver(root, "b/new/1", "X-AMTP-Conformance: run1.3\r\n\r\n")
		found, err := watcher.Find("run1.3")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(HaveLen(2))
	})

	It("waits for a message that arrives later", func() {
		go func() {
			defer GinkgoRecover()
			time.Sleep(100 * time.Millisecond)
			deliver(root, "a/new/late", "X-AMTP-Conformance: run1.4\r\n\r\n")
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		found, err := watcher.Wait(ctx, "run1.4")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(HaveLen(1))
	})

	It("stops waiting at the deadline", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := watcher.Wait(ctx, "never")
		Expect(err).To(MatchError(context.DeadlineExceeded))
		Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second))
	})
})

var _ = Describe("HeaderFields", func() {
	It("unfolds and splits fields", func() {
		fields := maildir.HeaderFields([]byte("MPC: per/individual\r\nSubject: a\r\n  b\r\nMPC : x\r\n\r\nMPC: body\r\n"))
		Expect(fields).To(Equal([]maildir.Field{
			{Name: "MPC", Value: " per/individual"},
			{Name: "Subject", Value: " a  b"},
			{Name: "MPC", Value: " x"},
		}))
	})

	It("matches names without regard to case", func() {
		fields := maildir.HeaderFields([]byte("mPc: a\nFrom: b\nMPC: c\n\n"))
		Expect(maildir.FieldsNamed(fields, "MPC")).To(HaveLen(2))
	})

	It("returns the body after the first empty line", func() {
		Expect(string(maildir.Body([]byte("A: b\r\n\r\nline\r\n")))).To(Equal("line\r\n"))
		Expect(string(maildir.Body([]byte("A: b\n\nline\n")))).To(Equal("line\n"))
		Expect(maildir.Body([]byte("A: b\r\n"))).To(BeNil())
	})
})
