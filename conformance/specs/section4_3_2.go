package specs

import (
	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// section4_3_2 checks draft section 4.3.2, IN-ADDR.ARPA zone (Reverse
// DNS): the client's source address has a PTR record that matches both
// its certificate and its EHLO argument.
func section4_3_2() {
	Describe("4.3.2 IN-ADDR.ARPA zone (Reverse DNS)", func() {
		clause("4.3.2-client-without-ptr-rejected", nil, func(c *Check) {
			expectIdentityRejected(c, pki.CertNoPTR, "source address without PTR record")
		})

		clause("4.3.2-ptr-matches-certificate", nil, func(c *Check) {
			expectIdentityRejected(c, pki.CertPTRMismatch, "PTR record naming another host than the CN")
		})

		clause("4.3.2-ptr-matches-ehlo", nil, func(c *Check) {
			expectEHLOMismatchRejected(c)
		})
	})
}

// expectEHLOMismatchRejected connects with the valid client certificate,
// whose CN equals the PTR record of its address, and sends EHLO with
// another fully-qualified host name.
func expectEHLOMismatchRejected(c *Check) {
	id, err := validClient()
	if err != nil {
		c.Error("%v", err)
		return
	}
	other := "elsewhere." + current().PKI.Domain
	c.expectRejected(publicListener, rejection{label: "EHLO with another host name", id: id, ehlo: other})
}
