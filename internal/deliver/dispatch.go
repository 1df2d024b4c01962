package deliver

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

// Alerter is told about every dead letter, after it is stored. It is called
// from a delivery worker, so it must not block for long (queue and return).
type Alerter interface {
	DeadLetter(ctx context.Context, it store.Item)
}

// Options tune a Dispatcher. Zero values pick the defaults.
type Options struct {
	UserAgent string       // default version.UserAgent()
	Alerter   Alerter      // nil: dead letters are only logged and counted
	Client    *http.Client // nil: NewClient(); redirects are never followed either way
	// Backoff is the delay after the attempt-th failed attempt (1-based),
	// before ±20% jitter and Retry-After. Default Backoff. Tests shrink it.
	Backoff func(attempt int) time.Duration
	// Now is the clock for attempt times, schedules and max_age. Default time.Now.
	Now func() time.Time
	// PageSize is how many outbox items are read at once and the most held
	// in memory per webhook, so a long outbox costs bounded memory. Default 1000.
	PageSize int
}

// schedule is the retry ladder; after its end every retry waits retryEvery.
var schedule = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}

const retryEvery = 2 * time.Hour

// Backoff is the default retry delay after the attempt-th failure: 5s, 30s,
// 2m, 10m, 30m, 1h, then every 2h.
func Backoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= len(schedule) {
		return schedule[attempt-1]
	}
	return retryEvery
}

// jitter spreads d by ±20%, so webhooks failing together do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Dead-letter reasons, stored in store.Item.DeadReason.
const (
	ReasonGone        = "gone"         // the receiver answered 410
	ReasonMaxAttempts = "max_attempts" // retry.max_attempts reached
	ReasonMaxAge      = "max_age"      // retry.max_age since the first attempt passed
)

// Rescans for items moved back below the cursor: free while at most
// rescanFree items are in memory, else at most once per rescanEvery.
const (
	rescanFree  = 64
	rescanEvery = 10 * time.Second
)

// storeRetry is how long a group waits before touching the store again
// after an error; ackTries bounds the retries of one delivered mark.
const (
	storeRetry = time.Second
	ackTries   = 5
)

// Dispatcher runs the delivery workers of every configured webhook: one
// group per (account, webhook), each with wh.Concurrency workers. Events of
// one order are sent strictly one after another, in detection order;
// different orders go in parallel. Failed attempts are rescheduled in the
// store, so a restart keeps the schedule.
type Dispatcher struct {
	st   *store.Store
	m    *metrics.Metrics
	log  *slog.Logger
	opts Options

	mu       sync.Mutex
	groups   map[groupKey]*group
	started  bool
	stopped  bool
	baseCtx  context.Context // Start's ctx without its cancellation: values for attempts and alerts
	hardCtx  context.Context // cancelled when Shutdown's ctx ends: aborts in-flight attempts
	hardStop context.CancelFunc
	running  sync.WaitGroup // every started group, retired ones included
}

type groupKey struct{ account, webhook string }

// New returns a Dispatcher over st. Call Update with the accounts, then Start.
func New(st *store.Store, m *metrics.Metrics, log *slog.Logger, opts Options) *Dispatcher {
	if opts.UserAgent == "" {
		opts.UserAgent = version.UserAgent()
	}
	if opts.Client == nil {
		opts.Client = NewClient()
	}
	if opts.Backoff == nil {
		opts.Backoff = Backoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 1000
	}
	return &Dispatcher{st: st, m: m, log: log, opts: opts, groups: make(map[groupKey]*group)}
}

// Update (re)configures the workers: groups of new webhooks start, groups of
// removed webhooks stop after their in-flight attempts (their pending count
// is logged), and a changed webhook's group is replaced by one with the new
// settings that starts when the old one has stopped, so no item is lost or
// sent twice at once. Unchanged webhooks keep running untouched.
func (d *Dispatcher) Update(accounts []config.Account) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	want := make(map[groupKey]config.Webhook)
	for _, a := range accounts {
		for _, wh := range a.Webhooks {
			want[groupKey{a.Name, wh.Name}] = wh
		}
	}
	for k, g := range d.groups {
		if _, ok := want[k]; !ok {
			g.close()
			delete(d.groups, k)
			if d.started {
				go d.logRemoved(g)
			}
		}
	}
	for k, wh := range want {
		old := d.groups[k]
		if old != nil && reflect.DeepEqual(old.wh, wh) {
			continue
		}
		if old != nil {
			old.close()
			d.log.Info("webhook changed, restarting its workers", "account", k.account, "webhook", k.webhook)
			if !d.started {
				old = nil // never ran: nothing to wait for
			}
		}
		g := d.newGroup(k.account, wh, old)
		d.groups[k] = g
		if d.started {
			d.startGroup(g)
		}
	}
	for _, a := range accounts {
		d.warnOrphans(a)
	}
}

// warnOrphans logs outbox queues of webhooks no longer configured: their
// items wait in the store until the webhook comes back.
func (d *Dispatcher) warnOrphans(a config.Account) {
	names, err := d.st.Webhooks(a.Name)
	if err != nil {
		d.log.Warn("cannot list outbox queues", "account", a.Name, "error", err)
		return
	}
	for _, n := range names {
		if _, ok := d.groups[groupKey{a.Name, n}]; !ok {
			d.log.Warn("outbox has events for a webhook not in the config; they wait until it is configured again",
				"account", a.Name, "webhook", n)
		}
	}
}

// logRemoved waits for a removed webhook's group and logs what it left.
func (d *Dispatcher) logRemoved(g *group) {
	<-g.done
	n, err := d.countPending(g.account, g.wh.Name)
	if err != nil {
		g.log.Warn("webhook removed from the config", "error", err)
		return
	}
	g.log.Warn("webhook removed from the config; its pending events stay in the outbox", "pending", n)
}

// countPending pages through a queue, keeping memory bounded.
func (d *Dispatcher) countPending(account, webhook string) (int, error) {
	n := 0
	var after uint64
	for {
		items, err := d.st.Pending(account, webhook, after, d.opts.PageSize)
		if err != nil {
			return n, err
		}
		n += len(items)
		if len(items) < d.opts.PageSize {
			return n, nil
		}
		after = items[len(items)-1].Seq
	}
}

// Notify tells the account's groups that its outbox gained items (a poll
// committed events, or dead letters were moved back).
func (d *Dispatcher) Notify(account string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, g := range d.groups {
		if k.account == account {
			g.wake()
		}
	}
}

// Start runs the groups. ctx's values reach every attempt; when ctx ends
// the workers stop taking new work (as Shutdown does) and in-flight
// attempts run on until Shutdown's ctx ends.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.stopped {
		return
	}
	d.started = true
	d.baseCtx = context.WithoutCancel(ctx)
	d.hardCtx, d.hardStop = context.WithCancel(d.baseCtx)
	for _, g := range d.groups {
		d.startGroup(g)
	}
	context.AfterFunc(ctx, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, g := range d.groups {
			g.close()
		}
	})
}

// Shutdown stops taking new work and waits for in-flight attempts until ctx
// ends; then it cancels them and waits for the workers to return. A
// cancelled attempt records nothing, so its event is sent again after the
// restart (at-least-once). The error is non-nil when attempts were cut short.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.stopped = true
	for _, g := range d.groups {
		g.close()
	}
	started := d.started
	d.mu.Unlock()
	if !started {
		return nil
	}
	done := make(chan struct{})
	go func() {
		d.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		d.hardStop()
		return nil
	case <-ctx.Done():
		d.hardStop()
		<-done
		return errors.Join(errors.New("deliver: shutdown: in-flight attempts cancelled"), context.Cause(ctx))
	}
}

func (d *Dispatcher) newGroup(account string, wh config.Webhook, prev *group) *group {
	return &group{
		d:       d,
		account: account,
		wh:      wh,
		prev:    prev,
		log:     d.log.With("account", account, "webhook", wh.Name),
		notify:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		ok:      d.m.DeliveriesTotal.WithLabelValues(account, wh.Name, "ok"),
		retry:   d.m.DeliveriesTotal.WithLabelValues(account, wh.Name, "retry"),
		dead:    d.m.DeliveriesTotal.WithLabelValues(account, wh.Name, "dead"),
		latency: d.m.DeliveryLatency.WithLabelValues(account),
	}
}

// startGroup runs g; d.mu is held.
func (d *Dispatcher) startGroup(g *group) {
	d.running.Add(1)
	go func() {
		defer d.running.Done()
		g.run(d.baseCtx, d.hardCtx)
	}()
}
