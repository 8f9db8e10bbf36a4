package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

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

	queries *queryLog
}

// maxLoggedQueries bounds the query log; the oldest queries go first.
const maxLoggedQueries = 10000

// queryLog is a slog.Handler that keeps the questions of the DNS server's
// "dns: query" records and discards every other record.
//
// NOTE: it depends on the message and the "question" attribute that
// fixtures/dnsserver logs at debug level for each query it answers.
type queryLog struct {
	mu      sync.Mutex
	entries []queryEntry
}

type queryEntry struct {
	at time.Time
	// question is the name and type, such as
	// "_amtp._tcp.sink.example.test. SRV", in lower case.
	question string
}

func (l *queryLog) Enabled(context.Context, slog.Level) bool { return true }

func (l *queryLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "dns: query" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "question" {
			return true
		}
		l.mu.Lock()
		l.entries = append(l.entries, queryEntry{at: r.Time, question: strings.ToLower(a.Value.String())})
		if len(l.entries) > maxLoggedQueries {
			l.entries = l.entries[len(l.entries)-maxLoggedQueries:]
		}
		l.mu.Unlock()
		return false
	})
	return nil
}

func (l *queryLog) WithAttrs([]slog.Attr) slog.Handler { return l }

func (l *queryLog) WithGroup(string) slog.Handler { return l }

// Queries returns the questions the server answered since the time given,
// oldest first, such as "_amtp._tcp.sink.example.test. srv".
func (z *zoneServer) Queries(since time.Time) []string {
	z.queries.mu.Lock()
	defer z.queries.mu.Unlock()
	var questions []string
	for _, e := range z.queries.entries {
		if !e.at.Before(since) {
			questions = append(questions, e.question)
		}
	}
	return questions
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
	z := &zoneServer{base: base + loopback6Zone(m), ptrs: map[netip.Addr][]string{}, overrides: slices.Clone(extra), queries: &queryLog{}}

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
	server, err := dnsserver.Start(ctx, addr, zone, slog.New(z.queries))
	if err != nil {
		return nil, dnsStartError(addr, err)
	}
	z.server = server
	return z, nil
}

// dnsStartError explains why the suite's DNS server could not start on
// addr. The server under test resolves through addr, so the message
// points to --dns-listen for a taken address, not to another port of the
// suite's choice.
func dnsStartError(addr string, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("start the suite's DNS server on %s: %w", addr, err)
	}

	// The socket error alone, without the advice of the DNS package, which
	// does not fit a server under test that is configured with addr.
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		err = opErr
	}
	return fmt.Errorf("start the suite's DNS server: %w: another process (such as 'amtpkit dns serve') is listening on %s; "+
		"stop it, or give the server under test and the suite another address with --dns-listen "+
		"(--dns external uses a DNS server that you run, but skips the relay and SRV checks)", err, addr)
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
