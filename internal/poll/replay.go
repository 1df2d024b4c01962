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

// ReplayResult is what a replay read and found.
type ReplayResult struct {
	Entries int // history entries read
	Events  int // transitions the rules select
	Skipped int // entries without a readable id (nothing can be said of them)
	// LastID and LastAt are the last entry handled (its history id and
	// createdAt as the API wrote it): every selected transition up to it
	// was handed to emit. How far a replay that stopped got.
	LastID int64
	LastAt string
}

// Replay reads the account's history created between from and to (both
// included, to the second, in the account's time zone) and hands the
// transitions the account's rules select, with their full orders (or the
// entry's order, flagged orderMissing, when the API no longer returns it),
// to emit in history order, at most 100 at a time. Whether they were
// emitted before does not matter: a replay sends them again under their
// own event ids. It touches no state and logs its progress every 10 s.
// A read that stops before the window's end (an API error, or an answer
// that does not page on: ErrIncomplete) is an error naming the last entry
// handled; what was handed to emit before it stays handed.
func (p *Poller) Replay(ctx context.Context, from, to time.Time, emit func([]store.NewEvent) error) (ReplayResult, error) {
	p.run.Lock() // the zone state is the poller's
	defer p.run.Unlock()
	var res ReplayResult
	p.resolveZone(ctx)
	loc, err := p.needZone("replay")
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	start, lastNote := p.now(), p.now()
	total := 0
	var cands []detect.Candidate
	var readID int64 // the last entry read, and its time
	var readAt string
	flush := func() error {
		if len(cands) > 0 {
			events, err := p.withOrders(ctx, cands)
			if err != nil {
				return err
			}
			if err := emit(events); err != nil {
				return err
			}
			cands = cands[:0]
			res.Events += len(events)
		}
		res.LastID, res.LastAt = readID, readAt
		return nil
	}
	f := retailcrm.HistoryFilter{StartDate: from, EndDate: to, Location: loc, Limit: pageLimit}
	err = p.walk(ctx, f, func(page retailcrm.HistoryPage) (int64, error) {
		if total == 0 {
			total = page.Pagination.TotalCount
		}
		for _, e := range page.History {
			res.Entries++
			if e.ID <= 0 {
				res.Skipped++
				continue
			}
			readID, readAt = e.ID, e.CreatedAt
			if v := detect.Detect(p.rules, e); v.Emit {
				cands = append(cands, v.Candidate)
			}
			if len(cands) == pageLimit {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
		if now := p.now(); now.Sub(lastNote) >= progressEvery {
			lastNote = now
			rate := float64(res.Entries) / max(now.Sub(start).Seconds(), 1e-3)
			args := []any{"entries_read", res.Entries, "events", res.Events + len(cands),
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
		err = flush()
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
