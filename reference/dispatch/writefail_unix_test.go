//go:build unix

package dispatch_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/amtp-toolkit/amtp/reference/dispatch"
	"github.com/amtp-toolkit/amtp/reference/queue"
)

// limitFileSize makes every write of this process past size bytes of a
// file fail with EFBIG, even for root, until the returned function is
// called. The Go runtime ignores the SIGXFSZ that comes with it.
func limitFileSize(size int64) (restore func()) {
	GinkgoHelper()
	var old syscall.Rlimit
	Expect(syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old)).To(Succeed())
	limited := old
	limited.Cur = uint64(size)
	Expect(syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited)).To(Succeed())
	restored := false
	restore = func() {
		if !restored {
			restored = true
			Expect(syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)).To(Succeed())
		}
	}
	DeferCleanup(restore)
	return restore
}

func (r *rig) fileSize(id string) int64 {
	GinkgoHelper()
	info, err := os.Stat(filepath.Join(r.dir, "msg", id))
	Expect(err).NotTo(HaveOccurred())
	return info.Size()
}

// These specs make the spool's record writes fail, which the dispatcher
// must log and retry.
var _ = Describe("Dispatcher on a failed spool write", Serial, func() {
	It("retries recording an invalid MPC failure", func() {
		r := newRig(dispatch.RetryPolicy{Base: 20 * time.Millisecond, MaxInterval: 40 * time.Millisecond, MaxAge: time.Hour}, 1)
		_, err := r.spool.Put(context.Background(), &queue.Envelope{
			ID: "BADMPC2", From: "alice@example.test", MPC: "com/spam",
			Recipients: []queue.Recipient{{Address: "bob@example.test"}},
		}, []byte(testMessage))
		Expect(err).NotTo(HaveOccurred())

		restore := limitFileSize(r.fileSize("BADMPC2"))
		r.run()
		Eventually(r.log, 5*time.Second).Should(gbytes.Say(`msg="cannot record failures.*id=BADMPC2`))
		restore()

		r.waitEmpty()
		copies := r.local.delivered()
		Expect(copies).To(HaveLen(1))
		Expect(copies[0].msg).To(ContainSubstring("invalid MPC value"))
	})

	It("retries recording an expiry", func() {
		r := newRig(dispatch.RetryPolicy{Base: 20 * time.Millisecond, MaxInterval: 40 * time.Millisecond, MaxAge: time.Nanosecond}, 1)
		// The long reason makes the records of the attempt fit under the
		// limit but not the expiry records after them.
		reason := "451 4.4.1 " + strings.Repeat("x", 600)
		r.out.result = func(_ dispatch.OutboundMessage, rcpt string) dispatch.RecipientResult {
			return dispatch.RecipientResult{Recipient: rcpt, Outcome: dispatch.Deferred, Code: 451, Text: reason}
		}
		_, err := r.spool.Put(context.Background(), &queue.Envelope{
			ID: "EXPIRE2", From: "alice@example.test", MPC: "per/individual", Private: true,
			Recipients: []queue.Recipient{{Address: "bob@remote.example.org"}},
		}, []byte(testMessage))
		Expect(err).NotTo(HaveOccurred())

		restore := limitFileSize(r.fileSize("EXPIRE2") + 1000)
		r.run()
		Eventually(r.log, 5*time.Second).Should(gbytes.Say(`msg="cannot record expiry.*id=EXPIRE2`))
		restore()

		r.waitEmpty()
		copies := r.local.delivered()
		Expect(copies).To(HaveLen(1))
		Expect(copies[0].msg).To(ContainSubstring("<bob@remote.example.org>: message expired"))
		Expect(r.metrics.Bounced.Load()).To(BeEquivalentTo(1))
	})
})
