package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/loadgen"
	"github.com/amtp-toolkit/amtp/loadgen/result"
	"github.com/amtp-toolkit/amtp/reports/load"
)

const loadUsage = `usage: amtpkit load --target IP:PORT --pki DIR [--scenario NAME]
                    (--rate R | --concurrency C) (--duration D | --count N)
                    [options]
       amtpkit load --target IP:PORT --pki DIR [--scenario NAME]
                    (--rate-steps R1,R2,... | --rate R --find-max)
                    [--duration D] [--count N] [options]
       amtpkit load merge --json OUT [--html FILE] RESULT.json...

Drives an AMTP server on loopback with mutual-TLS connections and records
per-phase latencies in HDR histograms. Scenarios: handshake (connect, TLS
handshake, greeting, QUIT), resume (a share of the connections resumes a
TLS 1.3 session), session (EHLO, then --messages messages per connection),
relay (messages through the server's private listener to a sink that
amtpkit runs, found by SRV in the DNS zone it serves on --dns-listen).

--rate runs open loop: connections start at that rate whatever the
server does, and latency counts from the intended start. --concurrency
runs closed loop: that many connections back to back. --rate-steps and
--find-max run their steps of --step-duration each, so the run needs no
other bound. The scenario is handshake unless --scenario says otherwise.
See docs/load.md.

'merge' combines the JSON results of the shards of a --shard run, exactly.

Exit status:
  0  the run finished and every --threshold passed
  1  the run could not be done (no PKI, a file not written, ...), or no
     connection completed; --json still writes the result then
  2  invalid options, or a target that is not a loopback IP address
  3  a --threshold failed

options:
`

// loadThresholdFailed is the exit status when a threshold fails.
const loadThresholdFailed = 3

// runLoad runs "amtpkit load".
func runLoad(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "merge" {
		return runLoadMerge(args[1:], stdout)
	}

	flags := flag.NewFlagSet("amtpkit load", flag.ContinueOnError)
	var cfg loadgen.Config
	var identities, thresholds stringList
	flags.StringVar(&cfg.Target, "target", "", "server `IP:PORT` with a loopback IP address, or localhost:PORT; host names are not resolved (required)")
	pkiDir := flags.String("pki", "", "test PKI `folder` written by 'amtpkit pki init' (required)")
	flags.StringVar(&cfg.Scenario, "scenario", result.ScenarioHandshake, "`name`: handshake, resume, session or relay")
	flags.Float64Var(&cfg.Rate, "rate", 0, "open loop: `rate` of connections started per second")
	rateSteps := flags.String("rate-steps", "", "open loop with a schedule: comma-separated `rates`, each for --step-duration")
	flags.DurationVar(&cfg.StepDuration, "step-duration", loadgen.DefaultStepDuration, "`duration` of each rate step of --rate-steps and --find-max")
	flags.IntVar(&cfg.Concurrency, "concurrency", 0, "closed loop: `number` of connections kept busy back to back")
	flags.IntVar(&cfg.MaxInFlight, "max-in-flight", loadgen.DefaultMaxInFlight, "open loop: maximum `number` of connections in progress")
	flags.DurationVar(&cfg.Duration, "duration", 0, "stop starting connections after this `duration`, such as 30s")
	flags.Int64Var(&cfg.Count, "count", 0, "stop after this `number` of connections")
	flags.IntVar(&cfg.Messages, "messages", loadgen.DefaultMessages, "`number` of messages per connection (session and relay)")
	flags.IntVar(&cfg.MessageSize, "size", loadgen.DefaultMessageSize, "message size in `bytes`, header included")
	flags.StringVar(&cfg.MPC, "mpc", loadgen.DefaultMPC, "Mail Policy Code `ROLE/CLASS` of each message, or none to leave MPC= out (for plain SMTP servers)")
	flags.StringVar(&cfg.Recipient, "to", "", "recipient `address` (default: alice at the PKI's domain; for relay, load at --relay-domain)")
	flags.Float64Var(&cfg.ResumeFraction, "resume-fraction", loadgen.DefaultResumeFraction, "resume: `share` (0 to 1) of connections that offer a session ticket")
	flags.Var(&identities, "identity", "client certificate `name` of the PKI manifest; repeatable (default: pool-1 to pool-4, or private-client for relay)")
	flags.StringVar(&cfg.ServerName, "server-name", "", "TLS server `name` (default: the CN of the PKI's server certificate)")
	flags.DurationVar(&cfg.Timeout, "timeout", loadgen.DefaultTimeout, "maximum `duration` of each step: a connect, a handshake, one reply; must be positive")
	flags.StringVar(&cfg.RelayDomain, "relay-domain", "", "relay: `domain` routed to the sink (default: load-sink.<PKI domain>)")
	flags.StringVar(&cfg.DNSListen, "dns-listen", "", "relay: serve the PKI zone plus the sink's SRV record on this loopback `IP:PORT`")
	flags.StringVar(&cfg.SinkListen, "sink-listen", "", "relay: loopback `IP:PORT` of the sink (default 127.0.0.1:0)")
	shard := flags.String("shard", "", "run part `i/N` of a sharded run, numbered from 0 (0/N to N-1/N): 1/N of the rate, concurrency and count")
	flags.Var(&thresholds, "threshold", "check `EXPR` such as 'p99(handshake)<50ms' or 'errors<0.1%'; repeatable (see docs/load.md)")
	flags.BoolVar(&cfg.FindMax, "find-max", false, "step the rate up from --rate until a threshold breaks; report the highest rate that passed")
	flags.Float64Var(&cfg.FindMaxFactor, "find-max-factor", loadgen.DefaultFindMaxFactor, "find-max: rate `factor` from one step to the next")
	flags.IntVar(&cfg.FindMaxSteps, "find-max-steps", loadgen.DefaultFindMaxSteps, "find-max: maximum `number` of steps")
	flags.BoolVar(&cfg.SkipCalibration, "no-calibration", false, "skip the generator's calibration at start")
	jsonPath := flags.String("json", "", "write the JSON result to `FILE`")
	htmlPath := flags.String("html", "", "also write the result as one self-contained HTML page to `FILE`")
	progressMode := flags.String("progress", "auto", "progress display on stderr: `mode` auto, bars, lines or none")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), loadUsage)
		flags.PrintDefaults()
	}

	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usageErrorf("unexpected argument %q; run 'amtpkit load --help'", flags.Arg(0))
	}
	if *pkiDir == "" {
		return usageErrorf("missing --pki; create a PKI with 'amtpkit pki init --dir DIR'")
	}

	if cfg.Timeout <= 0 {
		return usageErrorf("--timeout %s is invalid: it bounds each connect, handshake and reply, so it must be positive, such as 10s", cfg.Timeout)
	}
	if cfg.StepDuration <= 0 {
		return usageErrorf("--step-duration %s is invalid: it must be positive, such as 30s", cfg.StepDuration)
	}
	cfg.Identities, cfg.Thresholds = identities, thresholds
	if err := parseLoadLists(&cfg, *rateSteps, *shard, *progressMode); err != nil {
		return err
	}
	m, err := pki.Load(*pkiDir)
	if err != nil {
		return err
	}
	cfg.PKI = m

	r, err := loadgen.Run(ctx, cfg)
	if errors.Is(err, loadgen.ErrInvalidConfig) {
		return usageErrorf("%v", err)
	}
	if err != nil {
		return err
	}
	return finishLoad(r, *jsonPath, *htmlPath, stdout)
}

// parseLoadLists parses the options that are not plain values.
func parseLoadLists(cfg *loadgen.Config, rateSteps, shard, progressMode string) error {
	for _, field := range strings.Split(rateSteps, ",") {
		if field = strings.TrimSpace(field); field == "" {
			continue
		}
		r, err := strconv.ParseFloat(field, 64)
		if err != nil || r <= 0 {
			return usageErrorf("--rate-steps: %q is not a positive rate", field)
		}
		cfg.RateSteps = append(cfg.RateSteps, r)
	}

	if shard != "" {
		s, err := loadgen.ParseShard(shard)
		if err != nil {
			return usageErrorf("%v", err)
		}
		cfg.Shard = s
	}

	switch progressMode {
	case "auto":
		cfg.Progress, cfg.Terminal = os.Stderr, isTerminal(os.Stderr)
	case "bars":
		cfg.Progress, cfg.Terminal = os.Stderr, true
	case "lines":
		cfg.Progress = os.Stderr
	case "none":
	default:
		return usageErrorf("--progress %q is unknown; use auto, bars, lines or none", progressMode)
	}
	return nil
}

// finishLoad writes the JSON result, the HTML report and the summary.
// It returns an error when no connection completed (exit status 1), or
// the threshold failure as exit status 3.
func finishLoad(r *result.Result, jsonPath, htmlPath string, stdout io.Writer) error {
	if jsonPath != "" {
		if err := r.Write(jsonPath); err != nil {
			return err
		}
	}
	if htmlPath != "" {
		if err := writeLoadHTML(r, htmlPath); err != nil {
			return err
		}
	}
	if err := loadgen.WriteSummary(stdout, r); err != nil {
		return err
	}
	if jsonPath != "" {
		fmt.Fprintf(stdout, "JSON result: %s\n", jsonPath)
	}
	if htmlPath != "" {
		fmt.Fprintf(stdout, "HTML report: %s\n", htmlPath)
	}

	if err := loadgen.CheckCompleted(r); err != nil {
		return err
	}
	if !r.ThresholdsPassed() {
		failed := 0
		for _, t := range r.Thresholds {
			if !t.Passed {
				failed++
			}
		}
		return &exitError{status: loadThresholdFailed, err: fmt.Errorf("%d of %d thresholds failed", failed, len(r.Thresholds))}
	}
	return nil
}

// runLoadMerge runs "amtpkit load merge".
func runLoadMerge(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("amtpkit load merge", flag.ContinueOnError)
	jsonPath := flags.String("json", "", "write the merged JSON result to `FILE` (required)")
	flags.StringVar(jsonPath, "o", "", "write the merged JSON result to `FILE`, the same as --json")
	htmlPath := flags.String("html", "", "also write the merged result as an HTML page to `FILE`")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), "usage: amtpkit load merge --json OUT [--html FILE] RESULT.json...\n\nMerges the results of the shards of one --shard run, or of separate runs\nof one scenario: counts add up and histograms merge exactly. Thresholds of\nthe inputs are checked again on the merged result.\n\noptions:\n")
		flags.PrintDefaults()
	}
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() == 0 {
		return usageErrorf("missing result files; run 'amtpkit load merge --json OUT A.json B.json'")
	}
	if *jsonPath == "" {
		return usageErrorf("missing --json OUT for the merged result")
	}

	var results []*result.Result
	for _, path := range flags.Args() {
		r, err := result.Load(path)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	merged, err := result.Merge(results...)
	if err != nil {
		return usageErrorf("%v", err)
	}
	return finishLoad(merged, *jsonPath, *htmlPath, stdout)
}

// writeLoadHTML renders r with the reports package, the same page that
// 'amtpkit report --html' writes from a saved result.
func writeLoadHTML(r *result.Result, path string) error {
	var page bytes.Buffer
	if err := load.WriteHTML(&page, r); err != nil {
		return fmt.Errorf("render the load report: %w", err)
	}
	if err := os.WriteFile(path, page.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the load report: %w", err)
	}
	return nil
}
