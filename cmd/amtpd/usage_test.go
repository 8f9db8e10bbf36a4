package main_test

import (
	"os/exec"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
)

var _ = Describe("amtpd command line", func() {
	run := func(args ...string) *gexec.Session {
		session, err := gexec.Start(exec.Command(amtpdPath, args...), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(session, 10*time.Second).Should(gexec.Exit())
		return session
	}

	DescribeTable("rejects invalid arguments with exit code 2",
		func(args []string, want string) {
			s := run(args...)

			Expect(s.ExitCode()).To(Equal(2))
			Expect(string(s.Err.Contents())).To(ContainSubstring(want))
		},
		Entry("no arguments", nil, "amtpd: missing --config FILE; docs/amtpd.example.toml describes the format"),
		Entry("an extra argument", []string{"--config", "x.toml", "extra"}, `amtpd: unexpected argument "extra"`),
		Entry("a missing file", []string{"--config", "/nonexistent/amtpd.toml"}, "/nonexistent/amtpd.toml"),
	)

	It("describes itself in --help", func() {
		s := run("--help")

		Expect(s.ExitCode()).To(Equal(0))
		Expect(string(s.Err.Contents())).To(ContainSubstring("amtpd is the reference AMTP server"))
		Expect(string(s.Err.Contents())).To(ContainSubstring("-config file"))
	})
})
