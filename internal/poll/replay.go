package poll

import (
	"context"
	"fmt"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/detect"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// ReplayResult is what a replay read and found.
type ReplayResult struct {
	Entries int // history entries read
	Events  int // transitions the rules select and change sets a condition holds for
	Skipped int // entries without a readable id (nothing can be said of them)
}

// Replay reads the account's history created between from and to (both
// included, to the second, in the account's time zone) and hands the
// transitions the account's rules select, and the change sets the
// webhooks' conditions hold for (evaluated again, with the orders as the
// API returns them now), with their full orders (or the entry's order,
// flagged orderMissing, when the API no longer returns it), to emit in
// history order, at most 100 at a time. Each event names the webhooks it
// goes to when some webhook has a condition. Whether they were emitted
// before does not matter: a replay sends them again under their own event
// ids. It touches no state and logs its progress every 10 s. (A window's
// bounds never split a change set: its entries share one createdAt.)
func (p *Poller) Replay(ctx context.Context, from, to time.Time, emit func([]store.NewEvent) error) (ReplayResult, error) {
	var res ReplayResult
	start, lastNote := p.now(), p.now()
	total := 0
	var refs condition.Refs
	if len(p.hooks) > 0 {
		var err error
		if refs, err = p.refs(ctx); err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
	}
	var cands []detect.Candidate
	var sets []setCand
	var g grouper
	flush := func() error {
		if len(cands) == 0 && len(sets) == 0 {
			return nil
		}
		events, _, err := p.events(ctx, cands, sets, refs)
		if err != nil {
			return err
		}
		cands, sets = cands[:0], sets[:0]
		res.Events += len(events)
		if len(events) == 0 {
			return nil
		}
		return emit(events)
	}
	closeSet := func(set []retailcrm.HistoryEntry) error {
		if set == nil {
			return nil
		}
		if sc, ok := p.decide(set, refs); ok {
			sets = append(sets, sc)
		}
		if len(cands)+len(sets) >= pageLimit {
			return flush()
		}
		return nil
	}
	f := retailcrm.HistoryFilter{StartDate: from, EndDate: to, Location: p.location(), Limit: pageLimit}
	err := p.walk(ctx, f, func(page retailcrm.HistoryPage) (int64, error) {
		if total == 0 {
			total = page.Pagination.TotalCount
		}
		for i := range page.History {
			e := &page.History[i]
			res.Entries++
			if e.ID <= 0 {
				res.Skipped++
				continue
			}
			if len(p.hooks) > 0 {
				if err := closeSet(g.add(e)); err != nil {
					return 0, err
				}
			}
			if v := detect.Detect(p.rules, *e); v.Emit && !p.noStatus {
				cands = append(cands, v.Candidate)
			}
			if len(cands)+len(sets) >= pageLimit {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
		if now := p.now(); now.Sub(lastNote) >= progressEvery {
			lastNote = now
			rate := float64(res.Entries) / max(now.Sub(start).Seconds(), 1e-3)
			args := []any{"entries_read", res.Entries, "events", res.Events + len(cands) + len(sets),
				"at", page.History[len(page.History)-1].CreatedAt}
			if left := total - res.Entries; left > 0 && rate > 0 {
				args = append(args, "entries_left", left, "eta", (time.Duration(float64(left)/rate) * time.Second).String())
			}
			p.log.Info("replaying the order history", args...)
		}
		return highest(page), nil
	})
	if err == nil {
		err = closeSet(g.flush())
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	return res, nil
}
