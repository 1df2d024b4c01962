package retailcrm

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateHeadroom scales the configured rate down a little: the API counts
// requests per second as they arrive, and arrival times jitter, so a client
// pacing at exactly 10/s would now and then be the 11th in a second.
const rateHeadroom = 0.95

// pacer keeps an account's requests under its rate limit. The token bucket
// (burst 1) spaces requests evenly; the window then checks the bucket's
// promise on real send times. RetailCRM counts requests per sliding second
// as they arrive, and a bucket plans on an ideal timeline: when one request
// leaves late (a busy scheduler, a slow dial) the next ones, already
// scheduled, bunch up behind it and the 11th lands inside the second. The
// window holds them back instead.
type pacer struct {
	bucket *rate.Limiter
	window *window // nil when unlimited
}

// newPacer allows limit requests per second, less rateHeadroom; limit <= 0
// (or infinite) means unlimited. The window admits floor(limit) requests
// per floor(limit) bucket intervals, e.g. 10 per 1.05s for a limit of 10.
func newPacer(limit float64) *pacer {
	if limit <= 0 || math.IsInf(limit, 1) {
		return &pacer{bucket: rate.NewLimiter(rate.Inf, 1)}
	}
	perSecond := limit * rateHeadroom
	n := max(1, int(limit))
	span := time.Duration(float64(n) / perSecond * float64(time.Second))
	return &pacer{bucket: rate.NewLimiter(rate.Limit(perSecond), 1), window: &window{n: n, span: span}}
}

// wait blocks until a request may be sent or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	if err := p.bucket.Wait(ctx); err != nil {
		return err
	}
	if p.window == nil {
		return nil
	}
	return p.window.wait(ctx)
}

// window admits at most n requests in any span of real time.
type window struct {
	n    int
	span time.Duration

	mu    sync.Mutex
	times []time.Time // ring of the last n admissions, oldest at next
	next  int
}

func (w *window) wait(ctx context.Context) error {
	for {
		w.mu.Lock()
		now := time.Now()
		if len(w.times) < w.n {
			w.times = append(w.times, now)
			w.mu.Unlock()
			return nil
		}
		earliest := w.times[w.next].Add(w.span)
		if !now.Before(earliest) {
			w.times[w.next] = now
			w.next = (w.next + 1) % w.n
			w.mu.Unlock()
			return nil
		}
		w.mu.Unlock()
		t := time.NewTimer(earliest.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
