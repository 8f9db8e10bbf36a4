// Package config loads the amtpd configuration file, a TOML document
// described with a commented example in docs/amtpd.example.toml. Relative
// paths in the file are resolved against the file's own folder. Unknown
// keys are errors, so a misspelt option is reported instead of ignored.
package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// Config is the whole configuration of amtpd.
type Config struct {
	// Hostname is the server's name in the greeting, the EHLO reply and
	// Received fields. It defaults to the CN of the server certificate.
	Hostname string `toml:"hostname"`

	TLS      TLS      `toml:"tls"`
	DNS      DNS      `toml:"dns"`
	Public   Listener `toml:"public"`
	Private  *Private `toml:"private"`
	Policy   Policy   `toml:"policy"`
	Domains  []Domain `toml:"domain"`
	Delivery Delivery `toml:"delivery"`
	Queue    Queue    `toml:"queue"`
	Relay    Relay    `toml:"relay"`
	Routes   []Route  `toml:"route"`
	Metrics  Metrics  `toml:"metrics"`
	Limits   Limits   `toml:"limits"`
	Log      Log      `toml:"log"`

	// Path is the file the configuration was loaded from.
	Path string `toml:"-"`
}

// TLS is the server's own certificate and the protocol versions it offers.
type TLS struct {
	Cert       string `toml:"cert"`
	Key        string `toml:"key"`
	MinVersion string `toml:"min_version"` // "1.2" or "1.3"
}

// DNS names the resolver used for PTR (and later SRV) lookups.
type DNS struct {
	Server  string   `toml:"server"` // host:port of a DNS server
	Timeout Duration `toml:"timeout"`
}

// Listener is the public listener: the AMTP port of section 4.1.
type Listener struct {
	Listen   []string `toml:"listen"`    // host:port addresses
	ClientCA []string `toml:"client_ca"` // PEM files of the CAs trusted for client certificates
}

// Private is the optional private listener of section 7.
type Private struct {
	Listener
	// RequirePTR keeps the PTR checks on the private listener; section 7
	// lets a server skip them, and so does the default.
	RequirePTR bool `toml:"require_ptr"`
	// Users is the users file for SMTP AUTH PLAIN; AUTH is required.
	Users string `toml:"users"`
}

// Policy holds the MPC policy.
type Policy struct {
	// MPC lists the server-wide declarations, advertised in the EHLO reply
	// and enforced at MAIL: "ALLOW role/class" or "DENY role/class".
	MPC []string `toml:"mpc"`
	// Recipients are per-recipient policies, enforced at RCPT and not
	// advertised. An entry for the full address wins over an entry for
	// its domain.
	Recipients []RecipientPolicy `toml:"recipient"`
}

// RecipientPolicy is the MPC policy of one recipient or domain.
type RecipientPolicy struct {
	// Match is a full address (alice@example.test) or a domain with a
	// leading "@" (@example.test).
	Match string `toml:"match"`
	// MPC lists declarations as in Policy.MPC, plus "DEFER role/class",
	// which replies 451 instead of 550.
	MPC []string `toml:"mpc"`
}

// Domain is a domain whose mail this server delivers locally.
type Domain struct {
	Name string `toml:"name"`
	// Mailboxes lists the local parts that exist; empty accepts any.
	Mailboxes []string `toml:"mailboxes"`
}

// Delivery is the destination of locally delivered mail.
type Delivery struct {
	Maildir string `toml:"maildir"` // root of the Maildir folders: ROOT/DOMAIN/LOCALPART
}

// Queue configures the durable spool and the delivery workers.
type Queue struct {
	// Dir is the spool folder. Default: "spool" beside the config file.
	Dir     string `toml:"dir"`
	Workers int    `toml:"workers"`
	// RetryBase is the delay before the first retry of a temporary
	// failure; each retry doubles it up to RetryMaxInterval.
	RetryBase        Duration `toml:"retry_base"`
	RetryMaxInterval Duration `toml:"retry_max_interval"`
	// MaxAge is how long a message may stay queued before the recipients
	// still deferred fail and the sender gets a bounce.
	MaxAge Duration `toml:"max_age"`
	// Sync is the flush method that makes a batch of accepted messages
	// durable: "fsync"
	// fsyncs each new file, "syncfs" makes one syncfs(2) call for the
	// batch (Linux 5.8 or later), and "auto" (the default) uses syncfs
	// where it is supported.
	Sync string `toml:"sync"`
}

// Relay is the identity amtpd presents when it relays over a public
// network connection to the next hop found by SRV lookup.
type Relay struct {
	// Cert and Key are the client certificate; its CN must match the PTR
	// record of SourceAddr (section 4.2). Default: the server certificate.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// SourceAddr is the local address of outgoing connections.
	SourceAddr string `toml:"source_addr"`
	// ServerCA lists the CAs trusted for next-hop server certificates.
	// Default: public.client_ca.
	ServerCA []string `toml:"server_ca"`
	// Port overrides the port of SRV targets; 0 uses the SRV record's.
	Port int `toml:"port"`
}

// Route sends the mail for a domain to a configured smarthost.
type Route struct {
	// Domain is a recipient domain, or "*" for every remote domain
	// without a route of its own.
	Domain string `toml:"domain"`
	// Kind is "private" (AMTP over a private network connection, section
	// 7) or "gateway" (SMTP to a non-AMTP next hop, with an MPC header
	// field added as section 4.4.4 requires).
	Kind      string `toml:"kind"`
	Smarthost string `toml:"smarthost"` // host:port
	// ServerName is the name expected in the smarthost's certificate.
	ServerName string `toml:"server_name"`
	// Cert and Key are the private-CA client certificate of a private
	// route.
	Cert     string   `toml:"cert"`
	Key      string   `toml:"key"`
	ServerCA []string `toml:"server_ca"`
	// User and PasswordFile give SMTP AUTH PLAIN credentials for a private
	// route, when the smarthost requires them.
	User         string `toml:"user"`
	PasswordFile string `toml:"password_file"`
	// SourceAddr is the local address of connections to the smarthost.
	SourceAddr string `toml:"source_addr"`
}

// Metrics is the optional HTTP listener for Prometheus metrics.
type Metrics struct {
	Listen string `toml:"listen"` // host:port; empty disables it
}

// Limits bound every resource of a session.
type Limits struct {
	MaxSessions      int      `toml:"max_sessions"`
	MaxSessionsPerIP int      `toml:"max_sessions_per_ip"`
	MaxMessageSize   int64    `toml:"max_message_size"` // octets
	MaxRecipients    int      `toml:"max_recipients"`
	MaxErrors        int      `toml:"max_errors"`
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// AuthTimeout is the time from the connection to a successful EHLO, so
	// clients that never authenticate cannot hold session slots.
	AuthTimeout     Duration `toml:"auth_timeout"`
	CommandTimeout  Duration `toml:"command_timeout"`
	DataTimeout     Duration `toml:"data_timeout"`
	SessionTimeout  Duration `toml:"session_timeout"`
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// Log configures the log/slog output on stderr.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn or error
	Format string `toml:"format"` // text or json
}

// Duration is a time.Duration written as a string such as "30s" or "5m".
type Duration struct{ time.Duration }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number with a unit, such as 30s or 5m", text)
	}
	d.Duration = v
	return nil
}

// Defaults. The timeouts are the minimums of RFC 5321 section 4.5.3.2.
const (
	DefaultMaxSessions      = 200
	DefaultMaxSessionsPerIP = 20
	DefaultMaxMessageSize   = 25 << 20
	DefaultMaxRecipients    = 100 // RFC 5321 section 4.5.3.1.8
	DefaultMaxErrors        = 10
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultAuthTimeout      = 60 * time.Second
	DefaultCommandTimeout   = 5 * time.Minute
	DefaultDataTimeout      = 3 * time.Minute
	DefaultSessionTimeout   = 30 * time.Minute
	DefaultShutdownTimeout  = 10 * time.Second
	DefaultDNSTimeout       = 5 * time.Second
	DefaultQueueWorkers     = 4
	DefaultRetryBase        = time.Minute
	DefaultRetryMaxInterval = time.Hour
	DefaultMaxAge           = 5 * 24 * time.Hour
)

// Load reads, completes and validates the configuration at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}

	var c Config
	meta, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if undecoded := meta.Undecoded(); len(undecoded) > 0 {
		known := knownKeys()
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
			if suggestion := suggestKey(k.String(), known); suggestion != "" {
				keys[i] += " (did you mean " + suggestion + "?)"
			}
		}
		return nil, fmt.Errorf("config %s: unknown keys %s; see docs/amtpd.example.toml for the valid ones", path, strings.Join(keys, ", "))
	}
	c.Path = path

	c.resolvePaths(filepath.Dir(path))
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.TLS.Cert)
	abs(&c.TLS.Key)
	abs(&c.Delivery.Maildir)
	if c.Queue.Dir == "" {
		c.Queue.Dir = "spool"
	}
	abs(&c.Queue.Dir)
	abs(&c.Relay.Cert)
	abs(&c.Relay.Key)
	for i := range c.Relay.ServerCA {
		abs(&c.Relay.ServerCA[i])
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		abs(&r.Cert)
		abs(&r.Key)
		abs(&r.PasswordFile)
		for j := range r.ServerCA {
			abs(&r.ServerCA[j])
		}
	}
	for i := range c.Public.ClientCA {
		abs(&c.Public.ClientCA[i])
	}
	if c.Private != nil {
		abs(&c.Private.Users)
		for i := range c.Private.ClientCA {
			abs(&c.Private.ClientCA[i])
		}
	}
}

func (c *Config) applyDefaults() {
	l := &c.Limits
	setInt(&l.MaxSessions, DefaultMaxSessions)
	setInt(&l.MaxSessionsPerIP, DefaultMaxSessionsPerIP)
	setInt(&l.MaxRecipients, DefaultMaxRecipients)
	setInt(&l.MaxErrors, DefaultMaxErrors)
	if l.MaxMessageSize == 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	setDuration(&l.HandshakeTimeout, DefaultHandshakeTimeout)
	setDuration(&l.AuthTimeout, DefaultAuthTimeout)
	setDuration(&l.CommandTimeout, DefaultCommandTimeout)
	setDuration(&l.DataTimeout, DefaultDataTimeout)
	setDuration(&l.SessionTimeout, DefaultSessionTimeout)
	setDuration(&l.ShutdownTimeout, DefaultShutdownTimeout)
	setDuration(&c.DNS.Timeout, DefaultDNSTimeout)
	setInt(&c.Queue.Workers, DefaultQueueWorkers)
	setDuration(&c.Queue.RetryBase, DefaultRetryBase)
	setDuration(&c.Queue.RetryMaxInterval, DefaultRetryMaxInterval)
	setDuration(&c.Queue.MaxAge, DefaultMaxAge)
	if c.Queue.Sync == "" {
		c.Queue.Sync = "auto"
	}
	if c.Relay.Cert == "" && c.Relay.Key == "" {
		c.Relay.Cert, c.Relay.Key = c.TLS.Cert, c.TLS.Key
	}
	if len(c.Relay.ServerCA) == 0 {
		c.Relay.ServerCA = c.Public.ClientCA
	}
	if c.TLS.MinVersion == "" {
		c.TLS.MinVersion = "1.2"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

func setInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func setDuration(d *Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}

// Validate checks every value and the rules that tie them together.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if c.Hostname != "" && !smtp.IsFQDN(c.Hostname) {
		add("hostname %q is not a fully qualified domain name", c.Hostname)
	}
	if c.TLS.Cert == "" || c.TLS.Key == "" {
		add("tls.cert and tls.key are required: the server presents a certificate (section 4.2)")
	}
	if c.TLS.MinVersion != "1.2" && c.TLS.MinVersion != "1.3" {
		add("tls.min_version %q is not supported: use \"1.2\" or \"1.3\"", c.TLS.MinVersion)
	}
	if c.DNS.Server == "" {
		add("dns.server is required: the PTR checks of section 4.3.2 need a resolver, such as \"127.0.0.1:53\"")
	} else if _, err := netip.ParseAddrPort(c.DNS.Server); err != nil {
		add("dns.server %q is not an IP:port address", c.DNS.Server)
	}
	if c.DNS.Timeout.Duration < 0 {
		add("dns.timeout must not be negative")
	}

	if len(c.Public.Listen) == 0 {
		add("public.listen is required, for example [\"127.0.0.1:4025\"]")
	}
	listens := c.Public.Listen
	if c.Private != nil {
		listens = append(append([]string(nil), listens...), c.Private.Listen...)
	}
	for _, addr := range listens {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("listen address %q is not host:port, for example \"127.0.0.1:4025\"", addr)
		}
	}
	if len(c.Public.ClientCA) == 0 {
		add("public.client_ca is required: the CAs trusted for client certificates")
	}
	if c.Private != nil {
		if len(c.Private.Listen) == 0 {
			add("private.listen is required when a [private] section is present")
		}
		if len(c.Private.ClientCA) == 0 {
			add("private.client_ca is required when a [private] section is present")
		}
		if c.Private.Users == "" {
			add("private.users is required: the private listener demands SMTP AUTH (section 7)")
		}
		if err := c.checkCASeparation(); err != nil {
			errs = append(errs, err)
		}
	}

	if _, err := mpc.ParsePolicy(c.Policy.MPC, false); err != nil {
		add("policy.mpc: %w", err)
	}
	for i, rp := range c.Policy.Recipients {
		if !validMatch(rp.Match) {
			add("policy.recipient[%d].match %q: use an address (alice@example.test) or a domain with a leading @ (@example.test)", i, rp.Match)
		}
		if _, err := mpc.ParsePolicy(rp.MPC, true); err != nil {
			add("policy.recipient[%d].mpc: %w", i, err)
		}
	}

	if len(c.Domains) == 0 {
		add("at least one [[domain]] is required: the domains delivered locally")
	}
	for i, d := range c.Domains {
		if !smtp.IsDomain(d.Name) {
			add("domain[%d].name %q is not a domain name", i, d.Name)
		}
	}
	if c.Delivery.Maildir == "" {
		add("delivery.maildir is required: the root folder of the Maildirs")
	}

	if c.Queue.Workers < 1 {
		add("queue.workers must be positive")
	}
	if c.Queue.RetryBase.Duration <= 0 || c.Queue.RetryMaxInterval.Duration < c.Queue.RetryBase.Duration {
		add("queue: retry_base must be positive and retry_max_interval at least retry_base")
	}
	if c.Queue.MaxAge.Duration <= 0 {
		add("queue.max_age must be positive")
	}
	switch c.Queue.Sync {
	case "auto", "fsync", "syncfs":
	default:
		add("queue.sync %q: use \"auto\", \"fsync\" or \"syncfs\"", c.Queue.Sync)
	}
	if c.Relay.SourceAddr != "" {
		if _, err := netip.ParseAddr(c.Relay.SourceAddr); err != nil {
			add("relay.source_addr %q is not an IP address", c.Relay.SourceAddr)
		}
	}
	if c.Relay.Port < 0 || c.Relay.Port > 65535 {
		add("relay.port %d is out of range", c.Relay.Port)
	}
	for i, r := range c.Routes {
		if r.Domain != "*" && !smtp.IsDomain(r.Domain) {
			add("route[%d].domain %q: use a domain name or \"*\"", i, r.Domain)
		}
		if r.Kind != "private" && r.Kind != "gateway" {
			add("route[%d].kind %q: use \"private\" or \"gateway\"", i, r.Kind)
		}
		if _, _, err := net.SplitHostPort(r.Smarthost); err != nil {
			add("route[%d].smarthost %q is not host:port", i, r.Smarthost)
		}
		if r.Kind == "private" && (r.Cert == "" || r.Key == "") {
			add("route[%d]: a private route needs cert and key, a client certificate from the private CA", i)
		}
		if (r.User == "") != (r.PasswordFile == "") {
			add("route[%d]: set both user and password_file, or neither", i)
		}
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			add("metrics.listen %q is not host:port", c.Metrics.Listen)
		}
	}

	l := c.Limits
	if l.MaxSessions < 1 || l.MaxSessionsPerIP < 1 || l.MaxRecipients < 1 || l.MaxErrors < 1 {
		add("limits: max_sessions, max_sessions_per_ip, max_recipients and max_errors must be positive")
	}
	if l.MaxMessageSize < 1024 {
		add("limits.max_message_size %d is too small: use at least 1024 octets", l.MaxMessageSize)
	}
	for name, d := range map[string]Duration{
		"handshake_timeout": l.HandshakeTimeout, "auth_timeout": l.AuthTimeout, "command_timeout": l.CommandTimeout,
		"data_timeout": l.DataTimeout, "session_timeout": l.SessionTimeout,
		"shutdown_timeout": l.ShutdownTimeout,
	} {
		if d.Duration < 0 {
			add("limits.%s must not be negative", name)
		}
	}

	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level %q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add("log.format %q: use text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}

func validMatch(m string) bool {
	if domain, ok := strings.CutPrefix(m, "@"); ok {
		return smtp.IsDomain(domain)
	}
	return smtp.ValidateMailbox(m) == nil
}

// checkCASeparation enforces section 1.2 ("A CA that is trusted outside of
// the private network MUST NOT be trusted as a private CA"): no certificate
// may appear in both trust lists.
func (c *Config) checkCASeparation() error {
	public, err := loadCerts(c.Public.ClientCA)
	if err != nil {
		return fmt.Errorf("public.client_ca: %w", err)
	}
	private, err := loadCerts(c.Private.ClientCA)
	if err != nil {
		return fmt.Errorf("private.client_ca: %w", err)
	}
	for _, p := range private {
		for _, q := range public {
			if p.Equal(q) {
				return fmt.Errorf("CA %q is in both public.client_ca and private.client_ca; a private CA must not be trusted on the public listener (draft-weinman-amtp-03 section 1.2)", p.Subject)
			}
		}
	}
	return nil
}

// LoadCertPool reads PEM files of CA certificates into a pool.
func LoadCertPool(files []string) (*x509.CertPool, error) {
	certs, err := loadCerts(files)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

func loadCerts(files []string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		n := 0
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("CA file %s: %w", f, err)
			}
			certs = append(certs, cert)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("CA file %s contains no PEM CERTIFICATE block; use a PEM file of CA certificates", f)
		}
	}
	return certs, nil
}
