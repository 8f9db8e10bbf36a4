package run

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// zoneServer serves the PKI's zone file with the suite's changes. It
// implements specs.DNS.
type zoneServer struct {
	server *dnsserver.Server
	// base is the PKI's zone file with the ip6.arpa zone of ::1 added.
	base string

	mu sync.Mutex
	// ptrs replaces the PTR records of an address; an empty list removes
	// them.
	ptrs      map[netip.Addr][]string
	overrides []string
}

// startZoneServer serves the PKI's zone on addr, with the extra zone file
// lines added to the PKI's domain and listed in the overrides. It points
// the PTR record of the cn-not-fqdn certificate's address at its
// single-label CN, so that only a check of the CN form can reject that
// certificate.
func startZoneServer(ctx context.Context, m *pki.Manifest, addr string, extra ...string) (*zoneServer, error) {
	text, err := os.ReadFile(m.Path(m.ZoneFile))
	if err != nil {
		return nil, fmt.Errorf("read the PKI zone file: %w", err)
	}
	base := string(text)
	if len(extra) > 0 {
		base += "\n; Added by the conformance suite: the routes to its AMTP sinks.\n" + strings.Join(extra, "\n") + "\n"
	}
	z := &zoneServer{base: base + loopback6Zone(m), ptrs: map[netip.Addr][]string{}, overrides: slices.Clone(extra)}

	entry, err := m.Cert(pki.CertCNNotFQDN)
	if err == nil && entry.SourceAddr != "" {
		source, err := netip.ParseAddr(entry.SourceAddr)
		if err != nil {
			return nil, fmt.Errorf("certificate %q has the invalid source address %q: %w", entry.Name, entry.SourceAddr, err)
		}
		z.ptrs[source] = []string{entry.CN + "."}
		z.overrides = append(z.overrides, fmt.Sprintf("%s PTR %s. (instead of %s.)", source, entry.CN, entry.PTR))
	}

	zone, err := z.zone()
	if err != nil {
		return nil, err
	}
	server, err := dnsserver.Start(ctx, addr, zone, nil)
	if err != nil {
		return nil, fmt.Errorf("start the suite's DNS server: %w; pass another --dns-listen, or --dns external if you run one", err)
	}
	z.server = server
	return z, nil
}

// loopback6Zone returns an ip6.arpa zone for ::1 alone, without records,
// so that SetPTR can give ::1 a PTR record.
func loopback6Zone(m *pki.Manifest) string {
	name := reverseName(netip.IPv6Loopback())
	server, err := m.Cert(pki.CertServer)
	ns := "mx." + m.Domain + "."
	if err == nil {
		ns = server.CN + "."
	}
	return fmt.Sprintf("\n; Added by the conformance suite: the ip6.arpa zone of ::1.\n%s IN SOA %s hostmaster.%s. 1 3600 600 86400 300\n%s IN NS %s\n",
		name, ns, m.Domain, name, ns)
}

// zone builds the zone from the base text and the PTR replacements.
func (z *zoneServer) zone() (*dnsserver.Zone, error) {
	z.mu.Lock()
	defer z.mu.Unlock()

	owners := map[string]netip.Addr{}
	for addr := range z.ptrs {
		owners[reverseName(addr)] = addr
	}
	var lines []string
	for _, line := range strings.Split(z.base, "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 3 && slices.Contains(fields, "PTR") {
			if _, replaced := owners[strings.ToLower(fields[0])]; replaced {
				continue
			}
		}
		lines = append(lines, line)
	}
	for addr, names := range z.ptrs {
		for _, name := range names {
			lines = append(lines, fmt.Sprintf("%s IN PTR %s", reverseName(addr), name))
		}
	}

	zone, err := dnsserver.ParseZone(strings.NewReader(strings.Join(lines, "\n")+"\n"), "", "PKI zone with the suite's changes")
	if err != nil {
		return nil, fmt.Errorf("build the suite's DNS zone: %w", err)
	}
	return zone, nil
}

// Addr returns the address the server listens on.
func (z *zoneServer) Addr() string {
	return z.server.Addr()
}

// SetPTR replaces the PTR records of addr with names until restore runs.
func (z *zoneServer) SetPTR(addr netip.Addr, names ...string) (restore func(), err error) {
	z.mu.Lock()
	previous, had := z.ptrs[addr]
	z.ptrs[addr] = names
	z.mu.Unlock()

	undo := func() {
		z.mu.Lock()
		if had {
			z.ptrs[addr] = previous
		} else {
			delete(z.ptrs, addr)
		}
		z.mu.Unlock()
		if zone, err := z.zone(); err == nil {
			z.server.SetZone(zone)
		}
	}

	zone, err := z.zone()
	if err != nil {
		undo()
		return nil, err
	}
	z.server.SetZone(zone)
	return undo, nil
}

// PTROverrides lists the run-wide changes to the PKI zone.
func (z *zoneServer) PTROverrides() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return slices.Clone(z.overrides)
}

// Close stops the server.
func (z *zoneServer) Close() error {
	return z.server.Close()
}

// reverseName returns the in-addr.arpa or ip6.arpa name of addr, with the
// trailing dot, in lower case.
func reverseName(addr netip.Addr) string {
	var name strings.Builder
	if addr.Is4() {
		b := addr.As4()
		fmt.Fprintf(&name, "%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0])
		return name.String()
	}
	b := addr.As16()
	for i := len(b) - 1; i >= 0; i-- {
		fmt.Fprintf(&name, "%x.%x.", b[i]&0x0f, b[i]>>4)
	}
	name.WriteString("ip6.arpa.")
	return name.String()
}
