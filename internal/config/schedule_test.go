package config

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// TestInterval: the gap between polls, from the spec alone: exact for
// @every, the longest gap for calendar specs (nights, weekends, a DST
// change), 0 for a spec that never fires or does not parse.
func TestInterval(t *testing.T) {
	tests := []struct {
		spec string
		want time.Duration
	}{
		{"@every 1m", time.Minute},
		{"@every 5s", 5 * time.Second},
		{"@every 90m", 90 * time.Minute},
		{"*/5 * * * *", 5 * time.Minute},
		{"* * * * *", time.Minute},
		{"@hourly", time.Hour},
		{"0 9 * * *", 24 * time.Hour},
		{"0 9,17 * * *", 16 * time.Hour},
		{"0 9 * * 1-5", 72 * time.Hour},                      // Friday 9:00 to Monday 9:00
		{"*/5 9-17 * * 1-5", 63*time.Hour + 5*time.Minute},   // Friday 17:55 to Monday 9:00
		{"CRON_TZ=Europe/Berlin 0 12 * * *", 25 * time.Hour}, // the day clocks go back
		{"0 0 1 * *", 31 * 24 * time.Hour},                   // the longest month
		{"0 0 29 2 *", (4*365 + 1) * 24 * time.Hour},         // leap days only
		{"0 0 31 2 *", 0},                                    // never
		{"every minute", 0},                                  // does not parse
	}
	for _, tt := range tests {
		a := Account{Schedule: tt.spec}
		if got := a.Interval(); got != tt.want {
			t.Errorf("Interval(%q) = %v, want %v", tt.spec, got, tt.want)
		}
		if again := a.Interval(); again != tt.want {
			t.Errorf("Interval(%q) again = %v (remembered), want %v", tt.spec, again, tt.want)
		}
	}
}

// BenchmarkInterval is the cost of the first Interval of a frequent
// calendar spec (the longest walk); later calls are a map lookup.
func BenchmarkInterval(b *testing.B) {
	s, err := cron.ParseStandard("*/1 9-17 * * 1-5")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		longestGap(s)
	}
}
