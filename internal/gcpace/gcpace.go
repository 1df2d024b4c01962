// Package gcpace sets how far the heap may grow between two garbage
// collections. Go's default (GOGC=100) lets it grow by as much as is live.
// For a small heap that is too little: a daemon whose live heap is a few
// megabytes collects hundreds of times a second during a burst of
// deliveries and spends a tenth of its CPU there, so the growth is at
// least Floor. For a large heap it is too much: 10,000 accounts hold about
// 200 MB, and doubling that puts the process well past what one instance
// of a small service should take, so the growth is at most Ceiling, or a
// quarter of the live heap when that is more (a heap of gigabytes would
// otherwise be collected so often that the collector's CPU grows with it).
package gcpace

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Floor is the least growth of the heap allowed between two collections,
// Ceiling the most unless a quarter of the live heap is more.
const (
	Floor   = 64 << 20
	Ceiling = 128 << 20
)

// maxPercent bounds the GC percentage the floor sets, so a nearly empty
// heap does not turn the collector off in effect.
const maxPercent = 2000

const liveMetric = "/gc/heap/live:bytes"

// Start applies the pace after every garbage collection until the
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

// adjust sets the GC percentage for the live heap the last collection
// left (Percent).
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

// Percent is the GC percentage that lets a heap of live bytes grow by
// live×base/100 (Go's own pace), but by at least Floor and at most
// max(Ceiling, live/4), rounded up to a multiple of 10 so small changes of
// the live heap do not reset the collector's pacing each cycle. A base of 0
// or less (the collector turned off) stays.
func Percent(live uint64, base int) int {
	if base <= 0 {
		return base
	}
	if live == 0 {
		return maxPercent
	}
	growth := live * uint64(base) / 100
	growth = min(growth, max(Ceiling, live/4))
	growth = max(growth, Floor)
	p := int((growth*100+live-1)/live+9) / 10 * 10 // rounded up
	return min(p, maxPercent)
}
