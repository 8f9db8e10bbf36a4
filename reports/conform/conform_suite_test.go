package conform_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
)

// update rewrites the golden files from the current output:
// go test ./reports/conform -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestConform(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "reports/conform Suite")
}

// fixture loads testdata/result.json, a fixed result with one clause of
// each verdict and server lines that carry HTML, Markdown and control
// characters.
func fixture() *result.Result {
	r, err := result.Load(filepath.Join("testdata", "result.json"))
	Expect(err).NotTo(HaveOccurred())
	return r
}

// expectGolden compares got with testdata/name, or rewrites the file with
// -update.
func expectGolden(name string, got []byte) {
	path := filepath.Join("testdata", name)
	if *update {
		Expect(os.WriteFile(path, got, 0o644)).To(Succeed())
	}
	want, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred(), "golden file %s is missing; create it with go test ./reports/conform -update", path)
	Expect(string(got)).To(Equal(string(want)), "output differs from %s; if the change is intended, rerun with -update and review the diff", path)
}
