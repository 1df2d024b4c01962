package deliver

import (
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retryafter"
)

// unlag turns next, a due key of g's queue read at now, into the
// schedule's time. No wait the config allows ends further ahead than
// maxWait: a key beyond it was written in a time that is ahead of now,
// by a daemon that ran before the wall clock was stepped back (while it
// runs, its clock.Steady time does not step back). The queue's keys are
// then taken as that much ahead, so its earliest item waits maxWait at
// most instead of the length of the step; items this daemon schedules go
// that much earlier, never later.
func (s *scheduler) unlag(g *group, now, next time.Time) time.Time {
	if next.IsZero() {
		return next
	}
	if far := next.Sub(now.Add(g.lag)) - maxWait(g.wh); far > 0 {
		g.lag += far
		g.log.Warn("the outbox holds a retry due further ahead than any wait the config allows: "+
			"the wall clock went back while the daemon was stopped; taking the queue's times as that much ahead",
			"lag", g.lag.String(), "max_wait", maxWait(g.wh).String())
	}
	return next.Add(-g.lag)
}

// maxWait is the longest wait before an attempt that decide schedules
// for wh: the larger of the backoff with jitter (at most 2.4 h) and a
// Retry-After (at most retryafter.Max, a year), cut to max_age since
// the first attempt, which is never after the attempt that schedules it.
func maxWait(wh config.Webhook) time.Duration {
	w := max(time.Duration(float64(retryEvery)*1.2), retryafter.Max)
	if wh.Retry.MaxAge > 0 {
		w = min(w, wh.Retry.MaxAge)
	}
	return w
}
