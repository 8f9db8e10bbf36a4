// Package router decides how mail for a recipient domain leaves the
// server, and whether it may leave at all.
//
// Routes, in order of precedence: a local domain is delivered to Maildir; a
// domain with a configured route goes to that route's smarthost, either over
// a private network connection (draft-weinman-amtp-03 section 7, with a
// private-CA client certificate and no SRV lookup) or to a non-AMTP SMTP
// gateway; any other domain goes over a public network connection to the
// next hop found by its _amtp._tcp SRV records (section 4.3.1).
//
// Section 5.1 forbids relaying a message that arrived over a public network
// connection over another public network connection, so for such a message
// only local delivery and configured routes are allowed.
package router

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the transport by which a message reaches a recipient domain.
type Kind string

// Route kinds.
const (
	Local   Kind = "local"   // Maildir on this server
	Private Kind = "private" // AMTP to a configured smarthost over a private network connection
	Gateway Kind = "gateway" // SMTP to a configured non-AMTP gateway, with an MPC header field
	Public  Kind = "public"  // AMTP to the next hop of the domain's SRV records
)

// Origin is the kind of connection over which a message reached this server.
type Origin int

// Origins.
const (
	FromPublic  Origin = iota // a public network connection
	FromPrivate               // a private network connection (section 7)
	FromLocal                 // generated here, such as a bounce
)

// Route is a configured route to a smarthost.
type Route struct {
	// Domain is the recipient domain, or "*" for every domain that is not
	// local and has no route of its own.
	Domain    string
	Kind      Kind // Private or Gateway
	Smarthost string
}

// ErrRelayDenied means that section 5.1 forbids the route: the message
// arrived over a public network connection and would leave over another.
var ErrRelayDenied = errors.New("relay denied: a message from a public network connection cannot leave over another public network connection")

// Router maps recipient domains to routes.
type Router struct {
	local  map[string]bool
	routes map[string]Route
}

// New returns a router for the given local domains and routes.
func New(localDomains []string, routes []Route) (*Router, error) {
	r := &Router{local: map[string]bool{}, routes: map[string]Route{}}
	for _, d := range localDomains {
		r.local[strings.ToLower(d)] = true
	}
	for _, rt := range routes {
		if rt.Kind != Private && rt.Kind != Gateway {
			return nil, fmt.Errorf("route for %q: kind %q is invalid; use %q or %q", rt.Domain, rt.Kind, Private, Gateway)
		}
		d := strings.ToLower(rt.Domain)
		if r.local[d] {
			return nil, fmt.Errorf("route for %q: the domain is delivered locally; remove the route or the [[domain]]", rt.Domain)
		}
		if _, dup := r.routes[d]; dup {
			return nil, fmt.Errorf("route for %q is configured twice", rt.Domain)
		}
		rt.Domain = d
		r.routes[d] = rt
	}
	return r, nil
}

// IsLocal reports whether domain is delivered on this server.
func (r *Router) IsLocal(domain string) bool {
	return r.local[strings.ToLower(domain)]
}

// Lookup returns the route for a recipient domain and a message of the
// given origin, or ErrRelayDenied.
func (r *Router) Lookup(domain string, origin Origin) (Route, error) {
	d := strings.ToLower(domain)
	if r.local[d] {
		return Route{Domain: d, Kind: Local}, nil
	}
	// A gateway route also carries mail that arrived over a public network
	// connection; docs/interpretations.md explains why (item 8).
	if rt, ok := r.routes[d]; ok {
		return rt, nil
	}
	if rt, ok := r.routes["*"]; ok {
		rt.Domain = d
		return rt, nil
	}

	// Section 5.1: public in, public out is forbidden.
	if origin == FromPublic {
		return Route{}, fmt.Errorf("domain %s: %w", domain, ErrRelayDenied)
	}
	return Route{Domain: d, Kind: Public}, nil
}
