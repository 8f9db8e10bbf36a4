package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

const pkiUsage = `usage: amtpkit pki init --dir DIR [--domain NAME] [--key ecdsa-p256|rsa-2048] [--port N] [--validity DURATION] [--force]

Writes a throwaway AMTP test PKI into DIR: three CAs, a server certificate,
one client certificate per failure mode, an SMTP AUTH users file, a DNS zone
file and manifest.json. It prints what a server under test must trust and
present, and the table of client identities.

options:
`

// runPKI runs "amtpkit pki SUBCOMMAND". The only subcommand is init.
func runPKI(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("missing subcommand; run 'amtpkit pki init --dir DIR'")
	}
	switch args[0] {
	case "init":
		return runPKIInit(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		printPKIInitHelp(stdout, newPKIInitFlags(&pki.Options{}))
		return nil
	default:
		return usageErrorf("unknown subcommand %q; the only pki subcommand is init", args[0])
	}
}

// newPKIInitFlags returns the flag set of "pki init", bound to opts. It
// discards the messages of package flag because runPKIInit reports errors
// and prints help itself.
func newPKIInitFlags(opts *pki.Options) *flag.FlagSet {
	flags := flag.NewFlagSet("pki init", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.StringVar(&opts.Dir, "dir", "", "output `directory` (required), created if missing")
	flags.StringVar(&opts.Domain, "domain", pki.DefaultDomain, "DNS `domain` D of the names mx.D, client.D and so on")
	flags.Func("key", fmt.Sprintf("`algorithm` of every key: %s or %s (default %s)", pki.KeyECDSAP256, pki.KeyRSA2048, pki.DefaultKeyType), func(value string) error {
		switch keyType := pki.KeyType(value); keyType {
		case pki.KeyECDSAP256, pki.KeyRSA2048:
			opts.KeyType = keyType
			return nil
		default:
			return fmt.Errorf("unsupported key type; use %s or %s", pki.KeyECDSAP256, pki.KeyRSA2048)
		}
	})
	flags.IntVar(&opts.Port, "port", pki.DefaultPort, "AMTP `port` of the server in the zone's SRV record")
	opts.Validity = pki.DefaultValidity
	flags.Func("validity", "`duration` of the validity period after now, as a Go duration such as 72h or a number of days such as 7d (default 7d)", func(value string) error {
		validity, err := parseDays(value)
		if err != nil {
			return err
		}
		opts.Validity = validity
		return nil
	})
	flags.BoolVar(&opts.Force, "force", false, "overwrite a PKI that already exists in the directory")
	return flags
}

// runPKIInit runs "amtpkit pki init".
func runPKIInit(_ context.Context, args []string, stdout io.Writer) error {
	var opts pki.Options
	flags := newPKIInitFlags(&opts)
	err := flags.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printPKIInitHelp(stdout, flags)
		return err
	}
	if err != nil {
		return usageErrorf("%v; run 'amtpkit pki init -h' for the options", err)
	}
	if flags.NArg() > 0 {
		return usageErrorf("unexpected argument %q; pki init takes only options", flags.Arg(0))
	}
	if opts.Dir == "" {
		return usageErrorf("missing --dir; set the output directory, for example --dir /tmp/amtp-pki")
	}

	manifest, err := pki.Init(opts)
	switch {
	case errors.Is(err, pki.ErrInvalidOptions):
		return usageErrorf("%v", err)
	case errors.Is(err, pki.ErrManifestExists):
		return fmt.Errorf("%s exists; pass --force to overwrite that PKI or choose another --dir", filepath.Join(opts.Dir, pki.ManifestFile))
	case err != nil:
		return err
	}

	printPKISummary(stdout, manifest)
	return nil
}

// printPKIInitHelp writes the help text of "pki init" with the defaults of
// flags.
func printPKIInitHelp(w io.Writer, flags *flag.FlagSet) {
	fmt.Fprint(w, pkiUsage)
	flags.SetOutput(w)
	flags.PrintDefaults()
	flags.SetOutput(io.Discard)
}

// parseDays parses a Go duration or a whole number of days such as "7d".
func parseDays(value string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(value, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("invalid number of days; use a positive whole number such as 7d")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	validity, err := time.ParseDuration(value)
	if err != nil || validity <= 0 {
		return 0, fmt.Errorf("invalid duration; use a positive value such as 72h or 7d")
	}
	return validity, nil
}

// printPKISummary writes what a server under test must trust and present,
// the DNS command and the table of client identities.
func printPKISummary(w io.Writer, m *pki.Manifest) {
	const timeLayout = "2006-01-02 15:04:05 MST"

	fmt.Fprintf(w, "Wrote a throwaway AMTP test PKI for %s to %s\n", m.Domain, m.Dir())
	fmt.Fprintf(w, "Keys are %s; certificates are valid from %s to %s.\n\n", m.KeyType, m.NotBefore.Format(timeLayout), m.NotAfter.Format(timeLayout))

	fmt.Fprintln(w, "Server under test:")
	if server, err := m.Cert(pki.CertServer); err == nil {
		fmt.Fprintf(w, "  present:  %s with key %s (CN %s)\n", m.Path(server.Cert), m.Path(server.Key), server.CN)
	}
	fmt.Fprintf(w, "  listen:   127.0.0.1, port %d for the public listener (SRV _amtp._tcp.%s)\n", m.Port, m.Domain)
	for _, ca := range m.CAs {
		switch ca.Name {
		case pki.PublicCA:
			fmt.Fprintf(w, "  public listener trusts:   %s only; never add %s.pem there\n", m.Path(ca.Cert), pki.PrivateCA)
		case pki.PrivateCA:
			fmt.Fprintf(w, "  private listener trusts:  %s\n", m.Path(ca.Cert))
		}
	}
	fmt.Fprintf(w, "  private listener SMTP AUTH users: %s (passwords in %s)\n", m.Path(m.UsersFile), m.Path(pki.ManifestFile))
	fmt.Fprintf(w, "  DNS:      amtpkit dns serve --zone %s --listen 127.0.0.1:5353\n\n", m.Path(m.ZoneFile))

	fmt.Fprintln(w, "Client identities (connect from the source address; certificates in "+m.Path("certs")+"):")
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(table, "  NAME\tCN\tSOURCE\tPTR\tISSUER\tLISTENER\tEXPECT\tFAILS CHECK")
	for _, entry := range m.Certificates {
		if entry.Role != pki.RoleClient {
			continue
		}
		fmt.Fprintf(table, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			entry.Name, entry.CN, entry.SourceAddr, orDash(entry.PTR), entry.Issuer,
			entry.Listener, entry.Expect, orDash(string(entry.FailsCheck)))
	}
	table.Flush()
	fmt.Fprintf(w, "\n%s is accepted only on a private listener; on the public listener it fails %s.\n", pki.CertPrivateClient, pki.CheckPrivateCA)
}

// orDash returns value, or "-" when it is empty, so table columns stay
// aligned.
func orDash(value string) string {
	if value == "" {
		return "-"
	}
	return value
}
