package deliver

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/clock"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

// Alerter is told about every dead letter, after it is stored. It is called
// from a delivery goroutine, so it must not block for long (queue and return).
type Alerter interface {
	DeadLetter(ctx context.Context, it store.Item)
}

// DefaultMaxInFlight bounds the attempts in flight over all webhooks.
const DefaultMaxInFlight = 256

// gaugeEvery is the longest the outbox and dead-letter gauges lag behind
// the outcomes that change them.
const gaugeEvery = 100 * time.Millisecond

// Options tune a Dispatcher. Zero values pick the defaults.
type Options struct {
	UserAgent string       // default version.UserAgent()
	Alerter   Alerter      // nil: dead letters are only logged and counted
	Client    *http.Client // nil: NewClient(); redirects are never followed either way
	// Backoff is the delay after the attempt-th failed attempt (1-based),
	// before ±20% jitter and Retry-After. Default Backoff. Tests shrink it.
	Backoff func(attempt int) time.Duration
	// Clock is the clock for attempt times, schedules and max_age (read
	// through a clock.Steady, so a step of the wall clock does not move
	// the schedule) and for the webhook-timestamp header (its wall time).
	// Default clock.System; tests step a fake one.
	Clock clock.Clock
	// MaxInFlight caps the attempts in flight over every webhook, besides
	// each webhook's concurrency. Default DefaultMaxInFlight.
	MaxInFlight int
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
	ReasonGone        = "gone"            // the receiver answered 410
	ReasonMaxAttempts = "max_attempts"    // retry.max_attempts reached
	ReasonMaxAge      = "max_age"         // retry.max_age since the first attempt passed, or Retry-After asked to wait past it
	ReasonRemoved     = "webhook removed" // the webhook left the config (removed or renamed)
)

// Dispatcher delivers every configured webhook's queue. One loop goroutine
// runs the scheduler; each attempt runs in a goroutine of its own (reused
// for the next attempt when one is due within a second), so goroutines
// grow with the work in flight, never with the number of accounts or
// webhooks. Events of one order are sent one at a time in
// detection order; different orders go in parallel and never wait for
// each other. Every outcome is written to the store before the next
// attempt of the queue can see it, so a restart keeps the schedule.
type Dispatcher struct {
	st    *store.Store
	m     *metrics.Metrics
	log   *slog.Logger
	opts  Options
	clock *clock.Steady
	sched *scheduler // owned by the loop goroutine

	mu       sync.Mutex
	accounts []config.Account // from the last Update, for the loop to apply
	updated  bool
	notified map[string]bool
	started  bool
	stopped  bool

	poke     chan struct{} // cap 1: Update or Notify has something for the loop
	handoff  chan *work    // unbuffered: work for a goroutine that is free
	results  chan result   // cap 2*MaxInFlight (two per attempt): never blocks
	stop     chan struct{} // closed: take no new work
	stopOnce sync.Once
	done     chan struct{} // closed when the loop has returned

	baseCtx  context.Context // Start's ctx without its cancellation: values for attempts and alerts
	hardCtx  context.Context // cancelled when Shutdown's ctx ends: aborts attempts in flight
	hardStop context.CancelFunc
}

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
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	d := &Dispatcher{
		st: st, m: m, log: log, opts: opts,
		clock:    clock.NewSteady(opts.Clock),
		notified: make(map[string]bool),
		poke:     make(chan struct{}, 1),
		handoff:  make(chan *work),
		results:  make(chan result, 2*opts.MaxInFlight),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		baseCtx:  context.Background(), // until Start
	}
	d.sched = newScheduler(st, opts.MaxInFlight, func(k groupKey) (*series, *slog.Logger) {
		return &series{
			ok:      m.DeliveriesTotal.WithLabelValues(k.account, k.webhook, "ok"),
			retry:   m.DeliveriesTotal.WithLabelValues(k.account, k.webhook, "retry"),
			dead:    m.DeliveriesTotal.WithLabelValues(k.account, k.webhook, "dead"),
			latency: m.DeliveryLatency.WithLabelValues(k.account),
		}, log.With("account", k.account, "webhook", k.webhook)
	})
	return d
}

// Update (re)configures delivery. A webhook is identified by its name: a
// new URL or new settings under the same name keep its queue (attempts in
// flight finish with the old settings). The pending events of a webhook
// that disappeared or was renamed are dead-lettered with reason
// ReasonRemoved once its attempts in flight have ended, never sent to
// another URL; so are the events the file holds, at start, for webhooks a
// configured account no longer has. Accounts that left the config keep
// their state untouched here: the daemon dead-letters their pending events
// (store.ReasonAccountRemoved) once they stayed out for max_age.
func (d *Dispatcher) Update(accounts []config.Account) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.accounts, d.updated = accounts, true
	d.pokeLocked()
}

// Notify tells delivery that the account's outbox gained items (a poll
// committed events, or dead letters were moved back).
func (d *Dispatcher) Notify(account string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.notified[account] = true
	d.pokeLocked()
}

func (d *Dispatcher) pokeLocked() {
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

// Start runs delivery. ctx's values reach every attempt; when ctx ends no
// new work starts (as after Shutdown) and attempts in flight run on until
// Shutdown's ctx ends.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.stopped {
		return
	}
	d.started = true
	d.baseCtx = context.WithoutCancel(ctx)
	d.hardCtx, d.hardStop = context.WithCancel(d.baseCtx)
	go d.loop()
	context.AfterFunc(ctx, d.closeStop)
}

func (d *Dispatcher) closeStop() { d.stopOnce.Do(func() { close(d.stop) }) }

// Shutdown stops taking new work and waits for attempts in flight until
// ctx ends; then it cancels them and waits for them to return. A cancelled
// attempt records nothing, so its event is sent again after the restart
// (at-least-once). The error is non-nil when attempts were cut short.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.stopped = true
	started := d.started
	d.mu.Unlock()
	d.closeStop()
	if !started {
		return nil
	}
	select {
	case <-d.done:
		d.hardStop()
		return nil
	case <-ctx.Done():
		d.hardStop()
		<-d.done
		return errors.Join(errors.New("deliver: shutdown: in-flight attempts cancelled"), context.Cause(ctx))
	}
}

// now is the time the schedule is kept in: the wall time, except that it
// never goes back (clock.Steady). The due index is keyed by the times it
// gives, so after the wall clock is stepped back an hour a retry due in a
// millisecond is still due in a millisecond, and an event detected just
// before the step is still due at once. A forward step (or a suspend) is
// taken as time that passed: what it makes due is sent at each webhook's
// concurrency, as after a downtime, and nothing is skipped.
func (d *Dispatcher) now() time.Time {
	now, step := d.clock.Now()
	if step > stepTolerance || step < -stepTolerance {
		d.log.Info("wall clock stepped; the delivery schedule keeps its waits", "step", step.String())
	}
	return now
}

// stepTolerance is the least step of the wall clock that is logged.
const stepTolerance = time.Second

// maxSleep is the longest the loop sleeps without looking at the clock:
// its timer runs on monotonic time, which a forward step of the wall clock
// or a suspend does not advance, so this bounds how late the events such
// a step makes due are sent.
const maxSleep = time.Second

// loop runs the scheduler: it applies updates and notifications, starts
// the work that is due and takes back outcomes, until it was told to stop
// and nothing is in flight.
func (d *Dispatcher) loop() {
	defer close(d.done)
	timer := time.NewTimer(maxSleep)
	defer timer.Stop()
	stop := d.stop
	stopping := false
	// Accounts whose counters outcomes changed: their gauges are set from
	// the counters at most every gaugeEvery, one read each, so a busy queue
	// does not pay a read per event.
	changed := map[string]bool{}
	var gaugesAt time.Time
	for {
		if len(changed) > 0 && (stopping || time.Since(gaugesAt) >= gaugeEvery) {
			for a := range changed {
				d.gauges(a)
			}
			clear(changed)
			gaugesAt = time.Now()
		}
		if !stopping {
			d.apply()
			now := d.now()
			work, wake := d.sched.Next(now)
			for _, w := range work {
				select {
				case d.handoff <- w: // a goroutine that just finished takes it
				default:
					go d.worker(w)
				}
			}
			sleep := maxSleep
			if !wake.IsZero() {
				sleep = min(max(wake.Sub(now), 0), maxSleep)
			}
			if len(changed) > 0 {
				sleep = min(sleep, max(time.Until(gaugesAt.Add(gaugeEvery)), 0))
			}
			timer.Reset(sleep)
		} else if d.sched.InFlight() == 0 {
			return
		}
		select {
		case <-d.poke:
		case r := <-d.results:
			for more := true; more; { // take every outcome that is in, then look again
				d.sched.Done(r, d.now())
				if r.kind == finished && !r.sent {
					changed[r.w.key.account] = true
				}
				select {
				case r = <-d.results:
				default:
					more = false
				}
			}
		case <-timer.C:
		case <-stop:
			stopping, stop = true, nil
			d.sched.Stop()
		}
	}
}

// apply hands the last Update and the notified accounts to the scheduler,
// the update first: a poller of a new webhook notifies only after the
// Update that configured it. It also looks in the store for queues of
// webhooks the config does not have (at start, after a reload, and after
// a poll of an older config committed to one) and refreshes the gauges of
// notified accounts.
func (d *Dispatcher) apply() {
	d.mu.Lock()
	accounts, updated := d.accounts, d.updated
	d.updated = false
	var notified map[string]bool
	if len(d.notified) > 0 {
		notified, d.notified = d.notified, make(map[string]bool)
	}
	d.mu.Unlock()
	if updated {
		d.sched.Update(accounts)
		for _, a := range accounts {
			d.findQueues(a.Name)
		}
	}
	for a := range notified {
		d.sched.Notify(a)
		d.findQueues(a)
	}
}

// findQueues reports account's queues with pending events to the
// scheduler and sets the account's gauges from the same counters.
func (d *Dispatcher) findQueues(account string) {
	qs, err := d.st.QueueCounts(account)
	if err != nil {
		d.log.Error("cannot read the outbox counters", "account", account, "error", err)
		return
	}
	var names []string
	pending, dead := 0, 0
	for _, q := range qs {
		if q.Pending > 0 {
			names = append(names, q.Webhook)
		}
		pending += q.Pending
		dead += q.Dead
	}
	d.sched.Found(account, names)
	d.m.OutboxPending.WithLabelValues(account).Set(float64(pending))
	d.m.DeadLetters.WithLabelValues(account).Set(float64(dead))
}

// workerLinger is how long a goroutine that finished its work waits for
// more before it exits. Reusing it spares a new goroutine its stack
// growth under load; an idle daemon keeps none.
const workerLinger = time.Second

// worker runs w, then whatever work is handed to it within workerLinger.
func (d *Dispatcher) worker(w *work) {
	linger := time.NewTimer(workerLinger)
	defer linger.Stop()
	for {
		d.run(w)
		linger.Reset(workerLinger)
		select {
		case w = <-d.handoff:
		case <-linger.C:
			return
		}
	}
}

// run does one unit of work and reports it to the loop.
func (d *Dispatcher) run(w *work) {
	if w.remove {
		d.results <- d.removeChunk(w)
		return
	}
	// The schedule's time for the bookkeeping, the wall time for the
	// receiver, which checks webhook-timestamp against its own clock.
	now := d.now()
	wall, _ := d.opts.Clock.Read()
	res, err := Send(d.hardCtx, d.opts.Client, w.wh, w.item.Event, d.opts.UserAgent, wall)
	if err != nil && d.hardCtx.Err() != nil {
		d.results <- result{w: w, kind: cancelled}
		return
	}
	d.results <- result{w: w, sent: true}
	d.record(w, res, err, now, d.report)
}

// report hands a result to the loop. It never blocks: results holds two
// per unit of work in flight, and the scheduler caps those.
func (d *Dispatcher) report(r result) { d.results <- r }
