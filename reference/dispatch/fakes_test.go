package dispatch_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/amtp-toolkit/amtp/reference/delivery"
	"github.com/amtp-toolkit/amtp/reference/dispatch"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/queue"
	"github.com/amtp-toolkit/amtp/reference/router"
)

// localDomain is the domain that the test router delivers locally.
const localDomain = "example.test"

// localCopy is one message stored by fakeLocal.
type localCopy struct {
	recipient string
	from      string
	mpc       string
	msg       string
}

// fakeLocal is a LocalDeliverer that keeps every copy in memory. fail, when
// set, returns the error for one delivery attempt, or nil to store it.
type fakeLocal struct {
	mu     sync.Mutex
	copies []localCopy
	calls  int
	fail   func(recipient string, call int) error
}

func (f *fakeLocal) DeliverTo(recipient, from, mpcValue string, msg []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		if err := f.fail(recipient, f.calls); err != nil {
			return err
		}
	}
	f.copies = append(f.copies, localCopy{recipient: recipient, from: from, mpc: mpcValue, msg: string(msg)})
	return nil
}

func (f *fakeLocal) delivered() []localCopy {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.copies)
}

// fakeOutbound is an Outbound that records every Send and notices when two
// Sends for one message ID overlap.
type fakeOutbound struct {
	// hold is how long each Send takes.
	hold time.Duration
	// started, when set, receives the message ID at the start of each Send.
	started chan string
	// release, when set, makes each Send wait until it is closed.
	release chan struct{}
	// result returns the outcome for one recipient. Nil defers every
	// recipient with 451.
	result func(msg dispatch.OutboundMessage, recipient string) dispatch.RecipientResult

	mu       sync.Mutex
	sends    []dispatch.OutboundMessage
	routes   []router.Route
	active   map[string]int
	overlaps []string // IDs that were in two Sends at once
}

func (f *fakeOutbound) Send(ctx context.Context, route router.Route, msg dispatch.OutboundMessage) ([]dispatch.RecipientResult, error) {
	f.mu.Lock()
	if f.active == nil {
		f.active = map[string]int{}
	}
	f.sends = append(f.sends, msg)
	f.routes = append(f.routes, route)
	f.active[msg.ID]++
	if f.active[msg.ID] > 1 {
		f.overlaps = append(f.overlaps, msg.ID)
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active[msg.ID]--
		f.mu.Unlock()
	}()

	if f.started != nil {
		select {
		case f.started <- msg.ID:
		case <-ctx.Done():
		}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
		}
	}
	if f.hold > 0 {
		select {
		case <-time.After(f.hold):
		case <-ctx.Done():
		}
	}

	results := make([]dispatch.RecipientResult, 0, len(msg.Recipients))
	for _, rcpt := range msg.Recipients {
		if f.result != nil {
			results = append(results, f.result(msg, rcpt))
			continue
		}
		results = append(results, dispatch.RecipientResult{Recipient: rcpt, Outcome: dispatch.Deferred, Code: 451, Text: "451 4.4.1 try again later"})
	}
	return results, nil
}

func (f *fakeOutbound) sent() []dispatch.OutboundMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sends)
}

func (f *fakeOutbound) routesUsed() []router.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.routes)
}

func (f *fakeOutbound) sentFor(id string) int {
	n := 0
	for _, m := range f.sent() {
		if m.ID == id {
			n++
		}
	}
	return n
}

func (f *fakeOutbound) overlapping() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.overlaps)
}

// rig is a Dispatcher over a real spool in a temporary folder, with fake
// local and outbound delivery.
type rig struct {
	dir     string // the spool folder
	spool   *queue.Spool
	local   *fakeLocal
	out     *fakeOutbound
	metrics *dispatch.Metrics
	log     *gbytes.Buffer
	disp    *dispatch.Dispatcher
}

// newRig opens a spool and builds a dispatcher with retry policy retry
// and the given number of workers. Run starts it.
func newRig(retry dispatch.RetryPolicy, workers int) *rig {
	GinkgoHelper()
	logBuf := gbytes.NewBuffer()
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logBuf, GinkgoWriter), &slog.HandlerOptions{Level: slog.LevelDebug}))

	dir := GinkgoT().TempDir()
	spool, err := queue.Open(dir, queue.Options{Logger: logger})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(spool.Close)

	rt, err := router.New([]string{localDomain}, nil)
	Expect(err).NotTo(HaveOccurred())

	r := &rig{dir: dir, spool: spool, local: &fakeLocal{}, out: &fakeOutbound{}, metrics: dispatch.NewMetrics(), log: logBuf}
	r.disp = dispatch.New(dispatch.Options{
		Spool:    spool,
		Router:   rt,
		Local:    r.local,
		Outbound: r.out,
		Retry:    retry,
		Workers:  workers,
		Hostname: "mx.example.test",
		Logger:   logger,
		Metrics:  r.metrics,
	})
	return r
}

// run starts the dispatcher. It stops, and its workers finish, before the
// spool closes at the end of the spec.
func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(r.disp.Run(ctx)).To(Succeed())
	}()
	DeferCleanup(func() {
		cancel()
		Eventually(done, 10*time.Second).Should(BeClosed())
	})
}

// deliver queues a message as the SMTP session does and returns its ID.
func (r *rig) deliver(id, from string, private bool, value mpc.Value, msg string, recipients ...string) string {
	GinkgoHelper()
	env := &delivery.Envelope{
		ID:         id,
		From:       from,
		Recipients: recipients,
		MPC:        value,
		ReceivedAt: time.Now(),
		ClientAddr: "192.0.2.7:40000",
		ClientCN:   "mx.example.org",
		Private:    private,
	}
	Expect(r.disp.Deliver(context.Background(), env, []byte(msg))).To(Succeed())
	return id
}

// waitEmpty waits until the spool holds no message.
func (r *rig) waitEmpty() {
	GinkgoHelper()
	Eventually(func() []*queue.Envelope { return r.spool.List() }, 10*time.Second, 10*time.Millisecond).Should(BeEmpty())
}

// queued reports whether id is in the spool.
func (r *rig) queued(id string) bool {
	_, ok := r.spool.Get(id)
	return ok
}

// results returns a result function that gives each recipient the outcome
// in outcomes, and delivers the others.
func results(outcomes map[string]dispatch.RecipientResult) func(dispatch.OutboundMessage, string) dispatch.RecipientResult {
	return func(_ dispatch.OutboundMessage, rcpt string) dispatch.RecipientResult {
		if res, ok := outcomes[rcpt]; ok {
			res.Recipient = rcpt
			return res
		}
		return dispatch.RecipientResult{Recipient: rcpt, Outcome: dispatch.Delivered, Code: 250, Text: "250 2.0.0 OK"}
	}
}

const testMessage = "From: alice@example.test\r\nTo: bob@remote.example.org\r\nSubject: quarterly report\r\nMessage-ID: <q1@example.test>\r\n\r\nThe figures are attached.\r\n"
