package loadgen_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/loadgen"
	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// runLoad runs the generator with cfg against target and returns the
// result. Every run here is bounded by its duration or count; the
// Eventually bound only keeps a broken generator from hanging the suite.
func runLoad(target string, cfg loadgen.Config) *result.Result {
	cfg.Target = target
	cfg.PKI = manifest
	cfg.SkipCalibration = true
	if cfg.Scenario == "" {
		cfg.Scenario = result.ScenarioHandshake
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}

	type outcome struct {
		r   *result.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := loadgen.Run(context.Background(), cfg)
		done <- outcome{r, err}
	}()
	var out outcome
	Eventually(done, 2*time.Minute).Should(Receive(&out))
	Expect(out.err).NotTo(HaveOccurred())
	return out.r
}

// safeBuffer is a bytes.Buffer that the progress goroutine and the test
// may use at once.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// shareAtLeast returns the share of the histogram's values at or above d.
func shareAtLeast(h *result.Histogram, d time.Duration) float64 {
	return float64(h.CountAbove(d)) / float64(h.Count())
}

var _ = Describe("Run against a stalling server", Ordered, func() {
	// The server holds every greeting in the last second of each
	// 2.5-second period, so it stops for one second twice in five.
	var server *testServer
	BeforeAll(func() {
		server = startTestServer(testServerOptions{stallEvery: 2500 * time.Millisecond, stallFor: time.Second})
	})

	It("shows the stall in open-loop percentiles", func() {
		r := runLoad(server.addr(), loadgen.Config{Rate: 40, Duration: 5 * time.Second})

		total := r.Phase(result.PhaseTotal)
		Expect(r.Counts.Failed).To(BeZero())
		Expect(total.Count()).To(BeNumerically(">=", 150))
		Expect(total.Quantile(0.99)).To(BeNumerically(">=", 900*time.Millisecond))
		// About 40 % of the arrivals fall into a stall; most wait long.
		Expect(shareAtLeast(total, 100*time.Millisecond)).To(BeNumerically(">", 0.2))
	})

	It("hides the stall in closed loop", func() {
		r := runLoad(server.addr(), loadgen.Config{Concurrency: 2, Duration: 5 * time.Second})

		total := r.Phase(result.PhaseTotal)
		Expect(r.Counts.Failed).To(BeZero())
		// Two workers wait out each stall, so only a handful of units see
		// it, while the workers run many fast units around it.
		Expect(total.CountAbove(900 * time.Millisecond)).To(BeNumerically(">=", 1))
		Expect(total.Quantile(0.5)).To(BeNumerically("<", 100*time.Millisecond))
		Expect(shareAtLeast(total, 100*time.Millisecond)).To(BeNumerically("<", 0.1))
		Expect(r.Phase(result.PhaseLag)).To(BeNil())
	})

	It("counts the wait for a busy worker as lag and latency", func() {
		r := runLoad(server.addr(), loadgen.Config{Rate: 20, MaxInFlight: 1, Duration: 5 * time.Second})

		lag := r.Phase(result.PhaseLag)
		total := r.Phase(result.PhaseTotal)
		Expect(lag.Quantile(0.99)).To(BeNumerically(">=", 500*time.Millisecond))
		Expect(total.Max()).To(BeNumerically(">=", lag.Max()))
		Expect(total.Quantile(0.99)).To(BeNumerically(">=", 900*time.Millisecond))
		Expect(r.Run.Warnings).To(ContainElement(ContainSubstring("generator lag p99")))
	})
})

var _ = Describe("Run total latency", func() {
	It("stays above connect and handshake after the pacer fell behind", func() {
		// Every 1.5 s the server holds greetings for half a second, so the
		// 40 workers all wait and the pacer falls behind, then catches up.
		server := startTestServer(testServerOptions{stallEvery: 1500 * time.Millisecond, stallFor: 500 * time.Millisecond})
		r := runLoad(server.addr(), loadgen.Config{Rate: 200, MaxInFlight: 40, Duration: 4 * time.Second})

		total := r.Phase(result.PhaseTotal)
		connect := r.Phase(result.PhaseConnect)
		handshake := r.Phase(result.PhaseHandshake)
		lag := r.Phase(result.PhaseLag)
		Expect(total.Count()).To(BeNumerically(">=", 300))
		Expect(r.Counts.InvalidDurations).To(BeZero())
		// A total is at least the connect and handshake of its own unit,
		// so the smallest total is at least the two smallest phases.
		Expect(total.Min()).To(BeNumerically(">=", connect.Min()+handshake.Min()))
		Expect(total.Quantile(0.5)).To(BeNumerically(">=", connect.Quantile(0.5)))
		Expect(total.Quantile(0.5)).To(BeNumerically(">=", handshake.Quantile(0.5)))
		Expect(lag.Max()).To(BeNumerically(">=", 100*time.Millisecond))
		Expect(r.Run.Warnings).NotTo(ContainElement(ContainSubstring("invalid duration")))
	})
})

var _ = Describe("Run", func() {
	It("stops after --count units in closed loop", func() {
		server := startTestServer(testServerOptions{})
		r := runLoad(server.addr(), loadgen.Config{Concurrency: 3, Count: 7})

		Expect(r.Counts.Started).To(Equal(int64(7)))
		Expect(r.Counts.Completed).To(Equal(int64(7)))
		Expect(r.Phase(result.PhaseHandshake).Count()).To(Equal(int64(7)))
		Expect(r.Run.StopReason).To(Equal("count"))
	})

	It("stops after --count units in open loop", func() {
		server := startTestServer(testServerOptions{})
		r := runLoad(server.addr(), loadgen.Config{Rate: 50, Count: 12, Duration: time.Minute})

		Expect(r.Counts.Started).To(Equal(int64(12)))
		Expect(r.Run.StopReason).To(Equal("count"))
	})

	It("takes its shard's part of the count", func() {
		server := startTestServer(testServerOptions{})
		r := runLoad(server.addr(), loadgen.Config{Concurrency: 2, Count: 10, Shard: &result.Shard{Index: 1, Total: 3}})

		Expect(r.Counts.Started).To(Equal(int64(3)))
		Expect(r.Run.Shard).To(Equal(&result.Shard{Index: 1, Total: 3}))
	})

	It("stops in bounded time when the server never greets", func() {
		server := startTestServer(testServerOptions{silent: true})
		r := runLoad(server.addr(), loadgen.Config{Concurrency: 2, Duration: time.Second, Timeout: 500 * time.Millisecond})

		Expect(r.Counts.Completed).To(BeZero())
		Expect(r.Counts.Failed).To(BeNumerically(">=", 2))
		Expect(r.Errors).To(ContainElement(And(
			HaveField("Class", result.ErrorNetwork),
			HaveField("Phase", result.PhaseGreeting),
			HaveField("Key", "timeout"))))
	})

	It("stops a closed loop in bounded time when sessions last long", func() {
		// Each session of 50 messages takes about 150 replies of 50 ms,
		// 7.5 s in all, while every single reply comes well within the
		// timeout.
		server := startTestServer(testServerOptions{replyDelay: 50 * time.Millisecond})
		started := time.Now()

		r := runLoad(server.addr(), loadgen.Config{
			Scenario: result.ScenarioSession, Concurrency: 2, Duration: time.Second,
			Messages: 50, Timeout: 500 * time.Millisecond,
		})

		Expect(time.Since(started)).To(BeNumerically("<", 4*time.Second), "the run outlasted its duration plus the timeout")
		Expect(r.Counts.Completed).To(BeZero())
		Expect(r.Counts.MessagesAccepted).To(BeNumerically(">", 0))
	})

	It("runs sessions with several messages", func() {
		server := startTestServer(testServerOptions{})
		r := runLoad(server.addr(), loadgen.Config{
			Scenario: result.ScenarioSession, Concurrency: 2, Count: 5, Messages: 3, MessageSize: 2000,
		})

		Expect(r.Counts.MessagesAccepted).To(Equal(int64(15)))
		for _, phase := range []string{result.PhaseMail, result.PhaseRcpt, result.PhaseData, result.PhaseDataEnd} {
			Expect(r.Phase(phase).Count()).To(Equal(int64(15)), phase)
		}
		Expect(r.Phase(result.PhaseEHLO).Count()).To(Equal(int64(5)))
		Expect(r.Counts.BytesSent).To(BeNumerically(">=", 15*1900))
		Expect(r.Run.EHLOCapabilities).To(Equal([]string{"PIPELINING", "MPC"}))
		Expect(r.Run.TLS.Version).To(Equal("TLS 1.3"))
		Expect(r.Run.TLS.ServerCN).To(Equal("mx." + manifest.Domain))
	})

	It("resumes the requested share of TLS sessions", func() {
		server := startTestServer(testServerOptions{})
		r := runLoad(server.addr(), loadgen.Config{
			Scenario: result.ScenarioResume, Concurrency: 1, Count: 40, ResumeFraction: 0.5,
			Identities: []string{pki.CertPool1},
		})

		Expect(r.Counts.ResumeOffered).To(BeNumerically(">=", 15))
		Expect(r.Counts.Resumed).To(Equal(r.Counts.ResumeOffered))
		Expect(r.Phase(result.PhaseResumedHandshake).Count()).To(Equal(r.Counts.Resumed))
		Expect(r.Phase(result.PhaseHandshake).Count()).To(Equal(40 - r.Counts.Resumed))
	})

	It("classifies reply codes", func() {
		server := startTestServer(testServerOptions{rejectEvery: 3})
		r := runLoad(server.addr(), loadgen.Config{Concurrency: 1, Count: 9})

		Expect(r.Counts.Failed).To(Equal(int64(3)))
		Expect(r.Errors).To(ConsistOf(And(
			HaveField("Class", result.ErrorReply),
			HaveField("Phase", result.PhaseGreeting),
			HaveField("Key", "421 4.3.2"),
			HaveField("Count", int64(3)))))
	})

	It("classifies TLS alerts by name", func() {
		server := startTestServer(testServerOptions{clientCA: pki.UntrustedCA})
		r := runLoad(server.addr(), loadgen.Config{Concurrency: 1, Count: 3})

		Expect(r.Counts.Failed).To(Equal(int64(3)))
		Expect(r.Errors).To(ConsistOf(And(
			HaveField("Class", result.ErrorTLSAlert),
			HaveField("Key", "unknown_ca"),
			HaveField("Count", int64(3)))))
	})

	It("classifies refused connections", func() {
		server := startTestServer(testServerOptions{})
		addr := server.addr()
		server.listener.Close()
		r := runLoad(addr, loadgen.Config{Concurrency: 1, Count: 2})

		Expect(r.Errors).To(ConsistOf(And(
			HaveField("Class", result.ErrorNetwork),
			HaveField("Phase", result.PhaseConnect),
			HaveField("Key", "connection refused"))))
		err := loadgen.CheckCompleted(r)
		Expect(err).To(MatchError(loadgen.ErrNothingCompleted))
		Expect(err).To(MatchError(ContainSubstring(`The most common error (2 of 2) was network "connection refused" at connect`)))
		Expect(err).To(MatchError(ContainSubstring("check that the server is running and listens on " + addr)))
	})

	It("passes the completion check when a unit completed", func() {
		server := startTestServer(testServerOptions{rejectEvery: 2})
		r := runLoad(server.addr(), loadgen.Config{Concurrency: 1, Count: 4})

		Expect(r.Counts.Completed).To(Equal(int64(2)))
		Expect(loadgen.CheckCompleted(r)).To(Succeed())
	})

	It("names the reply when every greeting rejects", func() {
		server := startTestServer(testServerOptions{rejectEvery: 1})
		r := runLoad(server.addr(), loadgen.Config{Concurrency: 1, Count: 3})

		err := loadgen.CheckCompleted(r)
		Expect(err).To(MatchError(loadgen.ErrNothingCompleted))
		Expect(err).To(MatchError(ContainSubstring(`(3 of 3) was reply "421 4.3.2" at greeting`)))
		Expect(err).To(MatchError(ContainSubstring("check the server's log")))
	})

	It("evaluates thresholds on the result", func() {
		server := startTestServer(testServerOptions{})
		r := runLoad(server.addr(), loadgen.Config{
			Concurrency: 1, Count: 5,
			Thresholds: []string{"p99(handshake)<10s", "p50(handshake)<1us", "errors<1%"},
		})

		Expect(r.Thresholds).To(HaveLen(3))
		Expect(r.Thresholds[0].Passed).To(BeTrue())
		Expect(r.Thresholds[1].Passed).To(BeFalse())
		Expect(r.Thresholds[2].Passed).To(BeTrue())
		Expect(r.ThresholdsPassed()).To(BeFalse())
	})

	It("runs a schedule of rate steps", func() {
		server := startTestServer(testServerOptions{})
		r := runLoad(server.addr(), loadgen.Config{RateSteps: []float64{10, 30}, StepDuration: 1500 * time.Millisecond})

		Expect(r.Run.StopReason).To(Equal("steps"))
		Expect(r.Steps).To(HaveLen(2))
		Expect(r.Steps[0].Rate).To(Equal(10.0))
		Expect(r.Steps[1].Rate).To(Equal(30.0))
		// 15 and 45 arrivals are due in the two steps.
		Expect(r.Steps[0].Started).To(BeNumerically("~", 15, 1))
		Expect(r.Steps[1].Started).To(BeNumerically("~", 45, 1))
		Expect(r.Steps[1].Latency.Count()).To(Equal(r.Steps[1].Completed))
		Expect(r.Counts.Started).To(Equal(r.Steps[0].Started + r.Steps[1].Started))
	})

	It("prints plain progress lines", func() {
		server := startTestServer(testServerOptions{})
		var progress safeBuffer
		r := runLoad(server.addr(), loadgen.Config{
			Rate: 20, Duration: 2500 * time.Millisecond, Progress: &progress, ProgressInterval: time.Second,
		})

		Expect(r.Counts.Started).To(BeNumerically(">", 0))
		Expect(progress.String()).To(MatchRegexp(`load: \ds \d+ started, \d+ ok \([0-9.]+/s\), 0 failed, p99 \S+, \ds left`))
	})

	It("finds the highest sustainable rate", func() {
		// Greetings go out one at a time every 100 ms: 10 per second.
		server := startTestServer(testServerOptions{serialDelay: 100 * time.Millisecond})
		r := runLoad(server.addr(), loadgen.Config{
			Rate: 4, FindMax: true, FindMaxFactor: 2, FindMaxSteps: 5, StepDuration: 1500 * time.Millisecond,
			Thresholds: []string{"p99(total)<300ms"},
		})

		Expect(r.FindMax).NotTo(BeNil())
		Expect(r.FindMax.BrokenAt).To(BeNumerically(">", r.FindMax.MaxSustainableRate))
		Expect(r.FindMax.MaxSustainableRate).To(BeNumerically("<", 10))
		Expect(r.Steps).NotTo(BeEmpty())
		last := r.Steps[len(r.Steps)-1]
		Expect(last.Passed).NotTo(BeNil())
		Expect(*last.Passed).To(BeFalse())
		Expect(last.Reason).To(ContainSubstring("p99(total)"))
	})

	It("runs every find-max step without --duration", func() {
		// Every reply after the greeting waits 400 ms, so each step ends
		// with a wait for its last connections.
		server := startTestServer(testServerOptions{replyDelay: 400 * time.Millisecond})
		r := runLoad(server.addr(), loadgen.Config{
			Rate: 5, FindMax: true, FindMaxFactor: 2, FindMaxSteps: 3, StepDuration: time.Second,
			Thresholds: []string{"errors<1%"},
		})

		Expect(r.Run.StopReason).To(Equal("find-max"))
		Expect(r.FindMax).NotTo(BeNil())
		Expect(r.FindMax.Reason).To(Equal("every step passed"))
		Expect(r.FindMax.MaxSustainableRate).To(Equal(20.0))
		Expect(r.Steps).To(HaveLen(3))
		for i, rate := range []float64{5, 10, 20} {
			step := r.Steps[i]
			Expect(step.Rate).To(Equal(rate), "step %d", i+1)
			// A whole second at the step's rate: the wait after the
			// previous step took none of it.
			Expect(step.Started).To(BeNumerically("~", rate, 1), "step %d", i+1)
			Expect(step.Passed).NotTo(BeNil(), "step %d", i+1)
			Expect(*step.Passed).To(BeTrue(), "step %d", i+1)
		}
	})

	It("stops find-max at --duration", func() {
		server := startTestServer(testServerOptions{})
		r := runLoad(server.addr(), loadgen.Config{
			Rate: 5, FindMax: true, FindMaxFactor: 2, FindMaxSteps: 3, StepDuration: time.Second,
			Duration: 1500 * time.Millisecond, Thresholds: []string{"errors<1%"},
		})

		Expect(r.Run.StopReason).To(Equal("duration"))
		Expect(r.FindMax).NotTo(BeNil())
		Expect(r.FindMax.Reason).To(ContainSubstring("--duration 1.5s ended"))
		Expect(r.Steps).To(HaveLen(1))
		Expect(r.FindMax.MaxSustainableRate).To(Equal(5.0))
	})
})

var _ = Describe("ParseLoopbackTarget", func() {
	It("accepts loopback addresses", func() {
		addr, err := loadgen.ParseLoopbackTarget("127.0.0.2:4025")
		Expect(err).NotTo(HaveOccurred())
		Expect(addr.String()).To(Equal("127.0.0.2:4025"))

		addr, err = loadgen.ParseLoopbackTarget("[::1]:4025")
		Expect(err).NotTo(HaveOccurred())
		Expect(addr.String()).To(Equal("[::1]:4025"))

		addr, err = loadgen.ParseLoopbackTarget("[::ffff:127.0.0.1]:4025")
		Expect(err).NotTo(HaveOccurred())
		Expect(addr.String()).To(Equal("127.0.0.1:4025"))
	})

	It("maps localhost to 127.0.0.1", func() {
		for _, target := range []string{"localhost:4025", "LocalHost:4025", "localhost.:4025"} {
			addr, err := loadgen.ParseLoopbackTarget(target)
			Expect(err).NotTo(HaveOccurred(), target)
			Expect(addr.String()).To(Equal("127.0.0.1:4025"), target)
		}
	})

	It("rejects other addresses", func() {
		for _, target := range []string{"192.0.2.1:4025", "[2001:db8::1]:25", "0.0.0.0:25", "[::ffff:192.0.2.1]:25"} {
			_, err := loadgen.ParseLoopbackTarget(target)
			Expect(err).To(MatchError(loadgen.ErrInvalidConfig), target)
			Expect(err).To(MatchError(ContainSubstring("is not a loopback address")), target)
		}
	})

	It("rejects host names without a lookup", func() {
		// Every DNS query of the Go resolver would go through this dialer,
		// which counts it and fails it, so nothing leaves the process.
		var queries atomic.Int64
		saved := net.DefaultResolver
		net.DefaultResolver = &net.Resolver{
			PreferGo: true,
			Dial: func(context.Context, string, string) (net.Conn, error) {
				queries.Add(1)
				return nil, errors.New("this test allows no DNS query")
			},
		}
		DeferCleanup(func() { net.DefaultResolver = saved })

		for _, target := range []string{"load-target.invalid:4025", "example.com:4025", "localhost.invalid:4025"} {
			_, err := loadgen.ParseLoopbackTarget(target)
			Expect(err).To(MatchError(loadgen.ErrInvalidConfig), target)
			Expect(err).To(MatchError(ContainSubstring("does not resolve")), target)
			Expect(err).To(MatchError(ContainSubstring("give a loopback IP address")), target)
		}
		Expect(queries.Load()).To(BeZero())
	})

	It("rejects a name before running", func() {
		_, err := loadgen.Run(context.Background(), loadgen.Config{
			Target: "load-target.invalid:4025", PKI: manifest, Scenario: result.ScenarioHandshake,
			Rate: 1, Count: 1, SkipCalibration: true,
		})
		Expect(err).To(MatchError(ContainSubstring(`target host "load-target.invalid" is a host name`)))
	})

	It("rejects a target without a port", func() {
		_, err := loadgen.ParseLoopbackTarget("127.0.0.1")
		Expect(err).To(MatchError(ContainSubstring("is not IP:PORT")))
	})

	It("rejects a port name", func() {
		_, err := loadgen.ParseLoopbackTarget("127.0.0.1:smtp")
		Expect(err).To(MatchError(ContainSubstring(`port "smtp" is not a port number`)))
	})
})

var _ = Describe("Config", func() {
	DescribeTable("Validate rejects",
		func(cfg loadgen.Config, message string) {
			cfg.PKI = manifest
			cfg.Target = "127.0.0.1:4025"
			if cfg.Scenario == "" {
				cfg.Scenario = result.ScenarioHandshake
			}
			err := cfg.Validate()
			Expect(err).To(MatchError(loadgen.ErrInvalidConfig))
			Expect(err).To(MatchError(ContainSubstring(message)))
		},
		Entry("no bound", loadgen.Config{Rate: 10}, "missing bound"),
		Entry("no model", loadgen.Config{Duration: time.Second}, "missing load model"),
		Entry("both models", loadgen.Config{Rate: 1, Concurrency: 1, Duration: time.Second}, "exclude each other"),
		Entry("unknown scenario", loadgen.Config{Scenario: "flood", Rate: 1, Duration: time.Second}, `unknown scenario "flood"`),
		Entry("bad threshold", loadgen.Config{Rate: 1, Duration: time.Second, Thresholds: []string{"p99(nope)<1s"}}, `unknown phase "nope"`),
		Entry("server identity", loadgen.Config{Rate: 1, Duration: time.Second, Identities: []string{pki.CertServer}}, "is a server certificate"),
		Entry("bad shard", loadgen.Config{Rate: 1, Duration: time.Second, Shard: &result.Shard{Index: 3, Total: 3}},
			"shards are numbered from 0: use 0/3, 1/3 or 2/3"),
		Entry("negative timeout", loadgen.Config{Rate: 1, Duration: time.Second, Timeout: -time.Second}, "timeout -1s"),
		Entry("negative in flight", loadgen.Config{Rate: 1, Duration: time.Second, MaxInFlight: -1}, "maximum in flight -1"),
	)

	It("parses shards", func() {
		s, err := loadgen.ParseShard("2/3")
		Expect(err).NotTo(HaveOccurred())
		Expect(*s).To(Equal(result.Shard{Index: 2, Total: 3}))

		for _, bad := range []string{"3/3", "1", "-1/2", "1/0", "a/b", "1/2/3"} {
			_, err := loadgen.ParseShard(bad)
			Expect(err).To(MatchError(ContainSubstring("is invalid")), bad)
		}
		_, err = loadgen.ParseShard("2/2")
		Expect(err).To(MatchError(ContainSubstring("shards are numbered from 0: use 0/2 or 1/2")))
		_, err = loadgen.ParseShard("7/7")
		Expect(err).To(MatchError(ContainSubstring("use 0/7 to 6/7")))
	})
})
