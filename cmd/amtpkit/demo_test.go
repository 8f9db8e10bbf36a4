package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/conformance/result"
)

// demoRunTimeout bounds one whole demo run in the tests.
const demoRunTimeout = 3 * time.Minute

// processesWithArg returns the PIDs of the processes whose command line
// holds arg, read from /proc.
func processesWithArg(arg string) []string {
	entries, err := os.ReadDir("/proc")
	Expect(err).NotTo(HaveOccurred())

	var pids []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(cmdline, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, e.Name())
				break
			}
		}
	}
	return pids
}

var _ = Describe("demo", Ordered, func() {
	var amtpkitPath, amtpdPath string

	BeforeAll(func() {
		amtpkitPath = builtBinary("amtpkit")
		amtpdPath = builtBinary("amtpd")
	})

	// startDemo runs the demo in the folder dir with --out out, which may
	// be relative to dir.
	startDemo := func(dir, out string) *gexec.Session {
		cmd := exec.Command(amtpkitPath, "demo", "--out", out, "--amtpd", amtpdPath, "--load-duration", "2s")
		cmd.Dir = dir
		session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { session.Kill().Wait(10 * time.Second) })
		return session
	}
	configArg := func(out string) string {
		return filepath.Join(out, "demo", "amtpd.toml")
	}

	It("writes the five reports, passes every MUST against amtpd and stops amtpd", func() {
		dir := GinkgoT().TempDir()
		out := filepath.Join(dir, "out")

		session := startDemo(dir, "out")

		Eventually(session, demoRunTimeout).Should(gexec.Exit(0), "stderr:\n%s", session.Err.Contents())
		for _, name := range []string{"conformance.json", "conformance.junit.xml", "conformance.html", "load.json", "load.html"} {
			info, err := os.Stat(filepath.Join(out, name))
			Expect(err).NotTo(HaveOccurred(), "the demo did not write %s", name)
			Expect(info.Size()).To(BeNumerically(">", 100), "%s is nearly empty", name)
			Expect(string(session.Out.Contents())).To(ContainSubstring(filepath.Join(out, name)), "the summary does not name %s", name)
		}
		r, err := result.Load(filepath.Join(out, "conformance.json"))
		Expect(err).NotTo(HaveOccurred())
		Expect(r.MustFailures()).To(BeEmpty())
		for _, c := range r.Clauses {
			Expect(c.Verdict).NotTo(Equal(result.Error), "clause %s: %s", c.ID, c.Reason)
		}
		Expect(session.Out).To(gbytes.Say("start it again"))
		Expect(processesWithArg(configArg(out))).To(BeEmpty(), "amtpd still runs after the demo")
	})

	It("stops amtpd and exits 130 when interrupted", func() {
		out := GinkgoT().TempDir()

		session := startDemo(out, out)
		Eventually(session.Out, 30*time.Second).Should(gbytes.Say("amtpd is running"))
		Expect(processesWithArg(configArg(out))).To(HaveLen(1), "amtpd is not running while the demo says so")
		session.Signal(syscall.SIGINT)

		Eventually(session, 30*time.Second).Should(gexec.Exit(130))
		Expect(session.Err).To(gbytes.Say("interrupted"))
		Eventually(func() []string { return processesWithArg(configArg(out)) }, 5*time.Second).Should(BeEmpty(), "amtpd outlived the interrupted demo")
	})
})
