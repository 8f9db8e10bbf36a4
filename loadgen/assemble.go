package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// Limits above which Run adds a warning to the result.
const (
	// warnUtilization is the share of the generator's cores in use above
	// which its own queueing may show in the latencies.
	warnUtilization = 0.8
	// warnLag is the generator lag p99 above which arrivals started late.
	warnLag = 10 * time.Millisecond
)

// assemble builds the result of a finished run.
func (g *generator) assemble(run result.Run, cpu cpuTime, findMax *result.FindMax) (*result.Result, error) {
	phases, counts, errs, err := mergeRecorders(g.recorders)
	if err != nil {
		return nil, err
	}
	counts.Arrivals = g.arrivals.Load()
	counts.Unstarted = g.unstarted.Load()

	r := &result.Result{
		SchemaVersion: result.SchemaVersion,
		Run:           run,
		Phases:        phases,
		Timeline:      g.timeline.seconds(),
		Counts:        counts,
		Errors:        errs,
		CPU:           result.CPU{UserSeconds: cpu.user.Seconds(), SystemSeconds: cpu.system.Seconds()},
		FindMax:       findMax,
	}
	r.CPU.Derive(counts, run.End.Sub(run.Start).Seconds()*float64(runtime.GOMAXPROCS(0)))

	if g.keepSteps {
		for i, step := range g.steps {
			r.Steps = append(r.Steps, g.storedStep(i, step))
		}
	}

	r.Run.Warnings = append(r.Run.Warnings, g.runWarnings(r)...)
	outcomes, err := result.EvaluateAll(r, r.Run.Options.Thresholds)
	if err != nil {
		return nil, err
	}
	r.Thresholds = outcomes
	return r, nil
}

func (g *generator) storedStep(index int, step *stepState) result.Step {
	stepResult := g.stepResult(step)
	c := stepResult.Counts
	stored := result.Step{
		Index:    index,
		Rate:     step.rate,
		Start:    step.start,
		End:      step.end,
		Activity: result.Activity{Started: c.Started, Completed: c.Completed, Failed: c.Failed, Accepted: c.MessagesAccepted},
		Latency:  orEmpty(stepResult.Phases[result.PhaseTotal]),
		Lag:      orEmpty(stepResult.Phases[result.PhaseLag]),
		Passed:   step.passed,
		Reason:   step.reason,
	}
	return stored
}

func orEmpty(h *result.Histogram) *result.Histogram {
	if h == nil {
		return &result.Histogram{}
	}
	return h
}

// runWarnings returns warnings about the generator's own limits.
func (g *generator) runWarnings(r *result.Result) []string {
	var warnings []string
	if r.CPU.Utilization > warnUtilization {
		warnings = append(warnings, fmt.Sprintf("the generator used %.0f%% of its %d cores, so its own queueing may be in the latencies; run shards on more machines",
			r.CPU.Utilization*100, r.Run.Generator.GOMAXPROCS))
	}
	if lag := r.Phase(result.PhaseLag); lag.Count() > 0 && lag.Quantile(0.99) > warnLag {
		warnings = append(warnings, fmt.Sprintf("generator lag p99 was %s: arrivals started late because every worker was busy or the generator was short of CPU (the latency from the intended start still counts the wait)",
			lag.Quantile(0.99)))
	}
	if first := g.firstInvalid.Load(); first != nil {
		warnings = append(warnings, fmt.Sprintf("%d units had an invalid duration, such as: %s. This is a generator bug, so their total and lag are left out of the histograms",
			g.invalidUnits.Load(), *first))
	}
	if r.Counts.Unstarted > 0 {
		warnings = append(warnings, fmt.Sprintf("%d scheduled units never started because all %d workers were busy; raise --max-in-flight or lower the rate",
			r.Counts.Unstarted, g.cfg.MaxInFlight))
	}
	return warnings
}

// preflight opens one connection with the first identity, reads the
// greeting and the EHLO reply and quits, for the fingerprint.
func (g *generator) preflight(ctx context.Context) (result.TLSFacts, []string, error) {
	id := g.identities[0]
	u := &unit{}
	s := &session{g: g, u: u}
	defer func() {
		if s.conn != nil {
			s.conn.Close()
		}
	}()

	if err := s.connect(ctx, id); err != nil {
		return result.TLSFacts{}, nil, err
	}
	tlsConn := tls.Client(s.conn, id.full)
	handshakeCtx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if err := tlsConn.HandshakeContext(handshakeCtx); err != nil {
		return result.TLSFacts{}, nil, err
	}
	s.conn = tlsConn
	s.reader = bufio.NewReaderSize(tlsConn, maxLineBytes)
	s.writer = bufio.NewWriterSize(tlsConn, 4096)

	state := tlsConn.ConnectionState()
	facts := result.TLSFacts{
		Version:     tls.VersionName(state.Version),
		CipherSuite: tls.CipherSuiteName(state.CipherSuite),
	}
	if state.CurveID != 0 {
		facts.Group = state.CurveID.String()
	}
	if len(state.PeerCertificates) > 0 {
		facts.ServerCN = state.PeerCertificates[0].Subject.CommonName
	}

	if _, err := s.expect(phaseGreeting, "", 220); err != nil {
		return facts, nil, err
	}
	r, err := s.expect(phaseEHLO, "EHLO "+id.cn, 250)
	if err != nil {
		return facts, nil, err
	}
	_, _ = s.expect(phaseQuit, "QUIT", 221)
	return facts, r.lines[1:], nil
}

// fingerprintGenerator describes this machine and build.
func fingerprintGenerator() result.Generator {
	return result.Generator{
		GoVersion:  runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		CPUModel:   cpuModel(),
		Hostname:   hostname(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}
}

// cpuModel returns the "model name" of /proc/cpuinfo, or "" where there
// is none.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// processCPU returns the CPU time of this process so far, from
// getrusage(2).
func processCPU() cpuTime {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return cpuTime{}
	}
	return cpuTime{
		user:   time.Duration(usage.Utime.Nano()),
		system: time.Duration(usage.Stime.Nano()),
	}
}
