package probe

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"
)

// TLSFacts are the TLS parameters and certificates of one connection, and
// the errors of its handshake.
type TLSFacts struct {
	// Enabled is false in plain-TCP mode.
	Enabled           bool `json:"enabled"`
	HandshakeComplete bool `json:"handshake_complete"`
	// Version is the negotiated version name, such as "TLS 1.3".
	Version   string `json:"version,omitempty"`
	VersionID uint16 `json:"version_id,omitempty"`
	// CipherSuite is the negotiated suite name, such as
	// "TLS_AES_128_GCM_SHA256".
	CipherSuite   string `json:"cipher_suite,omitempty"`
	CipherSuiteID uint16 `json:"cipher_suite_id,omitempty"`
	// Curve is the key exchange group, such as "X25519MLKEM768". It is
	// empty for RSA key exchange.
	Curve string `json:"curve,omitempty"`
	// Resumed is true if the handshake resumed an earlier session.
	Resumed bool `json:"resumed"`
	// ServerName is the name that was sent as SNI and checked against the
	// server certificate.
	ServerName string `json:"server_name,omitempty"`

	// PeerCertificates is the server chain as sent, leaf first. It is
	// recorded even when verification fails.
	PeerCertificates []CertFacts `json:"peer_certificates,omitempty"`
	// Verified is true if the server chain passed verification against
	// Options.RootCAs and ServerName. It stays false with
	// InsecureSkipVerify.
	Verified    bool   `json:"verified"`
	VerifyError string `json:"verify_error,omitempty"`

	// CertificateRequested is true if the server sent a
	// CertificateRequest. A resumed TLS 1.3 handshake has none.
	CertificateRequested bool `json:"certificate_requested"`
	// AcceptableCAs are the CA names of the CertificateRequest.
	AcceptableCAs []string `json:"acceptable_cas,omitempty"`
	// ClientCertificate is the certificate the probe presented, or nil if
	// it presented none.
	ClientCertificate *CertFacts `json:"client_certificate,omitempty"`

	// HandshakeError is the text of the handshake error, if any.
	HandshakeError string `json:"handshake_error,omitempty"`
	// Alert is the TLS alert the server sent, during the handshake or
	// later. In TLS 1.3 the client handshake ends before the server checks
	// the client certificate, so a rejection arrives at the first read.
	Alert *Alert `json:"alert,omitempty"`
}

// CertFacts describe one X.509 certificate.
type CertFacts struct {
	Subject        string    `json:"subject"`
	CommonName     string    `json:"common_name"`
	Issuer         string    `json:"issuer"`
	DNSNames       []string  `json:"dns_names,omitempty"`
	IPAddresses    []string  `json:"ip_addresses,omitempty"`
	EmailAddresses []string  `json:"email_addresses,omitempty"`
	URIs           []string  `json:"uris,omitempty"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
	SerialNumber   string    `json:"serial_number"`
	// SHA256 is the hex SHA-256 fingerprint of the DER encoding.
	SHA256 string `json:"sha256"`
}

// Alert is a TLS alert received from the server.
type Alert struct {
	// Code is the alert number from the TLS alert registry, such as 48,
	// or -1 if the error text names an alert missing from the crypto/tls
	// alert table.
	Code int `json:"code"`
	// Name is the registry name, such as "unknown_ca". It is empty for a
	// code that the registry does not list.
	Name string `json:"name,omitempty"`
	// Text is the error text, such as "remote error: tls: unknown
	// certificate authority".
	Text string `json:"text"`
}

// newCertFacts extracts the facts of cert.
func newCertFacts(cert *x509.Certificate) CertFacts {
	facts := CertFacts{
		Subject:        cert.Subject.String(),
		CommonName:     cert.Subject.CommonName,
		Issuer:         cert.Issuer.String(),
		DNSNames:       cert.DNSNames,
		EmailAddresses: cert.EmailAddresses,
		NotBefore:      cert.NotBefore,
		NotAfter:       cert.NotAfter,
	}
	for _, ip := range cert.IPAddresses {
		facts.IPAddresses = append(facts.IPAddresses, ip.String())
	}
	for _, uri := range cert.URIs {
		facts.URIs = append(facts.URIs, uri.String())
	}
	if cert.SerialNumber != nil {
		facts.SerialNumber = cert.SerialNumber.Text(16)
	}
	sum := sha256.Sum256(cert.Raw)
	facts.SHA256 = hex.EncodeToString(sum[:])
	return facts
}

// leafFacts returns the facts of the leaf of cert, parsing it if Leaf is
// not set.
func leafFacts(cert *tls.Certificate) (*CertFacts, error) {
	leaf := cert.Leaf
	if leaf == nil {
		parsed, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, err
		}
		leaf = parsed
	}
	facts := newCertFacts(leaf)
	return &facts, nil
}

// distinguishedName decodes a DER-encoded X.501 name from a
// CertificateRequest. It returns the hex DER when the name does not parse.
func distinguishedName(der []byte) string {
	var sequence pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &sequence); err != nil || len(rest) > 0 {
		return "DER:" + hex.EncodeToString(der)
	}
	var name pkix.Name
	name.FillFromRDNSequence(&sequence)
	return name.String()
}

// alertNames maps TLS alert codes to their names in the IANA TLS Alerts
// registry (RFC 8446 section 6 and RFC 5246 section 7.2).
var alertNames = map[int]string{
	0:   "close_notify",
	10:  "unexpected_message",
	20:  "bad_record_mac",
	21:  "decryption_failed",
	22:  "record_overflow",
	30:  "decompression_failure",
	40:  "handshake_failure",
	41:  "no_certificate",
	42:  "bad_certificate",
	43:  "unsupported_certificate",
	44:  "certificate_revoked",
	45:  "certificate_expired",
	46:  "certificate_unknown",
	47:  "illegal_parameter",
	48:  "unknown_ca",
	49:  "access_denied",
	50:  "decode_error",
	51:  "decrypt_error",
	60:  "export_restriction",
	70:  "protocol_version",
	71:  "insufficient_security",
	80:  "internal_error",
	86:  "inappropriate_fallback",
	90:  "user_canceled",
	100: "no_renegotiation",
	109: "missing_extension",
	110: "unsupported_extension",
	111: "certificate_unobtainable",
	112: "unrecognized_name",
	113: "bad_certificate_status_response",
	114: "bad_certificate_hash_value",
	115: "unknown_psk_identity",
	116: "certificate_required",
	120: "no_application_protocol",
	121: "ech_required",
}

// goAlertCodes maps the alert descriptions that crypto/tls prints (the
// alertText table in crypto/tls/alert.go of Go 1.26) to alert codes.
var goAlertCodes = map[string]int{
	"close notify":                    0,
	"unexpected message":              10,
	"bad record MAC":                  20,
	"decryption failed":               21,
	"record overflow":                 22,
	"decompression failure":           30,
	"handshake failure":               40,
	"bad certificate":                 42,
	"unsupported certificate":         43,
	"revoked certificate":             44,
	"expired certificate":             45,
	"unknown certificate":             46,
	"illegal parameter":               47,
	"unknown certificate authority":   48,
	"access denied":                   49,
	"error decoding message":          50,
	"error decrypting message":        51,
	"export restriction":              60,
	"protocol version not supported":  70,
	"insufficient security level":     71,
	"internal error":                  80,
	"inappropriate fallback":          86,
	"user canceled":                   90,
	"no renegotiation":                100,
	"missing extension":               109,
	"unsupported extension":           110,
	"certificate unobtainable":        111,
	"unrecognized name":               112,
	"bad certificate status response": 113,
	"bad certificate hash value":      114,
	"unknown PSK identity":            115,
	"certificate required":            116,
	"no application protocol":         120,
	"encrypted client hello required": 121,
}

// remoteAlert returns the alert that the server sent if err reports one.
//
// crypto/tls reports a received alert over TCP as a *net.OpError with Op
// "remote error" around an unexported alert type, whose text is
// "tls: <description>" or "tls: alert(<code>)". It returns tls.AlertError
// only on QUIC connections, which this function also accepts.
func remoteAlert(err error) *Alert {
	if err == nil {
		return nil
	}
	var alertErr tls.AlertError
	if errors.As(err, &alertErr) {
		return newAlert(int(alertErr), err.Error())
	}

	var description string
	var opErr *net.OpError
	switch {
	case errors.As(err, &opErr) && opErr.Op == "remote error" && opErr.Err != nil:
		description = opErr.Err.Error()
	case strings.Contains(err.Error(), "remote error: tls: "):
		text := err.Error()
		description = text[strings.Index(text, "remote error: ")+len("remote error: "):]
	default:
		return nil
	}

	description = strings.TrimPrefix(description, "tls: ")
	if inner, ok := strings.CutPrefix(description, "alert("); ok {
		code, err := strconv.Atoi(strings.TrimSuffix(inner, ")"))
		if err == nil {
			return newAlert(code, "remote error: tls: "+description)
		}
	}
	code, ok := goAlertCodes[description]
	if !ok {
		return &Alert{Code: -1, Text: "remote error: tls: " + description}
	}
	return newAlert(code, "remote error: tls: "+description)
}

func newAlert(code int, text string) *Alert {
	return &Alert{Code: code, Name: alertNames[code], Text: text}
}
