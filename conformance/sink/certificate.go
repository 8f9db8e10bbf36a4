package sink

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// IssueCertificate issues a server certificate for host and addr from the
// PKI's CA issuer: pki.PublicCA, which servers under test trust for the
// next hops they find by SRV, or pki.PrivateCA for a private route. It
// writes nothing to the PKI folder.
func IssueCertificate(m *pki.Manifest, issuer, host string, addr netip.Addr) (tls.Certificate, error) {
	issued, err := m.Issue(pki.IssueRequest{
		Issuer:      issuer,
		CommonName:  host,
		DNSNames:    []string{host},
		IPAddresses: []net.IP{net.IP(addr.AsSlice())},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue the sink certificate for %s from the %s: %w", host, issuer, err)
	}
	return issued.TLSCertificate()
}
