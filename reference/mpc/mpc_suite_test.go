package mpc_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestMPC(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "mpc Suite")
}
