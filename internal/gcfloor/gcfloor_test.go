package gcfloor

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
		{1 << 30, 100, 100},  // big heaps keep the default
		{10 << 20, 800, 800}, // an operator's higher setting stands
		{80 << 20, 50, 80},   // 80 % of 80 MiB = 64 MiB
		{10 << 20, -1, -1},   // GC off stays off
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
