// Package run runs the conformance specs in-process and builds the JSON
// result, so that users need no "go test".
//
// Run configures conformance/specs, serves the PKI's DNS zone if asked to,
// and calls Ginkgo's RunSpecs with explicit suite and reporter
// configurations: a label filter made of the --focus, --skip and
// --label-filter options, no randomization, and colors only when asked.
// Ginkgo allows RunSpecs once per process, so Run and List together may
// be called once per process.
package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/formatter"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/amtp-toolkit/amtp/conformance/maildir"
	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/conformance/specs"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// ErrAlreadyRan is returned by Run and List after the first call of
// either in a process.
var ErrAlreadyRan = errors.New("the conformance suite already ran in this process; Ginkgo runs its specs once per process")

var (
	ranMu sync.Mutex
	ran   bool
)

// claimRun reports ErrAlreadyRan unless this is the first run of the
// process.
func claimRun() error {
	ranMu.Lock()
	defer ranMu.Unlock()
	if ran {
		return ErrAlreadyRan
	}
	ran = true
	return nil
}

// failureRecorder is the GinkgoTestingT of RunSpecs. The verdicts come
// from the specs package, so it only notes that some spec failed.
type failureRecorder struct {
	failed bool
}

// Fail notes that a spec failed.
func (r *failureRecorder) Fail() {
	r.failed = true
}

// Run checks the server at opts.Target and returns the result. It returns
// an error wrapping ErrInvalidOptions for bad options, and another error
// when the harness cannot start, such as when the DNS address is taken.
// Canceling ctx ends the running check and skips it and the rest, and the
// result records the interruption with the cause of ctx.
func Run(ctx context.Context, opts Options) (*result.Result, error) {
	given := opts
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	filter, _ := opts.labelFilter()

	manifest, err := pki.Load(opts.PKIDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if opts.ServerName == "" {
		server, err := manifest.Cert(pki.CertServer)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
		}
		opts.ServerName = server.CN
	}
	if opts.Recipient == "" {
		opts.Recipient = "postmaster@" + manifest.Domain
	}

	var watcher *maildir.Watcher
	if opts.Maildir != "" {
		if watcher, err = maildir.New(opts.Maildir); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
		}
	}
	if err := claimRun(); err != nil {
		return nil, err
	}

	cfg := specs.Config{
		Target:        opts.Target,
		Target6:       opts.Target6,
		PrivateTarget: opts.PrivateTarget,
		ServerName:    opts.ServerName,
		PKI:           manifest,
		Maildir:       watcher,
		Recipient:     opts.Recipient,
		Strict:        opts.Strict,
		StepTimeout:   opts.StepTimeout,
		ServerTimeout: opts.ServerTimeout,
		RunID:         newRunID(),
	}

	routes, err := startRouteSinks(manifest, opts.GatewaySink, opts.PrivateSink)
	if err != nil {
		return nil, err
	}
	defer routes.Close()
	cfg.GatewaySink, cfg.PrivateSink = routes.gateway, routes.private

	dnsCtx, stopDNS := context.WithCancel(context.Background())
	defer stopDNS()
	var zone *zoneServer
	if opts.DNSMode == DNSServe {
		// The sinks need the suite's DNS server, which routes their
		// domains to them.
		sinks, err := startRelaySinks(manifest, opts.StepTimeout)
		if err != nil {
			return nil, err
		}
		defer sinks.Close()
		cfg.Sink, cfg.DenyingSink, cfg.PolicySink = sinks.accepting, sinks.denying, sinks.policy
		cfg.SRVFallback = sinks.fallback

		zone, err = startZoneServer(dnsCtx, manifest, opts.DNSListen, sinks.records...)
		if err != nil {
			return nil, err
		}
		defer zone.Close()
		cfg.DNS = zone
	}

	if !opts.Verbose {
		// Without --verbose the user sees the suite's verdicts, not
		// Ginkgo's report, whose counts and source locations are about the
		// specs of this toolkit.
		cfg.Progress = opts.Output
		cfg.ProgressHeader = fmt.Sprintf("checking %s (%s):", opts.Target, specs.ProgressLegend)
	}

	start := time.Now()
	specs.Configure(ctx, cfg)
	runSpecs(opts, filter, false)
	end := time.Now()

	if err := checkSelection(filter, given); err != nil {
		return nil, err
	}

	interruption := ""
	if ctx.Err() != nil {
		interruption = context.Cause(ctx).Error()
	}
	r := build(given, opts, filter, interruption, start, end)
	if zone != nil {
		r.Environment.DNSOverrides = zone.PTROverrides()
	}
	return r, nil
}

// List builds the spec tree without running it and returns the IDs of the
// clauses that have a spec. It connects to nothing.
func List() ([]string, error) {
	if err := claimRun(); err != nil {
		return nil, err
	}
	runSpecs(Options{}, "", true)
	return specs.SpecIDs(), nil
}

// runSpecs calls Ginkgo's RunSpecs with the suite's configuration.
func runSpecs(opts Options, filter string, dryRun bool) {
	suiteConfig := types.NewDefaultSuiteConfig()
	suiteConfig.LabelFilter = filter
	suiteConfig.RandomizeAllSpecs = false
	// The specs run in one Ordered container, so the seed changes nothing;
	// a fixed one keeps the report's header stable.
	suiteConfig.RandomSeed = 1
	suiteConfig.DryRun = dryRun
	// The specs bound themselves; this limit only stops a run that a bug
	// keeps going.
	suiteConfig.Timeout = 24 * time.Hour
	suiteConfig.GracePeriod = 5 * time.Second

	reporterConfig := types.NewDefaultReporterConfig()
	reporterConfig.NoColor = !opts.Color
	reporterConfig.Succinct = !opts.Verbose
	reporterConfig.Verbose = opts.Verbose
	reporterConfig.SilenceSkips = !opts.Verbose

	output := opts.Output
	if output == nil || !opts.Verbose {
		output = io.Discard
	}
	// Ginkgo's default reporter writes to formatter.ColorableStdOut, which
	// it reads when RunSpecs starts.
	previous := formatter.ColorableStdOut
	formatter.ColorableStdOut = output
	defer func() { formatter.ColorableStdOut = previous }()

	specs.Register()
	ginkgo.RunSpecs(&failureRecorder{}, specs.SuiteDescription, suiteConfig, reporterConfig)
}

// newRunID returns a short random ID for the message tokens of a run.
func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "r" + hex.EncodeToString(b)
}
