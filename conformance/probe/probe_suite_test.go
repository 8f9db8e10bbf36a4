package probe_test

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// manifest is the test PKI shared by every spec. Specs only read it.
var manifest *pki.Manifest

func TestProbe(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "conformance/probe Suite")
}

var _ = BeforeSuite(func() {
	var err error
	manifest, err = pki.Init(pki.Options{Dir: filepath.Join(GinkgoT().TempDir(), "pki")})
	Expect(err).NotTo(HaveOccurred())
})
