package testkit

import (
	"sync/atomic"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/clock"
)

// StepClock is the machine's clock with a wall time a test can step, as
// NTP or an operator would: Step moves the wall time and leaves the
// monotonic time running on. It implements clock.Clock.
type StepClock struct{ offset atomic.Int64 }

// Read implements clock.Clock.
func (c *StepClock) Read() (time.Time, time.Duration) {
	wall, mono := clock.System{}.Read()
	return wall.Add(time.Duration(c.offset.Load())), mono
}

// Step moves the wall time by d (negative: back).
func (c *StepClock) Step(d time.Duration) { c.offset.Add(int64(d)) }

// Wall returns the current wall time.
func (c *StepClock) Wall() time.Time {
	w, _ := c.Read()
	return w
}
