package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/netip"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/identity"
	"github.com/amtp-toolkit/amtp/reference/resolver"
)

// now is the connection time of every spec. Client certificates are valid
// from an hour before to a day after it unless a spec says otherwise.
var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

var serial atomic.Int64

// authority is a CA that can issue certificates.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey() *ecdsa.PrivateKey {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	return key
}

// issue signs template with the key of parent (or self-signs it when
// parent is nil) and returns the certificate and its key.
func issue(template *x509.Certificate, parent *authority) (*x509.Certificate, crypto.Signer) {
	GinkgoHelper()
	template.SerialNumber = big.NewInt(serial.Add(1))
	key := newKey()
	signer, issuer := crypto.Signer(key), template
	if parent != nil {
		signer, issuer = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, template, issuer, &key.PublicKey, signer)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return cert, key
}

// newCA returns a CA named cn: a root when parent is nil, else an
// intermediate issued by parent. Each change edits the template before it
// is signed.
func newCA(cn string, parent *authority, changes ...func(*x509.Certificate)) *authority {
	GinkgoHelper()
	template := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	for _, change := range changes {
		change(template)
	}
	cert, key := issue(template, parent)
	return &authority{cert: cert, key: key}
}

// clientCert returns a client certificate for cn issued by ca. Each
// change edits the template before it is signed.
func clientCert(ca *authority, cn string, changes ...func(*x509.Certificate)) *x509.Certificate {
	GinkgoHelper()
	template := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, change := range changes {
		change(template)
	}
	cert, _ := issue(template, ca)
	return cert
}

func pool(cas ...*authority) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.cert)
	}
	return p
}

// expectCheck expects err to be an *identity.Error of the given check.
func expectCheck(err error, check identity.Check) *identity.Error {
	GinkgoHelper()
	var idErr *identity.Error
	Expect(errors.As(err, &idErr)).To(BeTrue(), "error %v is not an *identity.Error", err)
	Expect(idErr.Check).To(Equal(check))
	return idErr
}

const clientName = "mx1.example.test"

var _ = Describe("Verifier", func() {
	var (
		publicCA  *authority
		privateCA *authority
		otherCA   *authority
		dns       *resolver.Fake
		verifier  *identity.Verifier
		addr      netip.Addr
		ctx       context.Context
	)

	BeforeEach(func() {
		publicCA = newCA("Public Test CA", nil)
		privateCA = newCA("Private Test CA", nil)
		otherCA = newCA("Unknown Test CA", nil)

		addr = netip.MustParseAddr("192.0.2.10")
		dns = resolver.NewFake()
		dns.AddPTR(addr, clientName)
		verifier = &identity.Verifier{Roots: pool(publicCA), Resolver: dns}
		ctx = context.Background()
	})

	verify := func(cert *x509.Certificate, ehlo string) (*identity.Identity, error) {
		return verifier.Verify(ctx, []*x509.Certificate{cert}, addr, ehlo, now)
	}

	It("accepts a good client", func() {
		cert := clientCert(publicCA, clientName)
		id, err := verify(cert, clientName)
		Expect(err).NotTo(HaveOccurred())
		Expect(id.CN).To(Equal(clientName))
		Expect(id.PTR).To(Equal([]string{clientName}))
		Expect(id.ChainToCA).To(Equal(publicCA.cert.Subject.String()))
		Expect(id.NotAfter).To(Equal(cert.NotAfter))
	})

	It("accepts a chain with an intermediate", func() {
		intermediate := newCA("Intermediate Test CA", publicCA)
		cert := clientCert(intermediate, clientName)
		id, err := verifier.Verify(ctx, []*x509.Certificate{cert, intermediate.cert}, addr, clientName, now)
		Expect(err).NotTo(HaveOccurred())
		Expect(id.ChainToCA).To(Equal(publicCA.cert.Subject.String()))
	})

	It("rejects a missing certificate", func() {
		_, err := verifier.Verify(ctx, nil, addr, clientName, now)
		expectCheck(err, identity.CheckCertificate)
	})

	It("rejects an expired certificate", func() {
		cert := clientCert(publicCA, clientName, func(c *x509.Certificate) {
			c.NotBefore = now.Add(-48 * time.Hour)
			c.NotAfter = now.Add(-time.Second)
		})
		_, err := verify(cert, clientName)
		idErr := expectCheck(err, identity.CheckExpired)
		Expect(idErr.Name).To(Equal(clientName))
		Expect(idErr.Temporary).To(BeFalse())
	})

	It("rejects a not-yet-valid certificate", func() {
		cert := clientCert(publicCA, clientName, func(c *x509.Certificate) {
			c.NotBefore = now.Add(time.Minute)
		})
		_, err := verify(cert, clientName)
		expectCheck(err, identity.CheckNotYetValid)
	})

	It("rejects an expired intermediate", func() {
		intermediate := newCA("Intermediate Test CA", publicCA, func(c *x509.Certificate) {
			c.NotBefore = now.Add(-48 * time.Hour)
			c.NotAfter = now.Add(-time.Hour)
		})
		cert := clientCert(intermediate, clientName)
		_, err := verifier.Verify(ctx, []*x509.Certificate{cert, intermediate.cert}, addr, clientName, now)
		expectCheck(err, identity.CheckExpired)
	})

	It("rejects a not-yet-valid intermediate", func() {
		intermediate := newCA("Intermediate Test CA", publicCA, func(c *x509.Certificate) {
			c.NotBefore = now.Add(time.Hour)
		})
		cert := clientCert(intermediate, clientName)
		_, err := verifier.Verify(ctx, []*x509.Certificate{cert, intermediate.cert}, addr, clientName, now)
		expectCheck(err, identity.CheckNotYetValid)
	})

	It("rejects an untrusted CA", func() {
		cert := clientCert(otherCA, clientName)
		_, err := verify(cert, clientName)
		expectCheck(err, identity.CheckUntrustedCA)
	})

	It("rejects a self-signed certificate", func() {
		cert, _ := issue(&x509.Certificate{
			Subject:     pkix.Name{CommonName: clientName},
			NotBefore:   now.Add(-time.Hour),
			NotAfter:    now.Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, nil)
		_, err := verify(cert, clientName)
		expectCheck(err, identity.CheckUntrustedCA)
	})

	It("rejects a server-only certificate", func() {
		cert := clientCert(publicCA, clientName, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		})
		_, err := verify(cert, clientName)
		expectCheck(err, identity.CheckClientAuth)
	})

	It("accepts clientAuth beside serverAuth", func() {
		cert := clientCert(publicCA, clientName, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		})
		_, err := verify(cert, clientName)
		Expect(err).NotTo(HaveOccurred())
	})

	It("rejects a key usage without digitalSignature", func() {
		cert := clientCert(publicCA, clientName, func(c *x509.Certificate) {
			c.KeyUsage = x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign
		})
		_, err := verify(cert, clientName)
		idErr := expectCheck(err, identity.CheckKeyUsage)
		Expect(idErr.Name).To(Equal(clientName))
	})

	It("accepts a certificate without key usage", func() {
		cert := clientCert(publicCA, clientName, func(c *x509.Certificate) {
			c.KeyUsage = 0
		})
		_, err := verify(cert, clientName)
		Expect(err).NotTo(HaveOccurred())
	})

	for _, order := range [][]string{{"evil.example.org", clientName}, {clientName, "evil.example.org"}} {
		It("rejects two CN attributes, "+order[1]+" last", func() {
			cert := clientCert(publicCA, "", func(c *x509.Certificate) {
				c.Subject = pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
					{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: order[0]},
					{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: order[1]},
				}}
			})
			Expect(cert.Subject.CommonName).To(Equal(order[1]))
			dns.AddPTR(addr, cert.Subject.CommonName)

			_, err := verify(cert, cert.Subject.CommonName)
			expectCheck(err, identity.CheckCNAmbiguous)
		})
	}

	It("rejects a single-label CN", func() {
		cert := clientCert(publicCA, "mx1")
		dns.AddPTR(addr, "mx1")
		_, err := verify(cert, "mx1")
		idErr := expectCheck(err, identity.CheckCNNotFQDN)
		Expect(idErr.Name).To(Equal("mx1"))
	})

	It("rejects an IP address CN", func() {
		cert := clientCert(publicCA, "192.0.2.10")
		_, err := verify(cert, "192.0.2.10")
		expectCheck(err, identity.CheckCNNotFQDN)
	})

	It("rejects an empty CN", func() {
		cert := clientCert(publicCA, "")
		_, err := verify(cert, clientName)
		expectCheck(err, identity.CheckCNNotFQDN)
	})

	It("rejects a missing PTR", func() {
		addr = netip.MustParseAddr("192.0.2.99")
		_, err := verify(clientCert(publicCA, clientName), clientName)
		idErr := expectCheck(err, identity.CheckNoPTR)
		Expect(idErr.Addr).To(Equal(addr))
		Expect(idErr.Temporary).To(BeFalse())
		Expect(idErr).To(MatchError(resolver.ErrNotFound))
	})

	It("rejects a PTR mismatch", func() {
		dns = resolver.NewFake()
		dns.AddPTR(addr, "mx2.example.test")
		verifier.Resolver = dns
		_, err := verify(clientCert(publicCA, clientName), clientName)
		idErr := expectCheck(err, identity.CheckPTRMismatch)
		Expect(idErr.Name).To(Equal(clientName))
		Expect(idErr).To(MatchError(ContainSubstring("mx2.example.test")))
	})

	It("rejects a PTR that only ends with the CN", func() {
		dns = resolver.NewFake()
		dns.AddPTR(addr, "evil-"+clientName)
		verifier.Resolver = dns
		_, err := verify(clientCert(publicCA, clientName), clientName)
		expectCheck(err, identity.CheckPTRMismatch)
	})

	It("rejects an EHLO mismatch", func() {
		_, err := verify(clientCert(publicCA, clientName), "mx2.example.test")
		idErr := expectCheck(err, identity.CheckEHLOMismatch)
		Expect(idErr.Name).To(Equal("mx2.example.test"))
	})

	It("rejects an address literal EHLO", func() {
		_, err := verify(clientCert(publicCA, clientName), "[192.0.2.10]")
		expectCheck(err, identity.CheckEHLOMismatch)
	})

	It("accepts one matching PTR among several", func() {
		dns = resolver.NewFake()
		dns.AddPTR(addr, "other.example.test", clientName+".", "third.example.test")
		verifier.Resolver = dns
		id, err := verify(clientCert(publicCA, clientName), clientName)
		Expect(err).NotTo(HaveOccurred())
		Expect(id.PTR).To(ConsistOf("other.example.test", clientName, "third.example.test"))
	})

	It("compares names without case", func() {
		dns = resolver.NewFake()
		dns.AddPTR(addr, "MX1.example.TEST")
		verifier.Resolver = dns
		cert := clientCert(publicCA, "Mx1.Example.Test")
		id, err := verify(cert, "mx1.EXAMPLE.test")
		Expect(err).NotTo(HaveOccurred())
		Expect(id.CN).To(Equal("Mx1.Example.Test"))
	})

	It("reports a temporary DNS failure", func() {
		dns.SetTemporaryError(addr.String())
		_, err := verify(clientCert(publicCA, clientName), clientName)
		idErr := expectCheck(err, identity.CheckDNSTemporary)
		Expect(idErr.Temporary).To(BeTrue())
		Expect(idErr).NotTo(MatchError(resolver.ErrNotFound))
	})

	It("looks up an IPv6 source", func() {
		addr = netip.MustParseAddr("2001:db8::2")
		dns.AddPTR(addr, clientName)
		id, err := verify(clientCert(publicCA, clientName), clientName)
		Expect(err).NotTo(HaveOccurred())
		Expect(id.PTR).To(Equal([]string{clientName}))
	})

	It("uses the PTR of the IPv6 address", func() {
		addr = netip.MustParseAddr("2001:db8::2")
		_, err := verify(clientCert(publicCA, clientName), clientName)
		idErr := expectCheck(err, identity.CheckNoPTR)
		Expect(idErr.Addr).To(Equal(addr))
	})

	It("compares the PTR of the IPv6 address", func() {
		addr = netip.MustParseAddr("2001:db8::2")
		dns.AddPTR(addr, "mx2.example.test")
		_, err := verify(clientCert(publicCA, clientName), clientName)
		expectCheck(err, identity.CheckPTRMismatch)
	})

	It("unmaps an IPv4-mapped address", func() {
		addr = netip.MustParseAddr("::ffff:192.0.2.10")
		_, err := verify(clientCert(publicCA, clientName), clientName)
		Expect(err).NotTo(HaveOccurred())
	})

	Context("with private roots", func() {
		BeforeEach(func() {
			verifier.PrivateRoots = pool(privateCA)
		})

		It("names a private-CA certificate", func() {
			_, err := verify(clientCert(privateCA, clientName), clientName)
			expectCheck(err, identity.CheckPrivateCA)
		})

		It("still rejects an unknown CA", func() {
			_, err := verify(clientCert(otherCA, clientName), clientName)
			expectCheck(err, identity.CheckUntrustedCA)
		})

		It("still accepts a public-CA certificate", func() {
			_, err := verify(clientCert(publicCA, clientName), clientName)
			Expect(err).NotTo(HaveOccurred())
		})
	})

	It("treats a private CA as unknown without private roots", func() {
		_, err := verify(clientCert(privateCA, clientName), clientName)
		expectCheck(err, identity.CheckUntrustedCA)
	})

	Context("with SkipPTR", func() {
		BeforeEach(func() {
			verifier = &identity.Verifier{Roots: pool(privateCA), Resolver: resolver.NewFake(), SkipPTR: true}
		})

		It("passes without a PTR", func() {
			id, err := verify(clientCert(privateCA, "laptop.example.test"), "laptop.example.test")
			Expect(err).NotTo(HaveOccurred())
			Expect(id.PTR).To(BeNil())
		})

		It("still checks the EHLO argument", func() {
			_, err := verify(clientCert(privateCA, "laptop.example.test"), "other.example.test")
			expectCheck(err, identity.CheckEHLOMismatch)
		})

		It("still checks the CN", func() {
			_, err := verify(clientCert(privateCA, "laptop"), "laptop")
			expectCheck(err, identity.CheckCNNotFQDN)
		})

		It("still checks the chain", func() {
			_, err := verify(clientCert(publicCA, "laptop.example.test"), "laptop.example.test")
			expectCheck(err, identity.CheckUntrustedCA)
		})
	})
})

var _ = Describe("Error", func() {
	It("names check, address and name", func() {
		err := &identity.Error{
			Check: identity.CheckPTRMismatch,
			Addr:  netip.MustParseAddr("192.0.2.10"),
			Name:  clientName,
			Err:   errors.New("no match"),
		}
		Expect(err.Error()).To(Equal(`identity check ptr_mismatch failed for 192.0.2.10 name "mx1.example.test": no match`))
	})

	It("leaves out an empty name", func() {
		err := &identity.Error{Check: identity.CheckCertificate, Addr: netip.MustParseAddr("2001:db8::2")}
		Expect(err.Error()).To(Equal("identity check certificate failed for 2001:db8::2"))
	})
})
