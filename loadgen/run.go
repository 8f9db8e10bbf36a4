package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// Stop reasons of result.Run.StopReason.
const (
	stopDuration    = "duration"
	stopCount       = "count"
	stopInterrupted = "interrupted"
	stopSteps       = "steps"
	stopFindMax     = "find-max"
)

// findMaxDefaultThresholds apply to --find-max when no --threshold is
// given: a step passes while under 1 % of its units fail and the p99 of
// the whole unit stays under half a second.
var findMaxDefaultThresholds = []string{"errors<1%", "p99(total)<500ms"}

// generator is the state of one run.
type generator struct {
	cfg        Config
	target     netip.AddrPort
	identities []*identity
	body       *messageBody
	sink       *relaySink

	recorders []*recorder
	timeline  *timeline
	// steps has one recorder per rate step when the run has several.
	stepsMu   sync.Mutex
	steps     []*stepState
	keepSteps bool

	nextIdentity  atomic.Int64
	nextMessage   atomic.Int64
	resumeCounter atomic.Int64
	arrivals      atomic.Int64
	unstarted     atomic.Int64
	inFlight      atomic.Int64

	// invalidUnits counts units that failed checkDurations, and
	// firstInvalid keeps the first such error for the warning.
	invalidUnits atomic.Int64
	firstInvalid atomic.Pointer[string]
}

// stepState accumulates one rate step.
type stepState struct {
	rate       float64
	start, end time.Time
	rec        *recorder
	inFlight   atomic.Int64
	// passed and reason are set by find-max.
	passed *bool
	reason string
}

// arrival is one scheduled unit of work.
type arrival struct {
	intended time.Time
	step     int
}

// Run runs the load described by cfg and returns its result. It stops
// starting units at cfg.Duration or cfg.Count, or when ctx is cancelled.
// Units in progress then get cfg.Timeout to finish before their
// connections are closed.
func Run(ctx context.Context, cfg Config) (*result.Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	target, err := ParseLoopbackTarget(cfg.Target)
	if err != nil {
		return nil, err
	}

	g := &generator{cfg: cfg, target: target, body: newMessageBody(cfg.MessageSize), timeline: newTimeline()}
	if err := g.loadIdentities(); err != nil {
		return nil, err
	}

	run := result.Run{
		Generator: fingerprintGenerator(),
		Target:    cfg.Target,
		Scenario:  cfg.Scenario,
		Options:   g.options(),
		Shard:     cfg.Shard,
	}

	if cfg.Scenario == result.ScenarioRelay {
		g.sink, err = startRelaySink(ctx, g)
		if err != nil {
			return nil, err
		}
		defer g.sink.close()
	}

	if !cfg.SkipCalibration {
		run.Calibration, run.Warnings = g.calibrate()
	}

	facts, capabilities, err := g.preflight(ctx)
	if err != nil {
		run.Warnings = append(run.Warnings, fmt.Sprintf("the first connection failed, so the TLS facts and EHLO capabilities are missing: %v", err))
		cfg.Logger.Warn("load: preflight connection failed", "target", cfg.Target, "error", err)
	}
	run.TLS, run.EHLOCapabilities = facts, capabilities

	workers := cfg.Concurrency
	if workers == 0 {
		workers = cfg.MaxInFlight
	}
	workers = int(max(shardPart(int64(workers), cfg.Shard), 1))
	for range min(workers, 4*runtime.GOMAXPROCS(0)) {
		g.recorders = append(g.recorders, newRecorder())
	}

	progress := newProgress(cfg, g)
	cpuBefore := processCPU()
	run.Start = time.Now()
	cfg.Logger.Info("load: run started", "target", cfg.Target, "scenario", cfg.Scenario, "mode", cfg.mode(), "shard", cfg.Shard.String())

	var stopReason string
	var findMax *result.FindMax
	switch {
	case cfg.Concurrency > 0:
		stopReason = g.runClosed(ctx, workers)
	case cfg.FindMax:
		stopReason, findMax = g.runFindMax(ctx, workers)
	default:
		stopReason = g.runOpen(ctx, workers, g.schedule())
	}

	if g.sink != nil {
		g.waitDeliveries(ctx)
	}
	run.End = time.Now()
	cpu := processCPU().sub(cpuBefore)
	progress.finish()
	run.StopReason = stopReason
	cfg.Logger.Info("load: run stopped", "reason", stopReason, "elapsed", run.End.Sub(run.Start).Round(time.Millisecond))

	return g.assemble(run, cpu, findMax)
}

// options returns the fingerprint's copy of the configuration.
func (g *generator) options() result.Options {
	cfg := g.cfg
	names, addrs := describeIdentities(g.identities)
	return result.Options{
		Mode:            cfg.mode(),
		Rate:            cfg.Rate,
		RateSteps:       cfg.RateSteps,
		StepSeconds:     cfg.StepDuration.Seconds(),
		Concurrency:     cfg.Concurrency,
		MaxInFlight:     cfg.MaxInFlight,
		DurationSeconds: cfg.Duration.Seconds(),
		Count:           cfg.Count,
		Messages:        cfg.Messages,
		MessageSize:     cfg.MessageSize,
		MPC:             cfg.MPC,
		Recipient:       cfg.Recipient,
		ResumeFraction:  cfg.ResumeFraction,
		Identities:      names,
		SourceAddrs:     addrs,
		TimeoutSeconds:  cfg.Timeout.Seconds(),
		FindMax:         cfg.FindMax,
		Thresholds:      g.thresholds(),
	}
}

func (g *generator) thresholds() []string {
	if len(g.cfg.Thresholds) == 0 && g.cfg.FindMax {
		return findMaxDefaultThresholds
	}
	return g.cfg.Thresholds
}

// loadIdentities loads the certificates of the pool and their TLS
// configurations.
func (g *generator) loadIdentities() error {
	m := g.cfg.PKI
	roots, err := m.CAPool(pki.PublicCA)
	if err != nil {
		return err
	}
	serverName := g.cfg.ServerName
	if serverName == "" {
		server, err := m.Cert(pki.CertServer)
		if err != nil {
			return err
		}
		serverName = server.CN
	}

	for _, name := range g.cfg.Identities {
		entry, err := m.Cert(name)
		if err != nil {
			return err
		}
		cert, err := m.TLSCertificate(name)
		if err != nil {
			return err
		}
		source, err := netip.ParseAddr(entry.SourceAddr)
		if err != nil {
			return fmt.Errorf("identity %q has the invalid source address %q in the PKI manifest: %w", name, entry.SourceAddr, err)
		}
		if source.Is4() != g.target.Addr().Is4() {
			return invalidf("identity %q connects from %s, which cannot reach %s; use an IPv4 loopback target such as 127.0.0.1:PORT", name, source, g.target)
		}

		full := &tls.Config{
			ServerName: serverName,
			RootCAs:    roots,
			// The certificate goes out whatever CAs the server's
			// CertificateRequest names: crypto/tls would otherwise send
			// none when they do not match, and the server's verdict on the
			// certificate is what the run measures.
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
			MinVersion:           tls.VersionTLS12,
		}
		id := &identity{name: name, cn: entry.CN, source: source, full: full}
		if g.cfg.Scenario == result.ScenarioResume {
			id.cache = tls.NewLRUClientSessionCache(64)
			id.resume = full.Clone()
			id.resume.MinVersion = tls.VersionTLS13
			id.resume.ClientSessionCache = id.cache
		}
		g.identities = append(g.identities, id)
	}
	return nil
}

// schedule returns the rate of each open-loop step, for this shard.
func (g *generator) schedule() []float64 {
	rates := g.cfg.RateSteps
	if len(rates) == 0 {
		rates = []float64{g.cfg.Rate}
	}
	out := make([]float64, len(rates))
	for i, r := range rates {
		out[i] = g.shardRate(r)
	}
	g.keepSteps = len(out) > 1
	return out
}

func (g *generator) shardRate(r float64) float64 {
	if g.cfg.Shard == nil {
		return r
	}
	return r / float64(g.cfg.Shard.Total)
}

// countLimit returns this shard's unit count limit, or 0 for none.
func (g *generator) countLimit() int64 {
	if g.cfg.Count <= 0 {
		return 0
	}
	return max(shardPart(g.cfg.Count, g.cfg.Shard), 1)
}

// runDeadline returns when the run must stop starting units.
func (g *generator) runDeadline(start time.Time, steps int) time.Time {
	end := time.Time{}
	if g.cfg.Duration > 0 {
		end = start.Add(g.cfg.Duration)
	}
	if steps > 1 {
		stepsEnd := start.Add(time.Duration(steps) * g.cfg.StepDuration)
		if end.IsZero() || stepsEnd.Before(end) {
			end = stepsEnd
		}
	}
	if end.IsZero() {
		// Count alone bounds the run; this is only a safety net.
		end = start.Add(24 * time.Hour)
	}
	return end
}

// execute runs one unit and records it.
func (g *generator) execute(ctx context.Context, rec *recorder, a arrival, open bool) {
	u := &unit{intended: a.intended, step: a.step, open: open}
	u.started = time.Now()
	g.timeline.started(u.started)
	if open {
		u.measure(phaseLag, u.started.Sub(u.intended))
	}

	g.runUnit(ctx, u)

	end := time.Now()
	if u.err != nil && ctx.Err() != nil {
		u.err = fmt.Errorf("%w: %w", errStopped, u.err)
	}
	if u.err == nil {
		from := u.started
		if open {
			from = u.intended
		}
		u.measure(phaseTotal, end.Sub(from))
	}
	if err := u.checkDurations(); err != nil {
		u.invalid = err
		g.reportInvalid(err)
	}

	rec.add(u)
	g.timeline.finished(end, u)
	if g.keepSteps {
		g.stepsMu.Lock()
		step := g.steps[a.step]
		g.stepsMu.Unlock()
		step.rec.add(u)
		step.inFlight.Add(-1)
	}
}

// maxInvalidLogs bounds the log lines about invalid durations in a run.
const maxInvalidLogs = 10

// reportInvalid counts a unit that failed checkDurations, logs the first
// maxInvalidLogs of them and keeps the first error for the result's
// warning.
func (g *generator) reportInvalid(err error) {
	n := g.invalidUnits.Add(1)
	text := err.Error()
	g.firstInvalid.CompareAndSwap(nil, &text)
	if n <= maxInvalidLogs {
		g.cfg.Logger.Error("load: invalid unit duration, which is a generator bug; its total and lag are left out of the histograms",
			"error", err, "unit", n, "logged_at_most", maxInvalidLogs)
	}
}

// hardStop returns a context that is cancelled cfg.Timeout after stop is
// done, or with parent, to cut off units still in progress.
func (g *generator) hardStop(parent context.Context, stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
			return
		}
		timer := time.NewTimer(g.cfg.Timeout)
		defer timer.Stop()
		select {
		case <-timer.C:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// runClosed runs workers that each start a unit as soon as the previous
// one ends, until the duration or count is reached.
func (g *generator) runClosed(ctx context.Context, workers int) string {
	start := time.Now()
	deadline := g.runDeadline(start, 1)
	limit := g.countLimit()
	stop := make(chan struct{})
	unitCtx, cancel := g.hardStop(ctx, stop)
	defer cancel()

	// The hard stop starts at the deadline, not when the workers return,
	// so units that outlast it are cut off one timeout later.
	var stopOnce sync.Once
	closeStop := func() { stopOnce.Do(func() { close(stop) }) }
	deadlineTimer := time.AfterFunc(time.Until(deadline), closeStop)
	defer deadlineTimer.Stop()

	var reason atomic.Value
	reason.Store(stopDuration)
	var wg sync.WaitGroup
	for i := range workers {
		rec := g.recorders[i%len(g.recorders)]
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if limit > 0 && g.arrivals.Add(1) > limit {
					reason.Store(stopCount)
					return
				}
				if limit == 0 {
					g.arrivals.Add(1)
				}
				g.execute(unitCtx, rec, arrival{intended: time.Now()}, false)
			}
		})
	}
	wg.Wait()
	closeStop()
	if limit > 0 {
		g.arrivals.Store(min(g.arrivals.Load(), limit))
	}
	if ctx.Err() != nil {
		return stopInterrupted
	}
	return reason.Load().(string)
}

// runOpen paces arrivals at each step's rate and hands them to workers.
func (g *generator) runOpen(ctx context.Context, workers int, rates []float64) string {
	for _, r := range rates {
		g.steps = append(g.steps, &stepState{rate: r, rec: newRecorder()})
	}

	arrivals, stop, wg, cancel := g.startWorkers(ctx, workers)
	defer cancel()

	start := time.Now()
	deadline := g.runDeadline(start, len(rates))
	reason := stopDuration
	if len(rates) > 1 {
		reason = stopSteps
	}
	for i := range rates {
		stepStart := start.Add(time.Duration(i) * g.cfg.StepDuration)
		stepEnd := stepStart.Add(g.cfg.StepDuration)
		if len(rates) == 1 || stepEnd.After(deadline) {
			stepEnd = deadline
		}
		if !stepStart.Before(deadline) {
			break
		}
		stepReason := g.pace(ctx, arrivals, i, stepStart, stepEnd)
		if stepReason != "" {
			reason = stepReason
			break
		}
	}

	close(arrivals)
	close(stop)
	wg.Wait()
	return reason
}

// startWorkers starts the open-loop workers.
func (g *generator) startWorkers(ctx context.Context, workers int) (chan arrival, chan struct{}, *sync.WaitGroup, context.CancelFunc) {
	arrivals := make(chan arrival)
	stop := make(chan struct{})
	unitCtx, cancel := g.hardStop(ctx, stop)
	wg := &sync.WaitGroup{}
	for i := range workers {
		rec := g.recorders[i%len(g.recorders)]
		wg.Go(func() {
			for a := range arrivals {
				g.execute(unitCtx, rec, a, true)
				g.inFlight.Add(-1)
			}
		})
	}
	return arrivals, stop, wg, cancel
}

// pace schedules the arrivals of one step. Arrival k is due at
// stepStart + k/rate: that intended start is what latency counts from,
// however late the generator hands the arrival to a worker. The pacer
// takes each due time from a rate.Limiter, sleeps until then and never
// hands an arrival out earlier,
// because a unit started before its intended start would record a total
// shorter than its own phases. After a late wake-up it catches up at
// once, since the arrivals already due need no wait. It returns a stop
// reason when the run must end, or "".
func (g *generator) pace(ctx context.Context, arrivals chan<- arrival, step int, stepStart, stepEnd time.Time) string {
	r := g.steps[step].rate

	g.steps[step].start = stepStart
	defer func() { g.steps[step].end = time.Now() }()

	if wait := time.Until(stepStart); wait > 0 {
		time.Sleep(wait)
	}

	limit := g.countLimit()
	endTimer := time.NewTimer(time.Until(stepEnd))
	defer endTimer.Stop()
	dueTimer := time.NewTimer(0)
	defer dueTimer.Stop()

	// The limiter holds the schedule: with a burst of one, a reservation
	// made at the previous arrival's due time is due one interval later.
	// Reserving at due times rather than at time.Now keeps a late pacer
	// from saving tokens and starting arrivals early.
	limiter := rate.NewLimiter(rate.Limit(r), 1)
	interval := float64(time.Second) / r
	intended := stepStart
	for k := int64(0); ; k++ {
		reservation := limiter.ReserveN(intended, 1)
		intended = intended.Add(reservation.DelayFrom(intended))
		if !intended.Before(stepEnd) {
			return ""
		}
		if limit > 0 && g.arrivals.Load() >= limit {
			return stopCount
		}

		if wait := time.Until(intended); wait > 0 {
			dueTimer.Reset(wait)
			select {
			case <-dueTimer.C:
			case <-ctx.Done():
				return stopInterrupted
			}
		}

		g.arrivals.Add(1)
		g.inFlight.Add(1)
		g.steps[step].inFlight.Add(1)
		next := arrival{intended: intended, step: step}

		// A free worker takes the arrival at once, even when the step's
		// end has passed while the pacer was late.
		select {
		case arrivals <- next:
			continue
		default:
		}
		select {
		case arrivals <- next:
		case <-endTimer.C:
			// Every worker was busy until the step ended: the arrivals due
			// from here on were never started.
			due := int64(float64(stepEnd.Sub(stepStart)) / interval)
			g.unstarted.Add(max(due-k, 1))
			g.arrivals.Add(max(due-k, 1) - 1)
			g.inFlight.Add(-1)
			g.steps[step].inFlight.Add(-1)
			return ""
		case <-ctx.Done():
			g.unstarted.Add(1)
			g.inFlight.Add(-1)
			g.steps[step].inFlight.Add(-1)
			return stopInterrupted
		}
	}
}

// cpuTime is a user and system CPU time.
type cpuTime struct{ user, system time.Duration }

func (c cpuTime) sub(o cpuTime) cpuTime {
	return cpuTime{user: c.user - o.user, system: c.system - o.system}
}

func hostname() string {
	name, err := os.Hostname()
	if err != nil {
		return ""
	}
	return name
}
