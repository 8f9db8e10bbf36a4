package loadgen_test

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

func TestLoadgen(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Load generator Suite")
}

// manifest is the suite's PKI, shared by every spec.
var manifest *pki.Manifest

var _ = BeforeSuite(func() {
	var err error
	manifest, err = pki.Init(pki.Options{Dir: filepath.Join(GinkgoT().TempDir(), "pki")})
	Expect(err).NotTo(HaveOccurred())
})
