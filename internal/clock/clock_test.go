package clock

import (
	"testing"
	"time"
)

// fake is a clock the test sets reading by reading.
type fake struct {
	wall time.Time
	mono time.Duration
}

func (f *fake) Read() (time.Time, time.Duration) { return f.wall, f.mono }

// advance lets d pass on both clocks; step moves the wall clock alone.
func (f *fake) advance(d time.Duration) { f.wall, f.mono = f.wall.Add(d), f.mono+d }
func (f *fake) step(d time.Duration)    { f.wall = f.wall.Add(d) }

func TestSteady(t *testing.T) {
	t0 := time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)
	type op struct {
		advance, step time.Duration
		want          time.Duration // steady time - t0
		wantStep      time.Duration
	}
	tests := []struct {
		name string
		ops  []op
	}{
		{"no step", []op{{advance: time.Second, want: time.Second}, {advance: time.Minute, want: time.Minute + time.Second}}},
		{"back an hour: runs on from before the step", []op{
			{advance: time.Second, want: time.Second},
			{step: -time.Hour, advance: 2 * time.Second, want: 3 * time.Second, wantStep: -time.Hour},
			{advance: time.Second, want: 4 * time.Second},
		}},
		{"back hours, then forward past it: follows the wall clock", []op{
			{step: -5 * time.Hour, want: 0, wantStep: -5 * time.Hour},
			{step: 6 * time.Hour, advance: time.Second, want: time.Hour + time.Second, wantStep: 6 * time.Hour},
		}},
		{"forward (a suspend, a correction): follows the wall clock", []op{
			{step: 3 * time.Hour, advance: time.Second, want: 3*time.Hour + time.Second, wantStep: 3 * time.Hour},
			{advance: time.Second, want: 3*time.Hour + 2*time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{wall: t0, mono: time.Hour}
			s := NewSteady(f)
			if now, step := s.Now(); !now.Equal(t0) || step != 0 {
				t.Fatalf("first Now = %v, %v; want %v, 0", now, step, t0)
			}
			for i, o := range tt.ops {
				f.step(o.step)
				f.advance(o.advance)
				now, step := s.Now()
				if got := now.Sub(t0); got != o.want || step != o.wantStep {
					t.Errorf("op %d: steady t0%+v, step %v; want t0%+v, step %v", i, got, step, o.want, o.wantStep)
				}
			}
		})
	}
}

func TestSystemHasNoMonotonicReading(t *testing.T) {
	w, m := System{}.Read()
	if w != w.Round(0) {
		t.Error("System's wall time carries a monotonic reading: comparisons would not see steps")
	}
	if w2, m2 := (System{}).Read(); m2 < m || w2.IsZero() {
		t.Errorf("monotonic time went back: %v then %v", m, m2)
	}
}
