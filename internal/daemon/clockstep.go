package daemon

import (
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/clock"
)

// Steps of the wall clock: cron keeps each entry's next run as a wall
// time and compares it with the wall time when its timer fires (it strips
// the monotonic reading), so after the clock is stepped back an hour no
// entry is due for an hour and polling stops that long. The slots watch
// the clock instead of trusting cron's times: every clockWatchEvery they
// compare the wall time elapsed with the monotonic time elapsed, and on a
// step of more than stepTolerance either way they give every slot a new
// cron entry whose first run is its schedule's next tick after the
// stepped time. A backward step so stops polling for at most one
// schedule interval plus clockWatchEvery. After a forward step cron runs
// each entry that the step made due once (never once per tick it
// skipped), or the new entries simply run at their next tick: either way
// each account polls at most once for the step, within its rate limit,
// and a poll reads everything since the cursor, so no change is skipped.
const (
	clockWatchEvery = time.Second
	stepTolerance   = time.Second
)

// watchClock reschedules every slot after a step of the wall clock
// (measured by steady), until stop.
func (s *slots) watchClock(steady *clock.Steady) {
	tick := time.NewTicker(clockWatchEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		if _, step := steady.Now(); step > stepTolerance || step < -stepTolerance {
			s.reschedule(step)
		}
	}
}

// reschedule replaces every slot's cron entry by one computed from the
// wall time now.
func (s *slots) reschedule(step time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	now := s.wall()
	for k, sl := range s.bySlot {
		s.cron.Remove(sl.entry)
		s.schedule(k, sl, now)
	}
	s.log.Warn("wall clock stepped; polls rescheduled from the new time", "step", step.String(), "slots", len(s.bySlot))
}
