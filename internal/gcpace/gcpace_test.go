package gcpace

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		base int
		want int
	}{
		{0, 100, maxPercent},
		{1 << 20, 100, maxPercent}, // 1 MiB: 6400 % wanted, capped
		{4 << 20, 100, 1600},       // 4 MiB live, 64 MiB room
		{10 << 20, 100, 640},
		{11 << 20, 100, 590}, // 581.8 rounds up to 590
		{Floor, 100, 100},    // the default already gives the floor
		{Ceiling, 100, 100},  // and up to here the default is not above the ceiling
		{230 << 20, 100, 60}, // 128 MiB of 230 is 55.7 %, rounded up
		{512 << 20, 100, 30}, // a quarter (25 %) equals the ceiling here, rounded up
		{4 << 30, 100, 30},   // big heaps grow by a quarter, not the ceiling
		{10 << 20, 800, 800}, // an operator's higher setting stands
		{80 << 20, 50, 80},   // 80 % of 80 MiB = 64 MiB
		{200 << 20, 50, 50},  // 50 % of 200 MiB is between floor and ceiling
		{10 << 20, -1, -1},   // GC off stays off
		{10 << 20, 0, 0},     // GOGC=0 too
	} {
		if got := Percent(tc.live, tc.base); got != tc.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", tc.live, tc.base, got, tc.want)
		}
	}
}

// gcPercent reads the current setting.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestStartRaisesSmallHeapsAndStopRestores(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set in the environment: Start leaves it alone (TestStartRespectsGOGC)")
	}
	stop := Start()
	deadline := time.Now().Add(30 * time.Second)
	for gcPercent() <= 100 {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("GC percent still %d after collections; the test heap is far below %d bytes", gcPercent(), Floor)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if p := gcPercent(); p != 100 {
		t.Fatalf("after stop: GC percent %d, want 100 back", p)
	}
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if p := gcPercent(); p != 100 {
		t.Fatalf("a collection after stop set GC percent %d", p)
	}
}

func TestStartRespectsGOGC(t *testing.T) {
	t.Setenv("GOGC", "100")
	stop := Start()
	defer stop()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(50 * time.Millisecond)
	if p := gcPercent(); p != 100 {
		t.Fatalf("with GOGC set, GC percent became %d", p)
	}
}

// Over live heaps from a kilobyte to 64 GiB, the growth Percent allows is
// at least Floor (unless capped by maxPercent) and at most the larger of
// Ceiling and a quarter of the heap, plus the rounding (a tenth of it).
func TestPercentBounds(t *testing.T) {
	for live := uint64(1 << 10); live <= 64<<30; live = live*9/8 + 1 {
		p := Percent(live, 100)
		growth := live * uint64(p) / 100
		if p < maxPercent && growth < Floor {
			t.Errorf("live %d: %d %% gives %d bytes of growth, under the floor", live, p, growth)
		}
		if most := max(Ceiling, live/4) + live/10; growth > most && growth > Floor {
			t.Errorf("live %d: %d %% gives %d bytes of growth, over %d", live, p, growth, most)
		}
		if p > 100 && live >= Floor || p < 100 && live <= Ceiling {
			t.Errorf("live %d: %d %%, want Go's 100 between floor and ceiling", live, p)
		}
	}
}
