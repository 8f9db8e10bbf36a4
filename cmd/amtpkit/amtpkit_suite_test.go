package main

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
)

func TestAmtpkit(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "amtpkit Suite")
}

// builtBinaries maps a command name to the binary that builtBinary built.
var builtBinaries = map[string]string{}

// builtBinary returns the path of the amtpkit or amtpd binary, building it
// on first use, so that the whole suite links each command once.
func builtBinary(command string) string {
	GinkgoHelper()
	if path, ok := builtBinaries[command]; ok {
		return path
	}

	path, err := gexec.Build("github.com/amtp-toolkit/amtp/cmd/" + command)
	Expect(err).NotTo(HaveOccurred())
	builtBinaries[command] = path
	return path
}

var _ = AfterSuite(gexec.CleanupBuildArtifacts)
