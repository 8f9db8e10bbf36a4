package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DNS is a Resolver that sends every query to one DNS server, over UDP and,
// when a response is truncated, over TCP.
//
// It is built on net.Resolver with PreferGo, which reads /etc/hosts before it
// queries DNS, as the system resolver does. So the PTR lookup of an address
// listed there, such as 127.0.0.1, returns the names in /etc/hosts, and so
// does the address lookup of a host listed there, such as localhost. Tests
// should use other loopback addresses (127.0.0.2 and up) and host names.
type DNS struct {
	server   string
	timeout  time.Duration
	resolver *net.Resolver
}

var _ Resolver = (*DNS)(nil)

// NewDNS returns a resolver that queries the DNS server at server (IP:PORT)
// and ignores the servers in /etc/resolv.conf. timeout bounds each lookup,
// including the retries of the Go resolver.
func NewDNS(server string, timeout time.Duration) *DNS {
	d := &DNS{server: server, timeout: timeout}
	d.resolver = &net.Resolver{
		PreferGo: true,
		Dial:     d.dial,
	}
	return d
}

// dial connects to the configured server, whatever address the Go resolver
// took from /etc/resolv.conf. The Go resolver requests "tcp" after a
// truncated UDP response.
func (d *DNS) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	dialer := net.Dialer{Timeout: d.timeout}
	if strings.HasPrefix(network, "tcp") {
		return dialer.DialContext(ctx, "tcp", d.server)
	}
	return dialer.DialContext(ctx, "udp", d.server)
}

// Server returns the address of the DNS server that d queries.
func (d *DNS) Server() string {
	return d.server
}

// LookupPTR returns the PTR names of addr without the trailing dot.
func (d *DNS) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	names, err := d.resolver.LookupAddr(ctx, addr.Unmap().String())
	if err != nil {
		return nil, d.wrapError(err, "PTR", addr.String())
	}

	for i, name := range names {
		names[i] = strings.TrimSuffix(name, ".")
	}
	return names, nil
}

// LookupSRV returns the SRV records of _service._proto.name as net.Resolver
// orders them: by priority, and randomized by weight within a priority.
// Targets keep their trailing dot. A lone record with target "." means that
// the service is not available (RFC 2782), and it is returned as is.
func (d *DNS) LookupSRV(ctx context.Context, service, proto, name string) ([]*net.SRV, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	_, records, err := d.resolver.LookupSRV(ctx, service, proto, absolute(name))
	if err != nil {
		return nil, d.wrapError(err, "SRV", "_"+service+"._"+proto+"."+name)
	}
	return records, nil
}

// LookupAddr returns the A and AAAA records of host. IPv4 addresses are
// returned in their 4-byte form. An IP address literal is returned without a
// query.
func (d *DNS) LookupAddr(ctx context.Context, host string) ([]netip.Addr, error) {
	if literal, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{literal.Unmap()}, nil
	}

	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	addrs, err := d.resolver.LookupNetIP(ctx, "ip", absolute(host))
	if err != nil {
		return nil, d.wrapError(err, "A/AAAA", host)
	}

	for i, addr := range addrs {
		addrs[i] = addr.Unmap()
	}
	return addrs, nil
}

// wrapError adds the record type, the name and the server to a lookup error.
// A *net.DNSError with IsNotFound becomes an error that wraps ErrNotFound.
// The *net.DNSError stays in the chain with its Server field set to the
// server that was queried, because the Go resolver fills it from
// /etc/resolv.conf.
func (d *DNS) wrapError(err error, recordType, name string) error {
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		return fmt.Errorf("%s lookup of %s at DNS server %s: %w", recordType, name, d.server, err)
	}

	corrected := *dnsErr
	corrected.Server = d.server

	if corrected.IsNotFound {
		return fmt.Errorf("%s lookup of %s: %w: %w", recordType, name, ErrNotFound, &corrected)
	}
	return fmt.Errorf("%s lookup of %s: %w; check that the DNS server at %s is running and serves this name",
		recordType, name, &corrected, d.server)
}

// absolute appends the root label to name, so that the Go resolver does not
// try the search domains of /etc/resolv.conf.
func absolute(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}
