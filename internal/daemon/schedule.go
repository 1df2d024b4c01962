package daemon

import (
	"hash/fnv"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// maxOffset caps the per-account start offset.
const maxOffset = 30 * time.Second

// maxBackoff is the longest a failing account's polling is paused.
const maxBackoff = 10 * time.Minute

// startOffset spreads accounts over the first interval (at most 30 s): a
// deterministic hash of the name, so 500 accounts on the same schedule do
// not all hit their APIs in the same second, and a restart keeps each
// account's phase.
func startOffset(name string, interval time.Duration) time.Duration {
	return spread(name, min(interval, maxOffset))
}

// spread is a deterministic delay in [0, limit) for key, in milliseconds.
func spread(key string, limit time.Duration) time.Duration {
	if limit < time.Millisecond {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return time.Duration(h.Sum64()%uint64(limit/time.Millisecond)) * time.Millisecond
}

// shifted moves every tick of a schedule later by offset.
type shifted struct {
	cron.Schedule
	offset time.Duration
}

func (s shifted) Next(t time.Time) time.Time {
	return s.Schedule.Next(t.Add(-s.offset)).Add(s.offset)
}

// firstAt runs an entry's first tick at start, later ones on the schedule.
// cron asks for Next once per run, the first time when the entry is added
// (or cron starts). A schedule that counts from its own runs, as @every
// does, keeps the phase start gives it.
type firstAt struct {
	cron.Schedule
	start time.Time
	used  atomic.Bool
}

func (s *firstAt) Next(t time.Time) time.Time {
	if !s.used.Swap(true) {
		if s.start.After(t) {
			return s.start
		}
		return t
	}
	return s.Schedule.Next(t)
}

// backoffTicks is how many ticks an account skips after its failures-th
// consecutive failure: 1, 2, 4, ... capped at what fits in maxBackoff (none
// for schedules slower than that).
func backoffTicks(failures int, every time.Duration) int {
	if failures <= 0 || every <= 0 {
		return 0
	}
	limit := int(maxBackoff / every)
	if failures > 30 {
		return limit
	}
	return min(1<<(failures-1), limit)
}
