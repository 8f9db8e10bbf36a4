package queue

// This file is in package queue to reach parseKernelVersion. It imports
// Ginkgo and Gomega by name because their dot-imports would collide with
// the Pending state.

import (
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
)

var _ = ginkgo.DescribeTable("parseKernelVersion",
	func(release string, major, minor int, ok bool) {
		gotMajor, gotMinor, gotOK := parseKernelVersion(release)
		gomega.Expect(gotOK).To(gomega.Equal(ok))
		if ok {
			gomega.Expect(gotMajor).To(gomega.Equal(major))
			gomega.Expect(gotMinor).To(gomega.Equal(minor))
		}
	},
	ginkgo.Entry("distribution suffix", "6.18.44-fc-v1252", 6, 18, true),
	ginkgo.Entry("release candidate", "5.8-rc1", 5, 8, true),
	ginkgo.Entry("plus sign", "4.19+", 4, 19, true),
	ginkgo.Entry("no minor", "6", 0, 0, false),
	ginkgo.Entry("letters", "linux.x", 0, 0, false),
)
