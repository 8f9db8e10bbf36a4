package result

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Merge combines results into one, exactly: counts are summed and
// histograms are merged bucket by bucket, so the merged percentiles equal
// those of a single run that recorded every value. Timeline entries are
// matched by wall-clock second and steps by index.
//
// The inputs must share a scenario. When any is a shard of a sharded run
// (or a merge of shards), all must be, with the same shard total and no
// shard index twice, so that no run is counted twice. Results of
// --find-max are rejected, because each shard stops at its own step.
// Thresholds of all inputs are evaluated again on the merged result.
func Merge(results ...*Result) (*Result, error) {
	if len(results) == 0 {
		return nil, errors.New("merge needs at least one load result")
	}

	runs, err := mergeableRuns(results)
	if err != nil {
		return nil, err
	}

	out := &Result{
		SchemaVersion: SchemaVersion,
		Run:           mergeRun(runs),
		Phases:        map[string]*Histogram{},
	}
	if len(runs) > 1 {
		out.Shards = runs
	}

	var errorCounts []ErrorCount
	var steps [][]Step
	for _, r := range results {
		for name, h := range r.Phases {
			out.Phases[name] = MergeHistograms(out.Phases[name], h)
		}
		out.Counts = out.Counts.Add(r.Counts)
		out.CPU.UserSeconds += r.CPU.UserSeconds
		out.CPU.SystemSeconds += r.CPU.SystemSeconds
		errorCounts = append(errorCounts, r.Errors...)
		steps = append(steps, r.Steps)
	}

	out.Timeline = mergeTimeline(results)
	out.Errors = mergeErrors(errorCounts)
	out.Steps = mergeSteps(steps)
	out.CPU.Derive(out.Counts, coreSeconds(runs))

	outcomes, err := EvaluateAll(out, out.Run.Options.Thresholds)
	if err != nil {
		return nil, fmt.Errorf("evaluate thresholds of the merged result: %w", err)
	}
	out.Thresholds = outcomes
	return out, nil
}

// mergeableRuns returns the runs behind results, sorted by shard index,
// after checking that they may be merged.
func mergeableRuns(results []*Result) ([]Run, error) {
	var runs []Run
	for i, r := range results {
		if r.FindMax != nil {
			return nil, fmt.Errorf("result %d is a --find-max run, and find-max results cannot be merged because each shard stops at its own step; merge runs with fixed rates", i+1)
		}
		if r.Run.Scenario != results[0].Run.Scenario {
			return nil, fmt.Errorf("result %d has scenario %q but result 1 has %q; merge only runs of one scenario", i+1, r.Run.Scenario, results[0].Run.Scenario)
		}
		if len(r.Shards) > 0 {
			runs = append(runs, r.Shards...)
		} else {
			runs = append(runs, r.Run)
		}
	}

	sharded := 0
	for _, run := range runs {
		if run.Shard != nil {
			sharded++
		}
	}
	if sharded > 0 && sharded != len(runs) {
		return nil, errors.New("some results are shards of a --shard run and some are not; merge either shards of one run or unsharded runs")
	}

	seen := map[int]bool{}
	for _, run := range runs {
		if run.Shard == nil {
			continue
		}
		if run.Shard.Total != runs[0].Shard.totalOrZero() {
			return nil, fmt.Errorf("shard %d/%d and shard %s come from runs split in different ways; merge shards of one --shard i/N run", run.Shard.Index, run.Shard.Total, runs[0].Shard)
		}
		if seen[run.Shard.Index] {
			return nil, fmt.Errorf("shard %d/%d appears twice; merge each shard once", run.Shard.Index, run.Shard.Total)
		}
		seen[run.Shard.Index] = true
	}
	sort.SliceStable(runs, func(i, j int) bool {
		return runs[i].Shard.indexOrZero() < runs[j].Shard.indexOrZero()
	})
	return runs, nil
}

func (s *Shard) totalOrZero() int {
	if s == nil {
		return 0
	}
	return s.Total
}

func (s *Shard) indexOrZero() int {
	if s == nil {
		return 0
	}
	return s.Index
}

// String returns the shard as "i/N".
func (s *Shard) String() string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Total)
}

func mergeRun(runs []Run) Run {
	out := runs[0]
	out.Shard = nil
	out.Warnings = nil
	out.Options.Thresholds = nil

	stops := map[string]bool{}
	var stopList []string
	for _, run := range runs {
		if run.Start.Before(out.Start) {
			out.Start = run.Start
		}
		if run.End.After(out.End) {
			out.End = run.End
		}
		for _, w := range run.Warnings {
			if len(runs) > 1 && run.Shard != nil {
				w = fmt.Sprintf("shard %s: %s", run.Shard, w)
			}
			out.Warnings = append(out.Warnings, w)
		}
		for _, expr := range run.Options.Thresholds {
			if !slices.Contains(out.Options.Thresholds, expr) {
				out.Options.Thresholds = append(out.Options.Thresholds, expr)
			}
		}
		if !stops[run.StopReason] {
			stops[run.StopReason] = true
			stopList = append(stopList, run.StopReason)
		}
	}
	out.StopReason = strings.Join(stopList, ", ")
	return out
}

// coreSeconds returns the wall time of each run times its GOMAXPROCS,
// summed: the CPU time the generators could have used.
func coreSeconds(runs []Run) float64 {
	var sum float64
	for _, run := range runs {
		sum += run.End.Sub(run.Start).Seconds() * float64(max(run.Generator.GOMAXPROCS, 1))
	}
	return sum
}

// Derive sets the per-handshake, per-message and utilization figures from
// the CPU seconds, the counts and the available core seconds.
func (c *CPU) Derive(counts Counts, coreSeconds float64) {
	total := c.UserSeconds + c.SystemSeconds
	c.PerHandshakeUS, c.PerMessageUS, c.Utilization = 0, 0, 0

	if handshakes := counts.FullHandshakes + counts.Resumed; handshakes > 0 {
		c.PerHandshakeUS = total * 1e6 / float64(handshakes)
	}
	if counts.MessagesSent > 0 {
		c.PerMessageUS = total * 1e6 / float64(counts.MessagesSent)
	}
	if coreSeconds > 0 {
		c.Utilization = total / coreSeconds
	}
}

// Add returns the sum of a and b.
func (a Counts) Add(b Counts) Counts {
	a.Arrivals += b.Arrivals
	a.Started += b.Started
	a.Completed += b.Completed
	a.Failed += b.Failed
	a.Unstarted += b.Unstarted
	a.FullHandshakes += b.FullHandshakes
	a.ResumeOffered += b.ResumeOffered
	a.Resumed += b.Resumed
	a.MessagesSent += b.MessagesSent
	a.MessagesAccepted += b.MessagesAccepted
	a.MessagesRejected += b.MessagesRejected
	a.MessagesDelivered += b.MessagesDelivered
	a.BytesSent += b.BytesSent
	a.InvalidDurations += b.InvalidDurations
	return a
}

func mergeTimeline(results []*Result) []Second {
	bySecond := map[int64]Second{}
	for _, r := range results {
		for _, s := range r.Timeline {
			sum := bySecond[s.Unix]
			sum.Unix = s.Unix
			sum.Activity.Add(s.Activity)
			sum.Latency = MergeHistograms(sum.Latency, s.Latency)
			bySecond[s.Unix] = sum
		}
	}

	out := make([]Second, 0, len(bySecond))
	for _, s := range bySecond {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unix < out[j].Unix })
	return out
}

// SortErrors sorts error counts by class, phase and key.
func SortErrors(counts []ErrorCount) {
	sort.Slice(counts, func(i, j int) bool {
		a, b := counts[i], counts[j]
		if a.Class != b.Class {
			return a.Class < b.Class
		}
		if a.Phase != b.Phase {
			return a.Phase < b.Phase
		}
		return a.Key < b.Key
	})
}

// mergeErrors sums counts of the same class, phase and key and keeps the
// first example.
func mergeErrors(counts []ErrorCount) []ErrorCount {
	type key struct{ class, phase, key string }
	index := map[key]int{}
	out := []ErrorCount{}
	for _, e := range counts {
		k := key{e.Class, e.Phase, e.Key}
		if i, ok := index[k]; ok {
			out[i].Count += e.Count
			continue
		}
		index[k] = len(out)
		out = append(out, e)
	}
	SortErrors(out)
	return out
}

// mergeSteps merges the step lists of several results by step index.
func mergeSteps(lists [][]Step) []Step {
	var out []Step
	for _, steps := range lists {
		for _, s := range steps {
			for len(out) <= s.Index {
				out = append(out, Step{Index: len(out)})
			}
			sum := &out[s.Index]
			if sum.Start.IsZero() || s.Start.Before(sum.Start) {
				sum.Start = s.Start
			}
			if s.End.After(sum.End) {
				sum.End = s.End
			}
			sum.Rate += s.Rate
			sum.Activity.Add(s.Activity)
			sum.Latency = MergeHistograms(sum.Latency, s.Latency)
			sum.Lag = MergeHistograms(sum.Lag, s.Lag)
		}
	}
	return out
}
