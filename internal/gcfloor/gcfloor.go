// Package gcfloor keeps the garbage collector from running on every few
// megabytes a small heap allocates. Go's default (GOGC=100) lets the heap
// grow by as much as is live before the next collection; a daemon whose
// live heap is a few megabytes then collects hundreds of times a second
// during a burst of deliveries, and spends a tenth of its CPU there. The
// floor raises the growth allowed to at least Floor bytes; a heap larger
// than Floor keeps Go's default, so a daemon with many accounts uses no
// more memory than before.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Floor is the least growth of the heap allowed between two collections.
const Floor = 64 << 20

// maxPercent bounds the GC percentage the floor sets, so a nearly empty
// heap does not turn the collector off in effect.
const maxPercent = 2000

const liveMetric = "/gc/heap/live:bytes"

// Start applies the floor after every garbage collection until the
// returned function is called, which puts back the GC percentage found at
// start. With GOGC set in the environment the operator's choice stands:
// Start does nothing.
func Start() (stop func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	t := &tuner{base: debug.SetGCPercent(100)}
	debug.SetGCPercent(t.base)
	t.sample = []metrics.Sample{{Name: liveMetric}}
	t.arm()
	return func() {
		if t.stopped.CompareAndSwap(false, true) {
			t.set(t.base)
		}
	}
}

type tuner struct {
	base    int // GC percentage before Start
	sample  []metrics.Sample
	stopped atomic.Bool
	percent atomic.Int64 // last set; 0 before the first
}

// arm runs adjust once the next collection has swept a fresh object: a
// cleanup chain that re-arms itself, one small object at a time.
func (t *tuner) arm() {
	runtime.AddCleanup(new([16]byte), func(t *tuner) {
		if t.stopped.Load() {
			return
		}
		t.adjust()
		t.arm()
	}, t)
}

// adjust sets the GC percentage so that the next collection comes after
// the heap grew by max(live×base/100, Floor).
func (t *tuner) adjust() {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	t.set(Percent(t.sample[0].Value.Uint64(), t.base))
}

func (t *tuner) set(p int) {
	if t.percent.Swap(int64(p)) != int64(p) {
		debug.SetGCPercent(p)
	}
}

// Percent is the GC percentage that gives a heap of live bytes room to
// grow by max(live×base/100, Floor), in steps of 10 so small changes of
// the live heap do not reset the collector's pacing each cycle.
func Percent(live uint64, base int) int {
	if base <= 0 || live >= Floor*100/uint64(base) {
		return base
	}
	if live == 0 {
		return maxPercent
	}
	p := int(((Floor*100+live-1)/live + 9) / 10 * 10) // rounded up
	return min(max(p, base), maxPercent)
}
