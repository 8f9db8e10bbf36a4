// Package identity checks the identity of a client MTA before a session
// may go on, as draft-weinman-amtp-03 requires. The client certificate
// chains to a trusted CA and is within its validity dates (section 4.2).
// Its CN is a fully qualified domain name that matches the PTR record of
// the client's source address (sections 4.2 and 4.3.2). The EHLO argument
// agrees with both (section 4.4.2).
//
// The checks run on the tls.ConnectionState at EHLO, not in a TLS verify
// callback, because crypto/tls skips VerifyPeerCertificate on resumed
// sessions; the peer certificates of a resumed session are still in the
// connection state.
package identity

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/reference/resolver"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// Check names one identity check. Log lines and errors use these names.
type Check string

// Checks in the order in which Verify runs them.
const (
	CheckCertificate  Check = "certificate"    // a client certificate was presented
	CheckPrivateCA    Check = "private_ca"     // a private-CA certificate on a public listener
	CheckUntrustedCA  Check = "untrusted_ca"   // the chain does not lead to a trusted CA
	CheckExpired      Check = "expired"        // the connection is after NotAfter
	CheckNotYetValid  Check = "not_yet_valid"  // the connection is before NotBefore
	CheckClientAuth   Check = "no_client_auth" // the certificate lacks the clientAuth EKU
	CheckChain        Check = "chain"          // any other chain verification failure
	CheckKeyUsage     Check = "key_usage"      // the key usage does not allow digital signatures
	CheckCNAmbiguous  Check = "cn_ambiguous"   // the subject has more than one CN attribute
	CheckCNNotFQDN    Check = "cn_not_fqdn"    // the subject CN is not an FQDN
	CheckNoPTR        Check = "no_ptr"         // the source address has no PTR record
	CheckPTRMismatch  Check = "ptr_mismatch"   // no PTR name equals the CN
	CheckEHLOMismatch Check = "ehlo_mismatch"  // the EHLO argument differs from the CN
	CheckDNSTemporary Check = "dns_temporary"  // the PTR lookup failed temporarily
)

// Error is a failed identity check. Temporary reports a failure that may
// pass later (a DNS timeout or SERVFAIL); the server answers it with a 4xx
// reply instead of 504.
type Error struct {
	Check     Check
	Addr      netip.Addr
	Name      string // the CN, EHLO argument or PTR name involved
	Temporary bool
	Err       error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("identity check %s failed for %s", e.Check, e.Addr)
	if e.Name != "" {
		msg += fmt.Sprintf(" name %q", e.Name)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Verifier holds what the checks need for one listener.
type Verifier struct {
	// Roots are the CAs this listener trusts for client certificates.
	Roots *x509.CertPool

	// PrivateRoots, when set on a public listener, are the private CAs of
	// section 7. A certificate that chains to one of them is rejected with
	// CheckPrivateCA, so the log distinguishes it from an unknown CA.
	PrivateRoots *x509.CertPool

	// Resolver performs the PTR lookups.
	Resolver resolver.Resolver

	// SkipPTR disables the PTR checks, as section 7 allows on a private
	// network connection. The EHLO argument must still equal the CN.
	SkipPTR bool
}

// Identity is a client that passed every check.
type Identity struct {
	CN        string   // subject CN of the client certificate
	PTR       []string // PTR names of the source address; nil when skipped
	ChainToCA string   // subject of the CA that anchors the chain
	NotAfter  time.Time
}

// Verify runs the checks on the peer certificates of a TLS connection from
// addr, at time now, for the EHLO argument ehlo. It returns the client's
// identity, or an *Error naming the first check that failed.
func (v *Verifier) Verify(ctx context.Context, peerCerts []*x509.Certificate, addr netip.Addr, ehlo string, now time.Time) (*Identity, error) {
	// Section 4.2: the client presents a valid X.509 certificate.
	if len(peerCerts) == 0 {
		return nil, &Error{Check: CheckCertificate, Addr: addr, Err: errors.New("no client certificate")}
	}
	leaf := peerCerts[0]
	cn := leaf.Subject.CommonName

	// Section 4.2: signed by a CA recognized by the transaction partner,
	// issued before and expiring after the date of the connection.
	chains, err := v.verifyChain(peerCerts, now)
	if err != nil {
		return nil, &Error{Check: classifyChainError(err, leaf, now, v.PrivateRoots, peerCerts), Addr: addr, Name: cn, Err: err}
	}

	// RFC 5280 section 4.2.1.3: a key whose keyUsage extension leaves out
	// digitalSignature must not sign, and a TLS client signs the handshake
	// with it. crypto/x509 checks only the extended key usage.
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, &Error{Check: CheckKeyUsage, Addr: addr, Name: cn, Err: errors.New("the certificate's key usage lacks digitalSignature, which a TLS client certificate needs")}
	}

	// The CN is the client's identity in sections 4.2 and 4.4.2, so it must
	// be unique. With several CN attributes, crypto/x509 keeps the last in
	// Subject.CommonName while other programs may read the first, and
	// each would see another host.
	if n := countCN(leaf.Subject); n > 1 {
		return nil, &Error{Check: CheckCNAmbiguous, Addr: addr, Name: cn, Err: fmt.Errorf("the certificate subject has %d CN attributes; issue one with a single CN", n)}
	}

	// Section 4.2: the CN holds a fully qualified domain name.
	if !smtp.IsFQDN(cn) {
		return nil, &Error{Check: CheckCNNotFQDN, Addr: addr, Name: cn, Err: fmt.Errorf("certificate CN %q is not a fully qualified domain name", cn)}
	}

	id := &Identity{CN: cn, NotAfter: leaf.NotAfter}
	if len(chains) > 0 && len(chains[0]) > 0 {
		id.ChainToCA = chains[0][len(chains[0])-1].Subject.String()
	}

	// Sections 4.2 and 4.3.2: the PTR record of the source address
	// matches the CN. Section 7 lets a private listener skip this.
	if !v.SkipPTR {
		names, err := v.checkPTR(ctx, addr, cn)
		if err != nil {
			return nil, err
		}
		id.PTR = names
	}

	// Sections 4.3.2 and 4.4.2: the EHLO argument matches the certificate
	// and, through it, the PTR record.
	if !strings.EqualFold(ehlo, cn) {
		return nil, &Error{Check: CheckEHLOMismatch, Addr: addr, Name: ehlo, Err: fmt.Errorf("EHLO argument %q does not match certificate CN %q", ehlo, cn)}
	}
	return id, nil
}

// countCN returns the number of CN attributes in subject.
func countCN(subject pkix.Name) int {
	n := 0
	for _, attr := range subject.Names {
		if attr.Type.Equal(oidCommonName) {
			n++
		}
	}
	return n
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

func (v *Verifier) verifyChain(peerCerts []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
	intermediates := x509.NewCertPool()
	for _, c := range peerCerts[1:] {
		intermediates.AddCert(c)
	}
	return peerCerts[0].Verify(x509.VerifyOptions{
		Roots:         v.Roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// classifyChainError maps a chain verification error to the check that
// failed, so operators see "expired" rather than a generic x509 error.
func classifyChainError(err error, leaf *x509.Certificate, now time.Time, privateRoots *x509.CertPool, peerCerts []*x509.Certificate) Check {
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.Expired:
			// The error names the certificate outside its validity
			// period, which may be an intermediate rather than the leaf.
			expired := leaf
			if invalid.Cert != nil {
				expired = invalid.Cert
			}
			if now.Before(expired.NotBefore) {
				return CheckNotYetValid
			}
			return CheckExpired
		case x509.IncompatibleUsage:
			return CheckClientAuth
		}
		return CheckChain
	}

	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		if privateRoots != nil && chainsTo(peerCerts, privateRoots, now) {
			return CheckPrivateCA
		}
		return CheckUntrustedCA
	}
	return CheckChain
}

// chainsTo reports whether the certificate chains to one of roots, ignoring
// key usage.
func chainsTo(peerCerts []*x509.Certificate, roots *x509.CertPool, now time.Time) bool {
	intermediates := x509.NewCertPool()
	for _, c := range peerCerts[1:] {
		intermediates.AddCert(c)
	}
	_, err := peerCerts[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

func (v *Verifier) checkPTR(ctx context.Context, addr netip.Addr, cn string) ([]string, error) {
	names, err := v.Resolver.LookupPTR(ctx, addr.Unmap())
	if errors.Is(err, resolver.ErrNotFound) {
		return nil, &Error{Check: CheckNoPTR, Addr: addr, Name: cn, Err: err}
	}
	if err != nil {
		return nil, &Error{Check: CheckDNSTemporary, Addr: addr, Name: cn, Temporary: true, Err: err}
	}
	if len(names) == 0 {
		return nil, &Error{Check: CheckNoPTR, Addr: addr, Name: cn, Err: errors.New("the PTR lookup returned no names")}
	}

	for _, name := range names {
		if strings.EqualFold(strings.TrimSuffix(name, "."), cn) {
			return names, nil
		}
	}
	return nil, &Error{Check: CheckPTRMismatch, Addr: addr, Name: cn, Err: fmt.Errorf("PTR names %v do not match certificate CN %q", names, cn)}
}
