package daemon

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// entryIDs returns the slots' cron entries.
func entryIDs(s *slots) []cron.EntryID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []cron.EntryID
	for _, sl := range s.bySlot {
		ids = append(ids, sl.entry)
	}
	slices.Sort(ids)
	return ids
}

// The slots were scheduled at a wall time three hours ahead of the one
// cron reads, as if the clock had then been stepped back three hours:
// cron would wait three hours for their next runs. Stepping the slots'
// clock back to cron's time, as NTP would, gets every slot polling on its
// schedule again, within an interval of the step.
func TestSlotsAfterClockStepsBack(t *testing.T) {
	clk := &testkit.StepClock{}
	clk.Step(3 * time.Hour)
	s := newSlots(cron.New(cron.WithLocation(time.UTC)), slog.New(slog.DiscardHandler), withClock(clk))
	defer s.stop(context.Background(), func() {}, time.Second)
	const n = 3
	var ticks [n]atomic.Int32
	for i := range n { // three slots, first ticks at once
		add(t, s, "@every 1s", time.Duration(i)*slotQuantum, func() { ticks[i].Add(1) })
	}
	s.cron.Start()
	waitFor(t, "the first ticks", func() bool {
		return ticks[0].Load() == 1 && ticks[1].Load() == 1 && ticks[2].Load() == 1
	})
	for _, e := range s.cron.Entries() {
		if time.Until(e.Next) < 2*time.Hour {
			t.Fatalf("a slot's next run is %v away, want the three hours of the setup", time.Until(e.Next))
		}
	}
	clk.Step(-3 * time.Hour)
	waitFor(t, "every slot polling again after the step", func() bool {
		return ticks[0].Load() >= 3 && ticks[1].Load() >= 3 && ticks[2].Load() >= 3
	})
}

// A forward step: cron runs each slot it made due once, not once per
// tick it skipped, and rescheduling after the step runs none again before
// its next tick.
func TestSlotsAfterClockStepsForward(t *testing.T) {
	clk := &testkit.StepClock{}
	clk.Step(-3 * time.Hour)
	s := newSlots(cron.New(cron.WithLocation(time.UTC)), slog.New(slog.DiscardHandler), withClock(clk))
	defer s.stop(context.Background(), func() {}, time.Second)
	const n = 3
	var ticks [n]atomic.Int32
	for i := range n {
		add(t, s, "@every 1h", time.Duration(i)*slotQuantum, func() { ticks[i].Add(1) })
	}
	before := entryIDs(s)
	s.cron.Start()
	clk.Step(3 * time.Hour)
	waitFor(t, "the slots rescheduled after the step", func() bool {
		ids := entryIDs(s)
		return !slices.ContainsFunc(ids, func(id cron.EntryID) bool { return slices.Contains(before, id) })
	})
	time.Sleep(100 * time.Millisecond) // cron runs what the step made due
	for i := range n {
		if got := ticks[i].Load(); got < 1 || got > 2 {
			t.Errorf("slot %d polled %d times, want its first tick and at most one run for the step", i, got)
		}
	}
	for _, e := range s.cron.Entries() {
		if d := time.Until(e.Next); d < 59*time.Minute || d > time.Hour+time.Second {
			t.Errorf("a slot's next run is %v away, want its next tick, an hour on", d)
		}
	}
}
