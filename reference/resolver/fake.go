package resolver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// fakeServer is the Server field of the *net.DNSError values that Fake
// returns.
const fakeServer = "fake resolver"

// Fake is an in-memory Resolver for unit tests. Names match without regard
// to case or a trailing dot. Errors have the same shape as those of DNS: a
// missing record wraps ErrNotFound and a *net.DNSError with IsNotFound, and
// SetTemporaryError injects a *net.DNSError with IsTemporary. Fake is safe
// for concurrent use. Create it with NewFake.
type Fake struct {
	mu       sync.Mutex
	ptr      map[netip.Addr][]string
	srv      map[string][]net.SRV
	addrs    map[string][]netip.Addr
	failures map[string]error
}

var _ Resolver = (*Fake)(nil)

// NewFake returns a Fake with no records.
func NewFake() *Fake {
	return &Fake{
		ptr:      make(map[netip.Addr][]string),
		srv:      make(map[string][]net.SRV),
		addrs:    make(map[string][]netip.Addr),
		failures: make(map[string]error),
	}
}

// AddPTR adds PTR names for addr. A trailing dot on a name is removed, as
// LookupPTR of DNS removes it.
func (f *Fake) AddPTR(addr netip.Addr, names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()

	key := addr.Unmap()
	for _, name := range names {
		f.ptr[key] = append(f.ptr[key], strings.TrimSuffix(name, "."))
	}
}

// AddSRV adds SRV records for _service._proto.name.
func (f *Fake) AddSRV(service, proto, name string, records ...net.SRV) {
	f.mu.Lock()
	defer f.mu.Unlock()

	key := srvName(service, proto, name)
	f.srv[key] = append(f.srv[key], records...)
}

// AddAddr adds A or AAAA records for host.
func (f *Fake) AddAddr(host string, addrs ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()

	key := normalize(host)
	for _, addr := range addrs {
		f.addrs[key] = append(f.addrs[key], addr.Unmap())
	}
}

// SetError makes every lookup of name fail with err until SetError is called
// again with a nil err. For a PTR lookup, name is the address in text form
// (such as "192.0.2.1"). For an SRV lookup it is the whole
// "_service._proto.domain" name, and for an address lookup it is the host.
func (f *Fake) SetError(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	if err == nil {
		delete(f.failures, normalize(name))
		return
	}
	f.failures[normalize(name)] = err
}

// SetTemporaryError makes every lookup of name fail as it does when the DNS
// server answers SERVFAIL, until SetError(name, nil) is called. The error
// does not wrap ErrNotFound. See SetError for the form of name.
func (f *Fake) SetTemporaryError(name string) {
	f.SetError(name, &net.DNSError{
		Err:         "server misbehaving",
		Name:        name,
		Server:      fakeServer,
		IsTemporary: true,
	})
}

// LookupPTR returns copies of the names added with AddPTR for addr.
func (f *Fake) LookupPTR(_ context.Context, addr netip.Addr) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	addr = addr.Unmap()
	if err := f.failure("PTR", addr.String()); err != nil {
		return nil, err
	}

	names := f.ptr[addr]
	if len(names) == 0 {
		return nil, notFound("PTR", addr.String())
	}
	return slices.Clone(names), nil
}

// LookupSRV returns copies of the records added with AddSRV, sorted by
// priority. Records of equal priority keep the order in which they were
// added, so tests get a fixed order where DNS randomizes it by weight.
func (f *Fake) LookupSRV(_ context.Context, service, proto, name string) ([]*net.SRV, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	key := srvName(service, proto, name)
	if err := f.failure("SRV", key); err != nil {
		return nil, err
	}

	records := f.srv[key]
	if len(records) == 0 {
		return nil, notFound("SRV", key)
	}

	result := make([]*net.SRV, len(records))
	for i := range records {
		record := records[i]
		result[i] = &record
	}
	slices.SortStableFunc(result, func(a, b *net.SRV) int {
		return int(a.Priority) - int(b.Priority)
	})
	return result, nil
}

// LookupAddr returns copies of the addresses added with AddAddr for host. An
// IP address literal is returned as is, as DNS does.
func (f *Fake) LookupAddr(_ context.Context, host string) ([]netip.Addr, error) {
	if literal, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{literal.Unmap()}, nil
	}

	f.mu.Lock()
	defer f.mu.Unlock()

	if err := f.failure("A/AAAA", host); err != nil {
		return nil, err
	}

	addrs := f.addrs[normalize(host)]
	if len(addrs) == 0 {
		return nil, notFound("A/AAAA", host)
	}
	return slices.Clone(addrs), nil
}

// failure returns the error set with SetError for name, with context, or nil.
// The caller must hold f.mu.
func (f *Fake) failure(recordType, name string) error {
	err, ok := f.failures[normalize(name)]
	if !ok {
		return nil
	}
	return fmt.Errorf("%s lookup of %s: %w", recordType, name, err)
}

func notFound(recordType, name string) error {
	return fmt.Errorf("%s lookup of %s: %w: %w", recordType, name, ErrNotFound, &net.DNSError{
		Err:        "no such host",
		Name:       name,
		Server:     fakeServer,
		IsNotFound: true,
	})
}

func srvName(service, proto, name string) string {
	return normalize("_" + service + "._" + proto + "." + name)
}

// normalize returns name in lower case without a trailing dot.
func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
