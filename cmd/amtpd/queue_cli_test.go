package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// stuckZone sends stuck.example.test to 127.0.3.9, where nothing listens.
const stuckZone = `_amtp._tcp.stuck.example.test. 60 IN SRV 10 10 4025 mx-stuck.example.test.
mx-stuck.example.test. 60 IN A 127.0.3.9`

// runQueueCommand runs "amtpd queue ARGS..." and waits for it to exit.
func runQueueCommand(args ...string) *gexec.Session {
	GinkgoHelper()
	cmd := exec.Command(amtpdPath, append([]string{"queue"}, args...)...)
	session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	Eventually(session, 20*time.Second).Should(gexec.Exit())
	return session
}

// dialAuthenticated connects to the private listener of a with the private
// client certificate and logs in with SMTP AUTH, so the server relays.
func dialAuthenticated(a *amtpd) *client {
	GinkgoHelper()
	m := a.stage.manifest
	c, err := a.tryDialAs(pki.CertPrivateClient, a.private)
	Expect(err).NotTo(HaveOccurred())
	c.greet(cnOf(m, pki.CertPrivateClient))
	user := m.Users[0]
	c.cmd("AUTH PLAIN "+b64(fmt.Sprintf("\x00%s\x00%s", user.Name, user.Password)), 235)
	return c
}

var queuedAs = regexp.MustCompile(`queued as (\S+)`)

// sendQueued runs one mail transaction and returns the queue ID from the
// 250 reply to DATA.
func (c *client) sendQueued(from, mpcValue string, rcpts []string, body string) string {
	GinkgoHelper()
	c.cmd(fmt.Sprintf("MAIL FROM:<%s> MPC=%s", from, mpcValue), 250)
	for _, r := range rcpts {
		c.cmd("RCPT TO:<"+r+">", 250)
	}
	c.cmd("DATA", 354)
	c.send(body)
	match := queuedAs.FindStringSubmatch(c.expect(250))
	Expect(match).NotTo(BeNil(), "the 250 reply names the queue ID")
	return match[1]
}

var nextAttempt = regexp.MustCompile(`(?m)^Attempts: +(\d+), next (\S+)$`)

// showAttempt returns the attempt count and the next attempt time that
// "amtpd queue show" prints for id.
func showAttempt(config, id string) (int, time.Time) {
	GinkgoHelper()
	show := runQueueCommand("show", "--config", config, id)
	Expect(show.ExitCode()).To(Equal(0), "stderr: %s", show.Err.Contents())
	match := nextAttempt.FindStringSubmatch(string(show.Out.Contents()))
	Expect(match).NotTo(BeNil(), "show output:\n%s", show.Out.Contents())
	var attempts int
	fmt.Sscan(match[1], &attempts)
	next, err := time.Parse(time.RFC3339, match[2])
	Expect(err).NotTo(HaveOccurred())
	return attempts, next
}

var _ = Describe("amtpd queue", Ordered, func() {
	var (
		st           *stage
		srv          *amtpd
		first, other string // queue IDs
	)

	BeforeAll(func() {
		st = newStage(stuckZone)
		srv = st.startAmtpd("queue", serverConfig{
			private: true,
			queue:   "retry_base = \"1h\"\nretry_max_interval = \"2h\"",
		})

		c := dialAuthenticated(srv)
		first = c.sendQueued("alice@example.test", "per/individual", []string{"bob@stuck.example.test"},
			"From: alice@example.test\r\nSubject: stuck one\r\n\r\nHello.\r\n.\r\n")
		other = c.sendQueued("carol@example.test", "com/confirmed", []string{"dave@stuck.example.test", "erin@stuck.example.test"},
			"From: carol@example.test\r\nSubject: stuck two\r\n\r\nHello.\r\n.\r\n")
		Eventually(srv.log, 10*time.Second).Should(MatchRegexp(`msg=deferred .*id=%s attempts=1 `, first))
		Eventually(srv.log, 10*time.Second).Should(MatchRegexp(`msg=deferred .*id=%s attempts=1 `, other))
	})

	It("lists the queue like mailq", func() {
		list := runQueueCommand("list", "--config", srv.config)
		Expect(list.ExitCode()).To(Equal(0))
		out := string(list.Out.Contents())

		Expect(out).To(HavePrefix("-Queue ID-"))
		Expect(out).To(MatchRegexp(`(?m)^%s +\d+ .* alice@example\.test \(per/individual\)\n {54}\(.*127\.0\.3\.9.*\)\n {54}bob@stuck\.example\.test\n`, first))
		Expect(out).To(MatchRegexp(`(?m)^%s +\d+ .* carol@example\.test \(com/confirmed\)\n`, other))
		Expect(out).To(MatchRegexp(`(?m)^ {54}dave@stuck\.example\.test$`))
		Expect(out).To(MatchRegexp(`(?m)^ {54}erin@stuck\.example\.test$`))
		Expect(out).To(MatchRegexp(`(?m)^-- \d+ Kbytes in 2 Requests\.$`))
	})

	It("shows one message", func() {
		show := runQueueCommand("show", "--config", srv.config, other)
		Expect(show.ExitCode()).To(Equal(0))
		out := string(show.Out.Contents())

		Expect(out).To(ContainSubstring("ID:           " + other + "\n"))
		Expect(out).To(ContainSubstring("From:         <carol@example.test>\n"))
		Expect(out).To(ContainSubstring("MPC:          com/confirmed\n"))
		Expect(out).To(MatchRegexp(`Received: +\S+ from 127\.0\.0\.\d+:\d+ \(CN [^)]+, private=true\)`))
		Expect(out).To(MatchRegexp(`(?m)^  <dave@stuck\.example\.test> deferred, attempts: 1, last: 451 .*127\.0\.3\.9`))
		Expect(out).To(MatchRegexp(`(?m)^  <erin@stuck\.example\.test> deferred, attempts: 1, last: 451 `))
		Expect(out).To(ContainSubstring("Header section:\n"))
		Expect(out).To(ContainSubstring("Subject: stuck two\r\n"))
		Expect(out).NotTo(ContainSubstring("Hello."), "show prints no body")

		attempts, next := showAttempt(srv.config, other)
		Expect(attempts).To(Equal(1))
		Expect(next).To(BeTemporally(">", time.Now().Add(20*time.Minute)))
	})

	It("retries one message through the control socket", func() {
		retry := runQueueCommand("retry", "--config", srv.config, first)
		Expect(retry.ExitCode()).To(Equal(0))
		Expect(string(retry.Out.Contents())).To(Equal("retrying " + first + "\n"))

		Eventually(srv.log).Should(MatchRegexp(`msg="retry requested by the operator" .*id=%s`, first))
		Eventually(srv.log, 10*time.Second).Should(MatchRegexp(`msg=deferred .*id=%s attempts=2 `, first))
		attempts, _ := showAttempt(srv.config, other)
		Expect(attempts).To(Equal(1), "the other message waits for its own time")
	})

	It("retries the whole queue", func() {
		retry := runQueueCommand("retry", "--all", "--config", srv.config)
		Expect(retry.ExitCode()).To(Equal(0))
		Expect(string(retry.Out.Contents())).To(Equal("retrying 2 message(s)\n"))

		Eventually(srv.log).Should(MatchRegexp(`msg="retry of the whole queue requested by the operator" .*messages=2`))
		Eventually(srv.log, 10*time.Second).Should(MatchRegexp(`msg=deferred .*id=%s attempts=3 `, first))
		Eventually(srv.log, 10*time.Second).Should(MatchRegexp(`msg=deferred .*id=%s attempts=2 `, other))
	})

	It("deletes a message without a bounce", func() {
		// A message is in flight for a moment after its "deferred" log
		// line, and Delete fails then.
		var del *gexec.Session
		for range 5 {
			del = runQueueCommand("delete", "--config", srv.config, first)
			if !strings.Contains(string(del.Err.Contents()), "is being delivered") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		Expect(del.ExitCode()).To(Equal(0), "stderr: %s", del.Err.Contents())
		Expect(string(del.Out.Contents())).To(Equal("deleted " + first + "\n"))
		Eventually(srv.log).Should(MatchRegexp(`msg="message deleted by the operator" .*id=%s`, first))

		list := runQueueCommand("list", "--config", srv.config)
		Expect(list.ExitCode()).To(Equal(0))
		Expect(string(list.Out.Contents())).NotTo(ContainSubstring(first))
		Expect(string(list.Out.Contents())).To(ContainSubstring(other))
		Expect(filepath.Join(srv.spool, "msg", first)).NotTo(BeAnExistingFile())
		Consistently(func() []string { return srv.delivered("alice@example.test") }, time.Second).Should(BeEmpty(), "no bounce")
	})

	It("reports an ID that is not queued", func() {
		for _, command := range []string{"show", "retry", "delete"} {
			s := runQueueCommand(command, "--config", srv.config, "NOSUCHMESSAGE")
			Expect(s.ExitCode()).To(Equal(1), command)
			Expect(string(s.Err.Contents())).To(ContainSubstring("NOSUCHMESSAGE is not in the queue"), command)
			Expect(string(s.Err.Contents())).To(ContainSubstring("run 'amtpd queue list' for the IDs"), command)
		}
	})

	It("changes the spool directly when amtpd is down", func() {
		// SIGKILL leaves the control socket behind, as a crash does.
		srv.session.Kill()
		Eventually(srv.session, 10*time.Second).Should(gexec.Exit())
		socket := filepath.Join(srv.spool, "control.sock")
		Expect(socket).To(BeAnExistingFile())

		_, before := showAttempt(srv.config, other)
		Expect(before).To(BeTemporally(">", time.Now().Add(20*time.Minute)))
		retry := runQueueCommand("retry", "--config", srv.config, other)
		Expect(retry.ExitCode()).To(Equal(0), "stderr: %s", retry.Err.Contents())
		Expect(string(retry.Out.Contents())).To(Equal(other + " will be retried when amtpd starts\n"))
		_, after := showAttempt(srv.config, other)
		Expect(after).To(BeTemporally("~", time.Now(), time.Minute))

		retryAll := runQueueCommand("retry", "--all", "--config", srv.config)
		Expect(retryAll.ExitCode()).To(Equal(0), "stderr: %s", retryAll.Err.Contents())
		Expect(string(retryAll.Out.Contents())).To(Equal("1 message(s) will be retried when amtpd starts\n"))

		// Without the socket file, as after a clean stop.
		Expect(os.Remove(socket)).To(Succeed())
		del := runQueueCommand("delete", "--config", srv.config, other)
		Expect(del.ExitCode()).To(Equal(0), "stderr: %s", del.Err.Contents())
		Expect(string(del.Out.Contents())).To(Equal("deleted " + other + "\n"))

		list := runQueueCommand("list", "--config", srv.config)
		Expect(list.ExitCode()).To(Equal(0))
		Expect(string(list.Out.Contents())).To(Equal("Mail queue is empty\n"))
		Expect(filepath.Join(srv.spool, "msg", other)).NotTo(BeAnExistingFile())
		Expect(srv.delivered("carol@example.test")).To(BeEmpty(), "no bounce")
	})

	It("rejects invalid arguments with exit code 2", func() {
		cases := []struct {
			args []string
			want string
		}{
			{nil, "usage: amtpd queue COMMAND --config FILE"},
			{[]string{"list"}, "--config FILE is required"},
			{[]string{"list", "--config", filepath.Join(st.dir, "missing.toml")}, "missing.toml"},
			{[]string{"list", "--config", srv.config, "--verbose"}, "flag provided but not defined: -verbose"},
			{[]string{"list", "--config", srv.config, "EXTRA"}, `invalid arguments for "list"`},
			{[]string{"show", "--config", srv.config}, `invalid arguments for "show"`},
			{[]string{"show", "--config", srv.config, "A", "B"}, `invalid arguments for "show"`},
			{[]string{"retry", "--config", srv.config}, `invalid arguments for "retry"`},
			{[]string{"retry", "--all", "--config", srv.config, "A"}, `invalid arguments for "retry"`},
			{[]string{"delete", "--config", srv.config}, `invalid arguments for "delete"`},
			{[]string{"purge", "--config", srv.config}, `unknown command "purge"; use list, show, retry or delete`},
		}
		for _, tc := range cases {
			s := runQueueCommand(tc.args...)
			Expect(s.ExitCode()).To(Equal(2), "amtpd queue %q", tc.args)
			Expect(string(s.Err.Contents())).To(ContainSubstring(tc.want), "amtpd queue %q", tc.args)
		}
	})

	It("takes options after the IDs", func() {
		s := runQueueCommand("show", "NOSUCHMESSAGE", "--config", srv.config)
		Expect(s.ExitCode()).To(Equal(1))
		Expect(string(s.Err.Contents())).To(ContainSubstring("NOSUCHMESSAGE is not in the queue"))
	})
})
