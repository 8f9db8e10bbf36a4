package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// handshake runs the TLS client handshake over c.raw and records its
// facts.
func (c *Conn) handshake(ctx context.Context) error {
	c.factsMu.Lock()
	c.facts.Enabled = true
	c.facts.ServerName = c.opts.ServerName
	c.factsMu.Unlock()

	tlsConn := tls.Client(c.raw, c.tlsConfig())
	stepCtx, cancel := context.WithDeadline(ctx, c.stepDeadline(ctx))
	defer cancel()

	c.transcript.Note("TLS handshake started: server name %q, %s", c.opts.ServerName, c.versionRange())
	c.raw.startTap()
	err := tlsConn.HandshakeContext(stepCtx)
	tapped, received := c.raw.stopTap()
	if err != nil {
		c.recordHandshakeFailure(err, tapped, received)
		return err
	}

	state := tlsConn.ConnectionState()
	c.factsMu.Lock()
	c.facts.HandshakeComplete = state.HandshakeComplete
	c.facts.VersionID = state.Version
	c.facts.Version = tls.VersionName(state.Version)
	c.facts.CipherSuiteID = state.CipherSuite
	c.facts.CipherSuite = tls.CipherSuiteName(state.CipherSuite)
	if state.CurveID != 0 {
		c.facts.Curve = state.CurveID.String()
	}
	c.facts.Resumed = state.DidResume
	facts := c.facts
	c.factsMu.Unlock()

	session := "new session"
	if facts.Resumed {
		session = "resumed session"
	}
	curve := facts.Curve
	if curve == "" {
		curve = "no key exchange group"
	}
	c.transcript.Note("TLS handshake done: %s, %s, %s, %s", facts.Version, facts.CipherSuite, curve, session)
	c.conn = tlsConn
	return nil
}

func (c *Conn) recordHandshakeFailure(err error, tapped []byte, received int) {
	alert := remoteAlert(err)
	c.factsMu.Lock()
	c.facts.HandshakeError = err.Error()
	if alert != nil {
		c.facts.Alert = alert
	}
	c.factsMu.Unlock()

	c.transcript.Note("TLS handshake failed: %v", err)
	if alert != nil {
		c.transcript.Note("TLS alert from server: %s (%d)", alert.Name, alert.Code)
	}
	if received > 0 {
		c.transcript.Note("received %s from the server during the handshake, starting with: %s",
			byteCount(received), escapeForRender(tapped))
	}
}

// versionRange describes the TLS versions that the probe offers.
func (c *Conn) versionRange() string {
	if c.opts.MinVersion == 0 && c.opts.MaxVersion == 0 {
		return "the crypto/tls default versions"
	}
	name := func(version uint16) string {
		if version == 0 {
			return "default"
		}
		return tls.VersionName(version)
	}
	return "versions " + name(c.opts.MinVersion) + " to " + name(c.opts.MaxVersion)
}

// tlsConfig returns the client configuration for c.opts.
func (c *Conn) tlsConfig() *tls.Config {
	return &tls.Config{
		ServerName: c.opts.ServerName,
		// verifyServer checks the chain instead of crypto/tls, so that the
		// chain is recorded even when it fails verification.
		InsecureSkipVerify:   true,
		VerifyConnection:     c.verifyServer,
		GetClientCertificate: c.clientCertificate,
		MinVersion:           c.opts.MinVersion,
		MaxVersion:           c.opts.MaxVersion,
		ClientSessionCache:   c.opts.SessionCache,
	}
}

// verifyServer records the server chain and verifies it the way crypto/tls
// does for a client: against RootCAs, for ServerName, with the other
// certificates as intermediates. crypto/tls calls it for full and resumed
// handshakes.
func (c *Conn) verifyServer(state tls.ConnectionState) error {
	chain := make([]CertFacts, 0, len(state.PeerCertificates))
	for i, cert := range state.PeerCertificates {
		facts := newCertFacts(cert)
		chain = append(chain, facts)
		c.transcript.Note("server certificate %d: subject %q, issuer %q, DNS names [%s], valid from %s to %s",
			i, facts.Subject, facts.Issuer, strings.Join(facts.DNSNames, " "),
			facts.NotBefore.UTC().Format("2006-01-02T15:04:05Z"), facts.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
	}
	c.factsMu.Lock()
	c.facts.PeerCertificates = chain
	c.factsMu.Unlock()

	if c.opts.InsecureSkipVerify {
		c.transcript.Note("server certificate chain not verified: InsecureSkipVerify is set")
		return nil
	}

	err := verifyChain(state.PeerCertificates, c.opts.RootCAs, c.opts.ServerName)
	c.factsMu.Lock()
	if err != nil {
		c.facts.VerifyError = err.Error()
	} else {
		c.facts.Verified = true
	}
	c.factsMu.Unlock()

	if err != nil {
		c.transcript.Note("server certificate chain failed verification: %v", err)
		return &tls.CertificateVerificationError{UnverifiedCertificates: state.PeerCertificates, Err: err}
	}
	c.transcript.Note("server certificate chain verified for %q", c.opts.ServerName)
	return nil
}

func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, serverName string) error {
	if len(certs) == 0 {
		return errors.New("the server sent no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		DNSName:       serverName,
		Intermediates: x509.NewCertPool(),
	}
	for _, cert := range certs[1:] {
		opts.Intermediates.AddCert(cert)
	}
	_, err := certs[0].Verify(opts)
	return err
}

// clientCertificate returns Options.Certificate whenever the server
// requests one, whatever CAs its CertificateRequest names. crypto/tls would otherwise
// send no certificate if none matches those CAs.
func (c *Conn) clientCertificate(request *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	acceptable := make([]string, 0, len(request.AcceptableCAs))
	for _, der := range request.AcceptableCAs {
		acceptable = append(acceptable, distinguishedName(der))
	}

	var presented *CertFacts
	var parseErr error
	if c.opts.Certificate != nil {
		presented, parseErr = leafFacts(c.opts.Certificate)
	}

	c.factsMu.Lock()
	c.facts.CertificateRequested = true
	c.facts.AcceptableCAs = acceptable
	c.facts.ClientCertificate = presented
	c.factsMu.Unlock()

	if len(acceptable) == 0 {
		c.transcript.Note("server requested a client certificate from any CA")
	} else {
		c.transcript.Note("server requested a client certificate from one of: %s", strings.Join(acceptable, "; "))
	}

	switch {
	case c.opts.Certificate == nil:
		c.transcript.Note("presenting no client certificate")
		return &tls.Certificate{}, nil
	case parseErr != nil:
		c.transcript.Note("presenting a client certificate that does not parse: %v", parseErr)
	default:
		c.transcript.Note("presenting client certificate: subject %q, issuer %q", presented.Subject, presented.Issuer)
	}
	return c.opts.Certificate, nil
}
