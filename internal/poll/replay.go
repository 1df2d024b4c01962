package poll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/detect"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// ReplayResult is what a replay read and found.
type ReplayResult struct {
	// LastID and LastAt are the last entry handled (its history id and
	// createdAt as the API wrote it): every selected transition and change
	// set up to it was handed to emit. How far a replay that stopped got.
	LastID  int64
	LastAt  string
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
// A read that stops before the window's end (an API error, or an answer
// that does not page on: ErrIncomplete) is an error naming the last entry
// handled; what was handed to emit before it stays handed, and a change
// set still open there is left for the next run.
func (p *Poller) Replay(ctx context.Context, from, to time.Time, emit func([]store.NewEvent) error) (ReplayResult, error) {
	var res ReplayResult
	p.run.Lock() // the zone state is the poller's
	defer p.run.Unlock()
	p.resolveZone(ctx)
	loc, err := p.needZone("replay")
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	start, lastNote := p.now(), p.now()
	total := 0
	var refs condition.Refs
	if len(p.hooks) > 0 {
		if refs, err = p.refs(ctx); err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
	}
	var cands []detect.Candidate
	var sets []setCand
	var g grouper
	var readID, doneID int64 // the last entry read; the last one before the open change set
	var readAt, doneAt string
	flush := func() error {
		if len(cands) > 0 || len(sets) > 0 {
			events, _, err := p.events(ctx, cands, sets, refs)
			if err != nil {
				return err
			}
			cands, sets = cands[:0], sets[:0]
			res.Events += len(events)
			if len(events) > 0 {
				if err := emit(events); err != nil {
					return err
				}
			}
		}
		res.LastID, res.LastAt = doneID, doneAt
		return nil
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
	f := retailcrm.HistoryFilter{StartDate: from, EndDate: to, Location: loc, Limit: pageLimit}
	err = p.walk(ctx, f, func(page retailcrm.HistoryPage) (int64, error) {
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
			switch lo := g.lo(); {
			case lo == 0: // no open set: e is handled
				doneID, doneAt = e.ID, e.CreatedAt
			case lo == e.ID: // e opens a set: what came before it is handled
				doneID, doneAt = readID, readAt
			}
			readID, readAt = e.ID, e.CreatedAt
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
	switch {
	case err == nil:
		if err = closeSet(g.flush()); err == nil {
			doneID, doneAt = readID, readAt
			err = flush()
		}
	case errors.Is(err, ErrIncomplete):
		err = errors.Join(err, flush()) // what was read counts
	}
	if err != nil {
		reached := "before the first entry of the window"
		if res.LastID > 0 {
			reached = fmt.Sprintf("after history id %d, created %s in the account's time", res.LastID, res.LastAt)
		}
		return res, fmt.Errorf("replay: %w; it stopped %s, %d entries read", err, reached, res.Entries)
	}
	return res, nil
}
