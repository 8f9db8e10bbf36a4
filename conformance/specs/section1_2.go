package specs

import (
	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// section1_2 checks draft section 1.2, Terminology: a certificate from a
// public CA does not make a connection private.
func section1_2() {
	Describe("1.2 Terminology", func() {
		clause("1.2-public-ca-not-private-ca", []string{"private"}, func(c *Check) {
			// no-ptr is signed by the public CA, and its source address has no
			// PTR record, so only a private-connection exemption from the PTR
			// check could admit it.
			id, err := identity(pki.CertNoPTR)
			if err != nil {
				c.Error("%v", err)
				return
			}
			c.expectRejected(privateListener, rejection{label: "public-CA certificate without PTR on the private listener", id: id, ehlo: id.CN})
		})
	})
}
