package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// recorder holds the histograms, counts and errors of the units that one
// group of workers ran. Run gives each worker one of up to four recorders
// per core (GOMAXPROCS), so a lock is shared by few workers, and merges
// them at the end. The relay sink has a recorder of its own.
type recorder struct {
	mu     sync.Mutex
	phases [numPhases]*hdr.Histogram
	counts result.Counts
	errors map[errorKey]*result.ErrorCount
}

type errorKey struct{ class, phase, key string }

func newRecorder() *recorder {
	return &recorder{errors: map[errorKey]*result.ErrorCount{}}
}

// recordPhase records d, rounded to microseconds. A duration under 1 µs
// counts as 1 µs, the histogram's lowest value. A negative one is left
// out, because checkDurations has already counted its unit as invalid.
func (r *recorder) recordPhase(phase int, d time.Duration) {
	if d < 0 {
		return
	}
	if r.phases[phase] == nil {
		r.phases[phase] = result.NewRecorder()
	}
	_ = r.phases[phase].RecordValue(max(d.Microseconds(), result.HistogramLowestUS))
}

// add records a finished unit.
func (r *recorder) add(u *unit) {
	r.mu.Lock()
	defer r.mu.Unlock()

	for phase := range numPhases {
		if u.invalid != nil && (phase == phaseTotal || phase == phaseLag) {
			// Both count from the intended start, the likeliest wrong
			// reference time.
			continue
		}
		if list, ok := u.perMessage[phase]; ok {
			for _, d := range list {
				r.recordPhase(phase, d)
			}
			continue
		}
		if u.measured[phase] {
			r.recordPhase(phase, u.durations[phase])
		}
	}

	r.counts.Started++
	if u.invalid != nil {
		r.counts.InvalidDurations++
	}
	if u.err != nil {
		r.counts.Failed++
		class, key, example := classify(u.err)
		k := errorKey{class, phaseName(u.errPhase), key}
		if e, ok := r.errors[k]; ok {
			e.Count++
		} else {
			r.errors[k] = &result.ErrorCount{Class: class, Phase: k.phase, Key: key, Example: example, Count: 1}
		}
	} else {
		r.counts.Completed++
	}
	if u.fullHandshake {
		r.counts.FullHandshakes++
	}
	if u.resumeOffered {
		r.counts.ResumeOffered++
	}
	if u.resumed {
		r.counts.Resumed++
	}
	r.counts.MessagesSent += u.sent
	r.counts.MessagesAccepted += u.accepted
	r.counts.MessagesRejected += u.rejected
	r.counts.BytesSent += u.bytes
}

// recordDelivery records one end-to-end delivery from the sink.
func (r *recorder) recordDelivery(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recordPhase(phaseDelivery, d)
	r.counts.MessagesDelivered++
}

// mergeRecorders combines recorders into result phases, counts and
// errors.
func mergeRecorders(recorders []*recorder) (map[string]*result.Histogram, result.Counts, []result.ErrorCount, error) {
	phases := map[string]*result.Histogram{}
	var counts result.Counts
	var errs []result.ErrorCount
	for _, r := range recorders {
		r.mu.Lock()
		for phase, h := range r.phases {
			if h == nil {
				continue
			}
			converted, err := result.FromHDR(h)
			if err != nil {
				r.mu.Unlock()
				return nil, counts, nil, err
			}
			phases[phaseNames[phase]] = result.MergeHistograms(phases[phaseNames[phase]], converted)
		}
		counts = counts.Add(r.counts)
		for _, e := range r.errors {
			errs = append(errs, *e)
		}
		r.mu.Unlock()
	}

	merged := map[errorKey]*result.ErrorCount{}
	var out []result.ErrorCount
	for _, e := range errs {
		k := errorKey{e.Class, e.Phase, e.Key}
		if m, ok := merged[k]; ok {
			m.Count += e.Count
			continue
		}
		copied := e
		merged[k] = &copied
	}
	for _, e := range merged {
		out = append(out, *e)
	}
	result.SortErrors(out)
	if out == nil {
		out = []result.ErrorCount{}
	}
	return phases, counts, out, nil
}

// tlsAlertNames maps the texts Go's crypto/tls (1.26) gives remote alerts
// to their RFC 8446 names.
var tlsAlertNames = map[string]string{
	"close notify":                      "close_notify",
	"unexpected message":                "unexpected_message",
	"bad record MAC":                    "bad_record_mac",
	"record overflow":                   "record_overflow",
	"handshake failure":                 "handshake_failure",
	"bad certificate":                   "bad_certificate",
	"unsupported certificate":           "unsupported_certificate",
	"revoked certificate":               "certificate_revoked",
	"expired certificate":               "certificate_expired",
	"unknown certificate":               "certificate_unknown",
	"illegal parameter":                 "illegal_parameter",
	"unknown certificate authority":     "unknown_ca",
	"access denied":                     "access_denied",
	"error decoding message":            "decode_error",
	"error decrypting message":          "decrypt_error",
	"protocol version not supported":    "protocol_version",
	"insufficient security level":       "insufficient_security",
	"internal error":                    "internal_error",
	"inappropriate fallback":            "inappropriate_fallback",
	"user canceled":                     "user_canceled",
	"no renegotiation":                  "no_renegotiation",
	"missing extension":                 "missing_extension",
	"unsupported extension":             "unsupported_extension",
	"unrecognized name":                 "unrecognized_name",
	"certificate required":              "certificate_required",
	"no application protocol":           "no_application_protocol",
	"unknown PSK identity":              "unknown_psk_identity",
	"bad certificate status response":   "bad_certificate_status_response",
	"encrypted client hello required":   "ech_required",
	"decompression failure":             "decompression_failure",
	"unsupported certificate extension": "unsupported_extension",
}

// errStopped marks a unit cut off when the run stopped.
var errStopped = errors.New("stopped at the end of the run")

// classify returns the error class, the taxonomy key and an example text
// for a unit's error.
func classify(err error) (class, key, example string) {
	example = err.Error()

	var unexpected *unexpectedReply
	if errors.As(err, &unexpected) {
		return result.ErrorReply, unexpected.reply.key(), unexpected.reply.String()
	}
	if errors.Is(err, errProtocol) {
		return result.ErrorProtocol, "invalid reply", example
	}
	if name, ok := remoteAlertName(err); ok {
		return result.ErrorTLSAlert, name, example
	}

	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuthority), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return result.ErrorTLS, "server certificate not verified", example
	case errors.Is(err, errStopped), errors.Is(err, context.Canceled):
		return result.ErrorNetwork, "stopped", example
	}
	return result.ErrorNetwork, networkKey(err), example
}

// remoteAlertName returns the RFC 8446 name of a TLS alert the server
// sent.
func remoteAlertName(err error) (string, bool) {
	var alertErr tls.AlertError
	text := ""
	var opErr *net.OpError
	switch {
	case errors.As(err, &alertErr):
		text = alertErr.Error()
	case errors.As(err, &opErr) && opErr.Op == "remote error" && opErr.Err != nil:
		text = opErr.Err.Error()
	case strings.Contains(err.Error(), "remote error: tls: "):
		text = err.Error()[strings.Index(err.Error(), "remote error: ")+len("remote error: "):]
	default:
		return "", false
	}

	text = strings.TrimPrefix(text, "tls: ")
	if name, ok := tlsAlertNames[text]; ok {
		return name, true
	}
	return strings.ReplaceAll(text, " ", "_"), true
}

// networkKey names a network failure.
func networkKey(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no local port"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, net.ErrClosed):
		return "connection closed"
	}
	return "other"
}

// timeline collects the activity per wall-clock second and the running
// totals for the progress display. Units record at the time they start or
// end, so a second older than the current one no longer changes, and
// compact converts it to its stored form.
type timeline struct {
	mu       sync.Mutex
	open     map[int64]*openSecond
	closed   []result.Second
	total    *hdr.Histogram
	activity result.Activity
	spare    []*hdr.Histogram
}

type openSecond struct {
	activity result.Activity
	latency  *hdr.Histogram
}

func newTimeline() *timeline {
	return &timeline{open: map[int64]*openSecond{}, total: result.NewRecorder()}
}

func (t *timeline) second(now time.Time) *openSecond {
	unix := now.Unix()
	s, ok := t.open[unix]
	if !ok {
		s = &openSecond{}
		t.open[unix] = s
	}
	return s
}

func (t *timeline) started(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.second(now).activity.Started++
	t.activity.Started++
}

// finished records a unit that ended at now.
func (t *timeline) finished(now time.Time, u *unit) {
	t.mu.Lock()
	defer t.mu.Unlock()

	s := t.second(now)
	delta := result.Activity{Accepted: u.accepted}
	if u.err != nil {
		delta.Failed = 1
	} else {
		delta.Completed = 1
	}
	s.activity.Add(delta)
	t.activity.Add(delta)

	if u.measured[phaseTotal] && u.invalid == nil {
		if s.latency == nil {
			s.latency = t.recorderFromSpare()
		}
		us := max(u.durations[phaseTotal].Microseconds(), result.HistogramLowestUS)
		_ = s.latency.RecordValue(us)
		_ = t.total.RecordValue(us)
	}
}

func (t *timeline) delivered(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.second(now).activity.Delivered++
	t.activity.Delivered++
}

func (t *timeline) recorderFromSpare() *hdr.Histogram {
	if n := len(t.spare); n > 0 {
		h := t.spare[n-1]
		t.spare = t.spare[:n-1]
		return h
	}
	return result.NewRecorder()
}

// compact converts the seconds before the one of now into their stored
// form.
func (t *timeline) compact(before time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()

	for unix, s := range t.open {
		if unix >= before.Unix() {
			continue
		}
		stored := result.Second{Unix: unix, Activity: s.activity, Latency: &result.Histogram{}}
		if s.latency != nil {
			if h, err := result.FromHDR(s.latency); err == nil {
				stored.Latency = h
			}
			s.latency.Reset()
			t.spare = append(t.spare, s.latency)
		}
		t.closed = append(t.closed, stored)
		delete(t.open, unix)
	}
}

// snapshot returns the running totals and the p99 of PhaseTotal so far.
func (t *timeline) snapshot() (result.Activity, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.activity, time.Duration(t.total.ValueAtQuantile(99)) * time.Microsecond
}

// seconds returns every second in increasing order, after compacting all.
func (t *timeline) seconds() []result.Second {
	t.compact(time.Now().Add(time.Hour))
	t.mu.Lock()
	defer t.mu.Unlock()

	out := append([]result.Second{}, t.closed...)
	sort.Slice(out, func(i, j int) bool { return out[i].Unix < out[j].Unix })
	return out
}
