package main

import (
	"bytes"
	"context"
	"runtime"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("amtpkit command line", func() {
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	It("prints the version", func() {
		code, stdout, _ := run("version")

		Expect(code).To(Equal(0))
		Expect(stdout).To(HavePrefix("amtpkit "))
		Expect(stdout).To(ContainSubstring("checks draft-weinman-amtp-03"))
		Expect(stdout).To(ContainSubstring(runtime.Version()))
	})

	It("rejects an argument to version", func() {
		code, _, stderr := run("version", "extra")

		Expect(code).To(Equal(2))
		Expect(stderr).To(ContainSubstring(`unexpected argument "extra"`))
	})

	It("names an invalid option in one line", func() {
		code, _, stderr := run("demo", "--bogus")

		Expect(code).To(Equal(2))
		Expect(stderr).To(Equal("amtpkit demo: flag provided but not defined: -bogus; run 'amtpkit demo --help' for the options\n"))
	})

	It("prints no usage error prefix", func() {
		_, _, stderr := run("dns", "serve")

		Expect(stderr).To(HavePrefix("amtpkit dns: missing --zone FILE"))
		Expect(stderr).NotTo(ContainSubstring("usage error"))
	})
})
