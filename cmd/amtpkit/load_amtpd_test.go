package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// loadRunTimeout bounds one "amtpkit load" process in these tests; every
// run here is bounded by a count of a few connections.
const loadRunTimeout = 2 * time.Minute

// loadRun is one finished "amtpkit load" process.
type loadRun struct {
	code           int
	stdout, stderr string
}

// startLoad starts amtpkit with args.
func startLoad(amtpkitPath string, args ...string) *gexec.Session {
	session, err := gexec.Start(exec.Command(amtpkitPath, args...), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	return session
}

// waitLoad waits for a process from startLoad.
func waitLoad(session *gexec.Session) loadRun {
	Eventually(session, loadRunTimeout).Should(gexec.Exit())
	return loadRun{code: session.ExitCode(), stdout: string(session.Out.Contents()), stderr: string(session.Err.Contents())}
}

// loadResult loads a JSON result that a run wrote.
func loadResult(path string, run loadRun) *result.Result {
	r, err := result.Load(path)
	Expect(err).NotTo(HaveOccurred(), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	return r
}

// serveStageZone serves the stage's PKI zone on its DNS address, for an
// amtpd that checks PTR records.
func serveStageZone(st *conformStage) {
	zone, err := dnsserver.LoadZone(st.manifest.Path(st.manifest.ZoneFile))
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	server, err := dnsserver.Start(ctx, st.dnsListen, zone, nil)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		cancel()
		server.Close()
	})
}

var _ = Describe("load", Ordered, func() {
	var amtpkitPath, amtpdPath string

	BeforeAll(func() {
		amtpkitPath = builtBinary("amtpkit")
		amtpdPath = builtBinary("amtpd")
	})

	Context("against amtpd", Ordered, func() {
		var (
			st  *conformStage
			srv *conformAmtpd
		)

		BeforeAll(func() {
			st = newConformStage()
			serveStageZone(st)
			srv = st.startConformAmtpd(amtpdPath, false)
		})

		loadArgs := func(extra ...string) []string {
			return append([]string{"load", "--target", srv.public, "--pki", st.manifest.Dir(), "--progress", "lines", "--no-calibration"}, extra...)
		}

		It("runs sessions and writes the result", func() {
			jsonPath := filepath.Join(GinkgoT().TempDir(), "load.json")
			htmlPath := filepath.Join(GinkgoT().TempDir(), "load.html")
			run := waitLoad(startLoad(amtpkitPath, loadArgs("--scenario", "session", "--concurrency", "2", "--count", "6",
				"--messages", "2", "--json", jsonPath, "--html", htmlPath, "--threshold", "errors<1%")...))
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stdout).To(ContainSubstring("JSON result: " + jsonPath))
			Expect(run.stdout).To(ContainSubstring("HTML report: " + htmlPath))
			page, err := os.ReadFile(htmlPath)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(page)).To(ContainSubstring("<html"))
			Expect(string(page)).To(ContainSubstring("data_end"))

			r := loadResult(jsonPath, run)
			Expect(r.Counts.Started).To(Equal(int64(6)))
			Expect(r.Counts.Failed).To(BeZero(), "errors: %+v", r.Errors)
			Expect(r.Counts.MessagesAccepted).To(Equal(int64(12)))
			Expect(r.Phase(result.PhaseDataEnd).Count()).To(Equal(int64(12)))
			Expect(r.Phase(result.PhaseEHLO).Count()).To(Equal(int64(6)))
			Expect(r.Run.TLS.Version).To(Equal("TLS 1.3"))
			Expect(r.Run.EHLOCapabilities).To(ContainElement(HavePrefix("MPC")))
			Expect(r.Thresholds).To(HaveLen(1))
			Expect(r.Thresholds[0].Passed).To(BeTrue())
		})

		It("keeps each total above its phases at 150/s", func() {
			jsonPath := filepath.Join(GinkgoT().TempDir(), "rate.json")
			run := waitLoad(startLoad(amtpkitPath, loadArgs("--scenario", "handshake", "--rate", "150", "--duration", "3s",
				"--json", jsonPath)...))
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

			r := loadResult(jsonPath, run)
			total := r.Phase(result.PhaseTotal)
			Expect(total.Count()).To(BeNumerically(">=", 300))
			Expect(r.Counts.InvalidDurations).To(BeZero())
			Expect(r.Run.Warnings).NotTo(ContainElement(ContainSubstring("invalid duration")))
			// The smallest total is at least the smallest connect plus the
			// smallest handshake, because each total contains both.
			Expect(total.Min()).To(BeNumerically(">=", r.Phase(result.PhaseConnect).Min()+r.Phase(result.PhaseHandshake).Min()))
			Expect(total.Quantile(0.5)).To(BeNumerically(">=", r.Phase(result.PhaseHandshake).Quantile(0.5)))
		})

		It("exits 3 when a threshold fails", func() {
			run := waitLoad(startLoad(amtpkitPath, loadArgs("--concurrency", "1", "--count", "3",
				"--threshold", "p50(handshake)<1us")...))
			Expect(run.code).To(Equal(loadThresholdFailed), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stdout).To(ContainSubstring("p50(handshake)<1us: FAIL"))
			Expect(run.stderr).To(ContainSubstring("1 of 1 thresholds failed"))
		})

		It("counts rejected identities as reply errors", func() {
			jsonPath := filepath.Join(GinkgoT().TempDir(), "expired.json")
			run := waitLoad(startLoad(amtpkitPath, loadArgs("--scenario", "session", "--identity", "expired",
				"--concurrency", "1", "--count", "2", "--json", jsonPath)...))
			// No connection completed, so the run fails after writing the
			// result.
			Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stderr).To(ContainSubstring("no connection completed: 2 started, 2 failed"))

			r := loadResult(jsonPath, run)
			Expect(r.Counts.Failed).To(Equal(int64(2)))
			Expect(r.Errors).NotTo(BeEmpty())
			for _, e := range r.Errors {
				Expect(e.Class).To(Or(Equal(result.ErrorReply), Equal(result.ErrorTLSAlert)), "%+v", e)
			}
		})

		It("merges shards run as separate processes exactly", func() {
			dir := GinkgoT().TempDir()
			var sessions []*gexec.Session
			var paths []string
			for i := range 3 {
				path := filepath.Join(dir, "shard-"+string(rune('0'+i))+".json")
				paths = append(paths, path)
				sessions = append(sessions, startLoad(amtpkitPath, loadArgs("--concurrency", "3", "--count", "10",
					"--shard", string(rune('0'+i))+"/3", "--json", path)...))
			}

			var shards []*result.Result
			var started, handshakes int64
			for i, session := range sessions {
				run := waitLoad(session)
				Expect(run.code).To(Equal(0), "shard %d stdout:\n%s\nstderr:\n%s", i, run.stdout, run.stderr)
				r := loadResult(paths[i], run)
				shards = append(shards, r)
				started += r.Counts.Started
				handshakes += r.Phase(result.PhaseHandshake).Count()
			}
			Expect(started).To(Equal(int64(10)))

			mergedPath := filepath.Join(dir, "merged.json")
			run := waitLoad(startLoad(amtpkitPath, append([]string{"load", "merge", "--json", mergedPath}, paths...)...))
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stdout).To(ContainSubstring("merged from 3 shards"))

			merged := loadResult(mergedPath, run)
			Expect(merged.Counts.Started).To(Equal(started))
			Expect(merged.Phase(result.PhaseHandshake).Count()).To(Equal(handshakes))
			Expect(merged.Shards).To(HaveLen(3))
			expected := result.MergeHistograms(shards[0].Phase(result.PhaseTotal), shards[1].Phase(result.PhaseTotal), shards[2].Phase(result.PhaseTotal))
			Expect(merged.Phase(result.PhaseTotal).Buckets()).To(Equal(expected.Buckets()))

			run = waitLoad(startLoad(amtpkitPath, "load", "merge", "--json", filepath.Join(dir, "twice.json"), paths[0], paths[0]))
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring("appears twice"))
		})
	})

	Context("relay through amtpd", Ordered, func() {
		It("measures delivery to the generator's sink", func() {
			// The generator serves the PKI zone with the sink's SRV record
			// on the stage's DNS address, which amtpd uses as resolver.
			st := newConformStage()
			srv := st.startConformAmtpd(amtpdPath, false)
			jsonPath := filepath.Join(GinkgoT().TempDir(), "relay.json")

			run := waitLoad(startLoad(amtpkitPath, "load", "--scenario", "relay", "--target", srv.private,
				"--pki", st.manifest.Dir(), "--dns-listen", st.dnsListen, "--concurrency", "1", "--count", "3",
				"--progress", "none", "--no-calibration", "--json", jsonPath))
			Expect(run.code).To(Equal(0), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

			r := loadResult(jsonPath, run)
			Expect(r.Counts.Failed).To(BeZero(), "errors: %+v", r.Errors)
			Expect(r.Counts.MessagesAccepted).To(Equal(int64(3)))
			Expect(r.Counts.MessagesDelivered).To(Equal(int64(3)))
			Expect(r.Phase(result.PhaseDelivery).Count()).To(Equal(int64(3)))
			Expect(r.Phase(result.PhaseAuth).Count()).To(Equal(int64(3)))
		})
	})

	Context("options", func() {
		It("rejects a target that is not loopback", func() {
			pkiDir := newConformStage().manifest.Dir()
			run := waitLoad(startLoad(amtpkitPath, "load", "--target", "192.0.2.1:4025", "--pki", pkiDir,
				"--rate", "1", "--count", "1", "--progress", "none"))
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring("192.0.2.1 is not a loopback address"))
		})

		It("exits 1 when no connection completed", func() {
			// A port that was just free: nothing listens there.
			listener, err := net.Listen("tcp", "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			target := listener.Addr().String()
			Expect(listener.Close()).To(Succeed())

			pkiDir := newConformStage().manifest.Dir()
			jsonPath := filepath.Join(GinkgoT().TempDir(), "refused.json")
			run := waitLoad(startLoad(amtpkitPath, "load", "--target", target, "--pki", pkiDir, "--scenario", "session",
				"--rate", "10", "--duration", "1s", "--progress", "none", "--no-calibration", "--json", jsonPath))
			Expect(run.code).To(Equal(1), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			Expect(run.stderr).To(ContainSubstring("no connection completed"))
			Expect(run.stderr).To(ContainSubstring(`was network "connection refused" at connect`))
			Expect(run.stderr).To(ContainSubstring("check that the server is running and listens on " + target))

			r := loadResult(jsonPath, run)
			Expect(r.Counts.Completed).To(BeZero())
			Expect(r.Counts.Failed).To(Equal(r.Counts.Started))
			Expect(r.Counts.Started).To(BeNumerically(">", 0))
		})

		DescribeTable("rejects with exit status 2",
			func(target string, extra []string, messages ...string) {
				pkiDir := newConformStage().manifest.Dir()
				args := append([]string{"load", "--target", target, "--pki", pkiDir, "--rate", "1", "--count", "1", "--progress", "none"}, extra...)
				run := waitLoad(startLoad(amtpkitPath, args...))
				Expect(run.code).To(Equal(2), "stderr:\n%s", run.stderr)
				for _, message := range messages {
					Expect(run.stderr).To(ContainSubstring(message))
				}
			},
			Entry("a host name, unresolved", "load-target.invalid:4025", nil,
				`"load-target.invalid" is a host name, which amtpkit load does not resolve`,
				"give a loopback IP address such as 127.0.0.1:4025"),
			Entry("a shard numbered from 1", "127.0.0.1:4025", []string{"--shard", "2/2"},
				"shards are numbered from 0: use 0/2 or 1/2"),
			Entry("a zero timeout", "127.0.0.1:4025", []string{"--timeout", "0s"}, "--timeout 0s is invalid"),
			Entry("a negative timeout", "127.0.0.1:4025", []string{"--timeout", "-1s"}, "--timeout -1s is invalid"),
		)

		It("describes the options in the help", func() {
			run := waitLoad(startLoad(amtpkitPath, "load", "--help"))
			Expect(run.code).To(Equal(0))
			Expect(run.stderr).To(ContainSubstring("-rate rate\n"))
			Expect(run.stderr).To(ContainSubstring("rate of connections started per second"))
			Expect(run.stderr).To(ContainSubstring("numbered from 0"))

			// Only the options without a default are required.
			Expect(run.stderr).To(ContainSubstring("usage: amtpkit load --target IP:PORT --pki DIR [--scenario NAME]\n"))
			Expect(run.stderr).To(ContainSubstring("(--rate-steps R1,R2,... | --rate R --find-max)\n"))
			Expect(run.stderr).To(ContainSubstring("amtpkit load merge --json OUT [--html FILE] RESULT.json..."))
			Expect(run.stderr).To(ContainSubstring(`(default "handshake")`))
		})

		It("names the placeholders of load merge in the help", func() {
			run := waitLoad(startLoad(amtpkitPath, "load", "merge", "--help"))
			Expect(run.code).To(Equal(0))
			Expect(run.stderr).To(ContainSubstring("usage: amtpkit load merge --json OUT [--html FILE] RESULT.json..."))
			Expect(run.stderr).To(ContainSubstring("-o FILE\n"))
			Expect(run.stderr).NotTo(MatchRegexp(`-\w+ string\n`))
		})

		It("rejects load merge without --json", func() {
			run := waitLoad(startLoad(amtpkitPath, "load", "merge", "a.json", "b.json"))
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring("missing --json OUT"))
		})

		It("rejects a run without a bound", func() {
			pkiDir := newConformStage().manifest.Dir()
			run := waitLoad(startLoad(amtpkitPath, "load", "--target", "127.0.0.1:4025", "--pki", pkiDir, "--rate", "1"))
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring("missing bound"))
		})

		It("rejects an invalid threshold", func() {
			pkiDir := newConformStage().manifest.Dir()
			run := waitLoad(startLoad(amtpkitPath, "load", "--target", "127.0.0.1:4025", "--pki", pkiDir,
				"--rate", "1", "--count", "1", "--threshold", "p99(tls)<1ms"))
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring(`unknown phase "tls"`))
		})
	})
})
