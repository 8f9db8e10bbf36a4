package specs

import (
	. "github.com/onsi/ginkgo/v2"
)

// section5_2 checks draft section 5.2, Rewriting MPC Values: a message
// that the server relays from its private listener to the suite's AMTP
// sink keeps its MPC value, octet for octet.
func section5_2() {
	Describe("5.2 Rewriting MPC Values", func() {
		clause("5.2-no-rewrite", []string{"private"}, func(c *Check) {
			checkRelayedMPCParameter(c, "ngo/customer")
		})
	})
}
