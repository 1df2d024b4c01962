// Package poll is the per-account poll job: Poller.Poll reads the account's
// order history from its cursor on, turns target transitions into events
// (package detect), fetches their full orders and commits the events
// together with the new cursor in one store transaction; Poller.Sweep is
// the orders sweep that catches what the history poll missed.
//
// Look-back. History ids are assigned before the transaction that writes
// the entry commits, so an entry can become visible after entries with
// higher ids. Every commit that moves the cursor records the stretch of ids
// it passed (a mark, with the time); each poll re-reads from the oldest
// mark and skips the ids already turned into events. A mark retires only
// after a SUCCESSFUL poll that started at least look_back_time after the
// mark was set has re-read it, so failed and skipped ticks extend the
// window: an entry that becomes visible within look_back_time of successful
// polling after the cursor passed it is found. Entries that the server's
// own clock (createdAt against the page's generatedAt) shows to be older
// than twice look_back_time need no look-back: a catch-up over old history
// leaves no marks. The marks cover at most look_back entries; a burst
// beyond that drops the oldest stretch from the window, logged and counted
// as the anomaly look_back_overflow. Once no mark is left, an idle poll
// costs one history request and writes nothing.
//
// A read that stops early (an empty page with more announced, a page that
// does not move on) is not a successful pass: the tick commits what it read,
// retires no mark and fails with ErrIncomplete. Times are read in the
// account's zone (zone.go), and where a time is ambiguous, as the instant
// that errs on looking back.
//
// Catch-up. A poll reads on until the history is drained, at the account's
// rate limit, committing every page_budget pages (and every 100 events),
// and logs its progress every 10 s.
//
// Memory stays flat however long the history: pages are handled one at a
// time and events are committed in chunks of at most 100 (one orders
// request each).
//
// Webhook conditions. A webhook with `when` gets order.changed events for
// the change sets (one save's entries) its condition holds for, not the
// status events; changeset.go groups, holds, decides and routes them.
package poll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/detect"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// pageLimit is the history page size and the orders batch size: the
// largest the API accepts.
const pageLimit = 100

// progressEvery is how often a long poll logs its progress.
const progressEvery = 10 * time.Second

// Anomaly kinds found by the poll job itself (detect reports those of
// single entries), for metrics.HistoryAnomalies.
const (
	anomalyEmptyPage    = "empty_page"         // no entries, yet pagination claims more pages
	anomalyIDOrder      = "id_order"           // ids not rising within a page, or not above sinceId
	anomalyNoProgress   = "no_progress"        // a page that would not move sinceId forward
	anomalyBadID        = "bad_history_id"     // an entry whose own id cannot be read: the page stops there
	anomalyOverflow     = "look_back_overflow" // the look-back window would cover more than look_back entries
	anomalyCreatedTwice = "created_twice"      // a second creation entry of one order: passed over
)

// Errors, compared with errors.Is.
var (
	// ErrEmptyPage: while looking for the newest history id (start_from:
	// now), a page without entries whose pagination claims more. The first
	// start is retried next tick rather than built on a guess.
	ErrEmptyPage = errors.New("poll: empty history page with more pages announced")
	// ErrBadHistoryID: a history entry whose own id cannot be read. The
	// cursor stops before it (skipping it could skip a real transition),
	// so the account makes no progress until the API answers differently.
	ErrBadHistoryID = errors.New("poll: history entry without a readable id")
	// ErrIncomplete: a history read stopped before the end (an empty page
	// with more pages announced, a page that does not move past sinceId).
	// What was read counts, but the pass is not a full one: the poll keeps
	// its look-back marks, the sweep looks at the order again, a replay
	// fails.
	ErrIncomplete = errors.New("poll: history read stopped before its end")
)

// Poller polls one account. Poll, Sweep and Replay calls are serialised.
type Poller struct {
	acct     config.Account
	rules    detect.Rules
	client   *retailcrm.Client
	st       *store.Store
	m        *metrics.Metrics
	log      *slog.Logger
	notify   func(account string)
	webhooks []string
	now      func() time.Time // tests move it to expire look-back marks
	pageSize int              // history entries a tick asks for per page (pageLimit; tests vary it: 20, 50, 100)

	// Webhook conditions (changeset.go): the webhooks with one, in config
	// order; statusTo, when some webhook has one, the webhooks status
	// events go to (nil: all of them); noStatus when every webhook has a
	// condition, so no status event is detected or swept.
	hooks    []hook
	statusTo []string
	noStatus bool
	groups   statusGroups // the statuses reference, read at groupsAt; guarded by run
	groupsAt time.Time

	// The series every poll touches, looked up once.
	polled      prometheus.Counter
	lastSuccess prometheus.Gauge
	cursor      prometheus.Gauge

	run       sync.Mutex          // one Poll or Sweep at a time
	lastPrune time.Time           // guarded by run
	state     *store.AccountState // the stored state as this poller last read or wrote it; guarded by run
	zone      zoneState           // the account's time zone; guarded by run
	zoneStale atomic.Bool         // RefreshZone: read the zone again
}

// New returns the poller of acct. log should be the account's logger
// (with the account attribute); notify, if not nil, is called after a
// commit that enqueued events.
func New(acct config.Account, client *retailcrm.Client, st *store.Store, m *metrics.Metrics,
	log *slog.Logger, notify func(account string)) *Poller {
	webhooks := make([]string, 0, len(acct.Webhooks))
	var hooks []hook
	var plain []string
	for _, w := range acct.Webhooks {
		webhooks = append(webhooks, w.Name)
		if w.When != nil {
			hooks = append(hooks, hook{name: w.Name, when: w.When})
		} else {
			plain = append(plain, w.Name)
		}
	}
	var statusTo []string
	if len(hooks) > 0 {
		statusTo = append([]string{}, plain...)
	}
	return &Poller{
		hooks:    hooks,
		statusTo: statusTo,
		noStatus: len(hooks) > 0 && len(plain) == 0,
		acct:     acct,
		rules:    detect.NewRules(acct),
		client:   client,
		st:       st,
		m:        m,
		log:      log,
		notify:   notify,
		webhooks: webhooks,
		now:      time.Now,
		pageSize: pageLimit,

		polled:      m.PollsTotal.WithLabelValues(acct.Name, "ok"),
		lastSuccess: m.LastPollSuccess.WithLabelValues(acct.Name),
		cursor:      m.CursorHistoryID.WithLabelValues(acct.Name),
	}
}

// Poll runs one tick: it pages through the history to its end and commits
// events and cursor as it goes. A failed API call or commit returns an
// error; chunks committed before it stay, nothing after it is committed and
// the cursor does not pass it.
func (p *Poller) Poll(ctx context.Context) error {
	p.run.Lock()
	defer p.run.Unlock()
	start := p.now()
	err := p.poll(ctx, start)
	if err != nil {
		p.m.PollsTotal.WithLabelValues(p.acct.Name, "error").Inc()
		return err
	}
	now := p.now()
	p.polled.Inc()
	p.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	return nil
}

// accountState returns the account's stored state. Only this poller writes
// it while the daemon runs, so it is read from the store once and then kept
// up to date by commit: an idle poll reads nothing from the file either.
func (p *Poller) accountState() (store.AccountState, error) {
	if p.state == nil {
		st, err := p.st.State(p.acct.Name)
		if err != nil {
			return store.AccountState{}, fmt.Errorf("poll: %w", err)
		}
		p.state = &st
	}
	st := *p.state
	st.Marks = slices.Clone(st.Marks)
	return st, nil
}

func (p *Poller) poll(ctx context.Context, start time.Time) error {
	p.resolveZone(ctx)
	st, err := p.accountState()
	if err != nil {
		return err
	}
	p.cursor.Set(float64(st.Cursor))
	if !st.Initialized && p.acct.StartFrom == "now" {
		return p.startNow(ctx, start)
	}
	t := &tick{
		p:         p,
		start:     start,
		state:     st,
		cursor:    st.Cursor,
		committed: st.Cursor,
		lb:        newLookBack(st.Marks, p.acct.LookBackTime, p.acct.LookBack),
		young:     -1,
	}
	return t.run(ctx)
}

// anomaly logs odd history input and counts it.
func (p *Poller) anomaly(kind, msg string, args ...any) {
	p.m.HistoryAnomalies.WithLabelValues(p.acct.Name, kind).Inc()
	p.log.Warn(msg, append(args, "kind", kind)...)
}

// more reports whether pagination claims pages after the current one.
func more(pg retailcrm.Pagination) bool {
	return pg.TotalPageCount > max(pg.CurrentPage, 1)
}

// drained reports whether a page read with limit is the last one: short,
// or the last page by its pagination (which saves a request when the
// history ends exactly at a page boundary).
func drained(page retailcrm.HistoryPage, limit int) bool {
	return len(page.History) < limit || !more(page.Pagination)
}

// walk reads history pages from f on, following sinceId, and hands each
// page with entries to fn, which returns the sinceId to read on from. It
// stops at the end of the history and when fn fails. A page that would not
// move on, and an empty page that claims more pages, are anomalies that
// stop it early with ErrIncomplete (the next tick reads again).
func (p *Poller) walk(ctx context.Context, f retailcrm.HistoryFilter, fn func(retailcrm.HistoryPage) (int64, error)) error {
	for {
		page, err := p.client.History(ctx, f)
		if err != nil {
			return fmt.Errorf("poll: history since %d: %w", f.SinceID, err)
		}
		if len(page.History) == 0 {
			if more(page.Pagination) {
				p.anomaly(anomalyEmptyPage, "empty history page with more pages announced; the read stops here",
					"since_id", f.SinceID, "total_page_count", page.Pagination.TotalPageCount)
				return fmt.Errorf("%w: an empty page with more pages announced %s", ErrIncomplete, where(f))
			}
			return nil
		}
		next, err := fn(page)
		if err != nil {
			return err
		}
		if next <= f.SinceID {
			p.anomaly(anomalyNoProgress, "history page does not move past sinceId; the read stops here", "since_id", f.SinceID)
			return fmt.Errorf("%w: a page that does not move on %s", ErrIncomplete, where(f))
		}
		if drained(page, f.Limit) {
			return nil
		}
		// sinceId takes over from a date filter; other filters stay.
		f.SinceID, f.StartDate, f.Page = next, time.Time{}, 0
	}
}

// where names a read's position for an error.
func where(f retailcrm.HistoryFilter) string {
	if f.SinceID == 0 {
		return "on the first page"
	}
	return fmt.Sprintf("after history id %d", f.SinceID)
}

// commit writes c and, when it enqueued events, counts them and wakes
// delivery. The caller has left out events already seen.
func (p *Poller) commit(c store.Commit) error {
	if err := p.st.CommitPoll(p.acct.Name, c); err != nil {
		p.state = nil // read it again
		return fmt.Errorf("poll: %w", err)
	}
	if st := p.state; st != nil { // what CommitPoll wrote
		if !st.Initialized {
			st.StartID = c.StartID
		}
		st.Cursor, st.Marks, st.LastSuccess, st.Initialized = max(st.Cursor, c.Cursor), slices.Clone(c.Marks), c.At, true
	}
	p.enqueued(c.Events)
	return nil
}

// enqueued counts events written to the outbox and wakes delivery.
func (p *Poller) enqueued(evs []store.NewEvent) {
	for _, ne := range evs {
		p.m.EventsDetected.WithLabelValues(p.acct.Name, string(ne.Event.Type)).Inc()
	}
	if len(evs) > 0 && p.notify != nil {
		p.notify(p.acct.Name)
	}
}
