package client_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
)

// amtpdPath is the amtpd binary that the tests deliver to.
var amtpdPath string

func TestClient(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "AMTP client")
}

var _ = BeforeSuite(func() {
	var err error
	amtpdPath, err = gexec.Build("github.com/amtp-toolkit/amtp/cmd/amtpd")
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	gexec.CleanupBuildArtifacts()
})
