package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/reference/config"
)

// newCA returns a self-signed CA certificate named cn.
func newCA(cn string) *x509.Certificate {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())

	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return cert
}

// writePEM writes certs as PEM CERTIFICATE blocks to path.
func writePEM(path string, certs ...*x509.Certificate) {
	GinkgoHelper()
	var data []byte
	for _, c := range certs {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
	Expect(os.WriteFile(path, data, 0o644)).To(Succeed())
}

// writeFile writes text to path and returns path.
func writeFile(path, text string) string {
	GinkgoHelper()
	Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
	Expect(os.WriteFile(path, []byte(text), 0o644)).To(Succeed())
	return path
}

// minimalConfig has only the required keys, so every other value is a
// default.
const minimalConfig = `
[tls]
cert = "pki/server.pem"
key = "pki/server.key"

[dns]
server = "127.0.0.1:5353"

[public]
listen = ["127.0.0.1:4025"]
client_ca = ["pki/public-ca.pem"]

[[domain]]
name = "example.test"

[delivery]
maildir = "maildir"
`

// fullConfig sets a private listener and most options.
const fullConfig = `
hostname = "mx.example.test"

[tls]
cert = "pki/server.pem"
key = "/etc/amtpd/server.key"
min_version = "1.3"

[dns]
server = "127.0.0.1:5353"
timeout = "2s"

[public]
listen = ["127.0.0.1:4025"]
client_ca = ["pki/public-ca.pem"]

[private]
listen = ["127.0.0.1:4587"]
client_ca = ["pki/private-ca.pem"]
require_ptr = true
users = "pki/users"

[policy]
mpc = ["DENY */optout"]

[[policy.recipient]]
match = "ringo@example.test"
mpc = ["ALLOW */individual", "DEFER com/optin"]

[[policy.recipient]]
match = "@lists.example.test"
mpc = ["DENY com/*"]

[[domain]]
name = "example.test"
mailboxes = ["alice", "bob"]

[[domain]]
name = "lists.example.test"

[delivery]
maildir = "maildir"

[limits]
max_sessions = 5
max_message_size = 2048
command_timeout = "1m"

[log]
level = "debug"
format = "json"
`

var _ = Describe("Load", func() {
	var (
		dir       string
		publicCA  *x509.Certificate
		privateCA *x509.Certificate
	)

	BeforeEach(func() {
		dir = GinkgoT().TempDir()
		publicCA = newCA("Public Test CA")
		privateCA = newCA("Private Test CA")
		writePEM(filepath.Join(dir, "pki", "public-ca.pem"), publicCA)
		writePEM(filepath.Join(dir, "pki", "private-ca.pem"), privateCA)
	})

	// load writes text as amtpd.toml in dir and loads it.
	load := func(text string) (*config.Config, error) {
		return config.Load(writeFile(filepath.Join(dir, "amtpd.toml"), text))
	}

	It("loads a full file", func() {
		c, err := load(fullConfig)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Hostname).To(Equal("mx.example.test"))
		Expect(c.Path).To(Equal(filepath.Join(dir, "amtpd.toml")))
		Expect(c.TLS.MinVersion).To(Equal("1.3"))
		Expect(c.DNS.Timeout.Duration).To(Equal(2 * time.Second))
		Expect(c.Private).NotTo(BeNil())
		Expect(c.Private.Listen).To(Equal([]string{"127.0.0.1:4587"}))
		Expect(c.Private.RequirePTR).To(BeTrue())
		Expect(c.Policy.MPC).To(Equal([]string{"DENY */optout"}))
		Expect(c.Policy.Recipients).To(HaveLen(2))
		Expect(c.Policy.Recipients[1].Match).To(Equal("@lists.example.test"))
		Expect(c.Domains).To(HaveLen(2))
		Expect(c.Domains[0].Mailboxes).To(Equal([]string{"alice", "bob"}))
		Expect(c.Limits.MaxSessions).To(Equal(5))
		Expect(c.Limits.MaxMessageSize).To(Equal(int64(2048)))
		Expect(c.Limits.CommandTimeout.Duration).To(Equal(time.Minute))
		Expect(c.Log.Level).To(Equal("debug"))
		Expect(c.Log.Format).To(Equal("json"))
	})

	It("resolves relative paths", func() {
		c, err := load(fullConfig)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.TLS.Cert).To(Equal(filepath.Join(dir, "pki", "server.pem")))
		Expect(c.Delivery.Maildir).To(Equal(filepath.Join(dir, "maildir")))
		Expect(c.Public.ClientCA).To(Equal([]string{filepath.Join(dir, "pki", "public-ca.pem")}))
		Expect(c.Private.ClientCA).To(Equal([]string{filepath.Join(dir, "pki", "private-ca.pem")}))
		Expect(c.Private.Users).To(Equal(filepath.Join(dir, "pki", "users")))
		Expect(c.Queue.Dir).To(Equal(filepath.Join(dir, "spool")))
	})

	It("keeps absolute paths", func() {
		c, err := load(fullConfig)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.TLS.Key).To(Equal("/etc/amtpd/server.key"))
	})

	It("resolves against the file's folder", func() {
		sub := filepath.Join(dir, "etc")
		writePEM(filepath.Join(sub, "pki", "public-ca.pem"), publicCA)
		c, err := config.Load(writeFile(filepath.Join(sub, "amtpd.toml"), minimalConfig))
		Expect(err).NotTo(HaveOccurred())
		Expect(c.TLS.Cert).To(Equal(filepath.Join(sub, "pki", "server.pem")))
	})

	It("applies defaults", func() {
		c, err := load(minimalConfig)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Hostname).To(BeEmpty())
		Expect(c.Private).To(BeNil())
		Expect(c.TLS.MinVersion).To(Equal("1.2"))
		Expect(c.DNS.Timeout.Duration).To(Equal(config.DefaultDNSTimeout))
		Expect(c.Limits.MaxSessions).To(Equal(config.DefaultMaxSessions))
		Expect(c.Limits.MaxSessionsPerIP).To(Equal(config.DefaultMaxSessionsPerIP))
		Expect(c.Limits.MaxMessageSize).To(Equal(int64(config.DefaultMaxMessageSize)))
		Expect(c.Limits.MaxRecipients).To(Equal(config.DefaultMaxRecipients))
		Expect(c.Limits.MaxErrors).To(Equal(config.DefaultMaxErrors))
		Expect(c.Limits.HandshakeTimeout.Duration).To(Equal(config.DefaultHandshakeTimeout))
		Expect(c.Limits.CommandTimeout.Duration).To(Equal(config.DefaultCommandTimeout))
		Expect(c.Limits.DataTimeout.Duration).To(Equal(config.DefaultDataTimeout))
		Expect(c.Limits.SessionTimeout.Duration).To(Equal(config.DefaultSessionTimeout))
		Expect(c.Limits.ShutdownTimeout.Duration).To(Equal(config.DefaultShutdownTimeout))
		Expect(c.Queue.Workers).To(Equal(config.DefaultQueueWorkers))
		Expect(c.Queue.RetryBase.Duration).To(Equal(config.DefaultRetryBase))
		Expect(c.Queue.RetryMaxInterval.Duration).To(Equal(config.DefaultRetryMaxInterval))
		Expect(c.Queue.MaxAge.Duration).To(Equal(config.DefaultMaxAge))
		Expect(c.Log.Level).To(Equal("info"))
		Expect(c.Log.Format).To(Equal("text"))
	})

	It("defaults the relay identity", func() {
		c, err := load(minimalConfig)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Relay.Cert).To(Equal(c.TLS.Cert))
		Expect(c.Relay.Key).To(Equal(c.TLS.Key))
		Expect(c.Relay.ServerCA).To(Equal(c.Public.ClientCA))
	})

	It("names an unknown key", func() {
		_, err := load(minimalConfig + "\n[log]\nlevl = \"debug\"\n")
		Expect(err).To(MatchError(ContainSubstring("log.levl")))
	})

	It("names an unknown top-level key", func() {
		_, err := load("hostnme = \"mx.example.test\"\n" + minimalConfig)
		Expect(err).To(MatchError(ContainSubstring("hostnme (did you mean hostname?)")))
	})

	It("suggests a key in the same table", func() {
		_, err := load(minimalConfig + "\n[log]\nlevl = \"debug\"\n")
		Expect(err).To(MatchError(ContainSubstring("log.levl (did you mean log.level?)")))
	})

	It("suggests a key of an array table", func() {
		_, err := load(minimalConfig + "\n[[route]]\ndomain = \"x.test\"\nsmarthst = \"127.0.0.1:25\"\n")
		Expect(err).To(MatchError(ContainSubstring("route.smarthst (did you mean route.smarthost?)")))
	})

	It("suggests a key of the private listener", func() {
		_, err := load(minimalConfig + "\n[private]\nlistn = [\"127.0.0.1:4587\"]\n")
		Expect(err).To(MatchError(ContainSubstring("private.listn (did you mean private.listen?)")))
	})

	It("suggests nothing for a key far from every known one", func() {
		_, err := load(minimalConfig + "\n[log]\ncompletely_different = 1\n")
		Expect(err).To(MatchError(ContainSubstring("log.completely_different;")))
	})

	It("rejects an invalid duration", func() {
		_, err := load(minimalConfig + "\n[limits]\ndata_timeout = \"3 minutes\"\n")
		Expect(err).To(MatchError(ContainSubstring(`invalid duration "3 minutes"`)))
	})

	It("rejects invalid TOML", func() {
		_, err := load("[tls\n")
		Expect(err).To(MatchError(ContainSubstring("amtpd.toml")))
	})

	It("reports a missing file", func() {
		_, err := config.Load(filepath.Join(dir, "missing.toml"))
		Expect(err).To(MatchError(os.ErrNotExist))
	})

	It("names the file in validation errors", func() {
		_, err := load("")
		Expect(err).To(MatchError(ContainSubstring(filepath.Join(dir, "amtpd.toml"))))
	})

	It("rejects one CA file in both lists", func() {
		_, err := load(minimalConfig + `
[private]
listen = ["127.0.0.1:4587"]
client_ca = ["pki/public-ca.pem"]
users = "pki/users"
`)
		Expect(err).To(MatchError(ContainSubstring("is in both public.client_ca and private.client_ca")))
	})

	It("rejects one CA in two files", func() {
		writePEM(filepath.Join(dir, "pki", "bundle.pem"), privateCA, publicCA)
		_, err := load(minimalConfig + `
[private]
listen = ["127.0.0.1:4587"]
client_ca = ["pki/bundle.pem"]
users = "pki/users"
`)
		Expect(err).To(MatchError(ContainSubstring("Public Test CA")))
	})
})

var _ = Describe("Validate", func() {
	var (
		dir string
		c   *config.Config
	)

	BeforeEach(func() {
		dir = GinkgoT().TempDir()
		writePEM(filepath.Join(dir, "pki", "public-ca.pem"), newCA("Public Test CA"))
		writePEM(filepath.Join(dir, "pki", "private-ca.pem"), newCA("Private Test CA"))

		var err error
		c, err = config.Load(writeFile(filepath.Join(dir, "amtpd.toml"), fullConfig))
		Expect(err).NotTo(HaveOccurred())
	})

	It("accepts the loaded file", func() {
		Expect(c.Validate()).To(Succeed())
	})

	DescribeTable("rejects",
		func(change func(c *config.Config, dir string), message string) {
			change(c, dir)
			Expect(c.Validate()).To(MatchError(ContainSubstring(message)))
		},
		Entry("hostname not FQDN", func(c *config.Config, _ string) { c.Hostname = "mx" },
			`hostname "mx" is not a fully qualified domain name`),
		Entry("missing tls.cert", func(c *config.Config, _ string) { c.TLS.Cert = "" },
			"tls.cert and tls.key are required"),
		Entry("missing tls.key", func(c *config.Config, _ string) { c.TLS.Key = "" },
			"tls.cert and tls.key are required"),
		Entry("TLS 1.1", func(c *config.Config, _ string) { c.TLS.MinVersion = "1.1" },
			`tls.min_version "1.1" is not supported`),
		Entry("missing dns.server", func(c *config.Config, _ string) { c.DNS.Server = "" },
			"dns.server is required"),
		Entry("dns.server host name", func(c *config.Config, _ string) { c.DNS.Server = "localhost:53" },
			`dns.server "localhost:53" is not an IP:port address`),
		Entry("dns.server without port", func(c *config.Config, _ string) { c.DNS.Server = "127.0.0.1" },
			`dns.server "127.0.0.1" is not an IP:port address`),
		Entry("negative dns.timeout", func(c *config.Config, _ string) { c.DNS.Timeout.Duration = -time.Second },
			"dns.timeout must not be negative"),
		Entry("missing public.listen", func(c *config.Config, _ string) { c.Public.Listen = nil },
			"public.listen is required"),
		Entry("missing public.client_ca", func(c *config.Config, _ string) { c.Public.ClientCA = nil },
			"public.client_ca is required"),
		Entry("missing private.listen", func(c *config.Config, _ string) { c.Private.Listen = nil },
			"private.listen is required"),
		Entry("missing private.client_ca", func(c *config.Config, _ string) { c.Private.ClientCA = nil },
			"private.client_ca is required"),
		Entry("missing private.users", func(c *config.Config, _ string) { c.Private.Users = "" },
			"private.users is required"),
		Entry("missing CA file", func(c *config.Config, dir string) { c.Private.ClientCA = []string{filepath.Join(dir, "none.pem")} },
			"private.client_ca: read CA file"),
		Entry("CA file without PEM", func(c *config.Config, dir string) {
			c.Public.ClientCA = []string{writeFile(filepath.Join(dir, "empty.pem"), "not a certificate\n")}
		}, "contains no PEM CERTIFICATE block"),
		Entry("CA file with a bad certificate", func(c *config.Config, dir string) {
			bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")})
			c.Private.ClientCA = []string{writeFile(filepath.Join(dir, "bad.pem"), string(bad))}
		}, "bad.pem"),
		Entry("DEFER in policy.mpc", func(c *config.Config, _ string) { c.Policy.MPC = []string{"DEFER com/optin"} },
			"policy.mpc: invalid MPC declaration"),
		Entry("unknown class in policy.mpc", func(c *config.Config, _ string) { c.Policy.MPC = []string{"DENY com/spam"} },
			`unknown class "spam"`),
		Entry("bad recipient match", func(c *config.Config, _ string) { c.Policy.Recipients[0].Match = "ringo" },
			`policy.recipient[0].match "ringo"`),
		Entry("bad recipient domain", func(c *config.Config, _ string) { c.Policy.Recipients[1].Match = "@lists..example.test" },
			`policy.recipient[1].match "@lists..example.test"`),
		Entry("bad recipient policy", func(c *config.Config, _ string) { c.Policy.Recipients[1].MPC = []string{"REJECT com/*"} },
			"policy.recipient[1].mpc"),
		Entry("no domain", func(c *config.Config, _ string) { c.Domains = nil },
			"at least one [[domain]] is required"),
		Entry("bad domain name", func(c *config.Config, _ string) { c.Domains[1].Name = "lists_example" },
			`domain[1].name "lists_example" is not a domain name`),
		Entry("missing delivery.maildir", func(c *config.Config, _ string) { c.Delivery.Maildir = "" },
			"delivery.maildir is required"),
		Entry("zero queue workers", func(c *config.Config, _ string) { c.Queue.Workers = 0 },
			"queue.workers must be positive"),
		Entry("zero retry base", func(c *config.Config, _ string) { c.Queue.RetryBase.Duration = 0 },
			"retry_base must be positive"),
		Entry("retry interval below base", func(c *config.Config, _ string) {
			c.Queue.RetryMaxInterval.Duration = c.Queue.RetryBase.Duration - time.Second
		}, "retry_max_interval at least retry_base"),
		Entry("zero max age", func(c *config.Config, _ string) { c.Queue.MaxAge.Duration = 0 },
			"queue.max_age must be positive"),
		Entry("bad relay source", func(c *config.Config, _ string) { c.Relay.SourceAddr = "mx.example.test" },
			`relay.source_addr "mx.example.test" is not an IP address`),
		Entry("relay port too high", func(c *config.Config, _ string) { c.Relay.Port = 65536 },
			"relay.port 65536 is out of range"),
		Entry("negative relay port", func(c *config.Config, _ string) { c.Relay.Port = -1 },
			"relay.port -1 is out of range"),
		Entry("bad route domain", func(c *config.Config, _ string) {
			c.Routes = []config.Route{{Domain: "*.example.test", Kind: "gateway", Smarthost: "127.0.0.1:25"}}
		}, `route[0].domain "*.example.test"`),
		Entry("bad route kind", func(c *config.Config, _ string) {
			c.Routes = []config.Route{{Domain: "*", Kind: "smtp", Smarthost: "127.0.0.1:25"}}
		}, `route[0].kind "smtp"`),
		Entry("route without port", func(c *config.Config, _ string) {
			c.Routes = []config.Route{{Domain: "*", Kind: "gateway", Smarthost: "relay.example.test"}}
		}, `route[0].smarthost "relay.example.test" is not host:port`),
		Entry("private route without cert", func(c *config.Config, _ string) {
			c.Routes = []config.Route{{Domain: "*", Kind: "private", Smarthost: "127.0.0.1:4587"}}
		}, "route[0]: a private route needs cert and key"),
		Entry("route user without password", func(c *config.Config, _ string) {
			c.Routes = []config.Route{{Domain: "*", Kind: "gateway", Smarthost: "127.0.0.1:25", User: "mx"}}
		}, "route[0]: set both user and password_file, or neither"),
		Entry("bad metrics listen", func(c *config.Config, _ string) { c.Metrics.Listen = "9100" },
			`metrics.listen "9100" is not host:port`),
		Entry("zero max sessions", func(c *config.Config, _ string) { c.Limits.MaxSessions = 0 },
			"max_sessions, max_sessions_per_ip, max_recipients and max_errors must be positive"),
		Entry("negative max errors", func(c *config.Config, _ string) { c.Limits.MaxErrors = -1 },
			"max_sessions, max_sessions_per_ip, max_recipients and max_errors must be positive"),
		Entry("small max message size", func(c *config.Config, _ string) { c.Limits.MaxMessageSize = 1023 },
			"limits.max_message_size 1023 is too small"),
		Entry("negative data timeout", func(c *config.Config, _ string) { c.Limits.DataTimeout.Duration = -time.Second },
			"limits.data_timeout must not be negative"),
		Entry("unknown log level", func(c *config.Config, _ string) { c.Log.Level = "trace" },
			`log.level "trace"`),
		Entry("unknown log format", func(c *config.Config, _ string) { c.Log.Format = "xml" },
			`log.format "xml"`),
	)

	It("accepts a valid route", func() {
		c.Routes = []config.Route{{Domain: "*", Kind: "private", Smarthost: "relay.example.test:4587", Cert: "c.pem", Key: "c.key"}}
		Expect(c.Validate()).To(Succeed())
	})

	It("accepts log level in any case", func() {
		c.Log.Level = "WARN"
		Expect(c.Validate()).To(Succeed())
	})

	It("reports every error at once", func() {
		c.Hostname = "mx"
		c.Log.Format = "xml"
		err := c.Validate()
		Expect(err).To(MatchError(ContainSubstring("hostname")))
		Expect(err).To(MatchError(ContainSubstring("log.format")))
	})
})

var _ = Describe("LoadCertPool", func() {
	It("loads every certificate", func() {
		dir := GinkgoT().TempDir()
		first, second := newCA("First CA"), newCA("Second CA")
		writePEM(filepath.Join(dir, "a.pem"), first)
		writePEM(filepath.Join(dir, "b.pem"), second)

		pool, err := config.LoadCertPool([]string{filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")})
		Expect(err).NotTo(HaveOccurred())

		want := x509.NewCertPool()
		want.AddCert(first)
		want.AddCert(second)
		Expect(pool.Equal(want)).To(BeTrue())
	})

	It("skips non-certificate blocks", func() {
		dir := GinkgoT().TempDir()
		ca := newCA("Only CA")
		key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not used")})
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
		path := writeFile(filepath.Join(dir, "mixed.pem"), string(key)+string(cert))

		pool, err := config.LoadCertPool([]string{path})
		Expect(err).NotTo(HaveOccurred())

		want := x509.NewCertPool()
		want.AddCert(ca)
		Expect(pool.Equal(want)).To(BeTrue())
	})

	It("reports a missing file", func() {
		_, err := config.LoadCertPool([]string{filepath.Join(GinkgoT().TempDir(), "none.pem")})
		Expect(err).To(MatchError(os.ErrNotExist))
	})
})
