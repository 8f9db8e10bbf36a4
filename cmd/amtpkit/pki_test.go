package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// pkiRun is the result of one runMain call.
type pkiRun struct {
	code   int
	stdout string
	stderr string
}

// runPKICommand runs "amtpkit ARGS..." through runMain.
func runPKICommand(args ...string) pkiRun {
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), args, &stdout, &stderr)
	return pkiRun{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

var _ = Describe("amtpkit pki init", func() {
	It("writes a PKI with the defaults and prints the summary", func() {
		dir := GinkgoT().TempDir()
		run := runPKICommand("pki", "init", "--dir", dir)
		Expect(run.code).To(Equal(0), run.stderr)

		m, err := pki.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Domain).To(Equal("example.test"))
		Expect(m.KeyType).To(Equal(pki.KeyECDSAP256))
		Expect(m.Port).To(Equal(4025))
		Expect(m.NotAfter.Sub(m.Created)).To(Equal(7 * 24 * time.Hour))

		Expect(run.stdout).To(ContainSubstring("public listener trusts:   " + filepath.Join(dir, "ca", "public-ca.pem")))
		Expect(run.stdout).To(ContainSubstring("private listener trusts:  " + filepath.Join(dir, "ca", "private-ca.pem")))
		Expect(run.stdout).To(ContainSubstring("never add private-ca.pem there"))
		Expect(run.stdout).To(ContainSubstring(filepath.Join(dir, "certs", "server.pem") + " with key " + filepath.Join(dir, "certs", "server.key")))
		Expect(run.stdout).To(ContainSubstring("amtpkit dns serve --zone " + filepath.Join(dir, "zone.db") + " --listen 127.0.0.1:5353"))
		for _, entry := range m.Certificates {
			if entry.Role == pki.RoleClient {
				Expect(run.stdout).To(MatchRegexp(`(?m)^  %s +%s +%s `, entry.Name, entry.CN, entry.SourceAddr), entry.Name)
			}
		}
	})

	It("passes the options to the PKI", func() {
		dir := GinkgoT().TempDir()
		run := runPKICommand("pki", "init", "--dir", dir, "--domain", "corp.test", "--key", "rsa-2048", "--port", "5025", "--validity", "3d")
		Expect(run.code).To(Equal(0), run.stderr)

		m, err := pki.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Domain).To(Equal("corp.test"))
		Expect(m.KeyType).To(Equal(pki.KeyRSA2048))
		Expect(m.Port).To(Equal(5025))
		Expect(m.NotAfter.Sub(m.Created)).To(Equal(72 * time.Hour))

		zone, err := os.ReadFile(m.Path(m.ZoneFile))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(zone)).To(MatchRegexp(`_amtp\._tcp\.corp\.test\. +IN SRV +10 10 5025 mx\.corp\.test\.`))
	})

	It("accepts a Go duration for --validity", func() {
		dir := GinkgoT().TempDir()
		run := runPKICommand("pki", "init", "--dir", dir, "--validity", "36h")
		Expect(run.code).To(Equal(0), run.stderr)

		m, err := pki.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(m.NotAfter.Sub(m.Created)).To(Equal(36 * time.Hour))
	})

	It("refuses to overwrite a PKI without --force", func() {
		dir := GinkgoT().TempDir()
		Expect(runPKICommand("pki", "init", "--dir", dir).code).To(Equal(0))
		first, err := pki.Load(dir)
		Expect(err).NotTo(HaveOccurred())

		run := runPKICommand("pki", "init", "--dir", dir)
		Expect(run.code).To(Equal(1))
		Expect(run.stderr).To(ContainSubstring("--force"))
		Expect(run.stderr).To(ContainSubstring(filepath.Join(dir, "manifest.json")))
		Expect(run.stdout).To(BeEmpty())
		unchanged, err := pki.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(unchanged.Users).To(Equal(first.Users))

		run = runPKICommand("pki", "init", "--dir", dir, "--force")
		Expect(run.code).To(Equal(0), run.stderr)
		replaced, err := pki.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(replaced.Users[0].Password).NotTo(Equal(first.Users[0].Password))
	})

	It("prints help on stdout for -h", func() {
		run := runPKICommand("pki", "init", "-h")
		Expect(run.code).To(Equal(0))
		Expect(run.stdout).To(ContainSubstring("usage: amtpkit pki init --dir DIR"))
		Expect(run.stdout).To(ContainSubstring("-validity"))
		Expect(run.stdout).To(ContainSubstring("-force"))
	})

	DescribeTable("rejects bad arguments with exit code 2",
		func(message string, args ...string) {
			for i, arg := range args {
				if arg == "DIR" {
					args[i] = GinkgoT().TempDir()
				}
			}
			run := runPKICommand(append([]string{"pki"}, args...)...)
			Expect(run.code).To(Equal(2))
			Expect(run.stderr).To(ContainSubstring(message))
			Expect(run.stdout).To(BeEmpty())
		},
		Entry("no subcommand", "missing subcommand"),
		Entry("unknown subcommand", `unknown subcommand "create"`, "create"),
		Entry("missing --dir", "missing --dir", "init"),
		Entry("unknown flag", "flag provided but not defined: -size", "init", "--dir", "DIR", "--size", "3"),
		Entry("unknown key type", "unsupported key type", "init", "--dir", "DIR", "--key", "ed25519"),
		Entry("bad validity", "invalid duration", "init", "--dir", "DIR", "--validity", "soon"),
		Entry("zero days", "invalid number of days", "init", "--dir", "DIR", "--validity", "0d"),
		Entry("port out of range", "port 70000", "init", "--dir", "DIR", "--port", "70000"),
		Entry("bad domain", `domain "bad_name.test"`, "init", "--dir", "DIR", "--domain", "bad_name.test"),
		Entry("extra argument", `unexpected argument "extra"`, "init", "--dir", "DIR", "extra"),
	)

	It("writes nothing when the arguments are bad", func() {
		dir := GinkgoT().TempDir()
		run := runPKICommand("pki", "init", "--dir", dir, "--key", "ed25519")
		Expect(run.code).To(Equal(2))
		entries, err := os.ReadDir(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(entries).To(BeEmpty())
		Expect(strings.Count(run.stderr, "\n")).To(Equal(1))
	})
})
