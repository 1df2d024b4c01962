package config

import (
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Interval is the gap between two polls of the account: the exact delay of
// an @every schedule, and for a calendar spec the longest gap between two
// of its ticks, so that bounds built on it (a look-back window of two
// intervals, an account stale after three) hold over nights and weekends.
// It depends on the spec only, never on the clock, so two loads of a file
// agree. 0 for a spec that does not parse or never fires.
func (a Account) Interval() time.Duration {
	return specInterval(a.Schedule)
}

// A calendar spec is walked tick by tick from a fixed Monday: through a
// year, or two weeks of ticks for a spec that fires every minute (a spec
// fires at most once a minute), whichever ends first.
var intervalEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	intervalSpan  = 366 * 24 * time.Hour
	intervalTicks = 2 * 7 * 24 * 60
	maxIntervals  = 1024 // specs remembered; a config rarely has more than a few
)

var intervals struct {
	sync.Mutex
	m map[string]time.Duration
}

// specInterval computes Interval, remembering results: the walk costs up
// to a few milliseconds and every account of a file tends to share a spec.
func specInterval(spec string) time.Duration {
	intervals.Lock()
	d, ok := intervals.m[spec]
	intervals.Unlock()
	if ok {
		return d
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return 0
	}
	if c, ok := s.(cron.ConstantDelaySchedule); ok {
		d = c.Delay
	} else {
		d = longestGap(s)
	}
	intervals.Lock()
	defer intervals.Unlock()
	if intervals.m == nil {
		intervals.m = map[string]time.Duration{}
	}
	if len(intervals.m) < maxIntervals {
		intervals.m[spec] = d
	}
	return d
}

func longestGap(s cron.Schedule) time.Duration {
	var gap time.Duration
	first := s.Next(intervalEpoch)
	prev := first
	// cron returns the zero time when a spec does not fire within 5 years.
	for i := 0; !prev.IsZero() && i < intervalTicks && prev.Sub(first) < intervalSpan; i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		gap = max(gap, next.Sub(prev))
		prev = next
	}
	return gap
}
