package dispatch

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtp-toolkit/amtp/reference/queue"
)

// Metrics counts delivery outcomes for the Prometheus exposition of
// WriteMetrics.
type Metrics struct {
	Enqueued  atomic.Int64
	Delivered atomic.Int64
	Deferred  atomic.Int64
	Failed    atomic.Int64
	Bounced   atomic.Int64

	mu         sync.Mutex
	ageBuckets []float64 // upper bounds in seconds
	ageCounts  []int64
	ageSum     float64
	ageCount   int64
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	bounds := []float64{1, 10, 60, 600, 3600, 6 * 3600, 24 * 3600, 5 * 24 * 3600}
	return &Metrics{ageBuckets: bounds, ageCounts: make([]int64, len(bounds))}
}

// observeAge records the time a finished message spent in the queue.
func (m *Metrics) observeAge(age time.Duration) {
	sec := age.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, b := range m.ageBuckets {
		if sec <= b {
			m.ageCounts[i]++
		}
	}
	m.ageSum += sec
	m.ageCount++
}

// WriteMetrics writes the metrics in the Prometheus text exposition
// format 0.0.4, with the queue depth and the age of the oldest message
// read from spool.
func (d *Dispatcher) WriteMetrics(w io.Writer) error {
	m := d.opts.Metrics
	envs := d.opts.Spool.List()
	oldest := 0.0
	now := time.Now()
	deferred := 0
	for _, env := range envs {
		if age := now.Sub(env.ReceivedAt).Seconds(); age > oldest {
			oldest = age
		}
		if hasState(env, queue.Deferred) {
			deferred++
		}
	}

	var b []byte
	gauge := func(name, help string, v float64) {
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	gauge("amtpd_queue_messages", "Messages in the queue.", float64(len(envs)))
	gauge("amtpd_queue_deferred_messages", "Queued messages with at least one deferred recipient.", float64(deferred))
	gauge("amtpd_queue_oldest_message_age_seconds", "Age of the oldest queued message.", oldest)

	b = fmt.Appendf(b, "# HELP amtpd_queue_enqueued_total Messages accepted into the queue.\n# TYPE amtpd_queue_enqueued_total counter\namtpd_queue_enqueued_total %d\n", m.Enqueued.Load())
	b = fmt.Appendf(b, "# HELP amtpd_delivery_attempts_total Delivery attempts per recipient by outcome.\n# TYPE amtpd_delivery_attempts_total counter\n")
	b = fmt.Appendf(b, "amtpd_delivery_attempts_total{outcome=\"delivered\"} %d\n", m.Delivered.Load())
	b = fmt.Appendf(b, "amtpd_delivery_attempts_total{outcome=\"deferred\"} %d\n", m.Deferred.Load())
	b = fmt.Appendf(b, "amtpd_delivery_attempts_total{outcome=\"failed\"} %d\n", m.Failed.Load())
	b = fmt.Appendf(b, "# HELP amtpd_bounces_total Bounce messages queued.\n# TYPE amtpd_bounces_total counter\namtpd_bounces_total %d\n", m.Bounced.Load())

	m.mu.Lock()
	b = fmt.Appendf(b, "# HELP amtpd_queue_residence_seconds Time finished messages spent in the queue.\n# TYPE amtpd_queue_residence_seconds histogram\n")
	for i, bound := range m.ageBuckets {
		b = fmt.Appendf(b, "amtpd_queue_residence_seconds_bucket{le=\"%g\"} %d\n", bound, m.ageCounts[i])
	}
	b = fmt.Appendf(b, "amtpd_queue_residence_seconds_bucket{le=\"+Inf\"} %d\namtpd_queue_residence_seconds_sum %g\namtpd_queue_residence_seconds_count %d\n", m.ageCount, m.ageSum, m.ageCount)
	m.mu.Unlock()

	_, err := w.Write(b)
	return err
}
