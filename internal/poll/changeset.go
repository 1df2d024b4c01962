package poll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/detect"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// Webhook conditions (`when`). The entries of one save form a change set
// (detect.SameSet); a webhook with a condition gets one order.changed event
// per set the condition holds for, id "<account>-<lowest history id>".
//
// A set is never split. Grouping runs over the entries in history order
// across pages; the last run of a page stays open until the next page
// shows an entry of another set, or the page is the history's last by its
// pagination (a short page that claims more ends the tick, the run still
// open), and every commit
// keeps the cursor below an open run's first entry, so a crash, a page
// budget or a failed request makes the next tick read the whole set again.
//
// Two phases, so that a tick fetches orders only for what needs them:
// every condition is first evaluated over the entries alone, as the set
// is read (condition.NewEnvWithoutOrder). Evaluation short-circuits, so
// one that reaches a verdict (or fails) without reading the order has the
// verdict it would have with any order, and it is final:
// `changeSet.hasChangedField("status") and ... and order...` is decided
// there for a set without a status change. One whose evaluation reaches
// the order (condition.ErrNeedsOrder), and every matching set, whose event
// carries the order, waits for the commit's one orders request, and is
// evaluated again with the order as the API returns it then.
//
// Decided once. A set that made an event, or for which a condition's
// verdict read the order, is recorded (store.SetMark) with the commit that
// moves the cursor past it; a look-back re-read passes over a set that
// overlaps a recorded one of the same order. So an order that changed since
// cannot turn an old "no" into a late event, and a late-committed entry of
// a decided set (one save is one transaction, so this should not happen; a
// re-read across an interleaving entry of another order could split a set)
// is never reported again under another id. A set every condition decided
// from its entries alone is not recorded: re-reading it decides the same.
//
// A condition that fails on a set (a value of the wrong type) is the
// anomaly condition_error for that set and that webhook, logged and
// counted; the other webhooks and sets are unaffected.

// anomalyCondition: a webhook's condition failed at run time on a change set.
const anomalyCondition = "condition_error"

// statusesTTL is how long the statuses reference (a status's group) is
// cached.
const statusesTTL = 10 * time.Minute

// markSpan is how far below a page's first id recorded sets are looked up:
// a save's entries have consecutive ids, so a set spans far fewer.
const markSpan = 1000

// hook is a webhook with a condition.
type hook struct {
	name string
	when *condition.Condition
}

// grouper collects adjacent entries into change sets.
type grouper struct {
	open []retailcrm.HistoryEntry // the run being read; its set may go on
}

// add reads the next entry and returns the set it completes, if any.
// An entry that cannot be part of a set ends the run before it.
func (g *grouper) add(e *retailcrm.HistoryEntry) []retailcrm.HistoryEntry {
	if !detect.Groupable(e) {
		return g.flush()
	}
	if n := len(g.open); n > 0 && detect.SameSet(&g.open[n-1], e) {
		g.open = append(g.open, *e)
		return nil
	}
	done := g.flush()
	g.open = append(g.open, *e)
	return done
}

// flush ends the open run: the history showed it complete.
func (g *grouper) flush() []retailcrm.HistoryEntry {
	done := g.open
	g.open = nil
	return done
}

// lo is the first id of the open run, 0 when none.
func (g *grouper) lo() int64 {
	if len(g.open) == 0 {
		return 0
	}
	return g.open[0].ID
}

// setCand is a change set some condition may hold for, waiting for its
// order: matched are the webhooks whose condition held over the entries,
// later those whose condition reached the order.
type setCand struct {
	cand    detect.Candidate
	set     []retailcrm.HistoryEntry
	matched []string
	later   []hook
}

// decide evaluates the conditions over a set's entries; those whose
// verdict depends on the order wait for it. It returns false when no
// condition can hold (nothing to fetch or record).
func (p *Poller) decide(set []retailcrm.HistoryEntry, refs condition.Refs) (setCand, bool) {
	if reason := detect.SetFilter(p.rules, set); reason != "" {
		return setCand{}, false
	}
	sc := setCand{set: set}
	env := condition.NewEnvWithoutOrder(set, refs)
	for _, h := range p.hooks {
		ok, err := h.when.EvalEnv(env)
		switch {
		case errors.Is(err, condition.ErrNeedsOrder):
			sc.later = append(sc.later, h)
		case err != nil:
			p.conditionFailed(h, set, err)
		case ok:
			sc.matched = append(sc.matched, h.name)
		}
	}
	if len(sc.matched) == 0 && len(sc.later) == 0 {
		return setCand{}, false
	}
	sc.cand = detect.SetCandidate(p.acct.Name, set)
	return sc, true
}

// finish decides the conditions that reached the order, with the order as
// fetched (found false: the API no longer returns it, and the entries'
// order stands in), and returns the set's event (nil when no condition
// held) and whether the set must be recorded as decided.
func (p *Poller) finish(sc *setCand, order json.RawMessage, found bool, refs condition.Refs) (*store.NewEvent, bool) {
	matched := slices.Clone(sc.matched)
	if len(sc.later) > 0 {
		var raw json.RawMessage
		if found {
			raw = order
		}
		env := condition.NewEnv(sc.set, raw, refs)
		for _, h := range sc.later {
			ok, err := h.when.EvalEnv(env)
			if err != nil {
				p.conditionFailed(h, sc.set, err)
				continue
			}
			if ok {
				matched = append(matched, h.name)
			}
		}
	}
	if len(matched) == 0 {
		return nil, len(sc.later) > 0
	}
	ne := p.completed(sc.cand, order, found)
	// Config order, whichever phase decided them.
	ne.Webhooks = make([]string, 0, len(matched))
	for _, h := range p.hooks {
		if slices.Contains(matched, h.name) {
			ne.Webhooks = append(ne.Webhooks, h.name)
		}
	}
	return &ne, true
}

func (p *Poller) conditionFailed(h hook, set []retailcrm.HistoryEntry, err error) {
	p.anomaly(anomalyCondition, "webhook condition failed on a change set; not sent to that webhook",
		"webhook", h.name, "history_id", set[0].ID, "order_id", set[0].Order.ID, "error", err)
}

// markOf is the record of a decided set.
func markOf(set []retailcrm.HistoryEntry) store.SetMark {
	return store.SetMark{Lo: set[0].ID, Hi: set[len(set)-1].ID, OrderID: set[0].Order.ID}
}

// decidedIn reports whether a recorded set of the same order overlaps set.
func decidedIn(marks []store.SetMark, set []retailcrm.HistoryEntry) bool {
	m := markOf(set)
	for _, d := range marks {
		if d.OrderID == m.OrderID && d.Lo <= m.Hi && d.Hi >= m.Lo {
			return true
		}
	}
	return false
}

// statusGroups is the statuses reference as conditions see it.
type statusGroups map[string]string

// StatusGroup implements condition.Refs.
func (g statusGroups) StatusGroup(code string) (string, bool) {
	group, ok := g[code]
	return group, ok
}

// refs returns the statuses reference, read at most every statusesTTL. A
// failed refresh keeps the previous copy; without one the caller fails
// (its tick is retried), as a condition over a status group must not be
// decided without the groups.
func (p *Poller) refs(ctx context.Context) (condition.Refs, error) {
	now := p.now()
	if p.groups != nil && now.Sub(p.groupsAt) < statusesTTL {
		return p.groups, nil
	}
	statuses, err := p.client.Statuses(ctx)
	if err != nil {
		if p.groups != nil {
			p.log.Warn("statuses reference not refreshed; conditions use the copy read before", "error", err)
			p.groupsAt = now
			return p.groups, nil
		}
		return nil, fmt.Errorf("poll: statuses reference for conditions: %w", err)
	}
	g := make(statusGroups, len(statuses))
	for code, s := range statuses {
		if s.Code != "" {
			code = s.Code
		}
		g[code] = s.Group
	}
	p.groups, p.groupsAt = g, now
	return g, nil
}

// fetch returns the orders of ids as GET /api/v5/orders returns them, at
// most 100 in one request.
func (p *Poller) fetch(ctx context.Context, ids []int64) (map[int64]json.RawMessage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	got, err := p.client.Orders(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("poll: orders: %w", err)
	}
	byID := make(map[int64]json.RawMessage, len(got))
	for _, o := range got {
		if len(o.Raw) > 0 {
			byID[o.ID] = o.Raw
		}
	}
	return byID, nil
}

// events completes status candidates and change sets with their orders,
// fetched in one request (together at most 100), and returns the events
// and the sets to record as decided.
func (p *Poller) events(ctx context.Context, cands []detect.Candidate, sets []setCand, refs condition.Refs) ([]store.NewEvent, []store.SetMark, error) {
	if len(cands) == 0 && len(sets) == 0 {
		return nil, nil, nil
	}
	ids := make([]int64, 0, len(cands)+len(sets))
	for _, c := range cands {
		ids = append(ids, c.OrderID)
	}
	for i := range sets {
		ids = append(ids, sets[i].cand.OrderID)
	}
	orders, err := p.fetch(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	events := make([]store.NewEvent, 0, len(cands)+len(sets))
	for _, c := range cands {
		o, ok := orders[c.OrderID]
		events = append(events, p.newEvent(c, o, ok))
	}
	var marks []store.SetMark
	for i := range sets {
		sc := &sets[i]
		o, ok := orders[sc.cand.OrderID]
		ne, record := p.finish(sc, o, ok, refs)
		if ne != nil {
			events = append(events, *ne)
		} else if record {
			marks = append(marks, markOf(sc.set))
		}
	}
	return events, marks, nil
}

// loadSetMarks reads the recorded sets a page's sets may overlap: from
// below the page (and the open run) to its highest id.
func (t *tick) loadSetMarks(lo, hi int64) error {
	if len(t.p.hooks) == 0 || hi <= 0 {
		return nil
	}
	if open := t.g.lo(); open > 0 {
		lo = min(lo, open)
	}
	marks, err := t.p.st.SetMarks(t.p.acct.Name, max(lo-markSpan, 0), hi)
	if err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	t.setMarks = marks
	return nil
}

// group reads the next entry into the change sets. A set it completes is
// decided; when the sets and candidates waiting reach 100 they are
// committed, the cursor at most upTo (the ids below the entry).
func (t *tick) group(ctx context.Context, e *retailcrm.HistoryEntry, upTo int64) error {
	if len(t.p.hooks) == 0 {
		return nil
	}
	if done := t.g.add(e); done != nil {
		return t.closeSet(ctx, done, upTo)
	}
	return nil
}

// endSets ends the open change set when the history shows it complete;
// upTo is where a commit may move the cursor.
func (t *tick) endSets(ctx context.Context, upTo int64) error {
	if done := t.g.flush(); done != nil {
		return t.closeSet(ctx, done, upTo)
	}
	return nil
}

func (t *tick) closeSet(ctx context.Context, set []retailcrm.HistoryEntry, upTo int64) error {
	p := t.p
	if decidedIn(t.setMarks, set) {
		return nil
	}
	sc, ok := p.decide(set, t.refs)
	if !ok {
		return nil
	}
	if set[0].ID <= t.state.Cursor {
		p.log.Info("late change set found in the look-back window", "history_id", set[0].ID, "cursor", t.state.Cursor)
	}
	t.sets = append(t.sets, sc)
	if len(t.pending)+len(t.sets) >= pageLimit {
		return t.commit(ctx, max(t.cursor, upTo), false)
	}
	return nil
}
