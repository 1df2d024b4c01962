package poll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/detect"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// The orders sweep catches what the history poll missed: an entry that
// committed later than look_back_time, an outage or a bug. Every
// reconcile.every it lists the orders in a target status whose status
// changed within reconcile.window (GET /api/v5/orders, filter[extendedStatus]
// and filter[statusUpdatedAtFrom], respecting sites) and compares each one's
// statusUpdatedAt with its order mark (the latest transition the account
// emitted or checked). Only an order whose status changed after its mark
// has its history read (filter[orderId], from the window's start), and
// every qualifying transition found there that was not emitted is emitted
// now, through the same rules and under the same event id
// <account>-<historyId>, so the poll and the sweep can never both deliver
// one transition. It never emits at or below the account's start point or
// the seen set's pruning watermark (at or below it, a delivered transition
// may no longer be recorded as seen: a window too wide, by a wrong time
// zone or a clock step, must not send it again), nor above the cursor (the
// poll has not read that far yet).
//
// What it cannot see: an order that has already left the target statuses
// (the list no longer shows it). Within an order it finds every missed
// transition of the window, since it reads the order's whole history there.

// SweepResult is what an orders sweep did.
type SweepResult struct {
	At        time.Time `json:"at"`
	Orders    int       `json:"orders"`    // orders in a target status changed within the window
	Checked   int       `json:"checked"`   // of which had their history read
	Recovered int       `json:"recovered"` // transitions emitted that the history poll had missed
	Requests  int       `json:"requests"`  // API requests the sweep made
	Error     string    `json:"error,omitempty"`
}

// Sweep runs one orders sweep.
func (p *Poller) Sweep(ctx context.Context) (SweepResult, error) {
	p.run.Lock()
	defer p.run.Unlock()
	if p.noStatus {
		// Every webhook has a condition: no status rule to reconcile.
		return SweepResult{At: p.now()}, nil
	}
	s := &sweep{p: p, res: SweepResult{At: p.now()}}
	err := s.run(ctx)
	if err != nil {
		s.res.Error = err.Error()
	}
	return s.res, err
}

// sweep is one orders sweep's progress.
type sweep struct {
	p     *Poller
	res   SweepResult
	state store.AccountState
	from  time.Time // the window's start
}

func (s *sweep) run(ctx context.Context) error {
	p := s.p
	p.resolveZone(ctx)
	var err error
	// From the file, not the poller's copy: pruning moves the watermark.
	if s.state, err = p.st.State(p.acct.Name); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if !s.state.Initialized {
		return nil // the poll has not started the account yet
	}
	s.from = s.res.At.Add(-p.acct.Reconcile.Window)
	if p.acct.StartTime.After(s.from) {
		s.from = p.acct.StartTime
	}
	f := retailcrm.OrdersFilter{
		ExtendedStatus:      p.acct.Statuses,
		StatusUpdatedAtFrom: s.from,
		Location:            p.windowZone(),
		Sites:               p.acct.Sites,
		Limit:               pageLimit,
	}
	for f.Page = 1; ; f.Page++ {
		page, err := p.client.OrderList(ctx, f)
		s.res.Requests++
		if err != nil {
			return fmt.Errorf("sweep: orders in %v: %w", p.acct.Statuses, err)
		}
		s.res.Orders += len(page.Orders)
		if err := s.check(ctx, page.Orders); err != nil {
			return err
		}
		if len(page.Orders) < f.Limit || f.Page >= page.Pagination.TotalPageCount {
			return nil
		}
	}
}

// check compares one page of orders with their marks, reads the history
// of those that changed after it, and commits what it found and checked.
func (s *sweep) check(ctx context.Context, orders []retailcrm.Order) error {
	p := s.p
	ids := make([]int64, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	marks, err := p.st.OrderMarks(p.acct.Name, ids)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	var events []store.NewEvent
	var checked []store.OrderMark
	for _, o := range orders {
		changed := p.latest(o.StatusUpdatedAt) // in a clock change: look again rather than not
		if m, ok := marks[o.ID]; ok && !changed.IsZero() && !m.At.Before(changed) {
			continue // its latest transition was emitted or checked
		}
		s.res.Checked++
		found, complete, err := s.history(ctx, o, changed)
		if err != nil {
			return err
		}
		events = append(events, found...)
		if complete && !changed.IsZero() {
			checked = append(checked, store.OrderMark{OrderID: o.ID, At: changed})
		}
	}
	if len(events) == 0 && len(checked) == 0 {
		return nil
	}
	added, err := p.st.CommitSweep(p.acct.Name, store.Sweep{Events: events, Webhooks: p.webhooks, Orders: checked, At: p.now()})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	recovered := make([]store.NewEvent, 0, len(added))
	for _, i := range added {
		ev := events[i].Event
		recovered = append(recovered, events[i])
		p.log.Warn("the orders sweep found a transition the history poll missed; emitted",
			"event_id", ev.ID, "order_id", events[i].OrderID, "history_id", ev.Change.HistoryID, "status", ev.Change.NewValue)
	}
	s.res.Recovered += len(recovered)
	p.m.ReconciledEvents.WithLabelValues(p.acct.Name).Add(float64(len(recovered)))
	p.enqueued(recovered)
	return nil
}

// history reads an order's history within the window and returns the
// qualifying transitions not yet emitted, with the order as listed.
// complete is false when the next sweep must look at the order again: its
// history holds a qualifying transition the poll has not reached, or its
// last status entry does not show the order's status as of changed (that
// entry commits late).
func (s *sweep) history(ctx context.Context, o retailcrm.Order, changed time.Time) (found []store.NewEvent, complete bool, err error) {
	p := s.p
	complete = true
	var last retailcrm.HistoryEntry // the newest status entry seen
	var cands []detect.Candidate
	f := retailcrm.HistoryFilter{OrderID: o.ID, StartDate: s.from, Location: p.windowZone(), Limit: pageLimit}
	floor := max(s.state.StartID, s.state.SeenPruned) // nothing is emitted at or below it
	pages := 0
	defer func() { s.res.Requests += max(pages, 1) }()
	err = p.walk(ctx, f, func(page retailcrm.HistoryPage) (int64, error) {
		pages++
		for _, e := range page.History {
			if e.Field == "status" && e.ID > last.ID {
				last = e
			}
			if e.ID <= 0 || e.ID <= floor {
				continue
			}
			v := detect.Detect(p.rules, e)
			if !v.Emit || v.Candidate.OrderID != o.ID {
				continue
			}
			if e.ID > s.state.Cursor {
				complete = false // the history poll will get it
				continue
			}
			cands = append(cands, v.Candidate)
		}
		return highest(page), nil
	})
	switch {
	case errors.Is(err, ErrIncomplete):
		complete = false // what was read counts; the next sweep looks again
	case err != nil:
		return nil, false, fmt.Errorf("sweep: history of order %d: %w", o.ID, err)
	}
	complete = complete && last.NewValue.Code() == o.Status &&
		(last.CreatedAt == o.StatusUpdatedAt || !p.earliest(last.CreatedAt).Before(changed))
	if len(cands) == 0 {
		return nil, complete, nil
	}
	seen, err := p.st.Seen(p.acct.Name, cands[0].Event.Change.HistoryID-1, cands[len(cands)-1].Event.Change.HistoryID)
	if err != nil {
		return nil, false, fmt.Errorf("sweep: %w", err)
	}
	for _, c := range cands {
		if !seen[c.Event.Change.HistoryID] {
			found = append(found, p.newEvent(c, o.Raw, len(o.Raw) > 0))
		}
	}
	return found, complete, nil
}
