// Command amtpd is the reference AMTP server (draft-weinman-amtp-03).
//
//	amtpd --config FILE          run the server
//	amtpd --config FILE --check  validate the configuration and exit
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
	"github.com/amtp-toolkit/amtp/reference/maildir"
	"github.com/amtp-toolkit/amtp/reference/resolver"
	"github.com/amtp-toolkit/amtp/reference/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("amtpd", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "", "path of the TOML configuration `file` (required)")
	check := flags.Bool("check", false, "validate the configuration, print a summary and exit")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *configPath == "" || flags.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: amtpd --config FILE [--check]")
		return 2
	}

	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "amtpd: %v\n", err)
		return 2
	}
	logger := newLogger(cfg.Log, stderr)

	deliverer, err := maildir.New(cfg.Delivery.Maildir, cfg.Hostname)
	if err != nil {
		fmt.Fprintf(stderr, "amtpd: %v\n", err)
		return 1
	}
	srv, err := server.New(server.Options{
		Config:    cfg,
		Resolver:  resolver.NewDNS(cfg.DNS.Server, cfg.DNS.Timeout.Duration),
		Deliverer: deliverer,
		Logger:    logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "amtpd: %v\n", err)
		return 2
	}
	if *check {
		fmt.Fprintf(stdout, "amtpd: configuration %s is valid\n", cfg.Path)
		return 0
	}

	if err := srv.Listen(); err != nil {
		fmt.Fprintf(stderr, "amtpd: %v\n", err)
		return 1
	}
	for kind, addrs := range srv.Addrs() {
		for _, a := range addrs {
			fmt.Fprintf(stdout, "amtpd: %s listener on %s\n", kind, a)
		}
	}

	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintf(stderr, "amtpd: %v\n", err)
		return 1
	}
	return 0
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
