package loadgen_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/loadgen"
	"github.com/amtp-toolkit/amtp/loadgen/result"
)

var _ = Describe("WriteSummary", func() {
	// summaryOf returns the summary of a run of scenario that sent three
	// messages and got two delivered.
	summaryOf := func(scenario string) string {
		start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		r := &result.Result{
			Run:    result.Run{Scenario: scenario, Target: "127.0.0.1:4025", Start: start, End: start.Add(2 * time.Second)},
			Counts: result.Counts{Started: 1, Completed: 1, MessagesSent: 3, MessagesAccepted: 3, MessagesDelivered: 2},
		}
		var out strings.Builder
		Expect(loadgen.WriteSummary(&out, r)).To(Succeed())
		return out.String()
	}

	It("leaves the sink out of a session run", func() {
		summary := summaryOf(result.ScenarioSession)
		Expect(summary).To(ContainSubstring("messages: 3 sent, 3 accepted (1.5/s), 0 rejected\n"))
		Expect(summary).NotTo(ContainSubstring("sink"))
	})

	It("counts the sink's deliveries of a relay run", func() {
		Expect(summaryOf(result.ScenarioRelay)).To(ContainSubstring("messages: 3 sent, 3 accepted (1.5/s), 0 rejected, 2 delivered to the sink\n"))
	})
})
