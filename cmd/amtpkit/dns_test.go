package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/miekg/dns"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
)

const cliTestZone = `
$TTL 300
$ORIGIN example.test.
@    IN SOA ns1 hostmaster 2026010101 3600 600 86400 60
ns1  IN A   127.0.0.53
mx1  IN A   127.0.0.2
_amtp._tcp IN SRV 10 0 2525 mx1

$ORIGIN 0.0.127.in-addr.arpa.
@    IN SOA ns1.example.test. hostmaster.example.test. 2026010101 3600 600 86400 60
2    IN PTR mx1.example.test.
`

var servingLine = regexp.MustCompile(`dns: serving zone (\S+) on (\S+) \(udp, tcp\)\n`)

// lookupA returns the A record values of name at addr, or nil when the
// query fails or the response has none.
func lookupA(addr, network, name string) []string {
	query := new(dns.Msg)
	query.SetQuestion(name, dns.TypeA)
	client := &dns.Client{Net: network, Timeout: time.Second}

	response, _, err := client.Exchange(query, addr)
	if err != nil {
		return nil
	}

	var values []string
	for _, rr := range response.Answer {
		if a, ok := rr.(*dns.A); ok {
			values = append(values, a.A.String())
		}
	}
	return values
}

var _ = Describe("dns serve", func() {
	var zonePath string

	BeforeEach(func() {
		zonePath = filepath.Join(GinkgoT().TempDir(), "test.zone")
		Expect(os.WriteFile(zonePath, []byte(cliTestZone), 0o600)).To(Succeed())
	})

	// serve runs "dns serve" in the background and returns the address from
	// its output. The command stops when the spec ends.
	serve := func(args ...string) string {
		GinkgoHelper()
		ctx, cancel := context.WithCancel(context.Background())
		stdout := gbytes.NewBuffer()
		done := make(chan error, 1)
		go func() {
			done <- runDNS(ctx, append([]string{"serve"}, args...), stdout)
		}()
		DeferCleanup(func() {
			cancel()
			Eventually(done).WithTimeout(10 * time.Second).Should(Receive(BeNil()))
		})

		Eventually(stdout).WithTimeout(5 * time.Second).Should(gbytes.Say(`dns: serving zone`))
		match := servingLine.FindSubmatch(stdout.Contents())
		Expect(match).NotTo(BeNil(), "output: %q", stdout.Contents())
		Expect(string(match[1])).To(Equal(zonePath))
		return string(match[2])
	}

	It("prints the address and serves the zone", func() {
		addr := serve("--zone", zonePath, "--listen", "127.0.0.1:0")

		Expect(addr).To(MatchRegexp(`^127\.0\.0\.1:[1-9][0-9]*$`))
		Expect(lookupA(addr, "udp", "mx1.example.test.")).To(Equal([]string{"127.0.0.2"}))
		Expect(lookupA(addr, "tcp", "mx1.example.test.")).To(Equal([]string{"127.0.0.2"}))
	})

	It("stops cleanly when the context is cancelled", func() {
		ctx, cancel := context.WithCancel(context.Background())
		stdout := gbytes.NewBuffer()
		done := make(chan error, 1)
		go func() {
			done <- runDNS(ctx, []string{"serve", "--zone", zonePath}, stdout)
		}()
		Eventually(stdout).WithTimeout(5 * time.Second).Should(gbytes.Say(`dns: serving zone`))

		cancel()

		Eventually(done).WithTimeout(10 * time.Second).Should(Receive(BeNil()))
	})

	Context("on SIGHUP", Serial, func() {
		It("reloads the zone file", func() {
			addr := serve("--zone", zonePath, "--verbose")
			Expect(lookupA(addr, "udp", "mx1.example.test.")).To(Equal([]string{"127.0.0.2"}))

			changed := bytes.Replace([]byte(cliTestZone), []byte("127.0.0.2"), []byte("127.0.0.20"), 1)
			Expect(os.WriteFile(zonePath, changed, 0o600)).To(Succeed())
			Expect(syscall.Kill(os.Getpid(), syscall.SIGHUP)).To(Succeed())

			Eventually(func() []string {
				return lookupA(addr, "udp", "mx1.example.test.")
			}).WithTimeout(5 * time.Second).Should(Equal([]string{"127.0.0.20"}))
		})

		It("keeps the previous zone when the file is invalid", func() {
			addr := serve("--zone", zonePath)

			Expect(os.WriteFile(zonePath, []byte("mx1.example.test. IN A not-an-address\n"), 0o600)).To(Succeed())
			Expect(syscall.Kill(os.Getpid(), syscall.SIGHUP)).To(Succeed())

			Consistently(func() []string {
				return lookupA(addr, "udp", "mx1.example.test.")
			}).WithTimeout(time.Second).Should(Equal([]string{"127.0.0.2"}))

			// The server still reloads once the file is fixed.
			changed := bytes.Replace([]byte(cliTestZone), []byte("127.0.0.2"), []byte("127.0.0.21"), 1)
			Expect(os.WriteFile(zonePath, changed, 0o600)).To(Succeed())
			Expect(syscall.Kill(os.Getpid(), syscall.SIGHUP)).To(Succeed())

			Eventually(func() []string {
				return lookupA(addr, "udp", "mx1.example.test.")
			}).WithTimeout(5 * time.Second).Should(Equal([]string{"127.0.0.21"}))
		})
	})

	Describe("command line", func() {
		// run runs amtpkit with args and a 5-second limit, and returns the
		// exit code, stdout and stderr.
		run := func(args ...string) (int, string, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			var stdout, stderr bytes.Buffer
			code := runMain(ctx, args, &stdout, &stderr)
			return code, stdout.String(), stderr.String()
		}

		It("rejects a non-loopback address", func() {
			code, stdout, stderr := run("dns", "serve", "--zone", zonePath, "--listen", "0.0.0.0:0")

			Expect(code).To(Equal(2))
			Expect(stdout).To(BeEmpty())
			Expect(stderr).To(ContainSubstring(`"0.0.0.0:0" is not a loopback address`))
			Expect(stderr).To(ContainSubstring("--allow-non-loopback"))
		})

		It("passes a non-loopback address on with --allow-non-loopback", func() {
			// 192.0.2.1 (TEST-NET-1) is not assigned to this machine, so
			// binding fails before any packet is sent.
			code, stdout, stderr := run("dns", "serve", "--zone", zonePath,
				"--listen", "192.0.2.1:0", "--allow-non-loopback")

			Expect(code).To(Equal(1))
			Expect(stdout).To(BeEmpty())
			Expect(stderr).To(ContainSubstring("listen on 192.0.2.1:0/udp"))
			Expect(stderr).NotTo(ContainSubstring("loopback"))
		})

		It("requires --zone", func() {
			code, _, stderr := run("dns", "serve")

			Expect(code).To(Equal(2))
			Expect(stderr).To(ContainSubstring("missing --zone FILE"))
		})

		It("rejects an unknown subcommand", func() {
			code, _, stderr := run("dns", "start")

			Expect(code).To(Equal(2))
			Expect(stderr).To(ContainSubstring(`unknown subcommand "start"`))
		})

		It("requires a subcommand", func() {
			code, _, stderr := run("dns")

			Expect(code).To(Equal(2))
			Expect(stderr).To(ContainSubstring("missing subcommand"))
		})

		It("rejects a positional argument", func() {
			code, _, stderr := run("dns", "serve", "--zone", zonePath, "extra")

			Expect(code).To(Equal(2))
			Expect(stderr).To(ContainSubstring(`unexpected argument "extra"`))
		})

		It("rejects an unknown flag", func() {
			code, _, stderr := run("dns", "serve", "--zone", zonePath, "--port", "53")

			Expect(code).To(Equal(2))
			Expect(stderr).To(ContainSubstring("-port"))
		})

		It("exits 0 for --help", func() {
			code, _, _ := run("dns", "serve", "--help")

			Expect(code).To(Equal(0))
		})

		It("names the file and line of a zone file error", func() {
			broken := filepath.Join(GinkgoT().TempDir(), "broken.zone")
			text := "$ORIGIN example.test.\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\nmx1 IN A 999.1.1.1\n"
			Expect(os.WriteFile(broken, []byte(text), 0o600)).To(Succeed())

			code, stdout, stderr := run("dns", "serve", "--zone", broken)

			Expect(code).To(Equal(1))
			Expect(stdout).To(BeEmpty())
			Expect(stderr).To(ContainSubstring(broken))
			Expect(stderr).To(ContainSubstring("line: 3"))
		})

		It("names a missing zone file", func() {
			missing := filepath.Join(GinkgoT().TempDir(), "missing.zone")

			code, _, stderr := run("dns", "serve", "--zone", missing)

			Expect(code).To(Equal(1))
			Expect(stderr).To(ContainSubstring(missing))
		})
	})
})

var _ = DescribeTable("checkLoopback",
	func(addr string, allowed bool) {
		err := checkLoopback(addr)
		if allowed {
			Expect(err).NotTo(HaveOccurred())
		} else {
			Expect(err).To(MatchError(errUsage))
		}
	},
	Entry("127.0.0.1", "127.0.0.1:0", true),
	Entry("another 127/8 address", "127.5.6.7:5353", true),
	Entry("IPv6 loopback", "[::1]:53", true),
	Entry("IPv4-mapped loopback", "[::ffff:127.0.0.1]:53", true),
	Entry("all IPv4 interfaces", "0.0.0.0:53", false),
	Entry("all interfaces, empty host", ":53", false),
	Entry("all IPv6 interfaces", "[::]:53", false),
	Entry("host name", "localhost:53", false),
	Entry("private address", "10.0.0.1:53", false),
	Entry("missing port", "127.0.0.1", false),
)
