package run

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// These tests never call Run or List: both call RunSpecs, which this test
// binary calls already. The end-to-end tests of cmd/amtpkit run them.
func TestRun(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "conformance/run Suite")
}
