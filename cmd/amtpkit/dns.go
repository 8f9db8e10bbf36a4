package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
)

const dnsUsage = "usage: amtpkit dns serve --zone FILE [--listen IP:PORT] [--allow-non-loopback] [--verbose]"

const dnsHelp = dnsUsage + `

Serves the zones of an RFC 1035 master file, such as the zone.db of
'amtpkit pki init', over UDP and TCP on a loopback address: the PTR, SRV, A
and AAAA records that the server under test looks up. SIGHUP reloads the
file. Names outside the zones get REFUSED.

options:
`

// runDNS runs "amtpkit dns SUBCOMMAND". The only subcommand is serve.
func runDNS(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("missing subcommand; %s", dnsUsage)
	}

	switch args[0] {
	case "serve":
		return runDNSServe(ctx, args[1:], stdout)
	case "-h", "-help", "--help", "help":
		return runDNSServe(ctx, []string{"--help"}, stdout)
	default:
		return usageErrorf("unknown subcommand %q; %s", args[0], dnsUsage)
	}
}

// runDNSServe serves a zone file until ctx is cancelled, and reloads the file
// on SIGHUP.
func runDNSServe(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("amtpkit dns serve", flag.ContinueOnError)
	zonePath := flags.String("zone", "", "RFC 1035 master `file` to serve (required); it may contain several zones, each starting with its SOA record")
	listenAddr := flags.String("listen", "127.0.0.1:0", "`address` IP:PORT to serve on over both UDP and TCP; port 0 picks a free port")
	allowNonLoopback := flags.Bool("allow-non-loopback", false, "allow a --listen address outside 127.0.0.0/8 and ::1")
	verbose := flags.Bool("verbose", false, "log every query (debug level) to stderr")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), dnsHelp)
		flags.PrintDefaults()
	}

	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usageErrorf("unexpected argument %q; %s", flags.Arg(0), dnsUsage)
	}
	if *zonePath == "" {
		return usageErrorf("missing --zone FILE; %s", dnsUsage)
	}
	if !*allowNonLoopback {
		if err := checkLoopback(*listenAddr); err != nil {
			return err
		}
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	zone, err := dnsserver.LoadZone(*zonePath)
	if err != nil {
		return err
	}

	// Register for SIGHUP before the address is printed. A caller that waits
	// for the address may send SIGHUP at once, and an unhandled SIGHUP ends
	// the process.
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP)
	defer signal.Stop(hangup)

	server, err := dnsserver.Start(ctx, *listenAddr, zone, logger)
	if err != nil {
		return err
	}
	defer server.Close()

	fmt.Fprintf(stdout, "dns: serving zone %s on %s (udp, tcp)\n", *zonePath, server.Addr())

	for {
		select {
		case <-ctx.Done():
			return server.Close()
		case <-hangup:
			reloadZone(server, *zonePath, logger)
		}
	}
}

// reloadZone replaces the server's zone with the current content of path. A
// file that fails to parse is logged, and the server keeps the previous zone.
func reloadZone(server *dnsserver.Server, path string, logger *slog.Logger) {
	zone, err := dnsserver.LoadZone(path)
	if err != nil {
		logger.Warn("dns: reload failed, still serving the previous zone; fix the file and send SIGHUP again",
			"zone_file", path, "error", err)
		return
	}
	server.SetZone(zone)
	logger.Info("dns: zone file reloaded", "zone_file", path, "zones", zone.Apexes())
}

// checkLoopback returns a usage error unless addr is IP:PORT with an IP in
// 127.0.0.0/8 or ::1.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageErrorf("invalid --listen %q: %v; use IP:PORT such as 127.0.0.1:0", addr, err)
	}

	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return usageErrorf("--listen %q is not a loopback address (127.0.0.0/8 or ::1); "+
			"use one, or pass --allow-non-loopback to serve the zone beyond this machine", addr)
	}
	return nil
}
