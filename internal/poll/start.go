package poll

import (
	"context"
	"fmt"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// startSearch are the filter[startDate] windows, ending now, that a first
// start with start_from: now tries in turn to find the newest history id:
// short ones first, so an account with recent activity costs one request,
// and one idle for years a handful (never a walk through its history).
var startSearch = []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 30 * 24 * time.Hour, 365 * 24 * time.Hour, 10 * 365 * 24 * time.Hour}

// maxPageDepth is the deepest entry asked for by page number: the API
// refuses deep paging, so a window holding more entries is narrowed first.
const maxPageDepth = 10000

// startNow sets the cursor of a new account to its newest history id, so
// nothing of the past is reported.
func (p *Poller) startNow(ctx context.Context, start time.Time) error {
	newest, err := p.newestID(ctx, start)
	if err != nil {
		return err
	}
	if err := p.commit(store.Commit{Cursor: newest, StartID: newest, At: p.now()}); err != nil {
		return err
	}
	p.cursor.Set(float64(newest))
	p.log.Info("start_from now: cursor set to the newest history entry", "cursor", newest)
	return nil
}

// newestID finds the newest history id: the first window of startSearch
// that holds entries (by the pagination's count) is narrowed until its
// last page can be asked for directly, and read on to the end from there.
// Without a window holding entries, the whole history is asked for once.
func (p *Poller) newestID(ctx context.Context, now time.Time) (int64, error) {
	empty := now // the earliest start known to hold no entries
	for _, back := range append(startSearch[:len(startSearch):len(startSearch)], 0) {
		var since time.Time
		if back > 0 {
			since = now.Add(-back)
		}
		page, n, err := p.count(ctx, since)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			empty = since
			continue
		}
		for n > maxPageDepth && empty.Sub(since) > time.Second {
			mid := since.Add(empty.Sub(since) / 2)
			midPage, m, err := p.count(ctx, mid)
			if err != nil {
				return 0, err
			}
			if m == 0 {
				empty = mid
			} else {
				since, page, n = mid, midPage, m
			}
		}
		return p.lastFrom(ctx, since, page, n)
	}
	return 0, nil
}

// count reads the first page of the entries since a time (zero: all) and
// returns it with the number of entries the pagination announces.
func (p *Poller) count(ctx context.Context, since time.Time) (retailcrm.HistoryPage, int, error) {
	f := retailcrm.HistoryFilter{Limit: pageLimit}
	if !since.IsZero() {
		f.StartDate, f.Location = since, p.loc()
	}
	page, err := p.client.History(ctx, f)
	if err != nil {
		return page, 0, fmt.Errorf("poll: find newest history id: %w", err)
	}
	return page, max(page.Pagination.TotalCount, len(page.History)), nil
}

// lastFrom returns the highest id of the n entries since a time, given
// their first page: the last page asked for by number when it is within
// reach, then on to the end by sinceId (entries may have arrived since).
func (p *Poller) lastFrom(ctx context.Context, since time.Time, first retailcrm.HistoryPage, n int) (int64, error) {
	page := first
	if last := (n + pageLimit - 1) / pageLimit; last > 1 && n <= maxPageDepth {
		f := retailcrm.HistoryFilter{StartDate: since, Location: p.loc(), Limit: pageLimit, Page: last}
		var err error
		if page, err = p.client.History(ctx, f); err != nil {
			return 0, fmt.Errorf("poll: find newest history id: %w", err)
		}
		if len(page.History) == 0 {
			page = first // the count was stale: read on from the first page
		}
	}
	newest := highest(page)
	if newest <= 0 {
		p.anomaly(anomalyEmptyPage, "history announces entries but the page holds none; retrying next tick",
			"total_count", n, "total_page_count", page.Pagination.TotalPageCount)
		return 0, ErrEmptyPage
	}
	if drained(page, pageLimit) {
		return newest, nil
	}
	err := p.walk(ctx, retailcrm.HistoryFilter{SinceID: newest, Limit: pageLimit}, func(page retailcrm.HistoryPage) (int64, error) {
		newest = max(newest, highest(page))
		return newest, nil
	})
	if err != nil {
		return 0, fmt.Errorf("poll: find newest history id: %w", err)
	}
	return newest, nil
}

// highest is the highest history id on a page (0 for none).
func highest(page retailcrm.HistoryPage) int64 {
	var id int64
	for _, e := range page.History {
		id = max(id, e.ID)
	}
	return id
}
