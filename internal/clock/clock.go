// Package clock reads the wall clock together with the monotonic one, so
// that code keyed by wall time (the delivery schedule, cron) can tell when
// the wall clock was stepped and keep its waits to what it meant.
//
// The wall clock is stepped by NTP, by an operator, by a virtual machine
// resumed from a snapshot; the monotonic clock never is (on Linux it also
// stops while the machine is suspended, so a resume looks like a forward
// step of the wall clock, which it is). A wait keyed by wall time that was
// written before a backward step of an hour waits an hour too long; Steady
// gives such code a time that never goes back.
package clock

import (
	"sync"
	"time"
)

// Clock is a source of time. Production code uses System; tests pass a
// clock whose wall time they can step, through a constructor option.
type Clock interface {
	// Read returns the wall time (without a monotonic reading) and the
	// monotonic time elapsed since an origin fixed for the process.
	Read() (wall time.Time, mono time.Duration)
}

// origin is the monotonic origin of System (set once, never changed).
var origin = time.Now()

// System is the machine's clock.
type System struct{}

// Read implements Clock.
func (System) Read() (time.Time, time.Duration) {
	t := time.Now()
	return t.Round(0), t.Sub(origin)
}

// Steady turns a Clock's readings into a time that never goes back: the
// latest wall time read, advanced by the monotonic time elapsed since.
// After a backward step it runs on from where the wall clock was, so waits
// keyed by it before the step end when they were meant to; after a
// forward step (or a suspend) it follows the wall clock, as if the time
// had passed. It is safe for concurrent use.
type Steady struct {
	c Clock

	mu   sync.Mutex
	read bool
	now  time.Time     // the last steady time returned
	wall time.Time     // the last wall reading
	mono time.Duration // the monotonic reading that went with it
}

// NewSteady returns a Steady over c (nil: System).
func NewSteady(c Clock) *Steady {
	if c == nil {
		c = System{}
	}
	return &Steady{c: c}
}

// Now returns the steady time and how far the wall clock was stepped since
// the previous call: the wall time elapsed minus the monotonic time
// elapsed (negative: stepped back; 0 at the first call).
func (s *Steady) Now() (now time.Time, step time.Duration) {
	s.mu.Lock() // before reading: readings out of order would count time twice
	defer s.mu.Unlock()
	wall, mono := s.c.Read()
	if !s.read {
		s.read, s.now, s.wall, s.mono = true, wall, wall, mono
		return wall, 0
	}
	elapsed := max(mono-s.mono, 0)
	step = wall.Sub(s.wall) - elapsed
	s.now = s.now.Add(elapsed)
	if wall.After(s.now) {
		s.now = wall
	}
	s.wall, s.mono = wall, mono
	return s.now, step
}
