package specs

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/probe"
)

// TestJudgingClauseNamesTheClauseOfARejection uses Gomega without Ginkgo,
// because a Ginkgo spec in this binary would join the dry run of
// TestSpecLabelsNameCatalogueClauses.
func TestJudgingClauseNamesTheClauseOfARejection(t *testing.T) {
	g := NewWithT(t)
	mail := "MAIL FROM:<conformance@example.test> MPC=per/individual"
	cases := []struct {
		command string
		code    int
		want    string
	}{
		{greetingStep, 554, "rfc5321-4.3.1-greeting-220"},
		{"RSET", 500, "rfc5321-4.1.1.5-rset-250"},
		{"NOOP", 502, "rfc5321-4.1.1.9-noop-250"},
		{"MAIL FROM:<conformance@example.test> MPC=mpc/individual", 550, "4.5-mpc-individual-accepted"},
		{mail, 555, "4.4.3-mpc-result-codes"},
		{mail, 501, "4.4.3-mpc-result-codes"},
		{"RCPT TO:<postmaster@example.test>", 553, "4.4.3-mpc-result-codes"},
		// 550 and 451 are the MPC result codes of section 4.4.3, so a
		// policy that rejects the value breaks no clause.
		{mail, 550, ""},
		{mail, 451, ""},
		{"RCPT TO:<postmaster@example.test>", 550, ""},
		{"MAIL FROM:<conformance@example.test>", 555, ""},
		{"DATA", 554, ""},
		{endOfDataStep, 554, ""},
		{"AUTH PLAIN as user", 535, ""},
	}
	for _, tc := range cases {
		got := judgingClause(tc.command, probe.Reply{Code: tc.code})
		g.Expect(got).To(Equal(tc.want), "%q got %d", tc.command, tc.code)
		if got != "" {
			_, ok := catalogue.ByID(got)
			g.Expect(ok).To(BeTrue(), "%s is not in the catalogue", got)
		}
	}
}

// TestDescribeStepNamesTheStepsWithoutACommand checks the words for the
// greeting and the end of data, and the length of a long line.
func TestDescribeStepNamesTheStepsWithoutACommand(t *testing.T) {
	g := NewWithT(t)
	g.Expect(describeStep(greetingStep)).To(Equal("the greeting"))
	g.Expect(describeStep(endOfDataStep)).To(Equal("the end of data"))
	g.Expect(describeStep("DATA")).To(Equal("DATA"))
	long := "NOOP " + strings.Repeat("x", 200)
	g.Expect(describeStep(long)).To(Equal("NOOP (a 207-octet line with CRLF)"))
}

// TestSystemPortRangeEndsAt1023 checks the boundary of the system ports of
// RFC 6335 in the reason of 4.1-private-alternative-port.
func TestSystemPortRangeEndsAt1023(t *testing.T) {
	g := NewWithT(t)

	g.Expect(systemPortRange(25)).To(Equal("inside the system port range 0-1023 (RFC 6335)"))
	g.Expect(systemPortRange(1023)).To(HavePrefix("inside"))
	g.Expect(systemPortRange(1024)).To(HavePrefix("outside"))
	g.Expect(systemPortRange(2025)).To(Equal("outside the system port range 0-1023 (RFC 6335)"))
}
