package maildir_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/maildir"
)

var _ = Describe("WaitContaining", func() {
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

	It("finds text in the body of a message that arrives later", func() {
		deliver(root, "a/new/1.host", "Subject: other\r\n\r\nno token here\r\n")
		go func() {
			time.Sleep(100 * time.Millisecond)
			deliver(root, "a/new/2.host", "Subject: bounce\r\n\r\nX-AMTP-Conformance: run1.9\r\n")
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()

		found, err := watcher.WaitContaining(ctx, []byte("run1.9"))
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(HaveLen(1))
		Expect(found[0].Path).To(HaveSuffix("2.host"))
	})

	It("ignores files outside new and cur", func() {
		deliver(root, "a/tmp/1.host", "Subject: x\r\n\r\nrun1.10\r\n")
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()

		_, err := watcher.WaitContaining(ctx, []byte("run1.10"))
		Expect(err).To(MatchError(context.DeadlineExceeded))
	})
})
