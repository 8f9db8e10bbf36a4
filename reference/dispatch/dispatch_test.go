package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/amtp-toolkit/amtp/reference/dispatch"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/queue"
	"github.com/amtp-toolkit/amtp/reference/router"
)

var perIndividual = mpc.Value{Role: "per", Class: "individual"}

// slowRetry keeps a deferred message queued for the whole spec.
var slowRetry = dispatch.RetryPolicy{Base: time.Hour, MaxInterval: 2 * time.Hour, MaxAge: 24 * time.Hour}

var _ = Describe("RetryPolicy", func() {
	It("draws delays from the upper half", func() {
		p := dispatch.RetryPolicy{Base: time.Second, MaxInterval: 10 * time.Second}
		want := map[int]time.Duration{
			1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second,
			5: 10 * time.Second, 6: 10 * time.Second, 40: 10 * time.Second,
		}
		for attempt, d := range want {
			lowest, highest := d, time.Duration(0)
			for range 500 {
				delay := p.Delay(attempt)
				Expect(delay).To(BeNumerically(">=", d/2), "attempt %d", attempt)
				Expect(delay).To(BeNumerically("<=", d), "attempt %d", attempt)
				lowest, highest = min(lowest, delay), max(highest, delay)
			}
			// 500 draws from [d/2, d] cover most of it unless the
			// jitter is gone.
			Expect(highest-lowest).To(BeNumerically(">", d/4), "spread of the delays for attempt %d", attempt)
		}
	})

	It("caps the first delay at MaxInterval", func() {
		p := dispatch.RetryPolicy{Base: time.Minute, MaxInterval: 10 * time.Second}
		for range 100 {
			Expect(p.Delay(1)).To(BeNumerically("<=", 10*time.Second))
			Expect(p.Delay(1)).To(BeNumerically(">=", 5*time.Second))
		}
	})

	It("stays positive for a very late attempt", func() {
		p := dispatch.RetryPolicy{Base: time.Minute, MaxInterval: time.Hour}
		Expect(p.Delay(10000)).To(BeNumerically(">=", 30*time.Minute))
	})
})

var _ = Describe("Dispatcher", func() {
	Describe("delivery", func() {
		It("delivers locally and removes the message", func() {
			r := newRig(slowRetry, 2)
			r.run()
			r.deliver("LOCAL1", "sender@example.org", false, perIndividual, testMessage, "alice@example.test", "bob@example.test")

			r.waitEmpty()
			copies := r.local.delivered()
			Expect(copies).To(HaveLen(2))
			Expect(copies).To(ContainElement(localCopy{recipient: "alice@example.test", from: "sender@example.org", mpc: "per/individual", msg: testMessage}))
			Expect(copies).To(ContainElement(localCopy{recipient: "bob@example.test", from: "sender@example.org", mpc: "per/individual", msg: testMessage}))
			Expect(r.out.sent()).To(BeEmpty())
			Expect(r.metrics.Delivered.Load()).To(BeEquivalentTo(2))
			Expect(r.metrics.Bounced.Load()).To(BeZero())
		})

		It("delivers the queue it finds at start", func() {
			r := newRig(slowRetry, 1)
			_, err := r.spool.Put(context.Background(), &queue.Envelope{
				ID: "OLD1", From: "sender@example.org", MPC: "com/confirmed",
				Recipients: []queue.Recipient{{Address: "carol@example.test"}},
			}, []byte(testMessage))
			Expect(err).NotTo(HaveOccurred())

			r.run()
			r.waitEmpty()
			Expect(r.local.delivered()).To(ConsistOf(localCopy{recipient: "carol@example.test", from: "sender@example.org", mpc: "com/confirmed", msg: testMessage}))
		})

		It("retries a temporary local failure", func() {
			r := newRig(dispatch.RetryPolicy{Base: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond, MaxAge: time.Hour}, 1)
			r.local.fail = func(_ string, call int) error {
				if call == 1 {
					return errors.New("disk full")
				}
				return nil
			}
			r.run()
			r.deliver("TEMP1", "sender@example.org", false, perIndividual, testMessage, "alice@example.test")

			r.waitEmpty()
			Expect(r.local.delivered()).To(HaveLen(1))
			Expect(r.metrics.Deferred.Load()).To(BeEquivalentTo(1))
			Expect(r.metrics.Delivered.Load()).To(BeEquivalentTo(1))
			Expect(r.metrics.Bounced.Load()).To(BeZero())
		})

		It("relays private mail to a remote domain by SRV", func() {
			r := newRig(slowRetry, 1)
			r.out.result = results(nil)
			r.run()
			r.deliver("RELAY1", "alice@example.test", true, perIndividual, testMessage, "bob@remote.example.org")

			r.waitEmpty()
			sent := r.out.sent()
			Expect(sent).To(HaveLen(1))
			Expect(sent[0].From).To(Equal("alice@example.test"))
			Expect(sent[0].Recipients).To(Equal([]string{"bob@remote.example.org"}))
			Expect(sent[0].MPC).To(Equal(perIndividual))
			Expect(string(sent[0].Data)).To(Equal(testMessage))
			Expect(r.out.routesUsed()[0]).To(Equal(router.Route{Domain: "remote.example.org", Kind: router.Public}))
		})

		It("bounces public mail to remote domains", func() {
			r := newRig(slowRetry, 1)
			r.run()
			r.deliver("DENIED1", "alice@example.test", false, perIndividual, testMessage, "bob@remote.example.org")

			r.waitEmpty()
			Expect(r.out.sent()).To(BeEmpty())
			copies := r.local.delivered()
			Expect(copies).To(HaveLen(1))
			Expect(copies[0].recipient).To(Equal("alice@example.test"))
			Expect(copies[0].msg).To(ContainSubstring("relay denied"))
		})

		It("bounces a queued invalid MPC value", func() {
			r := newRig(slowRetry, 1)
			_, err := r.spool.Put(context.Background(), &queue.Envelope{
				ID: "BADMPC1", From: "alice@example.test", MPC: "com/spam",
				Recipients: []queue.Recipient{{Address: "bob@example.test"}},
			}, []byte(testMessage))
			Expect(err).NotTo(HaveOccurred())

			r.run()
			r.waitEmpty()
			copies := r.local.delivered()
			Expect(copies).To(HaveLen(1), "only the bounce, never the message itself")
			Expect(copies[0].recipient).To(Equal("alice@example.test"))
			Expect(copies[0].mpc).To(Equal("net/autoresponse"))
			Expect(copies[0].msg).To(ContainSubstring("invalid MPC value"))
		})
	})

	Describe("scheduling", func() {
		It("gives no message to two workers", func() {
			r := newRig(dispatch.RetryPolicy{Base: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxAge: time.Hour}, 4)
			r.out.hold = 3 * time.Millisecond
			r.run()

			var ids []string
			for i := range 6 {
				ids = append(ids, r.deliver(fmt.Sprintf("SCHED%d", i), "alice@example.test", true, perIndividual, testMessage, "bob@remote.example.org"))
			}

			// Retry requests while workers hold the messages are what
			// could start a second worker on the same message.
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				deadline := time.Now().Add(600 * time.Millisecond)
				for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
					Expect(r.disp.RetryNow(ids[i%len(ids)])).To(BeTrue())
				}
			}()
			wg.Wait()

			for _, id := range ids {
				Expect(r.out.sentFor(id)).To(BeNumerically(">=", 3), "attempts for %s", id)
			}
			Expect(r.out.overlapping()).To(BeEmpty())
		})

		It("delivers local mail while relays hang", func() {
			r := newRig(slowRetry, 2)
			r.out.release = make(chan struct{}) // never closed: each Send waits for the end of the spec
			r.run()

			for i := range 2 {
				r.deliver(fmt.Sprintf("HANG%d", i), "alice@example.test", true, perIndividual, testMessage, "bob@remote.example.org")
			}
			Eventually(func() int { return len(r.out.sent()) }).Should(Equal(2), "both relay workers are busy")

			r.deliver("LOCAL1", "carol@remote.example.org", false, perIndividual, testMessage, "alice@example.test")
			Eventually(r.local.delivered, 2*time.Second).Should(HaveLen(1))
			Expect(r.local.delivered()[0].recipient).To(Equal("alice@example.test"))
		})

		It("relays a message with local and remote recipients", func() {
			r := newRig(slowRetry, 1)
			r.run()
			id := r.deliver("MIXED1", "alice@example.test", true, perIndividual, testMessage, "bob@example.test", "carol@remote.example.org")

			Eventually(func() int { return r.out.sentFor(id) }).Should(Equal(1))
			Eventually(r.local.delivered).Should(HaveLen(1))
			Expect(r.local.delivered()[0].recipient).To(Equal("bob@example.test"))
		})

		It("retries at once on RetryNow", func() {
			r := newRig(slowRetry, 1)
			r.run()
			id := r.deliver("NOW1", "alice@example.test", true, perIndividual, testMessage, "bob@remote.example.org")
			Eventually(func() int { return r.out.sentFor(id) }).Should(Equal(1))
			Eventually(func() int {
				env, _ := r.spool.Get(id)
				return env.Attempts
			}).Should(Equal(1))

			Expect(r.disp.RetryNow(id)).To(BeTrue())
			Eventually(func() int { return r.out.sentFor(id) }, 2*time.Second).Should(Equal(2))
			Expect(r.disp.RetryNow("NOSUCHID")).To(BeFalse())
		})
	})

	Describe("expiry", func() {
		It("bounces an expired message once", func() {
			r := newRig(dispatch.RetryPolicy{Base: 20 * time.Millisecond, MaxInterval: 40 * time.Millisecond, MaxAge: 300 * time.Millisecond}, 2)
			r.run()
			id := r.deliver("EXPIRE1", "alice@example.test", true, perIndividual, testMessage, "bob@remote.example.org")

			r.waitEmpty()
			Expect(r.out.sentFor(id)).To(BeNumerically(">=", 2), "retried before it expired")
			copies := r.local.delivered()
			Expect(copies).To(HaveLen(1))
			Expect(copies[0].recipient).To(Equal("alice@example.test"))
			Expect(copies[0].from).To(BeEmpty())
			Expect(copies[0].mpc).To(Equal("net/autoresponse"))
			Expect(copies[0].msg).To(ContainSubstring("<bob@remote.example.org>: message expired after 300ms"))
			Expect(copies[0].msg).To(ContainSubstring("451 4.4.1 try again later"))
			Expect(r.metrics.Bounced.Load()).To(BeEquivalentTo(1))
			Expect(r.metrics.Failed.Load()).To(BeEquivalentTo(1))

			Consistently(func() int { return len(r.local.delivered()) }, 300*time.Millisecond).Should(Equal(1))
			Expect(r.log).To(gbytes.Say(`msg="message expired" id=EXPIRE1`))
		})
	})

	Describe("bounces", func() {
		failAll := func(_ dispatch.OutboundMessage, rcpt string) dispatch.RecipientResult {
			return dispatch.RecipientResult{Recipient: rcpt, Outcome: dispatch.Failed, Code: 550, Text: "550 5.1.1 no such user"}
		}

		It("never bounces a message with the null reverse-path", func() {
			r := newRig(slowRetry, 1)
			r.out.result = failAll
			r.run()
			r.deliver("NULL1", "", true, mpc.Bounce, testMessage, "bob@remote.example.org")

			r.waitEmpty()
			Expect(r.out.sent()).To(HaveLen(1))
			Expect(r.local.delivered()).To(BeEmpty())
			Expect(r.metrics.Bounced.Load()).To(BeZero())
			Expect(r.log).To(gbytes.Say(`msg="not bouncing a message with the null reverse-path" id=NULL1`))
		})

		It("never bounces a bounce that fails", func() {
			r := newRig(slowRetry, 1)
			r.out.result = failAll
			r.run()
			r.deliver("GHOST1", "ghost@remote.example.org", true, perIndividual, testMessage, "bob@remote.example.org")

			r.waitEmpty()
			Consistently(func() int { return len(r.out.sent()) }, 300*time.Millisecond).Should(Equal(2))
			sent := r.out.sent()
			Expect(sent[0].ID).To(Equal("GHOST1"))
			Expect(sent[1].From).To(BeEmpty(), "the bounce has the null reverse-path")
			Expect(sent[1].Recipients).To(Equal([]string{"ghost@remote.example.org"}))
			Expect(sent[1].MPC).To(Equal(mpc.Bounce))
			Expect(r.out.routesUsed()[1].Kind).To(Equal(router.Public), "a bounce may leave by SRV")
			Expect(r.metrics.Bounced.Load()).To(BeEquivalentTo(1))
			Expect(r.local.delivered()).To(BeEmpty())
		})

		// A restart between queueing the bounce and removing the message
		// finds the message with its bounce already recorded.
		It("sends no second bounce after a restart", func() {
			r := newRig(slowRetry, 1)
			for _, id := range []string{"SENT1", "UNSENT1"} {
				_, err := r.spool.Put(context.Background(), &queue.Envelope{
					ID: id, From: "alice@example.test", MPC: "per/individual",
					Recipients: []queue.Recipient{{Address: "bob@remote.example.org", State: queue.Failed, LastCode: 550, LastError: "550 no such user " + id}},
				}, []byte(testMessage))
				Expect(err).NotTo(HaveOccurred())
			}
			_, err := r.spool.Update("SENT1", queue.Record{Type: queue.RecordBounceSent})
			Expect(err).NotTo(HaveOccurred())

			r.run()
			r.waitEmpty()
			copies := r.local.delivered()
			Expect(copies).To(HaveLen(1))
			Expect(copies[0].msg).To(ContainSubstring("no such user UNSENT1"))
			Expect(r.out.sent()).To(BeEmpty())
		})

		It("bounces a permanent local failure", func() {
			r := newRig(slowRetry, 1)
			r.local.fail = func(rcpt string, _ int) error {
				if rcpt == "bob@example.test" {
					return dispatch.PermanentError(errors.New("mailbox disabled"))
				}
				return nil
			}
			r.run()
			r.deliver("PERM1", "alice@example.test", false, perIndividual, testMessage, "bob@example.test")

			r.waitEmpty()
			copies := r.local.delivered()
			Expect(copies).To(HaveLen(1))
			Expect(copies[0].recipient).To(Equal("alice@example.test"))
			Expect(copies[0].msg).To(ContainSubstring("<bob@example.test>: mailbox disabled"))
		})
	})

	Describe("Delete", func() {
		It("fails while a worker delivers the message", func() {
			r := newRig(slowRetry, 1)
			r.out.started = make(chan string, 1)
			r.out.release = make(chan struct{})
			r.run()
			id := r.deliver("DEL1", "alice@example.test", true, perIndividual, testMessage, "bob@remote.example.org")
			Eventually(r.out.started, 5*time.Second).Should(Receive(Equal(id)))

			err := r.disp.Delete(id)
			Expect(err).To(MatchError(ContainSubstring("is being delivered")))
			Expect(r.queued(id)).To(BeTrue())

			close(r.out.release)
			Eventually(func() error { return r.disp.Delete(id) }, 5*time.Second, 10*time.Millisecond).Should(Succeed())
			Expect(r.queued(id)).To(BeFalse())
			Consistently(func() int { return len(r.out.sent()) }, 200*time.Millisecond).Should(Equal(1))
			Expect(r.local.delivered()).To(BeEmpty(), "no bounce for a deleted message")
			Expect(r.metrics.Bounced.Load()).To(BeZero())
		})

		It("removes a scheduled message before its next attempt", func() {
			r := newRig(dispatch.RetryPolicy{Base: 400 * time.Millisecond, MaxInterval: 400 * time.Millisecond, MaxAge: time.Hour}, 1)
			r.run()
			id := r.deliver("DEL2", "alice@example.test", true, perIndividual, testMessage, "bob@remote.example.org")
			Eventually(r.log).Should(gbytes.Say(`msg=deferred id=DEL2 attempts=1`))

			// The worker is done a moment after its log line, and the next
			// attempt is at least 200ms later.
			Eventually(func() error { return r.disp.Delete(id) }, 150*time.Millisecond, 5*time.Millisecond).Should(Succeed())
			Consistently(func() int { return r.out.sentFor(id) }, 600*time.Millisecond).Should(Equal(1))
			Expect(r.queued(id)).To(BeFalse())
		})

		It("fails for an unknown ID", func() {
			r := newRig(slowRetry, 1)
			r.run()
			Expect(r.disp.Delete("NOSUCHID")).To(MatchError(ContainSubstring("not in the queue")))
		})
	})
})
