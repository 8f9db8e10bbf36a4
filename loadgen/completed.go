package loadgen

import (
	"errors"
	"fmt"
	"time"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// ErrNothingCompleted is wrapped by the error of CheckCompleted.
var ErrNothingCompleted = errors.New("no connection completed")

// CheckCompleted returns an error wrapping ErrNothingCompleted when no
// unit of r completed. The error names the most common failure and what
// to check, because such a run measured nothing about the server.
func CheckCompleted(r *result.Result) error {
	c := r.Counts
	if c.Completed > 0 {
		return nil
	}

	if len(r.Errors) == 0 {
		return fmt.Errorf("%w: %d started, and %d never started because every worker was busy, so raise --max-in-flight or --duration",
			ErrNothingCompleted, c.Started, c.Unstarted)
	}

	// r.Errors is sorted by class, phase and key, so a tie goes to the
	// first in that order.
	common := r.Errors[0]
	for _, e := range r.Errors[1:] {
		if e.Count > common.Count {
			common = e
		}
	}
	return fmt.Errorf("%w: %d started, %d failed. The most common error (%d of %d) was %s %q at %s (%s), so %s",
		ErrNothingCompleted, c.Started, c.Failed, common.Count, c.Failed, common.Class, common.Key, common.Phase, common.Example,
		failureHint(r, common))
}

// failureHint returns what to check for the error e of r.
func failureHint(r *result.Result, e result.ErrorCount) string {
	target := r.Run.Target
	switch {
	case e.Class == result.ErrorNetwork && e.Key == "connection refused":
		return fmt.Sprintf("check that the server is running and listens on %s", target)
	case e.Class == result.ErrorNetwork && e.Key == "timeout":
		timeout := time.Duration(r.Run.Options.TimeoutSeconds * float64(time.Second))
		return fmt.Sprintf("check that the server at %s is running and replies within --timeout %s", target, timeout)
	case e.Class == result.ErrorNetwork && e.Key == "no local port":
		return "check that the identities' source addresses exist on the loopback interface, and lower the rate if local ports ran out"
	case e.Class == result.ErrorNetwork:
		return fmt.Sprintf("check the server's log at %s: it closed the connections, for example because of a per-client limit or a rejected certificate", target)
	case e.Class == result.ErrorTLSAlert:
		return "check that the server trusts the CA of the PKI in --pki and accepts the certificates of --identity"
	case e.Class == result.ErrorTLS:
		return "check that the server's certificate comes from the PKI in --pki and that --server-name matches it"
	case e.Class == result.ErrorReply:
		return "check the server's log for why it rejects these connections, and its configuration for the identities of --identity"
	case e.Class == result.ErrorProtocol:
		return fmt.Sprintf("check that %s is an AMTP server with implicit TLS", target)
	}
	return "check the server's log and the errors in the summary"
}
