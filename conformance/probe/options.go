package probe

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Defaults for Options.
const (
	DefaultStepTimeout = 10 * time.Second
	// DefaultMaxLineLength is the maximum length of one reply line,
	// including its line ending. RFC 5321 section 4.5.3.1.5 limits reply
	// lines to 512 octets, so the default tolerates long lines but stops
	// a server that never ends one.
	DefaultMaxLineLength = 4096
	DefaultMaxReplyLines = 256
)

// minLineLength is the shortest MaxLineLength that fits a reply code, a
// separator and CRLF.
const minLineLength = 6

// ErrInvalidOptions is wrapped by every error that Dial returns for a bad
// Options value.
var ErrInvalidOptions = errors.New("invalid probe options")

// Options configures Dial. Zero fields take their defaults.
type Options struct {
	// Target is the server address as host:port.
	Target string
	// Source is the local address to connect from, such as 127.0.0.5 or
	// ::1. The zero Addr lets the operating system choose.
	Source netip.Addr

	// Certificate is the client certificate to present. It is sent
	// whenever the server requests one, even if the CertificateRequest
	// names other CAs. Nil presents no certificate.
	Certificate *tls.Certificate
	// RootCAs are the trust anchors for the server chain. Nil uses the
	// system pool.
	RootCAs *x509.CertPool
	// ServerName is sent as SNI and checked against the server
	// certificate. It defaults to the host part of Target. Go sends no SNI
	// for an IP address.
	ServerName string
	// InsecureSkipVerify accepts any server chain. The chain is recorded
	// either way.
	InsecureSkipVerify bool
	// MinVersion and MaxVersion bound the TLS version, such as
	// tls.VersionTLS12. Zero keeps the crypto/tls defaults, which exclude
	// TLS 1.0 and 1.1 unless MinVersion names them.
	MinVersion, MaxVersion uint16
	// SessionCache enables session resumption across Dial calls that
	// share it.
	SessionCache tls.ClientSessionCache
	// PlainTCP skips TLS, to probe what a server does with cleartext.
	PlainTCP bool

	// StepTimeout bounds each step that has no context deadline: the TCP
	// connect, the TLS handshake, one ReadReply, ExpectClose and one
	// Send. Default DefaultStepTimeout.
	StepTimeout time.Duration
	// MaxLineLength is the maximum length in octets of one reply line,
	// including its line ending. Default DefaultMaxLineLength.
	MaxLineLength int
	// MaxReplyLines is the maximum number of lines in one reply. Default
	// DefaultMaxReplyLines.
	MaxReplyLines int
	// MaxEventSize is the maximum number of bytes stored for one
	// transcript event. Default DefaultMaxEventSize.
	MaxEventSize int
	// MaxTranscriptSize is the maximum number of bytes stored for the
	// whole transcript. Default DefaultMaxTranscriptSize.
	MaxTranscriptSize int
}

// withDefaults fills in zero fields and validates the result.
func (o Options) withDefaults() (Options, error) {
	if o.Target == "" {
		return o, fmt.Errorf("%w: Target is empty; set it to host:port", ErrInvalidOptions)
	}
	host, _, err := net.SplitHostPort(o.Target)
	if err != nil {
		return o, fmt.Errorf("%w: Target %q is not host:port: %v", ErrInvalidOptions, o.Target, err)
	}
	if o.ServerName == "" {
		o.ServerName = host
	}
	if o.Certificate != nil && len(o.Certificate.Certificate) == 0 {
		return o, fmt.Errorf("%w: Certificate contains no certificate; set it to nil to present none", ErrInvalidOptions)
	}
	if o.MinVersion != 0 && o.MaxVersion != 0 && o.MinVersion > o.MaxVersion {
		return o, fmt.Errorf("%w: MinVersion %s is above MaxVersion %s", ErrInvalidOptions,
			tls.VersionName(o.MinVersion), tls.VersionName(o.MaxVersion))
	}

	if o.StepTimeout == 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.MaxLineLength == 0 {
		o.MaxLineLength = DefaultMaxLineLength
	}
	if o.MaxReplyLines == 0 {
		o.MaxReplyLines = DefaultMaxReplyLines
	}
	if o.MaxEventSize == 0 {
		o.MaxEventSize = DefaultMaxEventSize
	}
	if o.MaxTranscriptSize == 0 {
		o.MaxTranscriptSize = DefaultMaxTranscriptSize
	}

	switch {
	case o.StepTimeout < 0:
		return o, fmt.Errorf("%w: StepTimeout %s is negative", ErrInvalidOptions, o.StepTimeout)
	case o.MaxLineLength < minLineLength:
		return o, fmt.Errorf("%w: MaxLineLength %d is below %d", ErrInvalidOptions, o.MaxLineLength, minLineLength)
	case o.MaxReplyLines < 1:
		return o, fmt.Errorf("%w: MaxReplyLines %d is below 1", ErrInvalidOptions, o.MaxReplyLines)
	case o.MaxEventSize < 1:
		return o, fmt.Errorf("%w: MaxEventSize %d is below 1", ErrInvalidOptions, o.MaxEventSize)
	case o.MaxTranscriptSize < 1:
		return o, fmt.Errorf("%w: MaxTranscriptSize %d is below 1", ErrInvalidOptions, o.MaxTranscriptSize)
	}
	return o, nil
}
