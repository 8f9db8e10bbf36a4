package specs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// CA names of the test PKI.
const (
	publicCA  = pki.PublicCA
	privateCA = pki.PrivateCA
)

// Identity is a client certificate with the source address it connects
// from.
type Identity struct {
	// Name is the certificate's name in the PKI manifest, or a description
	// of a certificate the suite issued for one check.
	Name string
	CN   string
	// Source is the loopback address to connect from; the zero Addr lets
	// the system choose.
	Source netip.Addr
	// PTR is the name the PKI zone gives Source, or "" if it has none.
	PTR string
	// Cert is nil for a connection without a client certificate.
	Cert *tls.Certificate
}

// String describes the identity for reasons, such as
// "client (CN client.example.test from 127.0.0.2)".
func (id Identity) String() string {
	if id.Cert == nil {
		return "no client certificate"
	}
	source := "any address"
	if id.Source.IsValid() {
		source = id.Source.String()
	}
	return fmt.Sprintf("%s (CN %s from %s)", id.Name, id.CN, source)
}

// identity returns the PKI certificate called name with its source
// address.
func identity(name string) (Identity, error) {
	m := current().PKI
	entry, err := m.Cert(name)
	if err != nil {
		return Identity{}, err
	}
	cert, err := m.TLSCertificate(name)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Name: name, CN: entry.CN, PTR: entry.PTR, Cert: &cert}
	if entry.SourceAddr != "" {
		id.Source, err = netip.ParseAddr(entry.SourceAddr)
		if err != nil {
			return Identity{}, fmt.Errorf("certificate %q has the invalid source address %q in the PKI manifest: %w", name, entry.SourceAddr, err)
		}
	}
	return id, nil
}

// validClient returns the client certificate that every check accepts.
func validClient() (Identity, error) {
	return identity(pki.CertClient)
}

// issueIdentity mints a client certificate from one of the PKI's CAs for a
// single check, without touching the PKI folder.
func issueIdentity(name, issuer, cn string, source netip.Addr) (Identity, error) {
	issued, err := current().PKI.Issue(pki.IssueRequest{
		Issuer:      issuer,
		CommonName:  cn,
		DNSNames:    []string{cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Identity{}, fmt.Errorf("issue a certificate for %s from %s: %w", cn, issuer, err)
	}
	cert, err := issued.TLSCertificate()
	if err != nil {
		return Identity{}, err
	}
	return Identity{Name: name, CN: cn, Source: source, Cert: &cert}, nil
}
