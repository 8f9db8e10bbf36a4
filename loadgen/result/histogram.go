package result

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// The configuration that every histogram of a load result uses. Values are
// microseconds from 1 µs to 10 minutes at 3 significant digits, so a
// recorded value lands in a bucket at most 0.1 % wide. All histograms
// share it, which is what lets Merge add their buckets exactly. Larger
// values are still counted, in the bucket of the value itself.
const (
	HistogramLowestUS  = 1
	HistogramHighestUS = 600_000_000
	HistogramSigFigs   = 3
)

// NewRecorder returns an HDR histogram with the configuration of load
// results. Record durations into it with RecordValue(d.Microseconds()),
// then convert it with FromHDR.
func NewRecorder() *hdr.Histogram {
	return hdr.New(HistogramLowestUS, HistogramHighestUS, HistogramSigFigs)
}

// Bucket is one non-empty bucket of an HDR histogram: Count values lie
// between From and To microseconds, both included. Every value in it is
// equivalent at the histogram's precision.
type Bucket struct {
	FromUS int64
	ToUS   int64
	Count  int64
}

// Histogram is a latency distribution in the sparse form a load result
// stores: the non-empty buckets of an HDR histogram in increasing order.
// It is immutable once built. The zero value and nil are empty histograms.
//
// In JSON it is an object with the configuration, the total count, a few
// percentiles for readers without this package (ignored when decoding),
// and "buckets" as [from_us, to_us, count] triples.
type Histogram struct {
	buckets []Bucket
	total   int64
}

// FromHDR converts a histogram recorded with NewRecorder. It returns an
// error when h has another configuration, because its buckets would not
// line up with those of other results.
func FromHDR(h *hdr.Histogram) (*Histogram, error) {
	if h.LowestTrackableValue() != HistogramLowestUS || h.SignificantFigures() != HistogramSigFigs {
		return nil, fmt.Errorf("histogram has lowest value %d and %d significant figures, but load results use %d and %d; create it with NewRecorder",
			h.LowestTrackableValue(), h.SignificantFigures(), HistogramLowestUS, HistogramSigFigs)
	}

	out := &Histogram{}
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		out.buckets = append(out.buckets, Bucket{FromUS: bar.From, ToUS: bar.To, Count: bar.Count})
		out.total += bar.Count
	}
	return out, nil
}

// HDR returns a new HDR histogram with the counts of h, for callers that
// want the library's own functions.
func (h *Histogram) HDR() *hdr.Histogram {
	out := NewRecorder()
	for _, b := range h.Buckets() {
		// Recording the lowest value of a bucket puts the count back in
		// the same bucket, so the round trip is exact.
		_ = out.RecordValues(b.FromUS, b.Count)
	}
	return out
}

// Buckets returns the non-empty buckets in increasing order. The caller
// must not change them.
func (h *Histogram) Buckets() []Bucket {
	if h == nil {
		return nil
	}
	return h.buckets
}

// Count returns the number of recorded values.
func (h *Histogram) Count() int64 {
	if h == nil {
		return 0
	}
	return h.total
}

// Quantile returns the value at or below which the fraction q (0 to 1) of
// the values lie, as the highest value of its bucket, the way
// hdrhistogram-go's ValueAtQuantile does. It returns 0 for an empty
// histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.Count() == 0 {
		return 0
	}

	q = math.Min(math.Max(q, 0), 1)
	rank := max(int64(q*float64(h.total)+0.5), 1)

	var seen int64
	for _, b := range h.buckets {
		seen += b.Count
		if seen >= rank {
			return time.Duration(b.ToUS) * time.Microsecond
		}
	}
	return time.Duration(h.buckets[len(h.buckets)-1].ToUS) * time.Microsecond
}

// Min returns the lowest value of the lowest non-empty bucket.
func (h *Histogram) Min() time.Duration {
	if h.Count() == 0 {
		return 0
	}
	return time.Duration(h.buckets[0].FromUS) * time.Microsecond
}

// Max returns the highest value of the highest non-empty bucket.
func (h *Histogram) Max() time.Duration {
	if h.Count() == 0 {
		return 0
	}
	return time.Duration(h.buckets[len(h.buckets)-1].ToUS) * time.Microsecond
}

// Mean returns the mean, taking each value as the middle of its bucket.
func (h *Histogram) Mean() time.Duration {
	if h.Count() == 0 {
		return 0
	}

	var sum float64
	for _, b := range h.buckets {
		sum += float64(b.FromUS+b.ToUS) / 2 * float64(b.Count)
	}
	return time.Duration(sum / float64(h.total) * float64(time.Microsecond))
}

// CountAbove returns how many values lie in buckets whose lowest value is
// at least d.
func (h *Histogram) CountAbove(d time.Duration) int64 {
	var n int64
	for _, b := range h.Buckets() {
		if time.Duration(b.FromUS)*time.Microsecond >= d {
			n += b.Count
		}
	}
	return n
}

// MergeHistograms returns the exact sum of the histograms: each bucket's
// count is the sum of that bucket's counts. Nil arguments count as empty.
func MergeHistograms(hs ...*Histogram) *Histogram {
	counts := map[int64]Bucket{}
	for _, h := range hs {
		for _, b := range h.Buckets() {
			sum := counts[b.FromUS]
			sum.FromUS, sum.ToUS = b.FromUS, b.ToUS
			sum.Count += b.Count
			counts[b.FromUS] = sum
		}
	}

	out := &Histogram{buckets: make([]Bucket, 0, len(counts))}
	for _, b := range counts {
		out.buckets = append(out.buckets, b)
		out.total += b.Count
	}
	sort.Slice(out.buckets, func(i, j int) bool { return out.buckets[i].FromUS < out.buckets[j].FromUS })
	return out
}

// histogramJSON is the stored form of a Histogram.
type histogramJSON struct {
	Unit     string `json:"unit"`
	LowestUS int64  `json:"lowest_us"`
	// HighestUS is the highest value tracked at full precision.
	HighestUS int64 `json:"highest_us"`
	SigFigs   int64 `json:"significant_figures"`
	Count     int64 `json:"count"`
	// Summary is derived from the buckets when writing, for readers that
	// do not decode buckets, and ignored when reading.
	Summary *histogramSummary `json:"summary,omitempty"`
	Buckets [][3]int64        `json:"buckets"`
}

type histogramSummary struct {
	MinUS  int64 `json:"min_us"`
	MeanUS int64 `json:"mean_us"`
	P50US  int64 `json:"p50_us"`
	P90US  int64 `json:"p90_us"`
	P99US  int64 `json:"p99_us"`
	P999US int64 `json:"p99_9_us"`
	MaxUS  int64 `json:"max_us"`
}

// MarshalJSON encodes h in the stored form.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histogramJSON{
		Unit:      "us",
		LowestUS:  HistogramLowestUS,
		HighestUS: HistogramHighestUS,
		SigFigs:   HistogramSigFigs,
		Count:     h.Count(),
		Buckets:   make([][3]int64, 0, len(h.Buckets())),
	}
	for _, b := range h.Buckets() {
		out.Buckets = append(out.Buckets, [3]int64{b.FromUS, b.ToUS, b.Count})
	}
	if h.Count() > 0 {
		out.Summary = &histogramSummary{
			MinUS:  h.Min().Microseconds(),
			MeanUS: h.Mean().Microseconds(),
			P50US:  h.Quantile(0.5).Microseconds(),
			P90US:  h.Quantile(0.9).Microseconds(),
			P99US:  h.Quantile(0.99).Microseconds(),
			P999US: h.Quantile(0.999).Microseconds(),
			MaxUS:  h.Max().Microseconds(),
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes the stored form. It rejects another configuration
// and buckets that are out of order, empty or inconsistent with count.
func (h *Histogram) UnmarshalJSON(data []byte) error {
	var in histogramJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	if in.Unit != "us" || in.LowestUS != HistogramLowestUS || in.SigFigs != HistogramSigFigs {
		return fmt.Errorf("histogram has unit %q, lowest_us %d and %d significant figures, but this version reads only \"us\", %d and %d",
			in.Unit, in.LowestUS, in.SigFigs, HistogramLowestUS, HistogramSigFigs)
	}

	*h = Histogram{buckets: make([]Bucket, 0, len(in.Buckets))}
	for i, t := range in.Buckets {
		b := Bucket{FromUS: t[0], ToUS: t[1], Count: t[2]}
		if b.Count <= 0 || b.ToUS < b.FromUS || (i > 0 && b.FromUS <= h.buckets[i-1].ToUS) {
			return fmt.Errorf("histogram bucket %d %v is invalid: buckets need a positive count, from <= to, and increasing order", i, t)
		}
		h.buckets = append(h.buckets, b)
		h.total += b.Count
	}
	if h.total != in.Count {
		return fmt.Errorf("histogram count is %d but its buckets add up to %d", in.Count, h.total)
	}
	return nil
}
