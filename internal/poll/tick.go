package poll

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/detect"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// pruneOrdersEvery is how often commits also prune the order marks, which
// costs a scan of them all.
const pruneOrdersEvery = time.Hour

// tick is one poll's progress.
type tick struct {
	p         *Poller
	start     time.Time          // when the tick started: it retires marks set look_back_time before
	state     store.AccountState // as the tick found it
	cursor    int64              // every entry up to here is handled
	committed int64              // the cursor as last written
	lb        *lookBack

	pending []detect.Candidate // detected, not yet committed
	// detected: history ids pending or committed during the current page.
	// Ids committed before it are in the store's seen set, which each page
	// reads, so this stays small however long the tick.
	detected map[int64]bool
	created  map[int64]bool // orders whose order.created this tick emitted

	// The stretch read since the last commit, for its mark: young is the id
	// its part that needs a look-back starts above (-1: none so far),
	// youngEntries the entries in that part, last the id read last.
	young        int64
	youngEntries int
	last         int64

	startID  int64     // a first start from a time: the id below its first entry
	pages    int       // pages since the last commit
	read     int       // entries read in the tick
	lastNote time.Time // last progress line

	// Webhook conditions (changeset.go): the grouping of entries into
	// change sets, the sets waiting for the next commit, the sets recorded
	// as decided around the current page, and the statuses reference.
	g        grouper
	sets     []setCand
	setMarks []store.SetMark
	refs     condition.Refs
}

// run pages through the history from the look-back window's start to the
// end, committing on the way, and retires the marks it re-read late enough.
func (t *tick) run(ctx context.Context) error {
	p := t.p
	f := retailcrm.HistoryFilter{SinceID: t.lb.start(t.state.Cursor), Limit: p.pageSize}
	dateStart := !t.state.Initialized && !p.acct.StartTime.IsZero() // start_from: an RFC 3339 time
	if dateStart {
		loc, err := p.needZone("start_from as a time")
		if err != nil {
			return err
		}
		f = retailcrm.HistoryFilter{StartDate: p.acct.StartTime, Location: loc, Limit: p.pageSize}
	}
	t.last, t.lastNote = t.committed, t.start
	if len(p.hooks) > 0 {
		refs, err := p.refs(ctx)
		if err != nil {
			return err
		}
		t.refs = refs
	}
	sawEntries := false
	err := p.walk(ctx, f, func(page retailcrm.HistoryPage) (int64, error) {
		if dateStart && !sawEntries {
			// The cursor starts below the first entry after start_from,
			// not at 0: nothing before it is passed or looked back at,
			// and the orders sweep never emits there.
			t.last = max(page.History[0].ID-1, 0)
			t.startID = t.last
		}
		sawEntries = true
		next, err := t.page(ctx, f.SinceID, page)
		if err != nil || next <= f.SinceID {
			return next, err
		}
		if !more(page.Pagination) {
			// The last page: the open change set is complete. (A short
			// page that claims more ends the tick with the set held.)
			if err := t.endSets(ctx, max(t.cursor, next)); err != nil {
				return 0, err
			}
		}
		t.cursor = max(t.cursor, next)
		f.SinceID = next
		t.note(page)
		if t.pages++; t.pages >= max(p.acct.PageBudget, 1) && !drained(page, f.Limit) {
			return next, t.commit(ctx, t.cursor, false)
		}
		return next, nil
	})
	if dateStart && !sawEntries {
		// Nothing after start_from yet: committing would set cursor 0 and
		// report the whole history on the next tick. Stay uninitialised.
		return err
	}
	if errors.Is(err, ErrIncomplete) {
		// Not a full pass: commit what was read, keep every mark (their
		// stretches were not all re-read), and say so.
		if cerr := t.commit(ctx, t.cursor, false); cerr != nil {
			return cerr
		}
		return err
	}
	if err != nil {
		return err
	}
	return t.commit(ctx, t.cursor, true)
}

// note logs the progress of a long tick every progressEvery: entries read,
// cursor, rate and, from the page's pagination, an estimate of the rest.
func (t *tick) note(page retailcrm.HistoryPage) {
	now := t.p.now()
	if now.Sub(t.lastNote) < progressEvery {
		return
	}
	t.lastNote = now
	elapsed := now.Sub(t.start).Seconds()
	rate := float64(t.read) / max(elapsed, 1e-3)
	args := []any{"entries_read", t.read, "cursor", t.cursor, "entries_per_second", int(rate)}
	if left := page.Pagination.TotalCount - len(page.History); left > 0 && rate > 0 {
		args = append(args, "entries_left", left, "eta", (time.Duration(float64(left)/rate) * time.Second).String())
	}
	t.p.log.Info("catching up on the order history", args...)
}

// page handles one page of entries read with sinceID and returns the
// sinceId to read on from (the page's last valid id, or its highest when
// ids went backwards). At an entry whose own id cannot be read it commits
// what came before and stops with ErrBadHistoryID.
func (t *tick) page(ctx context.Context, sinceID int64, page retailcrm.HistoryPage) (int64, error) {
	p := t.p
	entries := page.History
	bad := slices.IndexFunc(entries, func(e retailcrm.HistoryEntry) bool { return e.ID <= 0 })
	var after []retailcrm.HistoryEntry
	if bad >= 0 {
		entries, after = entries[:bad], entries[bad+1:]
	}
	lo, hi, last := int64(0), int64(0), int64(0)
	for _, e := range entries {
		if lo == 0 || e.ID < lo {
			lo = e.ID
		}
		hi = max(hi, e.ID)
		last = e.ID
	}
	seen, err := p.st.Seen(p.acct.Name, max(lo-1, 0), hi)
	if err != nil {
		return 0, fmt.Errorf("poll: %w", err)
	}
	if err := t.loadSetMarks(lo, hi); err != nil {
		return 0, err
	}
	if t.detected == nil {
		t.detected = make(map[int64]bool)
	}
	clear(t.detected)
	for _, c := range t.pending {
		t.detected[c.Event.Change.HistoryID] = true
	}
	// restMin[i]: the lowest id of entries[i:] (and of those after a bad
	// one); a chunk committed after entry i must not move the cursor past it.
	restMin := make([]int64, len(entries)+1)
	restMin[len(entries)] = hi + 1
	for _, e := range after {
		if e.ID > 0 && e.ID < restMin[len(entries)] {
			restMin[len(entries)] = e.ID
		}
	}
	for i := len(entries) - 1; i >= 0; i-- {
		restMin[i] = min(restMin[i+1], entries[i].ID)
	}
	prev := sinceID
	for i, e := range entries {
		t.read++
		fresh := e.ID > t.state.Cursor // not re-read from the look-back window
		if e.ID <= prev && fresh {
			p.anomaly(anomalyIDOrder, "history id not above the previous one", "history_id", e.ID, "previous_id", prev)
		}
		prev = max(prev, e.ID)
		if e.ID > t.committed {
			t.stretch(e, page.GeneratedAt)
		}
		if err := t.group(ctx, &entries[i], restMin[i]-1); err != nil {
			return 0, err
		}
		v := detect.Detect(p.rules, e)
		v.Emit = v.Emit && !p.noStatus
		if v.Anomaly != "" && fresh {
			p.anomaly(string(v.Anomaly), "odd history entry passed over", "history_id", e.ID, "field", e.Field)
		}
		if !v.Emit || seen[e.ID] || t.detected[e.ID] {
			continue
		}
		if v.Candidate.Event.Type == event.Created {
			again, err := t.createdBefore(v.Candidate.OrderID)
			if err != nil {
				return 0, err
			}
			if again {
				if fresh {
					p.anomaly(anomalyCreatedTwice, "second creation entry of one order passed over",
						"history_id", e.ID, "order_id", v.Candidate.OrderID)
				}
				continue
			}
			if t.created == nil {
				t.created = make(map[int64]bool)
			}
			t.created[v.Candidate.OrderID] = true
		}
		if !fresh {
			p.log.Info("late history entry found in the look-back window", "history_id", e.ID, "cursor", t.state.Cursor)
		}
		t.detected[e.ID] = true
		t.pending = append(t.pending, v.Candidate)
		if len(t.pending)+len(t.sets) >= pageLimit {
			if err := t.commit(ctx, max(t.cursor, min(e.ID, restMin[i+1]-1)), false); err != nil {
				return 0, err
			}
		}
	}
	if bad >= 0 {
		stop := max(t.cursor, min(hi, restMin[len(entries)]-1))
		if err := t.commit(ctx, stop, false); err != nil {
			return 0, err
		}
		prevID := max(hi, sinceID)
		p.anomaly(string(detect.AnomalyBadID), "history entry without a readable id; the account stops before it", "after_history_id", prevID)
		return 0, fmt.Errorf("%w: the entry after history id %d (cursor stays at %d)", ErrBadHistoryID, prevID, stop)
	}
	if last <= sinceID {
		last = hi
	}
	return last, nil
}

// createdBefore reports whether the order's order.created was already
// emitted: in this tick, or before (the store's order mark).
func (t *tick) createdBefore(orderID int64) (bool, error) {
	if t.created[orderID] {
		return true, nil
	}
	marks, err := t.p.st.OrderMarks(t.p.acct.Name, []int64{orderID})
	if err != nil {
		return false, fmt.Errorf("poll: %w", err)
	}
	return marks[orderID].Created, nil
}

// stretch accounts an entry above the committed cursor to the stretch the
// next commit passes: it needs a look-back unless the server's own clock
// shows it older than twice look_back_time (a late commit that long is
// beyond what look_back_time promises, so the stretch below it is settled).
func (t *tick) stretch(e retailcrm.HistoryEntry, generatedAt string) {
	if t.young < 0 {
		// Read so that the entry looks as young as its times allow: a time
		// in a clock change, or an unknown zone, errs on looking back.
		gen, at := t.p.earliest(generatedAt), t.p.latest(e.CreatedAt)
		age := gen.Sub(at)
		if _, known := t.p.location(); !known {
			age -= clockChange
		}
		if gen.IsZero() || at.IsZero() || age <= 2*t.p.acct.LookBackTime {
			t.young = t.last
		}
	}
	if t.young >= 0 {
		t.youngEntries++
	}
	t.last = e.ID
}

// commit fetches the orders of the pending events and writes events,
// cursor and marks in one transaction; final also retires the marks this
// successful tick re-read late enough. A commit that would change nothing
// writes nothing.
func (t *tick) commit(ctx context.Context, cursor int64, final bool) error {
	p := t.p
	if lo := t.g.lo(); lo > 0 {
		cursor = min(cursor, lo-1) // an open change set is read again
	}
	events, decided, err := p.events(ctx, t.pending, t.sets, t.refs)
	if err != nil {
		return err
	}
	now := p.now()
	passed := cursor > t.committed && t.young >= 0 && t.young < cursor
	if passed {
		if dropped := t.lb.pass(t.young, t.youngEntries, now); dropped > 0 {
			p.anomaly(anomalyOverflow, "look-back window over look_back entries; its oldest stretch is no longer re-read",
				"entries_dropped", dropped, "look_back", p.acct.LookBack)
		}
	}
	if final {
		t.lb.retire(t.start)
	}
	if len(events) == 0 && len(decided) == 0 && cursor <= t.committed && t.state.Initialized && !t.lb.changed(t.state.Marks) {
		t.pending, t.sets = t.pending[:0], t.sets[:0]
		return nil // an idle poll writes nothing
	}
	c := store.Commit{
		Events:   events,
		Webhooks: p.webhooks,
		Cursor:   cursor,
		StartID:  t.startID,
		Marks:    t.lb.marks,
		Sets:     decided,
		At:       now,
		Prune:    p.prune(t.lb.start(cursor), now),
	}
	if err := p.commit(c); err != nil {
		return err
	}
	if passed {
		// Entries read beyond a chunk's cursor belong to the next stretch;
		// as this one needed a look-back, they may too.
		t.young, t.youngEntries = -1, 0
		if t.last > cursor {
			t.young = cursor
		}
	}
	t.cursor, t.committed = max(t.cursor, cursor), max(t.committed, cursor)
	t.state.Initialized, t.state.Marks = true, append([]store.Mark(nil), t.lb.marks...)
	t.pages = 0
	t.pending, t.sets = t.pending[:0], t.sets[:0]
	p.cursor.Set(float64(t.committed))
	if len(events) > 0 {
		p.log.Debug("events enqueued", "events", len(events), "cursor", t.committed)
	}
	return nil
}

// prune says what a commit may prune: seen ids below the look-back window
// that are older than the orders sweep's window (the sweep checks against
// them), and, once in a while, order marks as old.
func (p *Poller) prune(windowStart int64, now time.Time) store.Prune {
	pr := store.Prune{SeenBelow: windowStart, Before: now.Add(-p.acct.Reconcile.Window)}
	if now.Sub(p.lastPrune) >= pruneOrdersEvery {
		pr.Orders, p.lastPrune = true, now
	}
	return pr
}

// newEvent completes a status candidate with its order (see completed),
// for the webhooks without a condition.
func (p *Poller) newEvent(c detect.Candidate, order []byte, found bool) store.NewEvent {
	ne := p.completed(c, order, found)
	ne.Webhooks = p.statusTo
	return ne
}

// completed completes a candidate with its order: the full order when the
// API returned it, else the history entry's order, flagged orderMissing.
func (p *Poller) completed(c detect.Candidate, order []byte, found bool) store.NewEvent {
	ev := c.Event
	if found {
		ev.Order = order
	} else {
		ev.Order, ev.OrderMissing = c.EntryOrder, true
		p.log.Warn("order no longer returned by the API; the event carries the history entry's order",
			"order_id", c.OrderID, "event_id", ev.ID)
	}
	return store.NewEvent{Event: ev, OrderID: c.OrderID, DetectedAt: p.now(), ChangedAt: p.latest(ev.Change.CreatedAt)}
}
