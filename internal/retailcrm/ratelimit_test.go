package retailcrm

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	const span = 200 * time.Millisecond
	w := &window{n: 3, span: span}
	start := time.Now()
	for range 3 {
		if err := w.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The 4th admission is held back by the 1st: a lower bound that no
	// scheduler delay can break.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		if d := time.Since(start); d < span {
			t.Fatalf("4th admission after %v, err %v; want it held for %v", d, err, span)
		}
	}
	if err := w.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < span {
		t.Errorf("4th admission after %v, want >= %v", d, span)
	}
}

func TestNewPacer(t *testing.T) {
	tests := []struct {
		limit     float64
		n         int
		span      time.Duration
		unlimited bool
	}{
		{10, 10, 1052631578 * time.Nanosecond, false},
		{8, 8, 1052631578 * time.Nanosecond, false},
		{2.5, 2, 842105263 * time.Nanosecond, false},
		{0.5, 1, 2105263157 * time.Nanosecond, false},
		{0, 0, 0, true},
		{-1, 0, 0, true},
	}
	for _, tt := range tests {
		p := newPacer(tt.limit)
		if (p.window == nil) != tt.unlimited {
			t.Errorf("newPacer(%v): window %+v", tt.limit, p.window)
			continue
		}
		if p.window != nil && (p.window.n != tt.n || (p.window.span-tt.span).Abs() > time.Microsecond) {
			t.Errorf("newPacer(%v): n %d span %v, want %d %v", tt.limit, p.window.n, p.window.span, tt.n, tt.span)
		}
	}
}
