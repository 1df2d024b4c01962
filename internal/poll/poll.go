// Package poll is the per-account poll job: one call of Poller.Poll reads
// the account's order history from the cursor on, turns target transitions
// into events (package detect), fetches their full orders and commits the
// events together with the new cursor in one store transaction.
//
// Look-back. History ids are assigned before the transaction that writes
// the entry commits, so an entry can become visible after entries with
// higher ids. Every commit that moves the cursor records a mark (where the
// cursor stood before the move, and when); each poll re-reads from the
// oldest mark younger than look_back_time, but never more than look_back ids
// below the cursor, and skips the ids already turned into events. Once the
// cursor has stood still for look_back_time no mark is left, the window
// collapses onto the cursor and an idle poll costs one history request.
//
// Memory stays flat however long the history: pages are handled one at a
// time and events are committed in chunks of at most 100 (one orders
// request each).
package poll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/detect"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// pageLimit is the history page size and the orders batch size: the
// largest the API accepts.
const pageLimit = 100

// Anomaly kinds found by the poll job itself (detect reports those of
// single entries), for metrics.HistoryAnomalies.
const (
	anomalyEmptyPage  = "empty_page"  // no entries, yet pagination claims more pages
	anomalyIDOrder    = "id_order"    // ids not rising within a page, or not above sinceId
	anomalyNoProgress = "no_progress" // a page that would not move sinceId forward
)

// Errors, compared with errors.Is.
var (
	// ErrEmptyPage: while looking for the newest history id (start_from:
	// now), a page without entries whose pagination claims more. The first
	// start is retried next tick rather than built on a guess.
	ErrEmptyPage = errors.New("poll: empty history page with more pages announced")
)

// startSearch are the filter[startDate] look-backs tried, in order, to find
// the newest history id on a first start with start_from: now; zero means
// no date filter. Short windows first: they cost one request on an
// account with any recent activity.
var startSearch = []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 30 * 24 * time.Hour, 365 * 24 * time.Hour, 0}

// Poller polls one account. Poll calls are serialised.
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

	mu sync.Mutex
}

// New returns the poller of acct. log should be the account's logger
// (with the account attribute); notify, if not nil, is called after a
// commit that enqueued events.
func New(acct config.Account, client *retailcrm.Client, st *store.Store, m *metrics.Metrics,
	log *slog.Logger, notify func(account string)) *Poller {
	webhooks := make([]string, 0, len(acct.Webhooks))
	for _, w := range acct.Webhooks {
		webhooks = append(webhooks, w.Name)
	}
	return &Poller{
		acct:     acct,
		rules:    detect.NewRules(acct),
		client:   client,
		st:       st,
		m:        m,
		log:      log,
		notify:   notify,
		webhooks: webhooks,
		now:      time.Now,
	}
}

// ClientOptions are the client options for acct, so that the daemon, the
// demo and the tests build clients the same way. Every API response is
// counted in m.APIRequestsTotal.
func ClientOptions(acct config.Account, m *metrics.Metrics, log *slog.Logger, userAgent string) retailcrm.Options {
	return retailcrm.Options{
		BaseURL:   acct.URL,
		APIKey:    acct.APIKey.Reveal(),
		RateLimit: acct.RateLimit,
		Timeout:   acct.Timeout,
		Logger:    log,
		UserAgent: userAgent,
		Observe: func(endpoint string, code int) {
			m.APIRequestsTotal.WithLabelValues(acct.Name, endpoint, strconv.Itoa(code)).Inc()
		},
	}
}

// Poll runs one tick: it pages through the history (at most page_budget
// pages; the next tick goes on) and commits events and cursor. A failed API
// call or commit returns an error; chunks committed before it stay, nothing
// after it is committed and the cursor does not pass it.
func (p *Poller) Poll(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.poll(ctx)
	if err != nil {
		p.m.PollsTotal.WithLabelValues(p.acct.Name, "error").Inc()
		return err
	}
	p.m.PollsTotal.WithLabelValues(p.acct.Name, "ok").Inc()
	p.m.LastPollSuccess.WithLabelValues(p.acct.Name).Set(float64(p.now().UnixNano()) / 1e9)
	return nil
}

func (p *Poller) poll(ctx context.Context) error {
	st, err := p.st.State(p.acct.Name)
	if err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	p.m.CursorHistoryID.WithLabelValues(p.acct.Name).Set(float64(st.Cursor))
	if !st.Initialized && p.acct.StartFrom == "now" {
		return p.startNow(ctx)
	}
	r := &run{
		p:        p,
		start:    st,
		cursor:   st.Cursor,
		pending:  make([]detect.Candidate, 0, pageLimit),
		detected: make(map[int64]bool),
	}
	return r.drain(ctx)
}

// startNow sets the cursor of a new account to its newest history id, so
// nothing of the past is reported. It asks for the entries of the last
// minute first and widens the date filter only while it finds none.
func (p *Poller) startNow(ctx context.Context) error {
	now := p.now()
	var newest int64
	for _, back := range startSearch {
		f := retailcrm.HistoryFilter{Limit: pageLimit}
		if back > 0 {
			f.StartDate, f.Location = now.Add(-back), p.location()
		}
		id, err := p.lastID(ctx, f)
		if err != nil {
			return err
		}
		if id > 0 {
			newest = id
			break
		}
	}
	if err := p.st.CommitPoll(p.acct.Name, store.Commit{Cursor: newest, At: now}); err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	p.m.CursorHistoryID.WithLabelValues(p.acct.Name).Set(float64(newest))
	p.log.Info("start_from now: cursor set to the newest history entry", "cursor", newest)
	return nil
}

// lastID pages forward from f to the end and returns the highest id seen
// (0 for no entries).
func (p *Poller) lastID(ctx context.Context, f retailcrm.HistoryFilter) (int64, error) {
	var last int64
	for {
		page, err := p.client.History(ctx, f)
		if err != nil {
			return 0, fmt.Errorf("poll: find newest history id: %w", err)
		}
		if len(page.History) == 0 {
			if more(page.Pagination) {
				p.anomaly(anomalyEmptyPage, "empty history page with more pages announced", "since_id", f.SinceID)
				return 0, ErrEmptyPage
			}
			return last, nil
		}
		top := last
		for _, e := range page.History {
			top = max(top, e.ID)
		}
		if top <= last {
			p.anomaly(anomalyNoProgress, "history page does not move past the last id", "since_id", f.SinceID)
			return last, nil
		}
		last = top
		if drained(page) {
			return last, nil
		}
		f = retailcrm.HistoryFilter{SinceID: last, Limit: pageLimit}
	}
}

func (p *Poller) location() *time.Location {
	if p.acct.TimeZone != nil {
		return p.acct.TimeZone
	}
	return time.UTC
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

// drained reports whether a page is the last one: short, or the last page
// by its pagination (which saves a request when the history ends exactly
// at a page boundary).
func drained(page retailcrm.HistoryPage) bool {
	return len(page.History) < pageLimit || !more(page.Pagination)
}

// run is one tick's progress.
type run struct {
	p      *Poller
	start  store.AccountState // as the tick found it
	cursor int64              // every entry up to here is handled (never below start.Cursor)

	pending []detect.Candidate // detected, not yet committed
	// detected: history ids pending or committed during the current page.
	// Ids committed before it are in the store's seen set, which each page
	// reads, so this stays small however long the tick.
	detected map[int64]bool
}

// drain pages through the history and commits.
func (r *run) drain(ctx context.Context) error {
	p := r.p
	now := p.now()
	f := retailcrm.HistoryFilter{SinceID: windowStart(r.start.Marks, r.start.Cursor, now, p.acct.LookBack, p.acct.LookBackTime), Limit: pageLimit}
	dateStart := !r.start.Initialized && !p.acct.StartTime.IsZero() // start_from: an RFC 3339 time
	if dateStart {
		f = retailcrm.HistoryFilter{StartDate: p.acct.StartTime, Location: p.location(), Limit: pageLimit}
	}
	budget := max(p.acct.PageBudget, 1)
	sawEntries := false
	for range budget {
		page, err := p.client.History(ctx, f)
		if err != nil {
			return fmt.Errorf("poll: history since %d: %w", f.SinceID, err)
		}
		if len(page.History) == 0 {
			if more(page.Pagination) {
				p.anomaly(anomalyEmptyPage, "empty history page with more pages announced; retrying next tick",
					"since_id", f.SinceID, "total_page_count", page.Pagination.TotalPageCount)
			}
			break
		}
		sawEntries = true
		next, err := r.page(ctx, f.SinceID, page.History)
		if err != nil {
			return err
		}
		if next <= f.SinceID {
			p.anomaly(anomalyNoProgress, "history page does not move past sinceId; retrying next tick", "since_id", f.SinceID)
			break
		}
		r.cursor = max(r.cursor, next)
		if drained(page) {
			break
		}
		f = retailcrm.HistoryFilter{SinceID: next, Limit: pageLimit}
	}
	if dateStart && !sawEntries {
		// Nothing after start_from yet: committing would set cursor 0 and
		// report the whole history on the next tick. Stay uninitialised.
		return nil
	}
	return r.commit(ctx, r.cursor)
}

// page handles one page of entries read with sinceID and returns the
// sinceId to read on from (the page's last valid id, or its highest when
// ids went backwards).
func (r *run) page(ctx context.Context, sinceID int64, entries []retailcrm.HistoryEntry) (int64, error) {
	p := r.p
	lo, hi, last := int64(0), int64(0), int64(0)
	for _, e := range entries {
		if e.ID <= 0 {
			continue
		}
		if lo == 0 || e.ID < lo {
			lo = e.ID
		}
		hi = max(hi, e.ID)
		last = e.ID
	}
	if hi == 0 { // only invalid ids: detect reports each below
		lo, hi, last = sinceID+1, sinceID, sinceID
	}
	seen, err := p.st.Seen(p.acct.Name, lo-1, hi)
	if err != nil {
		return 0, fmt.Errorf("poll: %w", err)
	}
	clear(r.detected)
	for _, c := range r.pending {
		r.detected[c.Event.Change.HistoryID] = true
	}
	// restMin[i]: the lowest valid id of entries[i:]; a chunk committed
	// after entry i must not move the cursor past it.
	restMin := make([]int64, len(entries)+1)
	restMin[len(entries)] = hi + 1
	for i := len(entries) - 1; i >= 0; i-- {
		restMin[i] = restMin[i+1]
		if id := entries[i].ID; id > 0 && id < restMin[i] {
			restMin[i] = id
		}
	}
	prev := sinceID
	for i, e := range entries {
		fresh := e.ID > r.start.Cursor // not re-read from the look-back window
		if e.ID > 0 && e.ID <= prev && fresh {
			p.anomaly(anomalyIDOrder, "history id not above the previous one", "history_id", e.ID, "previous_id", prev)
		}
		prev = max(prev, e.ID)
		v := detect.Detect(p.rules, e)
		if v.Anomaly != "" && fresh {
			p.anomaly(string(v.Anomaly), "odd history entry", "history_id", e.ID, "field", e.Field)
		}
		if !v.Emit || seen[e.ID] || r.detected[e.ID] {
			continue
		}
		if !fresh {
			p.log.Info("late history entry found in the look-back window", "history_id", e.ID, "cursor", r.start.Cursor)
		}
		r.detected[e.ID] = true
		r.pending = append(r.pending, v.Candidate)
		if len(r.pending) == pageLimit {
			if err := r.commit(ctx, max(r.cursor, min(e.ID, restMin[i+1]-1))); err != nil {
				return 0, err
			}
		}
	}
	if last <= sinceID {
		last = hi
	}
	return last, nil
}

// commit fetches the orders of the pending events and writes events,
// cursor and marks in one transaction.
func (r *run) commit(ctx context.Context, cursor int64) error {
	p := r.p
	events, err := r.orders(ctx)
	if err != nil {
		return err
	}
	now := p.now()
	marks := nextMarks(r.start.Marks, r.start.Cursor, cursor, now, p.acct.LookBack, p.acct.LookBackTime)
	c := store.Commit{
		Events:         events,
		Webhooks:       p.webhooks,
		Cursor:         cursor,
		Marks:          marks,
		PruneSeenBelow: windowStart(marks, cursor, now, p.acct.LookBack, p.acct.LookBackTime),
		At:             now,
	}
	if err := p.st.CommitPoll(p.acct.Name, c); err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	r.cursor = max(r.cursor, cursor)
	r.pending = r.pending[:0]
	p.m.CursorHistoryID.WithLabelValues(p.acct.Name).Set(float64(r.cursor))
	for _, ne := range events {
		p.m.EventsDetected.WithLabelValues(p.acct.Name, string(ne.Event.Type)).Inc()
	}
	if len(events) > 0 {
		p.log.Debug("events enqueued", "events", len(events), "cursor", r.cursor)
		if p.notify != nil {
			p.notify(p.acct.Name)
		}
	}
	return nil
}

// orders turns the pending candidates into events with their full orders,
// fetched in one request.
func (r *run) orders(ctx context.Context) ([]store.NewEvent, error) {
	if len(r.pending) == 0 {
		return nil, nil
	}
	p := r.p
	ids := make([]int64, 0, len(r.pending))
	for _, c := range r.pending {
		ids = append(ids, c.OrderID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	got, err := p.client.Orders(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("poll: orders: %w", err)
	}
	byID := make(map[int64]retailcrm.Order, len(got))
	for _, o := range got {
		byID[o.ID] = o
	}
	detected := p.now()
	events := make([]store.NewEvent, 0, len(r.pending))
	for _, c := range r.pending {
		ev := c.Event
		if o, ok := byID[c.OrderID]; ok && len(o.Raw) > 0 {
			ev.Order = o.Raw
		} else {
			ev.Order, ev.OrderMissing = c.EntryOrder, true
			p.log.Warn("order no longer returned by the API; the event carries the history entry's order",
				"order_id", c.OrderID, "event_id", ev.ID)
		}
		events = append(events, store.NewEvent{Event: ev, OrderID: c.OrderID, DetectedAt: detected})
	}
	return events, nil
}

// windowStart is where a poll starts reading: the oldest mark younger
// than lookBackTime, at most lookBack ids below the cursor; the cursor
// itself when no mark is that young.
func windowStart(marks []store.Mark, cursor int64, now time.Time, lookBack int, lookBackTime time.Duration) int64 {
	start := cursor
	for _, m := range marks {
		if !m.At.Before(now.Add(-lookBackTime)) {
			start = min(start, m.Cursor)
		}
	}
	return max(start, cursor-int64(max(lookBack, 0)), 0)
}

// nextMarks returns the marks to store after a commit moving the cursor
// from startCursor (where the tick began) to cursor: the unexpired old
// marks plus one for this tick if it moved the cursor. Marks are clamped
// to the look-back distance and merged when equal, so their number stays
// bounded by the ticks within look_back_time.
func nextMarks(old []store.Mark, startCursor, cursor int64, now time.Time, lookBack int, lookBackTime time.Duration) []store.Mark {
	if lookBack <= 0 || lookBackTime <= 0 {
		return nil
	}
	floor := max(cursor-int64(lookBack), 0)
	out := make([]store.Mark, 0, len(old)+1)
	add := func(m store.Mark) {
		m.Cursor = max(m.Cursor, floor)
		if m.Cursor >= cursor {
			return // nothing between it and the cursor to re-read
		}
		if n := len(out); n > 0 && out[n-1].Cursor == m.Cursor {
			out[n-1].At = later(out[n-1].At, m.At)
			return
		}
		out = append(out, m)
	}
	for _, m := range old {
		if !m.At.Before(now.Add(-lookBackTime)) {
			add(m)
		}
	}
	if cursor > startCursor {
		add(store.Mark{At: now, Cursor: startCursor})
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
