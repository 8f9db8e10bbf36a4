package mpcsyntax_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestMPCSyntax(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "conformance/mpcsyntax Suite")
}
