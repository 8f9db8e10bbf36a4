package result_test

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// histogramOf records values (in microseconds) and converts them.
func histogramOf(values ...int64) *result.Histogram {
	rec := result.NewRecorder()
	for _, v := range values {
		Expect(rec.RecordValue(v)).To(Succeed())
	}
	h, err := result.FromHDR(rec)
	Expect(err).NotTo(HaveOccurred())
	return h
}

// randomValues returns n latencies in microseconds spread over six orders
// of magnitude.
func randomValues(rng *rand.Rand, n int) []int64 {
	values := make([]int64, n)
	for i := range values {
		values[i] = 1 + int64(rng.ExpFloat64()*float64(rng.IntN(5)+1)*1000)
	}
	return values
}

func shardResult(index, total int, values []int64) *result.Result {
	start := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)
	return &result.Result{
		Run: result.Run{
			Scenario: result.ScenarioHandshake,
			Target:   "127.0.0.1:4025",
			Shard:    &result.Shard{Index: index, Total: total},
			Start:    start,
			End:      start.Add(2 * time.Second),
			Options:  result.Options{Thresholds: []string{"p99(handshake)<1s"}},
			Generator: result.Generator{
				GOMAXPROCS: 2,
			},
		},
		Phases: map[string]*result.Histogram{result.PhaseHandshake: histogramOf(values...)},
		Timeline: []result.Second{
			{Unix: start.Unix(), Activity: result.Activity{Started: 3, Completed: 2}, Latency: histogramOf(values[:2]...)},
			{Unix: start.Unix() + int64(index) + 1, Activity: result.Activity{Started: 1, Completed: 1}, Latency: histogramOf(values[2])},
		},
		Counts: result.Counts{Started: int64(len(values)), Completed: int64(len(values)) - 1, Failed: 1, FullHandshakes: int64(len(values))},
		Errors: []result.ErrorCount{{Class: result.ErrorReply, Phase: result.PhaseEHLO, Key: "421 4.3.2", Count: 1}},
		CPU:    result.CPU{UserSeconds: 0.5, SystemSeconds: 0.25},
	}
}

var _ = Describe("Histogram", func() {
	It("matches hdrhistogram percentiles", func() {
		rng := rand.New(rand.NewPCG(1, 2))
		values := randomValues(rng, 5000)
		rec := result.NewRecorder()
		for _, v := range values {
			Expect(rec.RecordValue(v)).To(Succeed())
		}
		h, err := result.FromHDR(rec)
		Expect(err).NotTo(HaveOccurred())

		Expect(h.Count()).To(Equal(int64(5000)))
		for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
			Expect(h.Quantile(q).Microseconds()).To(Equal(rec.ValueAtQuantile(q*100)), "quantile %v", q)
		}
		Expect(h.HDR().Equals(rec)).To(BeTrue())
	})

	It("round-trips through JSON", func() {
		h := histogramOf(1, 5, 999, 1234, 99999, 5_000_000)
		data, err := json.Marshal(h)
		Expect(err).NotTo(HaveOccurred())

		var back result.Histogram
		Expect(json.Unmarshal(data, &back)).To(Succeed())
		Expect(back.Buckets()).To(Equal(h.Buckets()))
		Expect(string(data)).To(ContainSubstring(`"p99_us":`))
	})

	It("rejects a count that disagrees with its buckets", func() {
		var h result.Histogram
		err := json.Unmarshal([]byte(`{"unit":"us","lowest_us":1,"highest_us":600000000,"significant_figures":3,"count":5,"buckets":[[1,1,2]]}`), &h)
		Expect(err).To(MatchError(ContainSubstring("count is 5")))
	})

	It("rejects another configuration", func() {
		var h result.Histogram
		err := json.Unmarshal([]byte(`{"unit":"us","lowest_us":1,"highest_us":600000000,"significant_figures":2,"count":0,"buckets":[]}`), &h)
		Expect(err).To(MatchError(ContainSubstring("significant figures")))
	})

	It("merges exactly", func() {
		rng := rand.New(rand.NewPCG(3, 4))
		a, b, c := randomValues(rng, 700), randomValues(rng, 1300), randomValues(rng, 50)
		all := append(append(append([]int64{}, a...), b...), c...)

		merged := result.MergeHistograms(histogramOf(a...), nil, histogramOf(b...), histogramOf(c...))
		Expect(merged.Buckets()).To(Equal(histogramOf(all...).Buckets()))
		Expect(merged.Count()).To(Equal(int64(2050)))
	})
})

var _ = Describe("File", func() {
	It("writes and loads a result", func() {
		r := shardResult(0, 1, []int64{100, 200, 300})
		path := filepath.Join(GinkgoT().TempDir(), "load.json")
		Expect(r.Write(path)).To(Succeed())

		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(data)).To(ContainSubstring(`"buckets": [[100,100,1],[200,200,1],[300,300,1]]`))

		back, err := result.Load(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(back.SchemaVersion).To(Equal(result.SchemaVersion))
		Expect(back.Phase(result.PhaseHandshake).Buckets()).To(Equal(r.Phase(result.PhaseHandshake).Buckets()))
		Expect(back.Counts).To(Equal(r.Counts))
		Expect(back.Run.Shard).To(Equal(r.Run.Shard))
	})

	It("rejects a newer schema version", func() {
		_, err := result.Parse([]byte(`{"schema_version": 99}`))
		Expect(err).To(MatchError(result.ErrNewerSchema))
		Expect(err).To(MatchError(ContainSubstring("schema_version 99")))
	})

	It("rejects a file without a schema version", func() {
		_, err := result.Parse([]byte(`{"run": {}}`))
		Expect(err).To(MatchError(ContainSubstring("schema_version is missing")))
	})

	It("reads the example result", func() {
		r, err := result.Load(filepath.Join("testdata", "example.json"))
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Phase(result.PhaseTotal).Count()).To(BeNumerically(">", 0))
		Expect(r.Timeline).NotTo(BeEmpty())
	})
})

var _ = Describe("Merge", func() {
	It("sums counts and merges histograms exactly", func() {
		rng := rand.New(rand.NewPCG(5, 6))
		var values [][]int64
		var shards []*result.Result
		for i := range 3 {
			values = append(values, randomValues(rng, 100*(i+1)))
			shards = append(shards, shardResult(i, 3, values[i]))
		}

		merged, err := result.Merge(shards[2], shards[0], shards[1])
		Expect(err).NotTo(HaveOccurred())

		all := append(append(append([]int64{}, values[0]...), values[1]...), values[2]...)
		Expect(merged.Phase(result.PhaseHandshake).Buckets()).To(Equal(histogramOf(all...).Buckets()))
		Expect(merged.Counts.Started).To(Equal(int64(600)))
		Expect(merged.Counts.Failed).To(Equal(int64(3)))
		Expect(merged.Errors).To(HaveLen(1))
		Expect(merged.Errors[0].Count).To(Equal(int64(3)))
		Expect(merged.Shards).To(HaveLen(3))
		Expect(merged.Shards[0].Shard.Index).To(Equal(0))
		Expect(merged.Run.Shard).To(BeNil())
		Expect(merged.CPU.UserSeconds).To(BeNumerically("~", 1.5, 1e-9))
		Expect(merged.CPU.PerHandshakeUS).To(BeNumerically("~", 2.25e6/600, 1e-6))
		Expect(merged.Thresholds).To(HaveLen(1))
		Expect(merged.Thresholds[0].Passed).To(BeTrue())
	})

	It("aligns timelines by wall-clock second", func() {
		merged, err := result.Merge(shardResult(0, 2, []int64{1, 2, 3}), shardResult(1, 2, []int64{4, 5, 6}))
		Expect(err).NotTo(HaveOccurred())

		Expect(merged.Timeline).To(HaveLen(3))
		Expect(merged.Timeline[0].Started).To(Equal(int64(6)))
		Expect(merged.Timeline[0].Latency.Count()).To(Equal(int64(4)))
		Expect(merged.Timeline[1].Started).To(Equal(int64(1)))
		Expect(merged.Timeline[2].Started).To(Equal(int64(1)))
	})

	It("rejects a shard given twice", func() {
		_, err := result.Merge(shardResult(1, 2, []int64{1, 2, 3}), shardResult(1, 2, []int64{1, 2, 3}))
		Expect(err).To(MatchError(ContainSubstring("shard 1/2 appears twice")))
	})

	It("rejects shards of different splits", func() {
		_, err := result.Merge(shardResult(0, 2, []int64{1, 2, 3}), shardResult(1, 3, []int64{1, 2, 3}))
		Expect(err).To(MatchError(ContainSubstring("split in different ways")))
	})

	It("rejects different scenarios", func() {
		other := shardResult(1, 2, []int64{1, 2, 3})
		other.Run.Scenario = result.ScenarioSession
		_, err := result.Merge(shardResult(0, 2, []int64{1, 2, 3}), other)
		Expect(err).To(MatchError(ContainSubstring("scenario")))
	})

	It("rejects find-max results", func() {
		r := shardResult(0, 1, []int64{1, 2, 3})
		r.FindMax = &result.FindMax{MaxSustainableRate: 10}
		_, err := result.Merge(r)
		Expect(err).To(MatchError(ContainSubstring("find-max")))
	})

	It("merges a merged result with no shard twice", func() {
		first, err := result.Merge(shardResult(0, 3, []int64{1, 2, 3}), shardResult(1, 3, []int64{1, 2, 3}))
		Expect(err).NotTo(HaveOccurred())

		all, err := result.Merge(first, shardResult(2, 3, []int64{1, 2, 3}))
		Expect(err).NotTo(HaveOccurred())
		Expect(all.Shards).To(HaveLen(3))
		Expect(all.Counts.Started).To(Equal(int64(9)))

		_, err = result.Merge(first, shardResult(1, 3, []int64{1, 2, 3}))
		Expect(err).To(MatchError(ContainSubstring("appears twice")))
	})
})

var _ = Describe("Threshold", func() {
	run := func() *result.Result {
		r := shardResult(0, 1, []int64{1000, 2000, 3000, 40_000})
		r.Counts.Started, r.Counts.Failed, r.Counts.Completed = 1000, 2, 998
		r.Counts.ResumeOffered, r.Counts.Resumed = 10, 9
		return r
	}

	DescribeTable("evaluates",
		func(expr string, passed bool, observed float64) {
			th, err := result.ParseThreshold(expr)
			Expect(err).NotTo(HaveOccurred())
			out := th.Evaluate(run())
			Expect(out.Passed).To(Equal(passed), out.Detail)
			Expect(out.Observed).To(BeNumerically("~", observed, observed/100+1e-9))
		},
		Entry("percentile below", "p99(handshake)<50ms", true, 40_000.0),
		Entry("percentile above", "p99(handshake)<10ms", false, 40_000.0),
		Entry("median", "p50(handshake)<=2ms", true, 2000.0),
		Entry("fractional percentile", "p99.9(handshake) < 41ms", true, 40_000.0),
		Entry("max", "max(handshake)>39ms", true, 40_000.0),
		Entry("error share passes", "errors<0.3%", true, 0.002),
		Entry("error share fails", "errors<0.1%", false, 0.002),
		Entry("error count", "errors<=2", true, 2.0),
		Entry("throughput", "throughput>=400/s", true, 499.0),
		Entry("resumed share", "resumed>=95%", false, 0.9),
	)

	It("fails on a phase without samples", func() {
		th, err := result.ParseThreshold("p99(data_end)<1s")
		Expect(err).NotTo(HaveOccurred())
		out := th.Evaluate(run())
		Expect(out.Passed).To(BeFalse())
		Expect(out.Detail).To(Equal("no samples in phase data_end"))
	})

	DescribeTable("rejects",
		func(expr, message string) {
			_, err := result.ParseThreshold(expr)
			Expect(err).To(MatchError(ContainSubstring(message)))
		},
		Entry("unknown phase", "p99(tls)<5ms", `unknown phase "tls"`),
		Entry("missing phase", "p99<5ms", "needs a phase"),
		Entry("bad duration", "p99(handshake)<5", "must be a duration"),
		Entry("percentile over 100", "p101(handshake)<5ms", "from 0 to 100"),
		Entry("unknown metric", "latency<5ms", `unknown metric "latency"`),
		Entry("no operator", "errors=1", "is invalid"),
		Entry("resumed count", "resumed>5", "percentage"),
		Entry("phase on errors", "errors(ehlo)<1", "takes no phase"),
	)
})
