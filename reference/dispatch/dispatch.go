// Package dispatch moves accepted mail out of the durable queue. It is the
// delivery.Deliverer that the SMTP session hands messages to. Its workers
// deliver messages locally or relay them, retry temporary failures with
// exponential backoff, and return bounces.
//
// Delivery guarantee: a message is in the spool (reference/queue) before
// the session replies 250. Each recipient's outcome is appended to the
// spool file only after the delivery or relay has succeeded or failed, so
// a crash between the two repeats that delivery after a restart: every
// accepted message is delivered at least once, and a duplicate needs a
// crash inside that window.
package dispatch

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/amtp-toolkit/amtp/reference/delivery"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/queue"
	"github.com/amtp-toolkit/amtp/reference/router"
)

// LocalDeliverer stores one copy of a message for a local recipient with an
// MPC header field (section 4.4.4). maildir.Deliverer implements it.
type LocalDeliverer interface {
	DeliverTo(recipient, from, mpcValue string, msg []byte) error
}

// Outbound relays a message to the recipients of one domain over a route.
type Outbound interface {
	// Send returns one result per recipient, in the order given. An error
	// instead of results applies to every recipient.
	Send(ctx context.Context, route router.Route, msg OutboundMessage) ([]RecipientResult, error)
}

// OutboundMessage is a message for the recipients of one domain.
type OutboundMessage struct {
	ID         string
	From       string
	Recipients []string
	MPC        mpc.Value
	Data       []byte
}

// RecipientResult is the outcome for one recipient of a relay attempt.
type RecipientResult struct {
	Recipient string
	Outcome   Outcome
	Code      int
	Text      string
}

// Outcome classifies a delivery attempt for one recipient.
type Outcome int

// Outcomes.
const (
	Delivered Outcome = iota
	Deferred          // temporary failure: retry later
	Failed            // permanent failure: bounce
)

// RetryPolicy is the retry schedule for temporary failures.
type RetryPolicy struct {
	// Base is the delay before the first retry; each further retry doubles
	// it, up to MaxInterval. Every delay is drawn uniformly from its upper
	// half, so messages deferred together do not retry together.
	Base        time.Duration
	MaxInterval time.Duration
	// MaxAge is how long a message may stay in the queue; then the
	// recipients still deferred fail and the sender gets a bounce.
	MaxAge time.Duration
}

// Delay returns the delay before retry number attempt (1 for the first).
func (p RetryPolicy) Delay(attempt int) time.Duration {
	d := p.Base
	for i := 1; i < attempt && d < p.MaxInterval; i++ {
		d *= 2
	}
	d = min(d, p.MaxInterval)
	half := d / 2
	return half + rand.N(half+1)
}

// Options configure a Dispatcher.
type Options struct {
	Spool    *queue.Spool
	Router   *router.Router
	Local    LocalDeliverer
	Outbound Outbound
	Retry    RetryPolicy
	// Workers is the size of each of the two worker pools, one for local
	// delivery and one for relays.
	Workers  int
	Hostname string // the reporting MTA in bounces
	Logger   *slog.Logger
	Metrics  *Metrics
}

// Dispatcher delivers queued messages.
type Dispatcher struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	schedule [poolCount]scheduleHeap
	index    map[string]*scheduled // queued IDs not being processed
	inflight map[string]bool       // IDs a worker is processing
	// later holds the earliest time requested by scheduleAt for an ID
	// while a worker processed it; the worker schedules it when it is done.
	later map[string]time.Time
	wake  [poolCount]chan struct{}
	work  [poolCount]chan string
	wg    sync.WaitGroup
}

// Worker pools. A message whose undelivered recipients are all local goes
// to poolLocal, so that next hops that are slow or silent, each holding a
// relay worker for up to its timeouts, cannot hold up Maildir delivery.
// A message with local and remote recipients goes to poolRelay.
const (
	poolLocal = iota
	poolRelay
	poolCount
)

// New returns a dispatcher. Run starts it.
func New(opts Options) *Dispatcher {
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	d := &Dispatcher{
		opts:     opts,
		log:      opts.Logger,
		index:    map[string]*scheduled{},
		inflight: map[string]bool{},
		later:    map[string]time.Time{},
	}
	for pool := range poolCount {
		d.wake[pool] = make(chan struct{}, 1)
		d.work[pool] = make(chan string)
	}
	return d
}

// Deliver puts an accepted message into the durable queue and schedules
// it. It implements delivery.Deliverer: when it returns nil the message is
// on disk.
func (d *Dispatcher) Deliver(ctx context.Context, env *delivery.Envelope, msg []byte) error {
	qe := &queue.Envelope{
		ID:         env.ID,
		From:       env.From,
		MPC:        env.MPC.String(),
		ReceivedAt: env.ReceivedAt,
		ClientAddr: env.ClientAddr,
		ClientCN:   env.ClientCN,
		Private:    env.Private,
	}
	for _, r := range env.Recipients {
		qe.Recipients = append(qe.Recipients, queue.Recipient{Address: r, State: queue.Pending})
	}
	return d.enqueue(ctx, qe, msg)
}

func (d *Dispatcher) enqueue(ctx context.Context, env *queue.Envelope, msg []byte) error {
	id, err := d.opts.Spool.Put(ctx, env, msg)
	if err != nil {
		return fmt.Errorf("queue message: %w", err)
	}
	d.opts.Metrics.Enqueued.Add(1)
	d.scheduleAt(id, time.Now())
	return nil
}

// Run loads the queue, starts the workers and delivers until ctx is done.
// It returns after the workers have finished their current messages.
func (d *Dispatcher) Run(ctx context.Context) error {
	envs := d.opts.Spool.List()
	for _, env := range envs {
		d.scheduleAt(env.ID, env.NextAttempt)
	}
	d.log.Info("queue loaded", "messages", len(envs))

	var schedulers sync.WaitGroup
	for pool := range poolCount {
		for range d.opts.Workers {
			d.wg.Add(1)
			go d.worker(ctx, d.work[pool])
		}
		schedulers.Go(func() { d.runScheduler(ctx, pool) })
	}
	schedulers.Wait()
	d.wg.Wait()
	return nil
}

// RetryNow makes a queued message due at once. It reports whether the
// message is queued.
func (d *Dispatcher) RetryNow(id string) bool {
	if _, ok := d.opts.Spool.Get(id); !ok {
		return false
	}
	if _, err := d.opts.Spool.Update(id, queue.Record{Time: time.Now(), Type: queue.RecordRetry, NextAttempt: time.Now()}); err != nil {
		d.log.Error("retry now: cannot record the retry", "id", id, "error", err)
	}
	d.scheduleAt(id, time.Now())
	return true
}

// RetryAll makes every queued message due at once and returns how many.
func (d *Dispatcher) RetryAll() int {
	n := 0
	for _, env := range d.opts.Spool.List() {
		if d.RetryNow(env.ID) {
			n++
		}
	}
	return n
}

// Delete removes a queued message without delivering it or sending a
// bounce. It fails for a message that a worker is delivering right now.
func (d *Dispatcher) Delete(id string) error {
	d.mu.Lock()
	if d.inflight[id] {
		d.mu.Unlock()
		return fmt.Errorf("message %s is being delivered; try again in a moment", id)
	}
	if s, ok := d.index[id]; ok {
		heap.Remove(&d.schedule[s.pool], s.pos)
		delete(d.index, id)
	}
	d.mu.Unlock()

	if _, ok := d.opts.Spool.Get(id); !ok {
		return fmt.Errorf("message %s is not in the queue; run 'amtpd queue list' for the IDs", id)
	}
	if err := d.opts.Spool.Remove(id); err != nil {
		return err
	}
	d.log.Info("message deleted by the operator", "id", id)
	return nil
}

// worker delivers the messages that the scheduler of its pool hands it
// on work.
func (d *Dispatcher) worker(ctx context.Context, work <-chan string) {
	defer d.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-work:
			d.process(ctx, id)

			d.mu.Lock()
			delete(d.inflight, id)
			t, again := d.later[id]
			delete(d.later, id)
			d.mu.Unlock()
			if again {
				d.scheduleAt(id, t)
			}
		}
	}
}

// process makes one delivery attempt for every recipient of a message that
// is not yet final, records the outcomes, and then either schedules the
// next attempt or finishes the message.
func (d *Dispatcher) process(ctx context.Context, id string) {
	env, msg, err := d.opts.Spool.Load(id)
	if errors.Is(err, queue.ErrNotFound) || errors.Is(err, queue.ErrCorrupt) {
		// Deleted by the operator, or moved to corrupt/ by the spool,
		// which logged it.
		d.log.Warn("queued message is gone; not scheduling it again", "id", id, "error", err)
		return
	}
	if err != nil {
		d.log.Error("cannot load queued message; retrying later", "id", id, "error", err)
		d.scheduleAt(id, time.Now().Add(d.opts.Retry.Delay(1)))
		return
	}
	value, err := mpc.Parse(env.MPC)
	if err != nil {
		// Section 5.2: a message with an invalid MPC value is neither
		// relayed nor delivered. The session never queues one.
		d.failAll(ctx, env, msg, 550, "invalid MPC value in queue: "+err.Error())
		return
	}

	var records []queue.Record
	for domain, rcpts := range pendingByDomain(env) {
		for _, res := range d.attemptDomain(ctx, env, value, msg, domain, rcpts) {
			records = append(records, d.recipientRecord(env, res))
		}
	}
	records = append(records, queue.Record{Time: time.Now(), Type: queue.RecordAttempt})

	env, err = d.opts.Spool.Update(id, records...)
	if err != nil {
		d.log.Error("cannot record delivery results; the next attempt may repeat deliveries", "id", id, "error", err)
		d.scheduleAt(id, time.Now().Add(d.opts.Retry.Delay(1)))
		return
	}
	d.finishOrReschedule(ctx, env, msg)
}

// attemptDomain delivers to the recipients of one domain.
func (d *Dispatcher) attemptDomain(ctx context.Context, env *queue.Envelope, value mpc.Value, msg []byte, domain string, rcpts []string) []RecipientResult {
	route, err := d.opts.Router.Lookup(domain, originOf(env))
	if err != nil {
		return allResults(rcpts, Failed, 550, "5.7.1 "+err.Error())
	}

	if route.Kind == router.Local {
		results := make([]RecipientResult, 0, len(rcpts))
		for _, rcpt := range rcpts {
			err := d.opts.Local.DeliverTo(rcpt, env.From, env.MPC, msg)
			switch {
			case err == nil:
				results = append(results, RecipientResult{Recipient: rcpt, Outcome: Delivered, Code: 250, Text: "delivered to Maildir"})
			case isPermanentLocal(err):
				results = append(results, RecipientResult{Recipient: rcpt, Outcome: Failed, Code: 550, Text: err.Error()})
			default:
				d.log.Warn("local delivery failed; will retry", "id", env.ID, "rcpt", rcpt, "error", err)
				results = append(results, RecipientResult{Recipient: rcpt, Outcome: Deferred, Code: 451, Text: err.Error()})
			}
		}
		return results
	}

	out := OutboundMessage{ID: env.ID, From: env.From, Recipients: rcpts, MPC: value, Data: msg}
	results, err := d.opts.Outbound.Send(ctx, route, out)
	if err != nil {
		outcome, code := Deferred, 451
		if IsPermanent(err) {
			outcome, code = Failed, 550
		}
		d.log.Info("relay attempt failed", "id", env.ID, "domain", domain, "route", string(route.Kind), "permanent", outcome == Failed, "error", err)
		return allResults(rcpts, outcome, code, err.Error())
	}
	return results
}

func (d *Dispatcher) recipientRecord(env *queue.Envelope, res RecipientResult) queue.Record {
	state := queue.Deferred
	switch res.Outcome {
	case Delivered:
		state = queue.Delivered
		d.opts.Metrics.Delivered.Add(1)
		d.log.Info("delivered", "id", env.ID, "rcpt", res.Recipient, "code", res.Code, "text", res.Text)
	case Failed:
		state = queue.Failed
		d.opts.Metrics.Failed.Add(1)
		d.log.Info("delivery failed permanently", "id", env.ID, "rcpt", res.Recipient, "code", res.Code, "text", res.Text)
	default:
		d.opts.Metrics.Deferred.Add(1)
	}
	return queue.Record{Time: time.Now(), Type: queue.RecordRecipient, Recipient: res.Recipient, State: state, Code: res.Code, Error: res.Text}
}

// finishOrReschedule schedules the next attempt while recipients are
// deferred and the message is younger than MaxAge. Otherwise it fails the
// remaining recipients, sends the bounce and removes the message.
func (d *Dispatcher) finishOrReschedule(ctx context.Context, env *queue.Envelope, msg []byte) {
	if hasState(env, queue.Deferred, queue.Pending) {
		if time.Since(env.ReceivedAt) < d.opts.Retry.MaxAge {
			next := time.Now().Add(d.opts.Retry.Delay(env.Attempts))
			if _, err := d.opts.Spool.Update(env.ID, queue.Record{Time: time.Now(), Type: queue.RecordRetry, NextAttempt: next}); err != nil {
				d.log.Error("cannot record the next attempt", "id", env.ID, "error", err)
			}
			d.log.Info("deferred", "id", env.ID, "attempts", env.Attempts, "next_attempt", next.Format(time.RFC3339))
			d.scheduleAt(env.ID, next)
			return
		}

		var records []queue.Record
		for _, r := range env.Recipients {
			if r.State == queue.Deferred || r.State == queue.Pending {
				text := fmt.Sprintf("message expired after %s in the queue; last error: %s", d.opts.Retry.MaxAge, r.LastError)
				records = append(records, queue.Record{Time: time.Now(), Type: queue.RecordRecipient, Recipient: r.Address, State: queue.Failed, Code: 550, Error: text})
				d.opts.Metrics.Failed.Add(1)
			}
		}
		// Update returns a nil envelope on error, so env must keep the
		// old one for the error path.
		expired, err := d.opts.Spool.Update(env.ID, records...)
		if err != nil {
			d.log.Error("cannot record expiry; retrying later", "id", env.ID, "error", err)
			d.scheduleAt(env.ID, time.Now().Add(d.opts.Retry.Delay(1)))
			return
		}
		env = expired
		d.log.Info("message expired", "id", env.ID, "max_age", d.opts.Retry.MaxAge)
	}

	if err := d.sendBounce(ctx, env, msg); err != nil {
		d.log.Error("cannot queue the bounce; retrying later", "id", env.ID, "error", err)
		d.scheduleAt(env.ID, time.Now().Add(d.opts.Retry.Delay(1)))
		return
	}
	d.mu.Lock()
	delete(d.later, env.ID)
	d.mu.Unlock()
	if err := d.opts.Spool.Remove(env.ID); err != nil {
		d.log.Error("cannot remove a finished message", "id", env.ID, "error", err)
		return
	}
	d.opts.Metrics.observeAge(time.Since(env.ReceivedAt))
}

// failAll fails every recipient that is not final and finishes the message.
func (d *Dispatcher) failAll(ctx context.Context, env *queue.Envelope, msg []byte, code int, text string) {
	var records []queue.Record
	for _, r := range env.Recipients {
		if r.State != queue.Delivered && r.State != queue.Failed {
			records = append(records, queue.Record{Time: time.Now(), Type: queue.RecordRecipient, Recipient: r.Address, State: queue.Failed, Code: code, Error: text})
		}
	}
	failed, err := d.opts.Spool.Update(env.ID, records...)
	if err != nil {
		d.log.Error("cannot record failures; retrying later", "id", env.ID, "error", err)
		d.scheduleAt(env.ID, time.Now().Add(d.opts.Retry.Delay(1)))
		return
	}
	d.finishOrReschedule(ctx, failed, msg)
}

func originOf(env *queue.Envelope) router.Origin {
	switch {
	case env.Bounce:
		return router.FromLocal
	case env.Private:
		return router.FromPrivate
	}
	return router.FromPublic
}

// pendingByDomain groups the recipients that are not final by domain.
func pendingByDomain(env *queue.Envelope) map[string][]string {
	groups := map[string][]string{}
	for _, r := range env.Recipients {
		if r.State == queue.Delivered || r.State == queue.Failed {
			continue
		}
		at := strings.LastIndexByte(r.Address, '@')
		domain := strings.ToLower(r.Address[at+1:])
		groups[domain] = append(groups[domain], r.Address)
	}
	return groups
}

func hasState(env *queue.Envelope, states ...queue.State) bool {
	for _, r := range env.Recipients {
		for _, s := range states {
			if r.State == s {
				return true
			}
		}
	}
	return false
}

func allResults(rcpts []string, outcome Outcome, code int, text string) []RecipientResult {
	results := make([]RecipientResult, len(rcpts))
	for i, r := range rcpts {
		results[i] = RecipientResult{Recipient: r, Outcome: outcome, Code: code, Text: text}
	}
	return results
}

// permanentLocal marks local delivery errors that no retry can fix.
type permanentLocal interface{ Permanent() bool }

func isPermanentLocal(err error) bool {
	var p permanentLocal
	if errors.As(err, &p) {
		return p.Permanent()
	}
	return errors.Is(err, errPermanentMarker)
}

// errPermanentMarker is wrapped by local delivery errors that are
// permanent; see PermanentError.
var errPermanentMarker = errors.New("permanent")

// PermanentError marks err as permanent: the recipient fails at once and
// the sender gets a bounce.
func PermanentError(err error) error {
	return fmt.Errorf("%w (%w)", err, errPermanentMarker)
}

// IsPermanent reports whether an Outbound error is permanent.
func IsPermanent(err error) bool {
	return isPermanentLocal(err)
}

// scheduled is one queued message in the schedule.
type scheduled struct {
	id   string
	at   time.Time
	pool int // poolLocal or poolRelay
	pos  int
}

type scheduleHeap []*scheduled

func (h scheduleHeap) Len() int           { return len(h) }
func (h scheduleHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h scheduleHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos = i
	h[j].pos = j
}
func (h *scheduleHeap) Push(x any) {
	s := x.(*scheduled)
	s.pos = len(*h)
	*h = append(*h, s)
}
func (h *scheduleHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

// scheduleAt makes id due at t, or earlier if it is already due earlier.
// For an ID that a worker is processing, the request waits until the
// worker is done, so no message is ever processed by two workers at once.
func (d *Dispatcher) scheduleAt(id string, t time.Time) {
	pool := d.poolOf(id)

	d.mu.Lock()
	if d.inflight[id] {
		if prev, ok := d.later[id]; !ok || t.Before(prev) {
			d.later[id] = t
		}
		d.mu.Unlock()
		return
	}
	if s, ok := d.index[id]; ok {
		pool = s.pool
		if t.Before(s.at) {
			s.at = t
			heap.Fix(&d.schedule[pool], s.pos)
		}
	} else {
		s := &scheduled{id: id, at: t, pool: pool}
		heap.Push(&d.schedule[pool], s)
		d.index[id] = s
	}
	d.mu.Unlock()

	select {
	case d.wake[pool] <- struct{}{}:
	default:
	}
}

// poolOf returns poolLocal for a message whose undelivered recipients are
// all in local domains, and poolRelay for any other message, including
// one that is no longer queued.
func (d *Dispatcher) poolOf(id string) int {
	env, ok := d.opts.Spool.Get(id)
	if !ok {
		return poolRelay
	}
	for domain := range pendingByDomain(env) {
		route, err := d.opts.Router.Lookup(domain, originOf(env))
		if err != nil || route.Kind != router.Local {
			return poolRelay
		}
	}
	return poolLocal
}

// runScheduler hands the due messages of pool to its workers until ctx
// is done.
func (d *Dispatcher) runScheduler(ctx context.Context, pool int) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		var next *scheduled
		wait := time.Hour
		if len(d.schedule[pool]) > 0 {
			next = d.schedule[pool][0]
			wait = time.Until(next.at)
		}
		if next != nil && wait <= 0 {
			heap.Pop(&d.schedule[pool])
			delete(d.index, next.id)
			d.inflight[next.id] = true
			d.mu.Unlock()

			select {
			case d.work[pool] <- next.id:
				continue
			case <-ctx.Done():
				return
			}
		}
		d.mu.Unlock()

		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake[pool]:
		case <-timer.C:
		}
	}
}
