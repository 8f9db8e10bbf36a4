// Command amtpkit is the AMTP toolkit: it stages test runs (a throwaway PKI,
// a DNS server on loopback) and drives AMTP servers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"syscall"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/conformance/run"
)

// command is one amtpkit subcommand. Run receives the arguments after the
// subcommand name and writes its normal output to stdout.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"pki":     {summary: "create a throwaway test PKI (pki init --dir DIR)", run: runPKI},
	"dns":     {summary: "serve a zone file on loopback (dns serve --zone FILE --listen ADDR)", run: runDNS},
	"version": {summary: "print the suite version, the draft revision it checks and the Go version", run: runVersion},
	"send":    {summary: "send one message over AMTP (send --to ADDR --mpc ROLE/CLASS --pki DIR --server ADDR [FILE])", run: runSend},
	"conform": {summary: "check a server against the draft's clauses (conform --target HOST:PORT --pki DIR [--list])", run: runConform},
	"report":  {summary: "render a saved result as HTML, JUnit or Markdown (report [--html F] [--junit F] RESULT.json; report compare A.json B.json)", run: runReport},
	"load":    {summary: "drive a server with mutual-TLS load and per-phase latencies (load --target HOST:PORT --pki DIR --rate R --duration D)", run: runLoad},
	"demo":    {summary: "stage amtpd on loopback, run the suite and a short load against it, write reports (demo [--out DIR])", run: runDemo},
}

// runVersion runs "amtpkit version".
func runVersion(_ context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q; version takes none", args[0])
	}
	fmt.Fprintf(stdout, "amtpkit %s, checks %s, built with %s\n", run.SuiteVersion(), result.Draft, runtime.Version())
	return nil
}

// errUsage marks an error caused by bad command-line arguments; it maps to
// exit code 2.
var errUsage = errors.New("usage error")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	os.Exit(runMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}

	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "amtpkit: unknown command %q; run 'amtpkit help' for the list\n", args[0])
		return 2
	}

	err := cmd.run(ctx, args[1:], stdout)
	var exitErr *exitError
	switch {
	case errors.As(err, &exitErr):
		fmt.Fprintf(stderr, "amtpkit %s: %v\n", args[0], exitErr.err)
		return exitErr.status
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "amtpkit %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "amtpkit %s: %v\n", args[0], err)
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: amtpkit COMMAND [options]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")

	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
}

// exitError ends a command with a specific exit status.
type exitError struct {
	status int
	err    error
}

func (e *exitError) Error() string { return e.err.Error() }

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf returns an error wrapping errUsage with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// usageError is an error in the command line. It matches errUsage, and
// its text is the message alone.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func (e *usageError) Is(target error) bool { return target == errUsage }

// parseFlags parses args into flags. On -h or --help it prints the
// command's usage and returns flag.ErrHelp. An invalid option gives a
// usage error that names it and points to --help, without the whole usage.
func parseFlags(flags *flag.FlagSet, args []string) error {
	output := flags.Output()
	flags.SetOutput(io.Discard)
	err := flags.Parse(args)
	flags.SetOutput(output)

	switch {
	case errors.Is(err, flag.ErrHelp):
		flags.Usage()
		return err
	case err != nil:
		return usageErrorf("%v; run '%s --help' for the options", err, flags.Name())
	}
	return nil
}
