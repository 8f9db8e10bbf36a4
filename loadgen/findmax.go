package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// backlogSlack is how many undelivered messages a find-max step may add
// before its delivery backlog counts as growing, on top of a tenth of the
// messages the step got accepted.
const backlogSlack = 5

// runFindMax steps the open-loop rate up from cfg.Rate by FindMaxFactor.
// After each step it waits for the step's units to finish and checks the
// thresholds on that step alone. It stops at the first step that breaks
// one, or whose relay delivery backlog keeps growing. Each step gets its
// full cfg.StepDuration from its own start, so the wait after a step does
// not shorten the next one. Only cfg.Duration, when set, ends the run
// before cfg.FindMaxSteps steps; otherwise the steps alone bound it.
func (g *generator) runFindMax(ctx context.Context, workers int) (string, *result.FindMax) {
	g.keepSteps = true
	arrivals, stop, wg, cancel := g.startWorkers(ctx, workers)
	defer cancel()
	defer wg.Wait()
	defer close(stop)
	defer close(arrivals)

	start := time.Now()
	outcome := &result.FindMax{Reason: "every step passed"}
	stepRate := g.cfg.Rate
	if stepRate <= 0 {
		stepRate = 10
	}

	for i := range g.cfg.FindMaxSteps {
		stepStart := time.Now()
		stepEnd := stepStart.Add(g.cfg.StepDuration)
		if g.cfg.Duration > 0 && stepEnd.After(start.Add(g.cfg.Duration)) {
			outcome.Reason = fmt.Sprintf("--duration %s ended before a step failed", g.cfg.Duration)
			return stopDuration, outcome
		}

		g.stepsMu.Lock()
		g.steps = append(g.steps, &stepState{rate: g.shardRate(stepRate), rec: newRecorder()})
		g.stepsMu.Unlock()

		backlogBefore := g.backlog()
		if reason := g.pace(ctx, arrivals, i, stepStart, stepEnd); reason != "" {
			outcome.Reason = "stopped: " + reason
			return reason, outcome
		}
		g.waitStep(ctx, g.steps[i])

		passed, why := g.judgeStep(g.steps[i], backlogBefore)
		g.steps[i].passed = &passed
		g.steps[i].reason = why
		if !passed {
			outcome.BrokenAt = stepRate
			outcome.Reason = fmt.Sprintf("step %d at %.1f/s failed: %s", i+1, stepRate, why)
			return stopFindMax, outcome
		}
		outcome.MaxSustainableRate = stepRate
		stepRate *= g.cfg.FindMaxFactor
	}
	return stopFindMax, outcome
}

// waitStep waits until the step's units have finished and the relay
// backlog has drained, for at most cfg.Timeout.
func (g *generator) waitStep(ctx context.Context, step *stepState) {
	deadline := time.Now().Add(g.cfg.Timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if step.inFlight.Load() <= 0 && g.backlog() == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitDeliveries waits until the sink has received every message the
// server accepted, for at most cfg.Timeout.
func (g *generator) waitDeliveries(ctx context.Context) {
	deadline := time.Now().Add(g.cfg.Timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil && g.backlog() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

// backlog returns the messages the server accepted for relay that the
// sink has not received yet.
func (g *generator) backlog() int64 {
	if g.sink == nil {
		return 0
	}
	return g.sink.pending()
}

// judgeStep checks a finished step against the thresholds and the relay
// backlog.
func (g *generator) judgeStep(step *stepState, backlogBefore int64) (bool, string) {
	stepResult := g.stepResult(step)
	outcomes, err := result.EvaluateAll(stepResult, g.thresholds())
	if err != nil {
		return false, err.Error()
	}
	for _, o := range outcomes {
		if !o.Passed {
			return false, fmt.Sprintf("threshold %s: %s", o.Expression, o.Detail)
		}
	}

	backlogAfter := g.backlog()
	if allowed := backlogBefore + backlogSlack + stepResult.Counts.MessagesAccepted/10; backlogAfter > allowed {
		return false, fmt.Sprintf("the delivery backlog grew from %d to %d messages", backlogBefore, backlogAfter)
	}
	return true, ""
}

// stepResult returns a result holding one step's phases and counts, for
// threshold evaluation.
func (g *generator) stepResult(step *stepState) *result.Result {
	phases, counts, errs, _ := mergeRecorders([]*recorder{step.rec})
	return &result.Result{
		Run:    result.Run{Start: step.start, End: step.end},
		Phases: phases,
		Counts: counts,
		Errors: errs,
	}
}
