package poll

import (
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// An entry that commits late in a stretch read across a clock change of
// Europe/Berlin is found by the look-back: entries seconds old never look
// an hour old, whatever the repeated or skipped hour does to the times.
func TestLookBackAcrossClockChanges(t *testing.T) {
	berlin := loadZone(t, "Europe/Berlin")
	for _, c := range []struct {
		name     string
		at       time.Time // UTC: when the late entry and its neighbour are made
		override *time.Location
		noAccess bool // the key cannot read the settings: the zone is unknown
	}{
		// 01:59:55 CEST, then generatedAt 02:00:05 in the first of the two
		// 02:00 hours: read as the second, the entries look an hour old.
		{"clocks go back", time.Date(2026, 10, 24, 23, 59, 55, 0, time.UTC), nil, false},
		{"clocks go back, zone set", time.Date(2026, 10, 24, 23, 59, 55, 0, time.UTC), berlin, false},
		{"clocks go back, zone unknown", time.Date(2026, 10, 24, 23, 59, 55, 0, time.UTC), nil, true},
		// 01:59:55 CET, then generatedAt 03:00:05 CEST.
		{"clocks go forward", time.Date(2026, 3, 29, 0, 59, 55, 0, time.UTC), nil, false},
		{"clocks go forward, zone unknown", time.Date(2026, 3, 29, 0, 59, 55, 0, time.UTC), nil, true},
		// Inside the repeated hour: 02:30:00 CEST (first), generatedAt 02:30:10.
		{"within the repeated hour", time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{seed: 311,
				sim:     crmsim.AccountOptions{TimeZone: berlin, SettingsForbidden: c.noAccess},
				account: func(a *config.Account) { a.TimeZone = c.override }})
			h.clock.now = c.at.Add(-10 * time.Minute)
			o1, o2 := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
			h.poll()
			h.clock.Advance(5 * time.Minute)
			h.poll() // retires the first poll's mark
			if marks := h.state().Marks; len(marks) != 0 {
				t.Fatalf("marks %+v, want none before the clock change", marks)
			}
			h.clock.now = c.at
			late := lateEntry(h, 90*time.Second, func() int64 { return h.crm.SetStatus(o1, "approved") })
			h.crm.SetStatus(o2, "cancel")
			h.clock.Advance(10 * time.Second)
			h.poll() // passes the late entry's id
			for range 5 {
				h.clock.Advance(time.Minute)
				h.poll()
			}
			if !hasOnce(h.outbox(), late) {
				t.Errorf("late entry %d lost: %v", late, ids(h.outbox()))
			}
		})
	}
}

func TestWallTimes(t *testing.T) {
	berlin := loadZone(t, "Europe/Berlin")
	utc := func(h, m int, day time.Time) time.Time {
		return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, time.UTC)
	}
	autumn, spring := time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		wall        string
		early, late time.Time
	}{
		{"2026-10-25 01:59:59", utc(23, 59, autumn.Add(-24*time.Hour)).Add(59 * time.Second), utc(23, 59, autumn.Add(-24*time.Hour)).Add(59 * time.Second)},
		{"2026-10-25 02:30:00", utc(0, 30, autumn), utc(1, 30, autumn)}, // repeated: CEST, then CET
		{"2026-10-25 03:00:00", utc(2, 0, autumn), utc(2, 0, autumn)},
		{"2026-03-29 01:30:00", utc(0, 30, spring), utc(0, 30, spring)},
		{"2026-03-29 02:30:00", utc(0, 30, spring), utc(1, 30, spring)}, // skipped: either side of the step
		{"2026-03-29 03:00:00", utc(1, 0, spring), utc(1, 0, spring)},
	} {
		early, late := wallTimes(c.wall, berlin)
		if !early.Equal(c.early) || !late.Equal(c.late) {
			t.Errorf("%s: %v .. %v, want %v .. %v", c.wall, early.UTC(), late.UTC(), c.early, c.late)
		}
	}
	if e, l := wallTimes("2026-10-25T02:30:00", berlin); !e.IsZero() || !l.IsZero() {
		t.Errorf("a time that does not parse gave %v, %v", e, l)
	}
	// A zone without changes: one instant.
	if e, l := wallTimes("2026-10-25 02:30:00", time.UTC); !e.Equal(l) || !e.Equal(utc(2, 30, autumn)) {
		t.Errorf("UTC: %v, %v", e, l)
	}
}
