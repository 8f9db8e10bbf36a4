package queue_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/queue"
)

// crashChildEnv names the spool directory when the test binary runs as the
// crash helper.
const crashChildEnv = "AMTP_QUEUE_CRASH_CHILD_DIR"

const (
	crashChildWorkers  = 8
	crashChildLifetime = 5 * time.Second // the helper exits by itself after this
	crashChildMaxPuts  = 2000            // per worker
)

// crashMessage returns the message the helper stores under id, so the test
// can check the body without the helper telling it.
func crashMessage(id string) []byte {
	size := 64 + int(id[15])*100
	return fmt.Appendf(nil, "Subject: %s\r\n\r\n%s\r\n", id, bytes.Repeat([]byte(id), size/len(id)))
}

// runCrashChild opens the spool in dir and, from several goroutines, puts,
// updates and removes messages until it is killed or its lifetime ends. It
// prints one line to stdout after each call returns: "put ID",
// "update ID", "removed ID". It prints "removing ID" before a Remove. Each
// line is one write(2) to a pipe, so it arrives whole or not at all.
func runCrashChild(dir string) int {
	s, err := queue.Open(dir, queue.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash helper:", err)
		return 1
	}
	deadline := time.Now().Add(crashChildLifetime)
	report := func(event, id string) {
		os.Stdout.Write([]byte(event + " " + id + "\n"))
	}

	var wg sync.WaitGroup
	failed := false
	var failMu sync.Mutex
	fail := func(err error) {
		failMu.Lock()
		failed = true
		failMu.Unlock()
		fmt.Fprintln(os.Stderr, "crash helper:", err)
	}
	for w := range crashChildWorkers {
		wg.Go(func() {
			for i := 0; i < crashChildMaxPuts && time.Now().Before(deadline); i++ {
				id := queue.NewIDFunc()() + fmt.Sprintf("-%d", w)
				env := newEnvelope("bob@example.net", "carol@example.com")
				env.ID = id
				if _, err := s.Put(context.Background(), env, crashMessage(id)); err != nil {
					fail(err)
					return
				}
				report("put", id)

				_, err := s.Update(id, queue.Record{Type: queue.RecordRecipient, Recipient: "bob@example.net", State: queue.Deferred, Code: 451})
				if err != nil {
					fail(err)
					return
				}
				report("update", id)

				if i%4 == 3 {
					report("removing", id)
					if err := s.Remove(id); err != nil {
						fail(err)
						return
					}
					report("removed", id)
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		fail(err)
	}
	if failed {
		return 1
	}
	return 0
}

// crashLog is what the helpers reported over all runs.
type crashLog struct {
	put      map[string]bool
	updates  map[string]int
	removing map[string]bool
	removed  map[string]bool
}

func (l *crashLog) read(output []byte) {
	// Drop a line the kill may have cut short.
	output = output[:bytes.LastIndexByte(output, '\n')+1]
	sc := bufio.NewScanner(bytes.NewReader(output))
	for sc.Scan() {
		event, id, ok := strings.Cut(sc.Text(), " ")
		Expect(ok).To(BeTrue(), "helper output line %q", sc.Text())
		switch event {
		case "put":
			l.put[id] = true
		case "update":
			l.updates[id]++
		case "removing":
			l.removing[id] = true
		case "removed":
			l.removed[id] = true
		default:
			Fail(fmt.Sprintf("unknown helper output line %q", sc.Text()))
		}
	}
	Expect(sc.Err()).NotTo(HaveOccurred())
}

// verify opens the spool and checks every reported call against it.
func (l *crashLog) verify(dir string) {
	GinkgoHelper()
	s, err := queue.Open(dir, queue.Options{Logger: testLogger()})
	Expect(err).NotTo(HaveOccurred())
	defer s.Close()

	for id := range l.put {
		env, msg, err := s.Load(id)
		switch {
		case l.removed[id]:
			Expect(err).To(MatchError(queue.ErrNotFound), "message %s was removed", id)
			continue
		case l.removing[id] && err != nil:
			// The helper was killed during Remove, which may or may not
			// have reached the disk.
			Expect(err).To(MatchError(queue.ErrNotFound), "message %s", id)
			continue
		}
		Expect(err).NotTo(HaveOccurred(), "message %s returned by Put", id)
		Expect(msg).To(Equal(crashMessage(id)), "message %s", id)
		Expect(env.Recipients[0].Attempts).To(BeNumerically(">=", l.updates[id]), "recipient attempts of message %s", id)
	}
	Expect(dirNames(filepath.Join(dir, "corrupt"))).To(BeEmpty())
	Expect(dirNames(filepath.Join(dir, "tmp"))).To(BeEmpty())
}

// The helper is killed with SIGKILL, which ends the process but keeps the
// page cache, so this checks what survives a process crash. Surviving a
// power loss depends on the fsyncs, which no test here can cut short.
var _ = Describe("Spool after SIGKILL", func() {
	It("keeps every message whose Put returned", func() {
		dir := GinkgoT().TempDir()
		log := &crashLog{put: map[string]bool{}, updates: map[string]int{}, removing: map[string]bool{}, removed: map[string]bool{}}

		for run := range 10 {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
			cmd.Stderr = GinkgoWriter
			stdout, err := cmd.StdoutPipe()
			Expect(err).NotTo(HaveOccurred())
			Expect(cmd.Start()).To(Succeed())

			var output bytes.Buffer
			copied := make(chan error, 1)
			go func() {
				_, err := io.Copy(&output, stdout)
				copied <- err
			}()

			time.Sleep(time.Duration(50+rand.IntN(750)) * time.Millisecond)
			Expect(cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
			Eventually(copied).WithTimeout(10 * time.Second).Should(Receive(BeNil()))
			err = cmd.Wait()
			Expect(err).To(HaveOccurred(), "helper run %d ended before the kill: raise the sleep bound or the lifetime", run)

			reported := len(log.put)
			log.read(output.Bytes())
			GinkgoWriter.Printf("run %d: %d Puts returned before SIGKILL\n", run, len(log.put)-reported)
			log.verify(dir)
		}
		Expect(log.put).NotTo(BeEmpty())
	})
})
