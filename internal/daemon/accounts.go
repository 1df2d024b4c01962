package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/poll"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

// account is one scheduled account.
type account struct {
	cfg      config.Account
	log      *slog.Logger
	poller   *poll.Poller
	sched    shifted       // the account's ticks, offset included
	every    time.Duration // gap between ticks
	slot     *member       // its place in the slots
	run      *sync.Mutex   // shared by every generation of the account
	observed *observed
	m        *metrics.Metrics
}

// observed is what the daemon knows about an account's polls beyond the
// store (an idle poll writes nothing there). It survives a reload that
// changes the account.
type observed struct {
	mu          sync.Mutex
	since       time.Time // scheduled at: readiness grace for an account not yet polled
	lastSuccess time.Time
	lastPoll    time.Time
	lastError   string
	blocked     string // the poll stops at a history entry without a readable id
	lastSweep   poll.SweepResult
	nextSweep   time.Time // sweeps of many accounts are spread over reconcile.every
	failures    int       // consecutive
	skip        int       // ticks left to skip (backoff)
}

// prepare builds the pollers of accts without scheduling them, so a reload
// can fail before it changes anything.
func (d *daemon) prepare(accts []config.Account) ([]*account, error) {
	out := make([]*account, 0, len(accts))
	for _, ac := range accts {
		log := d.log.With("account", ac.Name)
		opts := retailcrm.AccountOptions(ac)
		opts.Logger, opts.UserAgent, opts.Observe = log, version.UserAgent(), d.m.APIObserver(ac.Name)
		transport, err := d.crm.get(ac.CA)
		if err != nil {
			return nil, fmt.Errorf("account %s: ca_file %s: %w", ac.Name, ac.CAFile, err)
		}
		opts.Transport = transport
		client, err := retailcrm.New(opts)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", ac.Name, err)
		}
		spec, err := cron.ParseStandard(ac.Schedule)
		if err != nil {
			return nil, fmt.Errorf("account %s: schedule: %w", ac.Name, err)
		}
		a := &account{
			cfg:    ac,
			log:    log,
			poller: poll.New(ac, client, d.st, d.m, log, d.disp.Notify),
			m:      d.m,
		}
		a.every = ac.Interval()
		a.sched = shifted{Schedule: spec, offset: startOffset(ac.Name, a.every)}
		out = append(out, a)
	}
	return out, nil
}

// schedule adds accts to the slots; their polls run under polls. The first
// tick of each comes after its offset from now. A previous generation of the same account (d.accounts)
// hands over its poll history, minus its backoff; a new account starts
// from the store.
func (d *daemon) schedule(polls context.Context, accts []*account, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range accts {
		if prev, ok := d.accounts[a.cfg.Name]; ok {
			// A changed account (a fixed API key, say) gets polled at once.
			a.observed = prev.observed
			a.observed.mu.Lock()
			a.observed.failures, a.observed.skip = 0, 0
			a.observed.mu.Unlock()
		} else {
			a.observed = &observed{since: now, nextSweep: now.Add(spread(a.cfg.Name+"/sweep", a.cfg.Reconcile.Every))}
			if st, err := d.st.State(a.cfg.Name); err != nil {
				a.log.Warn("reading account state", "error", err)
			} else {
				a.observed.lastSuccess = st.LastSuccess
				if st.Initialized {
					d.m.CursorHistoryID.WithLabelValues(a.cfg.Name).Set(float64(st.Cursor))
				}
				if !st.LastSuccess.IsZero() {
					d.m.LastPollSuccess.WithLabelValues(a.cfg.Name).Set(float64(st.LastSuccess.Unix()))
					d.m.AccountLastSuccess.WithLabelValues(a.cfg.Name).Set(float64(st.LastSuccess.Unix()))
				}
			}
		}
		if a.run = d.runLocks[a.cfg.Name]; a.run == nil {
			a.run = &sync.Mutex{}
			d.runLocks[a.cfg.Name] = a.run
		}
		a.slot = d.slots.add(polls, a.cfg.Schedule, a.sched, a.log, a.tick)
		d.accounts[a.cfg.Name] = a
		d.m.PollInterval.WithLabelValues(a.cfg.Name).Set(a.every.Seconds())
		a.log.Debug("scheduled", "schedule", a.cfg.Schedule, "first_poll", now.Add(a.sched.offset))
	}
}

// tick is one scheduled run of the account: a poll, unless the account is
// backing off after failures or a previous generation's poll still runs.
func (a *account) tick(ctx context.Context) {
	o := a.observed
	o.mu.Lock()
	if o.skip > 0 {
		o.skip--
		o.mu.Unlock()
		a.log.Debug("poll skipped: backing off after failures")
		return
	}
	o.mu.Unlock()
	if !a.run.TryLock() {
		a.log.Debug("poll skipped: the previous one still runs")
		return
	}
	defer a.run.Unlock()

	start := time.Now()
	err := a.poller.Poll(ctx)
	o.mu.Lock()
	o.lastPoll = start
	switch {
	case err == nil:
		if o.failures > 0 {
			a.log.Info("polling recovered", "failures", o.failures)
		}
		o.lastSuccess, o.lastError, o.blocked, o.failures = time.Now(), "", "", 0
		// Set here, under a.run: a removed account's series are forgotten
		// after its last poll, never set again by it.
		a.m.AccountUp.WithLabelValues(a.cfg.Name).Set(1)
		a.m.AccountLastSuccess.WithLabelValues(a.cfg.Name).Set(float64(o.lastSuccess.UnixNano()) / 1e9)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// Shutdown cancelled the poll: not the account's failure.
	default:
		o.failures++
		o.skip = backoffTicks(o.failures, a.every)
		o.lastError = err.Error()
		if errors.Is(err, poll.ErrBadHistoryID) {
			o.blocked = err.Error()
		}
		a.m.AccountUp.WithLabelValues(a.cfg.Name).Set(0)
		a.log.Warn("poll failed", "error", err, "failures", o.failures, "skip_ticks", o.skip)
	}
	sweep := err == nil && a.cfg.Reconcile.Every > 0 && !time.Now().Before(o.nextSweep)
	if sweep {
		o.nextSweep = time.Now().Add(a.cfg.Reconcile.Every)
	}
	o.mu.Unlock()
	if sweep {
		a.sweep(ctx)
	}
}

// sweep runs the account's orders sweep after a successful poll.
func (a *account) sweep(ctx context.Context) {
	res, err := a.poller.Sweep(ctx)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("orders sweep failed", "error", err)
	} else if err == nil {
		a.log.Debug("orders sweep done", "orders", res.Orders, "checked", res.Checked, "recovered", res.Recovered, "requests", res.Requests)
	}
	a.observed.mu.Lock()
	a.observed.lastSweep = res
	a.observed.mu.Unlock()
}

// runtime reports an account's polling to the admin socket.
func (d *daemon) runtime(name string) admin.Runtime {
	d.mu.Lock()
	a, ok := d.accounts[name]
	d.mu.Unlock()
	if !ok {
		return admin.Runtime{}
	}
	return a.observed.runtime()
}

func (o *observed) runtime() admin.Runtime {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := admin.Runtime{LastSuccess: o.lastSuccess, LastPoll: o.lastPoll, LastError: o.lastError, Blocked: o.blocked}
	if !o.lastSweep.At.IsZero() {
		sweep := o.lastSweep
		r.LastSweep = &sweep
	}
	return r
}

// lastSuccesses returns each account's last successful poll, for the
// store to keep across restarts.
func (d *daemon) lastSuccesses() map[string]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]time.Time, len(d.accounts))
	for name, a := range d.accounts {
		out[name] = a.observed.runtime().LastSuccess
	}
	return out
}

// stale lists the accounts without a successful poll within three
// intervals (counted from when they were scheduled if they never had one),
// in name order.
func (d *daemon) stale(now time.Time) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, a := range d.accounts {
		a.observed.mu.Lock()
		ref := a.observed.lastSuccess
		if a.observed.since.After(ref) {
			ref = a.observed.since
		}
		a.observed.mu.Unlock()
		if now.Sub(ref) > 3*a.every {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
