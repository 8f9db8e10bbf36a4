// Package resolver looks up the DNS records that AMTP depends on: PTR records
// for the client identity checks (draft-weinman-amtp-03 sections 4.2 and
// 4.3.2), SRV records for next-hop selection (section 4.3.1), and addresses.
package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Resolver is the DNS interface used by the reference server and client.
type Resolver interface {
	// LookupPTR returns the names of the PTR records for addr, from the
	// in-addr.arpa zone for IPv4 and the ip6.arpa zone for IPv6, each
	// without the trailing dot. It returns an error wrapping ErrNotFound
	// when the name does not exist or has no PTR record.
	LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error)

	// LookupSRV returns the SRV records of _service._proto.name, ordered
	// by priority and randomized by weight as RFC 2782 describes. It
	// returns an error wrapping ErrNotFound when there is none.
	LookupSRV(ctx context.Context, service, proto, name string) ([]*net.SRV, error)

	// LookupAddr returns the A and AAAA records of host. It returns an
	// error wrapping ErrNotFound when there is none.
	LookupAddr(ctx context.Context, host string) ([]netip.Addr, error)
}

// ErrNotFound reports an authoritative negative answer: the name does not
// exist or has no record of the requested type. Any other lookup error is
// temporary (a timeout, SERVFAIL, a refused connection) and callers should
// answer with a 4xx reply rather than treat it as a mismatch.
var ErrNotFound = errors.New("no such DNS record")
