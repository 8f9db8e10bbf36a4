package queue_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/queue"
)

var receivedAt = time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC)

func newEnvelope(recipients ...string) *queue.Envelope {
	env := &queue.Envelope{
		From:       "alice@example.org",
		MPC:        "per/individual",
		ReceivedAt: receivedAt,
		ClientAddr: "192.0.2.10:40001",
		ClientCN:   "mx.example.org",
		Private:    true,
	}
	for _, r := range recipients {
		env.Recipients = append(env.Recipients, queue.Recipient{Address: r})
	}
	return env
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(GinkgoWriter, nil))
}

// openSpool opens dir and closes the spool when the spec ends.
func openSpool(dir string, opts queue.Options) *queue.Spool {
	GinkgoHelper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	s, err := queue.Open(dir, opts)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(s.Close)
	return s
}

func put(s *queue.Spool, env *queue.Envelope, msg []byte) string {
	GinkgoHelper()
	id, err := s.Put(context.Background(), env, msg)
	Expect(err).NotTo(HaveOccurred())
	return id
}

func messageFor(n int) []byte {
	return fmt.Appendf(nil, "Subject: message %d\r\n\r\n%s\r\n", n, bytes.Repeat([]byte{byte('a' + n%26)}, 100+n))
}

// putConcurrently stores n messages from the given number of goroutines
// and returns the ID of each message, indexed as messageFor numbers them.
func putConcurrently(s *queue.Spool, n, goroutines int) []string {
	GinkgoHelper()
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < n; i += goroutines {
				ids[i], errs[i] = s.Put(context.Background(), newEnvelope("bob@example.net"), messageFor(i))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		Expect(err).NotTo(HaveOccurred(), "Put of message %d", i)
	}
	return ids
}

func dirNames(dir string) []string {
	GinkgoHelper()
	entries, err := os.ReadDir(dir)
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

var _ = Describe("Spool", func() {
	var dir string

	BeforeEach(func() {
		dir = GinkgoT().TempDir()
	})

	Describe("Put and Load", func() {
		It("round-trips envelope and message", func() {
			s := openSpool(dir, queue.Options{})
			msg := []byte("Subject: hello\r\n\r\nbody without final newline")
			id := put(s, newEnvelope("bob@example.net", "carol@example.com"), msg)

			Expect(id).To(HaveLen(20))
			want := newEnvelope("bob@example.net", "carol@example.com")
			want.ID = id
			want.Recipients[0].State = queue.Pending
			want.Recipients[1].State = queue.Pending

			env, ok := s.Get(id)
			Expect(ok).To(BeTrue())
			Expect(env).To(Equal(want))

			env, body, err := s.Load(id)
			Expect(err).NotTo(HaveOccurred())
			Expect(env).To(Equal(want))
			Expect(body).To(Equal(msg))

			Expect(s.Close()).To(Succeed())
			s = openSpool(dir, queue.Options{})
			env, body, err = s.Load(id)
			Expect(err).NotTo(HaveOccurred())
			Expect(env).To(Equal(want))
			Expect(body).To(Equal(msg))

			env, body, err = queue.ReadFile(filepath.Join(dir, "msg", id))
			Expect(err).NotTo(HaveOccurred())
			Expect(env).To(Equal(want))
			Expect(body).To(Equal(msg))
		})

		It("stores an empty message", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), nil)
			_, body, err := s.Load(id)
			Expect(err).NotTo(HaveOccurred())
			Expect(body).To(BeEmpty())
		})

		It("keeps an ID chosen by the caller", func() {
			s := openSpool(dir, queue.Options{})
			env := newEnvelope("bob@example.net")
			env.ID = "SESSIONID2345ABCD"
			Expect(put(s, env, []byte("x"))).To(Equal("SESSIONID2345ABCD"))
			Expect(filepath.Join(dir, "msg", "SESSIONID2345ABCD")).To(BeARegularFile())
		})

		It("rejects an ID already in the spool", func() {
			s := openSpool(dir, queue.Options{})
			env := newEnvelope("bob@example.net")
			env.ID = "SAMEID"
			put(s, env, []byte("first"))

			_, err := s.Put(context.Background(), env, []byte("second"))
			Expect(err).To(MatchError(queue.ErrExists))
			_, body, err := s.Load("SAMEID")
			Expect(err).NotTo(HaveOccurred())
			Expect(string(body)).To(Equal("first"))
		})

		DescribeTable("rejects an invalid envelope",
			func(change func(*queue.Envelope)) {
				s := openSpool(dir, queue.Options{})
				env := newEnvelope("bob@example.net", "carol@example.com")
				change(env)
				_, err := s.Put(context.Background(), env, []byte("x"))
				Expect(err).To(HaveOccurred())
				Expect(s.List()).To(BeEmpty())
				Expect(dirNames(filepath.Join(dir, "tmp"))).To(BeEmpty())
			},
			Entry("no recipients", func(e *queue.Envelope) { e.Recipients = nil }),
			Entry("repeated recipient", func(e *queue.Envelope) { e.Recipients[1].Address = e.Recipients[0].Address }),
			Entry("empty recipient", func(e *queue.Envelope) { e.Recipients[1].Address = "" }),
			Entry("invalid state", func(e *queue.Envelope) { e.Recipients[0].State = "sent" }),
			Entry("ID with a slash", func(e *queue.Envelope) { e.ID = "../escape" }),
			Entry("ID starting with a dot", func(e *queue.Envelope) { e.ID = ".hidden" }),
		)

		It("does not change the caller's envelope", func() {
			s := openSpool(dir, queue.Options{})
			env := newEnvelope("bob@example.net")
			put(s, env, []byte("x"))
			Expect(env).To(Equal(newEnvelope("bob@example.net")))
		})

		It("stores nothing when the context is already done", func() {
			s := openSpool(dir, queue.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := s.Put(ctx, newEnvelope("bob@example.net"), []byte("x"))
			Expect(err).To(MatchError(context.Canceled))
			Expect(s.List()).To(BeEmpty())
			Expect(dirNames(filepath.Join(dir, "msg"))).To(BeEmpty())
		})
	})

	Describe("Update", func() {
		It("applies every record type and keeps them after reopen", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net", "carol@example.com"), []byte("x"))
			t1 := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
			next := t1.Add(10 * time.Minute)
			later := t1.Add(time.Hour)

			env, err := s.Update(id,
				queue.Record{Time: t1, Type: queue.RecordRecipient, Recipient: "bob@example.net", State: queue.Delivered, Code: 250},
				queue.Record{Time: t1, Type: queue.RecordRecipient, Recipient: "carol@example.com", State: queue.Deferred, Code: 451, Error: "4.3.0 try later"},
				queue.Record{Time: t1, Type: queue.RecordAttempt, NextAttempt: next},
			)
			Expect(err).NotTo(HaveOccurred())
			Expect(env.Recipients[0]).To(Equal(queue.Recipient{Address: "bob@example.net", State: queue.Delivered, Attempts: 1, LastCode: 250, UpdatedAt: t1}))
			Expect(env.Recipients[1]).To(Equal(queue.Recipient{Address: "carol@example.com", State: queue.Deferred, Attempts: 1, LastCode: 451, LastError: "4.3.0 try later", UpdatedAt: t1}))
			Expect(env.Attempts).To(Equal(1))
			Expect(env.NextAttempt).To(Equal(next))

			env, err = s.Update(id,
				queue.Record{Time: later, Type: queue.RecordRecipient, Recipient: "carol@example.com", State: queue.Failed, Code: 550, Error: "5.1.1 no such user"},
				queue.Record{Time: later, Type: queue.RecordRetry, NextAttempt: later},
				queue.Record{Time: later, Type: queue.RecordBounceSent},
			)
			Expect(err).NotTo(HaveOccurred())
			Expect(env.Recipients[1].State).To(Equal(queue.Failed))
			Expect(env.Recipients[1].Attempts).To(Equal(2))
			Expect(env.Recipients[1].LastError).To(Equal("5.1.1 no such user"))
			Expect(env.Attempts).To(Equal(1))
			Expect(env.NextAttempt).To(Equal(later))
			Expect(env.BounceSent).To(BeTrue())

			got, ok := s.Get(id)
			Expect(ok).To(BeTrue())
			Expect(got).To(Equal(env))

			Expect(s.Close()).To(Succeed())
			s = openSpool(dir, queue.Options{})
			got, ok = s.Get(id)
			Expect(ok).To(BeTrue())
			Expect(got).To(Equal(env))
			fromFile, _, err := queue.ReadFile(filepath.Join(dir, "msg", id))
			Expect(err).NotTo(HaveOccurred())
			Expect(fromFile).To(Equal(env))
		})

		It("sets a zero record time to now", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), []byte("x"))
			before := time.Now()
			env, err := s.Update(id, queue.Record{Type: queue.RecordRecipient, Recipient: "bob@example.net", State: queue.Deferred})
			Expect(err).NotTo(HaveOccurred())
			Expect(env.Recipients[0].UpdatedAt).To(BeTemporally("~", before, time.Minute))
		})

		DescribeTable("rejects an invalid record without writing",
			func(rec queue.Record) {
				s := openSpool(dir, queue.Options{})
				id := put(s, newEnvelope("bob@example.net"), []byte("x"))
				path := filepath.Join(dir, "msg", id)
				before, err := os.ReadFile(path)
				Expect(err).NotTo(HaveOccurred())

				ok := queue.Record{Type: queue.RecordAttempt}
				_, err = s.Update(id, ok, rec)
				Expect(err).To(HaveOccurred())

				after, err := os.ReadFile(path)
				Expect(err).NotTo(HaveOccurred())
				Expect(after).To(Equal(before))
				env, _ := s.Get(id)
				Expect(env.Attempts).To(Equal(0))
			},
			Entry("unknown type", queue.Record{Type: "resend"}),
			Entry("unknown recipient", queue.Record{Type: queue.RecordRecipient, Recipient: "eve@example.net", State: queue.Delivered}),
			Entry("recipient differing in case", queue.Record{Type: queue.RecordRecipient, Recipient: "Bob@example.net", State: queue.Delivered}),
			Entry("invalid state", queue.Record{Type: queue.RecordRecipient, Recipient: "bob@example.net", State: "sent"}),
			Entry("empty state", queue.Record{Type: queue.RecordRecipient, Recipient: "bob@example.net"}),
		)

		It("returns ErrNotFound for an unknown ID", func() {
			s := openSpool(dir, queue.Options{})
			_, err := s.Update("NOSUCHID", queue.Record{Type: queue.RecordAttempt})
			Expect(err).To(MatchError(queue.ErrNotFound))
		})

		It("serializes concurrent Updates of one message", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), []byte("x"))
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					defer GinkgoRecover()
					for range 10 {
						_, err := s.Update(id, queue.Record{Type: queue.RecordAttempt})
						Expect(err).NotTo(HaveOccurred())
					}
				})
			}
			wg.Wait()
			env, _ := s.Get(id)
			Expect(env.Attempts).To(Equal(160))

			Expect(s.Close()).To(Succeed())
			s = openSpool(dir, queue.Options{})
			env, _ = s.Get(id)
			Expect(env.Attempts).To(Equal(160))
		})
	})

	Describe("Open", func() {
		It("ignores a torn last record and appends after the last complete one", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), []byte("x"))
			_, err := s.Update(id, queue.Record{Type: queue.RecordAttempt})
			Expect(err).NotTo(HaveOccurred())
			Expect(s.Close()).To(Succeed())

			path := filepath.Join(dir, "msg", id)
			complete, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			torn := append(bytes.Clone(complete), `{"time":"2026-03-01T13:00:00Z","type":"attem`...)
			Expect(os.WriteFile(path, torn, 0o640)).To(Succeed())

			s = openSpool(dir, queue.Options{})
			env, ok := s.Get(id)
			Expect(ok).To(BeTrue())
			Expect(env.Attempts).To(Equal(1))
			Expect(os.ReadFile(path)).To(Equal(complete))

			_, err = s.Update(id, queue.Record{Type: queue.RecordAttempt})
			Expect(err).NotTo(HaveOccurred())
			Expect(s.Close()).To(Succeed())
			s = openSpool(dir, queue.Options{})
			env, _ = s.Get(id)
			Expect(env.Attempts).To(Equal(2))
			Expect(dirNames(filepath.Join(dir, "corrupt"))).To(BeEmpty())
		})

		It("moves a file with a bad checksum to corrupt/", func() {
			var logs bytes.Buffer
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), []byte("Subject: x\r\n\r\nbody"))
			keep := put(s, newEnvelope("bob@example.net"), []byte("intact"))
			Expect(s.Close()).To(Succeed())

			path := filepath.Join(dir, "msg", id)
			data, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			data[len(data)-1] ^= 0x20
			Expect(os.WriteFile(path, data, 0o640)).To(Succeed())

			s = openSpool(dir, queue.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			_, ok := s.Get(id)
			Expect(ok).To(BeFalse())
			_, ok = s.Get(keep)
			Expect(ok).To(BeTrue())
			Expect(path).NotTo(BeAnExistingFile())
			Expect(os.ReadFile(filepath.Join(dir, "corrupt", id))).To(Equal(data))
			Expect(logs.String()).To(ContainSubstring("corrupt"))
			Expect(logs.String()).To(ContainSubstring(id))

			_, _, err = queue.ReadFile(filepath.Join(dir, "corrupt", id))
			Expect(err).To(MatchError(queue.ErrCorrupt))
		})

		DescribeTable("moves a damaged file to corrupt/",
			func(damage func([]byte) []byte) {
				s := openSpool(dir, queue.Options{})
				id := put(s, newEnvelope("bob@example.net"), []byte("Subject: x\r\n\r\nbody\r\n"))
				Expect(s.Close()).To(Succeed())

				path := filepath.Join(dir, "msg", id)
				data, err := os.ReadFile(path)
				Expect(err).NotTo(HaveOccurred())
				damaged := damage(data)
				Expect(os.WriteFile(path, damaged, 0o640)).To(Succeed())

				s = openSpool(dir, queue.Options{})
				Expect(s.List()).To(BeEmpty())
				Expect(os.ReadFile(filepath.Join(dir, "corrupt", id))).To(Equal(damaged))
				_, _, err = queue.ReadFile(filepath.Join(dir, "corrupt", id))
				Expect(err).To(MatchError(queue.ErrCorrupt))
			},
			Entry("empty", func(b []byte) []byte { return nil }),
			Entry("cut inside the message", func(b []byte) []byte { return b[:len(b)-3] }),
			Entry("cut inside the envelope", func(b []byte) []byte { return b[:bytes.IndexByte(b, '\n')+10] }),
			Entry("changed envelope byte", func(b []byte) []byte {
				i := bytes.Index(b, []byte("bob@"))
				b[i] = 'r'
				return b
			}),
			Entry("wrong magic word", func(b []byte) []byte { b[0] = 'x'; return b }),
			Entry("message length too long", func(b []byte) []byte {
				return bytes.Replace(b, []byte(" 20 "), []byte(" 2000000 "), 1)
			}),
			Entry("message length beyond memory", func(b []byte) []byte {
				return bytes.Replace(b, []byte(" 20 "), []byte(" 4000000000000000000 "), 1)
			}),
		)

		It("moves a file with an invalid record to corrupt/", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), []byte("x"))
			Expect(s.Close()).To(Succeed())

			path := filepath.Join(dir, "msg", id)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			Expect(err).NotTo(HaveOccurred())
			_, err = f.WriteString("not json\n{\"type\":\"attempt\"}\n")
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Close()).To(Succeed())

			s = openSpool(dir, queue.Options{})
			Expect(s.List()).To(BeEmpty())
			Expect(filepath.Join(dir, "corrupt", id)).To(BeARegularFile())
		})

		It("moves a file whose name is not an ID to corrupt/", func() {
			s := openSpool(dir, queue.Options{})
			Expect(s.Close()).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "msg", ".swp"), []byte("x"), 0o640)).To(Succeed())

			s = openSpool(dir, queue.Options{})
			Expect(s.List()).To(BeEmpty())
			Expect(dirNames(filepath.Join(dir, "corrupt"))).To(Equal([]string{".swp"}))
		})

		It("keeps both files when corrupt/ already has the name", func() {
			s := openSpool(dir, queue.Options{})
			env := newEnvelope("bob@example.net")
			env.ID = "DUPLICATE"
			put(s, env, []byte("x"))
			Expect(s.Close()).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "corrupt", "DUPLICATE"), []byte("older"), 0o640)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "msg", "DUPLICATE"), []byte("garbage"), 0o640)).To(Succeed())

			openSpool(dir, queue.Options{})
			Expect(dirNames(filepath.Join(dir, "corrupt"))).To(HaveLen(2))
			Expect(os.ReadFile(filepath.Join(dir, "corrupt", "DUPLICATE"))).To(Equal([]byte("older")))
		})

		It("fails on a newer format version instead of moving the file", func() {
			s := openSpool(dir, queue.Options{})
			Expect(s.Close()).To(Succeed())
			path := filepath.Join(dir, "msg", "FROMNEWERAMTPD")
			Expect(os.WriteFile(path, []byte("amtpq 2 3 0 00000000\n{}\n"), 0o640)).To(Succeed())

			_, err := queue.Open(dir, queue.Options{Logger: testLogger()})
			Expect(err).To(MatchError(ContainSubstring("unsupported spool format version 2")))
			Expect(err).NotTo(MatchError(queue.ErrCorrupt))
			Expect(path).To(BeARegularFile())
		})

		It("removes leftovers in tmp/", func() {
			s := openSpool(dir, queue.Options{})
			Expect(s.Close()).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "tmp", "HALFWRITTEN"), []byte("amtpq 1 "), 0o640)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "tmp", "OTHER"), nil, 0o640)).To(Succeed())

			s = openSpool(dir, queue.Options{})
			Expect(dirNames(filepath.Join(dir, "tmp"))).To(BeEmpty())
			Expect(s.List()).To(BeEmpty())
		})

		It("rejects a second Open of the same directory", func() {
			s := openSpool(dir, queue.Options{})
			_, err := queue.Open(dir, queue.Options{Logger: testLogger()})
			Expect(err).To(MatchError(ContainSubstring("in use by another process")))

			Expect(s.Close()).To(Succeed())
			openSpool(dir, queue.Options{})
		})

		It("creates a missing spool directory", func() {
			nested := filepath.Join(dir, "a", "spool")
			openSpool(nested, queue.Options{})
			Expect(dirNames(nested)).To(ConsistOf("corrupt", "lock", "msg", "tmp"))
		})
	})

	Describe("Load", func() {
		It("moves a file damaged after Open to corrupt/", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), []byte("Subject: x\r\n\r\nbody"))
			path := filepath.Join(dir, "msg", id)
			data, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			data[len(data)-2] ^= 0x01
			Expect(os.WriteFile(path, data, 0o640)).To(Succeed())

			_, _, err = s.Load(id)
			Expect(err).To(MatchError(queue.ErrCorrupt))
			_, ok := s.Get(id)
			Expect(ok).To(BeFalse())
			Expect(os.ReadFile(filepath.Join(dir, "corrupt", id))).To(Equal(data))
		})
	})

	Describe("Remove", func() {
		It("deletes the message for good", func() {
			s := openSpool(dir, queue.Options{})
			removedID := put(s, newEnvelope("bob@example.net"), []byte("x"))
			keptID := put(s, newEnvelope("bob@example.net"), []byte("y"))

			Expect(s.Remove(removedID)).To(Succeed())
			_, ok := s.Get(removedID)
			Expect(ok).To(BeFalse())
			Expect(filepath.Join(dir, "msg", removedID)).NotTo(BeAnExistingFile())
			Expect(s.List()).To(HaveLen(1))

			Expect(s.Remove(removedID)).To(MatchError(queue.ErrNotFound))
			_, err := s.Update(removedID, queue.Record{Type: queue.RecordAttempt})
			Expect(err).To(MatchError(queue.ErrNotFound))
			_, _, err = s.Load(removedID)
			Expect(err).To(MatchError(queue.ErrNotFound))

			Expect(s.Close()).To(Succeed())
			s = openSpool(dir, queue.Options{})
			ids := []string{}
			for _, env := range s.List() {
				ids = append(ids, env.ID)
			}
			Expect(ids).To(Equal([]string{keptID}))
		})
	})

	Describe("List and Get", func() {
		It("return copies", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), []byte("x"))

			listed := s.List()
			listed[0].Recipients[0].State = queue.Delivered
			listed[0].Attempts = 7
			got, _ := s.Get(id)
			got.Recipients[0].State = queue.Failed

			env, _ := s.Get(id)
			Expect(env.Recipients[0].State).To(Equal(queue.Pending))
			Expect(env.Attempts).To(Equal(0))
		})

		It("sort by ID, which is the order of Put", func() {
			s := openSpool(dir, queue.Options{})
			var ids []string
			for i := range 50 {
				ids = append(ids, put(s, newEnvelope("bob@example.net"), messageFor(i)))
			}
			Expect(slices.IsSorted(ids)).To(BeTrue())
			var listed []string
			for _, env := range s.List() {
				listed = append(listed, env.ID)
			}
			Expect(listed).To(Equal(ids))
		})
	})

	Describe("concurrent Puts", func() {
		DescribeTable("are all durable and listed", func(opts queue.Options) {
			if opts.SyncFilesystem && runtime.GOOS != "linux" {
				Skip("SyncFilesystem needs Linux")
			}
			s := openSpool(dir, opts)
			ids := putConcurrently(s, 200, 32)

			unique := map[string]bool{}
			for _, id := range ids {
				unique[id] = true
			}
			Expect(unique).To(HaveLen(200))
			Expect(s.List()).To(HaveLen(200))
			Expect(dirNames(filepath.Join(dir, "tmp"))).To(BeEmpty())

			Expect(s.Close()).To(Succeed())
			s = openSpool(dir, queue.Options{})
			Expect(s.List()).To(HaveLen(200))
			for i, id := range ids {
				_, body, err := s.Load(id)
				Expect(err).NotTo(HaveOccurred())
				Expect(body).To(Equal(messageFor(i)), "message %d, ID %s", i, id)
			}
		},
			Entry("with fsync", queue.Options{}),
			Entry("with syncfs", queue.Options{SyncFilesystem: true}),
		)

		It("store exactly the messages whose Put returned nil when contexts end", func() {
			s := openSpool(dir, queue.Options{})
			var mu sync.Mutex
			stored := map[string]bool{}
			failed := 0
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Go(func() {
					for i := range 8 {
						// Deadlines from 0 to 3 ms end some Puts before,
						// some during and some after their commit.
						timeout := time.Duration((g*8+i)%7) * 500 * time.Microsecond
						ctx, cancel := context.WithTimeout(context.Background(), timeout)
						id, err := s.Put(ctx, newEnvelope("bob@example.net"), messageFor(i))
						cancel()
						mu.Lock()
						if err == nil {
							stored[id] = true
						} else {
							failed++
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			GinkgoWriter.Printf("%d Puts stored, %d failed\n", len(stored), failed)

			listed := map[string]bool{}
			for _, env := range s.List() {
				listed[env.ID] = true
			}
			Expect(listed).To(Equal(stored))
			Expect(dirNames(filepath.Join(dir, "msg"))).To(HaveLen(len(stored)))
			Expect(dirNames(filepath.Join(dir, "tmp"))).To(BeEmpty())
		})
	})

	Describe("group commit", func() {
		It("shares commits between concurrent Puts", func() {
			s := openSpool(dir, queue.Options{})
			const n = 256
			putConcurrently(s, n, 64)

			// Each commit fsyncs files and a directory, which takes far
			// longer than queueing a request, so most Puts find a commit
			// running and join the next one.
			GinkgoWriter.Printf("%d Puts: %d commits, %d directory fsyncs, largest batch %d\n",
				n, s.Commits(), s.DirSyncs(), s.MaxBatchSeen())
			Expect(s.Commits()).To(BeNumerically("<", n))
			Expect(s.MaxBatchSeen()).To(BeNumerically(">", 1))
			Expect(s.DirSyncs()).To(Equal(s.Commits()))
		})

		It("commits at most MaxBatch Puts at once", func() {
			s := openSpool(dir, queue.Options{MaxBatch: 4})
			putConcurrently(s, 64, 32)
			Expect(s.MaxBatchSeen()).To(BeNumerically("<=", 4))
			Expect(s.Commits()).To(BeNumerically(">=", 16))
		})

		It("commits a lone Put without waiting for others", func() {
			s := openSpool(dir, queue.Options{})
			for i := range 20 {
				put(s, newEnvelope("bob@example.net"), messageFor(i))
			}
			Expect(s.Commits()).To(Equal(int64(20)))
			Expect(s.MaxBatchSeen()).To(Equal(int64(1)))
		})

		It("shares directory fsyncs between Removes and Puts", func() {
			s := openSpool(dir, queue.Options{})
			ids := putConcurrently(s, 64, 16)
			before := s.DirSyncs()

			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Go(func() {
					defer GinkgoRecover()
					if i%2 == 0 {
						Expect(s.Remove(id)).To(Succeed())
					} else {
						_, err := s.Put(context.Background(), newEnvelope("bob@example.net"), messageFor(i))
						Expect(err).NotTo(HaveOccurred())
					}
				})
			}
			wg.Wait()
			Expect(s.List()).To(HaveLen(64))
			Expect(s.DirSyncs() - before).To(BeNumerically("<", 64))
		})
	})

	Describe("Close", func() {
		It("makes later writes fail with ErrClosed", func() {
			s := openSpool(dir, queue.Options{})
			id := put(s, newEnvelope("bob@example.net"), []byte("x"))
			Expect(s.Close()).To(Succeed())
			Expect(s.Close()).To(Succeed())

			_, err := s.Put(context.Background(), newEnvelope("bob@example.net"), []byte("y"))
			Expect(err).To(MatchError(queue.ErrClosed))
			_, err = s.Update(id, queue.Record{Type: queue.RecordAttempt})
			Expect(err).To(MatchError(queue.ErrClosed))
			Expect(s.Remove(id)).To(MatchError(queue.ErrClosed))
			_, ok := s.Get(id)
			Expect(ok).To(BeTrue())
		})
	})
})

var _ = Describe("IDs", func() {
	It("are unique, sortable and safe as file names", func() {
		next := queue.NewIDFunc()
		const n = 100000
		ids := make([]string, n)
		for i := range ids {
			ids[i] = next()
		}
		Expect(ids[0]).To(MatchRegexp(`^[0-9A-V]{20}$`))
		for i := 1; i < n; i++ {
			if ids[i] <= ids[i-1] {
				Fail(fmt.Sprintf("ID %d %s does not sort after ID %d %s", i, ids[i], i-1, ids[i-1]))
			}
		}
	})

	It("sort by creation time", func() {
		next := queue.NewIDFunc()
		first := next()
		time.Sleep(2 * time.Millisecond)
		other := queue.NewIDFunc()
		Expect(other() > first).To(BeTrue())
	})
})
