package deliver

import (
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retryafter"
)

// unstale returns when g's queue is next due, given next, the due key the
// read at now left behind. No wait the config allows ends further ahead
// than maxWait, so a key past it was written in a time ahead of now: by a
// daemon that ran before the wall clock was stepped back (while one runs,
// its clock.Steady time never goes back), or under a longer max_age. Such
// an item is due now: the next read takes it (and only keys up to it),
// so after a restart no retry waits longer than maxWait, whatever step
// the clock made while the daemon was stopped. Shifting the whole queue
// instead would make the retries this daemon schedules due early too,
// and a failing receiver would get them back to back.
func unstale(g *group, now, next time.Time) time.Time {
	if next.IsZero() || !next.After(now.Add(maxWait(g.wh))) {
		return next
	}
	if !g.warned {
		g.warned = true
		g.log.Warn("the outbox holds a retry due further ahead than any wait the config allows "+
			"(the wall clock went back while the daemon was stopped, or max_age was shortened); sending it now",
			"due", next, "max_wait", maxWait(g.wh).String())
	}
	g.stale = next
	return now
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
