package load_test

import (
	"math"
	"math/rand/v2"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// synthetic returns a load result of an open-loop session run of the
// given length at 200 units per second, with values drawn from a seeded
// generator: latencies that double in the middle third of the run, and
// failures by reply code, TLS alert and network error. Text fields carry
// HTML, so that tests can check the escaping.
func synthetic(seconds int, seed uint64) *result.Result {
	const rate = 200
	random := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)

	phaseMedians := map[string]float64{
		result.PhaseConnect: 150, result.PhaseHandshake: 900, result.PhaseGreeting: 200, result.PhaseEHLO: 250,
		result.PhaseMail: 180, result.PhaseRcpt: 190, result.PhaseData: 150, result.PhaseDataEnd: 1800, result.PhaseQuit: 120,
		result.PhaseLag: 40,
	}
	recorders := map[string]*hdr.Histogram{result.PhaseTotal: result.NewRecorder()}
	for phase := range phaseMedians {
		recorders[phase] = result.NewRecorder()
	}
	draw := func(medianUS, slowdown float64) int64 {
		return int64(medianUS*slowdown*math.Exp(0.4*random.NormFloat64())) + 1
	}

	r := &result.Result{SchemaVersion: result.SchemaVersion, Phases: map[string]*result.Histogram{}}
	for s := 0; s < seconds; s++ {
		slowdown := 1.0
		if s >= seconds/3 && s < 2*seconds/3 {
			slowdown = 2
		}
		perSecond := result.NewRecorder()
		failed := int64(random.IntN(3))
		for i := 0; i < rate-int(failed); i++ {
			var total int64
			for phase, median := range phaseMedians {
				value := draw(median, slowdown)
				Expect(recorders[phase].RecordValue(value)).To(Succeed())
				total += value
			}
			Expect(recorders[result.PhaseTotal].RecordValue(total)).To(Succeed())
			Expect(perSecond.RecordValue(total)).To(Succeed())
		}
		latency, err := result.FromHDR(perSecond)
		Expect(err).NotTo(HaveOccurred())
		activity := result.Activity{Started: rate, Completed: rate - failed, Failed: failed, Accepted: rate - failed}
		r.Timeline = append(r.Timeline, result.Second{Unix: start.Unix() + int64(s), Activity: activity, Latency: latency})
		r.Counts.Started += rate
		r.Counts.Completed += rate - failed
		r.Counts.Failed += failed
	}
	for phase, recorder := range recorders {
		h, err := result.FromHDR(recorder)
		Expect(err).NotTo(HaveOccurred())
		r.Phases[phase] = h
	}

	r.Counts.Arrivals = r.Counts.Started
	r.Counts.FullHandshakes = r.Counts.Started
	r.Counts.MessagesSent = r.Counts.Completed
	r.Counts.MessagesAccepted = r.Counts.Completed
	r.Run = result.Run{
		Generator: result.Generator{GoVersion: "go1.26.8", GOMAXPROCS: 2, NumCPU: 2, CPUModel: "synthetic", OS: "linux", Arch: "amd64"},
		Target:    "127.0.0.1:4025",
		Scenario:  result.ScenarioSession,
		Options: result.Options{Mode: result.ModeOpen, Rate: rate, DurationSeconds: float64(seconds), Messages: 1, MessageSize: 1024,
			MPC: "per/individual", Recipient: "alice@example.test", TimeoutSeconds: 10},
		TLS:              result.TLSFacts{Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", Group: "X25519MLKEM768", ServerCN: "mx.example.test"},
		EHLOCapabilities: []string{"PIPELINING", "MPC DENY=com/*", "<b>bold</b>"},
		Start:            start,
		End:              start.Add(time.Duration(seconds) * time.Second),
		StopReason:       "duration",
		Warnings:         []string{"requested rate is near the generator's capacity <script>x</script>"},
	}
	failures := r.Counts.Failed
	r.Errors = []result.ErrorCount{
		{Class: result.ErrorReply, Phase: result.PhaseRcpt, Key: "550 5.7.1", Example: "550 5.7.1 <script>alert(1)</script> denied", Count: failures / 2},
		{Class: result.ErrorReply, Phase: result.PhaseEHLO, Key: "421 4.3.2", Example: "421 4.3.2 busy", Count: failures / 4},
		{Class: result.ErrorTLSAlert, Phase: result.PhaseHandshake, Key: "bad_certificate", Count: failures / 8},
		{Class: result.ErrorTLSAlert, Phase: result.PhaseHandshake, Key: "unknown_ca", Count: failures / 16},
		{Class: result.ErrorNetwork, Phase: result.PhaseConnect, Key: "timeout", Count: failures - failures/2 - failures/4 - failures/8 - failures/16},
	}
	r.Thresholds = []result.ThresholdOutcome{
		{Expression: "p99(handshake)<5ms", Passed: true, Observed: float64(r.Phases[result.PhaseHandshake].Quantile(0.99).Microseconds()), Limit: 5000, Unit: "us"},
		{Expression: "errors<0.1%", Passed: false, Observed: float64(failures) / float64(r.Counts.Started), Limit: 0.001, Unit: "ratio"},
	}
	r.CPU = result.CPU{UserSeconds: float64(seconds) * 0.3, SystemSeconds: float64(seconds) * 0.1, PerHandshakeUS: 2000, PerMessageUS: 2000, Utilization: 0.2}
	return r
}
