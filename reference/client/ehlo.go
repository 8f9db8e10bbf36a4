package client

import (
	"strconv"
	"strings"
)

// Extensions are the SMTP service extensions of an EHLO reply that the
// client uses.
type Extensions struct {
	// Pipelining is PIPELINING (RFC 2920).
	Pipelining bool
	// SizeOffered is SIZE (RFC 1870), and Size its limit in octets; Size
	// is 0 when the server offers SIZE without a limit.
	SizeOffered bool
	Size        int64
	// EightBitMIME is 8BITMIME (RFC 6152).
	EightBitMIME bool
	// EnhancedStatusCodes is ENHANCEDSTATUSCODES (RFC 2034).
	EnhancedStatusCodes bool
	// Auth lists the SASL mechanisms of AUTH (RFC 4954) in upper case.
	Auth []string
	// Keywords maps every keyword of the reply, in upper case, to its
	// parameters, the MPC lines included.
	Keywords map[string]string
}

// OffersAuth reports whether the server offers the SASL mechanism.
func (e Extensions) OffersAuth(mechanism string) bool {
	for _, m := range e.Auth {
		if strings.EqualFold(m, mechanism) {
			return true
		}
	}
	return false
}

// parseExtensions reads the extension lines of an EHLO reply, the lines
// after the first. Keywords are compared without regard to case (RFC 5321
// section 4.1.1.1). A SIZE parameter that is not a number is treated as no
// limit, so the client never refuses a message because of it.
func parseExtensions(lines []string) Extensions {
	ext := Extensions{Keywords: make(map[string]string)}
	for _, line := range lines {
		keyword, params, _ := strings.Cut(strings.TrimSpace(line), " ")
		keyword = strings.ToUpper(keyword)
		if keyword == "" {
			continue
		}
		params = strings.TrimSpace(params)
		ext.Keywords[keyword] = params

		switch keyword {
		case "PIPELINING":
			ext.Pipelining = true
		case "SIZE":
			ext.SizeOffered = true
			if n, err := strconv.ParseInt(params, 10, 64); err == nil && n > 0 {
				ext.Size = n
			}
		case "8BITMIME":
			ext.EightBitMIME = true
		case "ENHANCEDSTATUSCODES":
			ext.EnhancedStatusCodes = true
		case "AUTH":
			for _, mechanism := range strings.Fields(params) {
				ext.Auth = append(ext.Auth, strings.ToUpper(mechanism))
			}
		}
	}
	return ext
}
