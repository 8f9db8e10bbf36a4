// Command amtpd is the reference AMTP server (draft-weinman-amtp-03).
//
//	amtpd --config FILE                 run the server
//	amtpd --config FILE --check         validate the configuration and exit
//	amtpd queue list|show|retry|delete  inspect and manage the queue
//
// The configuration format is described in docs/amtpd.example.toml.
// amtpd logs with log/slog to stderr and prints one line per listener to
// stdout once it accepts connections, for scripts that start it with
// port 0. SIGINT and SIGTERM shut it down gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/amtp-toolkit/amtp/reference/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const amtpdUsage = `usage: amtpd --config FILE [--check]
       amtpd queue list|show|retry|delete --config FILE ...

amtpd is the reference AMTP server: it accepts mail over implicit TLS from
clients with a valid certificate, a matching PTR record and EHLO name, and
an acceptable Mail Policy Code; queues it durably; delivers it to Maildir
or relays it by _amtp._tcp SRV records. 'amtpd queue' lists and acts on the
queue of a configured server. The configuration format is described in
docs/amtpd.example.toml.

Exit status:
  0  stopped by SIGINT or SIGTERM after a clean shutdown, or --check passed
  1  the server could not start (such as a listen address in use or a spool
     locked by another amtpd) or failed while running
  2  invalid options or an invalid configuration

options:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "queue" {
		return runQueue(ctx, args[1:], stdout, stderr)
	}

	flags := flag.NewFlagSet("amtpd", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "", "path of the TOML configuration `file` (required)")
	check := flags.Bool("check", false, "validate the configuration and exit")
	flags.Usage = func() {
		fmt.Fprint(stderr, amtpdUsage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "amtpd: unexpected argument %q; run 'amtpd --help'\n", flags.Arg(0))
		return exitUsage
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "amtpd: missing --config FILE; docs/amtpd.example.toml describes the format, and 'amtpd --help' the options")
		return exitUsage
	}

	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "amtpd: %v\n", err)
		return exitUsage
	}
	return serve(ctx, cfg, *check, stdout, stderr)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
