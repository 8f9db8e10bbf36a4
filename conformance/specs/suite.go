package specs

import (
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/amtp-toolkit/amtp/conformance/result"
)

// SuiteDescription is the description that RunSpecs gets.
const SuiteDescription = "AMTP server conformance (" + result.Draft + ")"

var registerOnce sync.Once

// Register adds the conformance specs to Ginkgo's global spec tree. Call
// it once before RunSpecs; later calls do nothing. The specs are not
// added when the package is imported, so that a Ginkgo test binary that
// links this package, such as the tests of amtpkit, does not run them.
func Register() {
	registerOnce.Do(func() {
		Describe(SuiteDescription, Ordered, ContinueOnFailure, tree)
	})
}

// tree declares every spec. The container is Ordered, so Ginkgo runs the
// specs in the order of declaration: the server-role specs in the
// catalogue's order, then the client-role ones. Without it, Ginkgo sorts
// them by file name. ContinueOnFailure keeps a
// failed clause from skipping the specs after it.
func tree() {
	ReportAfterEach(recordUnfinished)

	section1_2()
	section3_1()
	section4_1()
	section4_2()
	section4_3_2()
	section4_4_1()
	section4_4_2()
	section4_4_3()
	section4_4_4()
	section4_5()
	section5_1()
	section5_2()
	section6_4()
	section7()
	section8()
	rfc5321Specs()
	clientSpecs()
}

// recordUnfinished records an error for a spec that Ginkgo ended before
// the check recorded its verdict: a timeout, an interrupt or a failure in
// Ginkgo itself.
func recordUnfinished(report SpecReport) {
	if report.State == types.SpecStateSkipped && report.Failure.Message == "" {
		// Skipped by the label filter: not run, nothing to record.
		return
	}
	interrupted := report.State == types.SpecStateInterrupted
	interruption := report.Failure.Message
	if reason := Interruption(); reason != "" {
		interruption = reason
	}
	setAside := func(o result.Outcome) result.Outcome {
		return interruptedOutcome(o, interruption)
	}

	for _, label := range report.Labels() {
		if SpecLabels(label) == nil {
			continue
		}
		if _, ok := recorded(label); ok {
			if interrupted {
				// Ginkgo's interrupt handler canceled the check, which may
				// have judged the canceled step before the run's context
				// ended too.
				replaceCutShort(label, setAside)
			}
			return
		}
		if interrupted {
			record(label, setAside(result.Outcome{Transcript: []result.Evidence{}}))
			return
		}
		reason := fmt.Sprintf("the spec ended as %s before the check recorded a verdict", report.State)
		if report.Failure.Message != "" {
			reason += ": " + report.Failure.Message
		}
		record(label, result.Outcome{Verdict: result.Error, Reason: reason, Transcript: []result.Evidence{}})
		return
	}
}
