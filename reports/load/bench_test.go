package load_test

import (
	"bytes"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/loadgen/result"
	"github.com/amtp-toolkit/amtp/reports/load"
)

// BenchmarkRenderHour renders the load result of a one-hour run at 200
// units per second: 3600 timeline seconds, each with its own latency
// histogram. docs/benchmarks.md has the figures. Run it with
// go test -run='^$' -bench=BenchmarkRenderHour ./reports/load/
func BenchmarkRenderHour(b *testing.B) {
	RegisterTestingT(b)
	r := synthetic(3600, 7)

	b.Run("html", func(b *testing.B) {
		var out bytes.Buffer
		for b.Loop() {
			out.Reset()
			if err := load.WriteHTML(&out, r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(out.Len()), "bytes/report")
	})

	b.Run("parse-and-html", func(b *testing.B) {
		data, err := r.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		for b.Loop() {
			out.Reset()
			parsed, err := result.Parse(data)
			if err != nil {
				b.Fatal(err)
			}
			if err := load.WriteHTML(&out, parsed); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data)), "bytes/json")
	})

	b.Run("compare", func(b *testing.B) {
		other := synthetic(3600, 8)
		var out bytes.Buffer
		for b.Loop() {
			out.Reset()
			if err := load.WriteCompareHTML(&out, load.Named{Name: "a", Result: r}, load.Named{Name: "b", Result: other}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(out.Len()), "bytes/report")
	})
}
