package main

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestAmtpkit(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "amtpkit Suite")
}
