package store

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var long = flag.Bool("long", false, "run the 1,000,000-event file size test (also STORE_LONG=1)")

// fill commits n events (history ids from+1..from+n) to webhook "1" in
// commits of 100 and returns the last history id.
func fill(tb testing.TB, s *Store, from int64, n int) int64 {
	tb.Helper()
	for n > 0 {
		k := min(n, 100)
		ids := make([]int64, k)
		for i := range ids {
			from++
			ids[i] = from
		}
		commit(tb, s, "a", Commit{Events: newEvents("a", ids...), Webhooks: []string{"1"}, Cursor: from, Prune: Prune{SeenBelow: from - 200, Before: time.Now()}})
		n -= k
	}
	return from
}

// BenchmarkCommitPoll: one op is a poll commit of 100 events to one webhook.
func BenchmarkCommitPoll(b *testing.B) {
	s := openTest(b)
	var last int64
	b.ReportAllocs()
	for b.Loop() {
		last = fill(b, s, last, 100)
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDelivered: 4, 8 and 32 goroutines mark items delivered, sharing
// transactions through the group commit.
func BenchmarkDelivered(b *testing.B) {
	for _, workers := range []int{4, 8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			s := openTest(b)
			fill(b, s, 0, b.N)
			items := pending(b, s, "a", "1")
			var next atomic.Int64
			b.SetParallelism(max(1, workers/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					it := items[next.Add(1)-1]
					if err := delivered(s, "a", "1", it.Seq); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "delivered/s")
		})
	}
}

// BenchmarkPending: one op reads a page of 100 items at a random place of
// a 10,000 item outbox.
func BenchmarkPending(b *testing.B) {
	s := openTest(b)
	fill(b, s, 0, 10_000)
	b.ReportAllocs()
	for b.Loop() {
		items, err := s.Pending("a", "1", uint64(rand.IntN(9_900)), 100)
		if err != nil || len(items) != 100 {
			b.Fatal(len(items), err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkCommitAndDeliver is the store's share of the delivery path: a
// poller commits polls of 100 events while 8 workers read the outbox and
// mark each event delivered. One op is one event through both.
func BenchmarkCommitAndDeliver(b *testing.B) {
	s := openTest(b)
	const workers = 8
	queue := make(chan Item, 1024)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for it := range queue {
				if err := delivered(s, "a", "1", it.Seq); err != nil {
					b.Error(err)
				}
			}
		})
	}
	b.ResetTimer()
	var last int64
	var after uint64
	for sent := 0; sent < b.N; {
		last = fill(b, s, last, min(100, b.N-sent))
		items, err := s.Pending("a", "1", after, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, it := range items {
			queue <- it
			after = it.Seq
		}
		sent += len(items)
	}
	close(queue)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestFileSizeBounded enqueues and delivers many events in batches and
// checks that bbolt reuses freed pages: the file must not keep growing once
// the outbox drains. 50,000 events by default, 1,000,000 with -long or
// STORE_LONG=1.
func TestFileSizeBounded(t *testing.T) {
	total := 50_000
	if *long || os.Getenv("STORE_LONG") == "1" {
		total = 1_000_000
	}
	path := filepath.Join(t.TempDir(), FileName)
	s := mustOpen(t, path, Options{})
	const batch = 1000
	var last int64
	var warm int64
	for done := 0; done < total; done += batch {
		last = fill(t, s, last, batch)
		items := pending(t, s, "a", "1")
		if len(items) != batch {
			t.Fatalf("outbox holds %d items, want %d", len(items), batch)
		}
		deliverAll(t, s, items)
		if done+batch == total/10 {
			warm = fileSize(t, path)
		}
	}
	final := fileSize(t, path)
	if p, _, _ := s.Counts("a"); p != 0 {
		t.Fatalf("%d items left", p)
	}
	t.Logf("%d events: file %d bytes after %d, %d bytes at the end", total, warm, total/10, final)
	if final > 2*warm {
		t.Errorf("file grew from %d to %d bytes with an empty outbox", warm, final)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkOpenCheck: what the check before bbolt maps the file costs at
// every Open, beside what bbolt's own Open costs (a read-write Open walks
// every page too, to rebuild the free list), on a file of 200,000 pending
// events (STORE_BENCH_EVENTS to change).
func BenchmarkOpenCheck(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("STORE_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	path := filepath.Join(b.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, s, 0, n)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	size := fileSize(b, path)
	b.Run("check", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := checkFile(f); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("open", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			s, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
}
