package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/amtp-toolkit/amtp/reference/resolver"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// NextHop is one server of a domain, from an _amtp._tcp SRV record.
type NextHop struct {
	// Target is the SRV target without the trailing dot. The server
	// certificate must be valid for this name.
	Target   string
	Port     uint16
	Priority uint16
	Weight   uint16
	// Addrs are the A and AAAA records of Target.
	Addrs []netip.Addr
}

// LookupNextHops returns the servers that take AMTP mail for domain, from
// its _amtp._tcp SRV records (section 4.3.1), in the order in which a
// client tries them. They are sorted by priority and, within a priority,
// kept in the order r returns them. The resolver.Resolver contract
// randomizes that order by weight as RFC 2782 describes. Each hop carries
// the addresses of its target.
//
// The error is an *Error. It is permanent, wrapping ErrNoService, when the
// domain has no SRV record, because AMTP never falls back to MX or address
// records; when its only record has the target "." (RFC 2782: the service
// is decidedly not available); and when no target has an address. It is
// temporary when a lookup failed for another reason, such as a timeout or
// SERVFAIL. A target whose address lookup fails is left out as long as
// another target resolves.
//
// Section 7 forbids SRV lookups for private network connections: dial the
// configured server directly there.
func LookupNextHops(ctx context.Context, r resolver.Resolver, domain string) ([]NextHop, error) {
	domain = strings.TrimSuffix(domain, ".")
	srvName := "_amtp._tcp." + domain
	if !smtp.IsDomain(domain) {
		return nil, &Error{Op: "SRV lookup", Server: domain, Err: fmt.Errorf("%w: %q is not a domain name", ErrNoService, domain)}
	}

	records, err := r.LookupSRV(ctx, "amtp", "tcp", domain)
	switch {
	case errors.Is(err, resolver.ErrNotFound):
		return nil, &Error{Op: "SRV lookup", Server: domain,
			Err: fmt.Errorf("%w: no %s SRV record, and AMTP does not fall back to MX or address records: %w", ErrNoService, srvName, err)}
	case err != nil:
		return nil, &Error{Op: "SRV lookup", Server: domain, Temporary: true, Err: err}
	case len(records) == 1 && isRootTarget(records[0].Target):
		return nil, &Error{Op: "SRV lookup", Server: domain,
			Err: fmt.Errorf("%w: the only %s SRV record has the target \".\", which means the service is not available", ErrNoService, srvName)}
	}

	// The resolver already orders by priority; sorting again guards
	// against one that does not, and keeps the weighted order within a
	// priority.
	slices.SortStableFunc(records, func(a, b *net.SRV) int {
		return int(a.Priority) - int(b.Priority)
	})

	var (
		hops      []NextHop
		failures  []error
		temporary bool
	)
	for _, record := range records {
		target := strings.TrimSuffix(record.Target, ".")
		if isRootTarget(record.Target) || record.Port == 0 {
			continue // unusable among other records
		}

		addrs, err := r.LookupAddr(ctx, target)
		if err != nil {
			failures = append(failures, err)
			temporary = temporary || !errors.Is(err, resolver.ErrNotFound)
			continue
		}
		hops = append(hops, NextHop{
			Target:   target,
			Port:     record.Port,
			Priority: record.Priority,
			Weight:   record.Weight,
			Addrs:    addrs,
		})
	}

	if len(hops) == 0 {
		cause := fmt.Errorf("%w: no target of the %s SRV records has an address", ErrNoService, srvName)
		if len(failures) > 0 {
			cause = fmt.Errorf("%w: %w", cause, errors.Join(failures...))
		}
		return nil, &Error{Op: "address lookup", Server: domain, Temporary: temporary, Err: cause}
	}
	return hops, nil
}

// isRootTarget reports whether an SRV target is the root name ".".
func isRootTarget(target string) bool {
	return target == "." || target == ""
}

// DialNextHop connects to the first next hop that completes EHLO (and
// AUTH, when cfg.Auth is set): it tries every address of every hop in
// order, verifying each server certificate against the hop's Target.
//
// When every attempt fails, the *Error returned joins the errors of all
// attempts. It is temporary when any attempt failed temporarily, so that a
// message waits for a server that is down instead of bouncing because
// another server rejected it.
func DialNextHop(ctx context.Context, hops []NextHop, cfg Config) (*Conn, error) {
	var (
		failures  []error
		temporary bool
	)
	for _, hop := range hops {
		for _, addr := range hop.Addrs {
			address := net.JoinHostPort(addr.String(), strconv.Itoa(int(hop.Port)))
			conn, err := Dial(ctx, address, hop.Target, cfg)
			if err == nil {
				return conn, nil
			}
			if cfg.Logger != nil {
				cfg.Logger.Info("next hop failed; trying the next one", "target", hop.Target, "addr", address, "priority", hop.Priority, "error", err)
			}
			failures = append(failures, err)
			temporary = temporary || IsTemporary(err)
			if ctx.Err() != nil {
				return nil, &Error{Op: "connect", Server: hop.Target, Temporary: true, Err: errors.Join(failures...)}
			}
		}
	}

	if len(failures) == 0 {
		return nil, &Error{Op: "connect", Err: fmt.Errorf("%w: no next hop with an address to connect to", ErrNoService)}
	}
	names := make([]string, len(hops))
	for i, hop := range hops {
		names[i] = hop.Target
	}
	return nil, &Error{Op: "connect", Server: strings.Join(names, ", "), Temporary: temporary, Err: errors.Join(failures...)}
}
