package store

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestGroupCommit(t *testing.T) {
	boom := errors.New("boom")
	put := func(k string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("g"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte{1})
		}
	}
	tests := []struct {
		name     string
		fns      []func(*bolt.Tx) error
		wantErrs []error
		wantKeys []string
	}{
		{"all succeed", []func(*bolt.Tx) error{put("a"), put("b")}, []error{nil, nil}, []string{"a", "b"}},
		{"a rejection stays with its caller",
			[]func(*bolt.Tx) error{put("a"), func(*bolt.Tx) error { return rejected{ErrNotFound} }, put("c")},
			[]error{nil, ErrNotFound, nil}, []string{"a", "c"}},
		{"a failure aborts the group",
			[]func(*bolt.Tx) error{put("a"), func(*bolt.Tx) error { return boom }, put("c")},
			[]error{boom, boom, boom}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			calls := make([]groupCall, len(tt.fns))
			errs := make([]error, len(tt.fns))
			told := make([]bool, len(tt.fns))
			for i, fn := range tt.fns {
				calls[i] = groupCall{fn: fn, then: func(err error) { errs[i], told[i] = err, true }}
			}
			s.group.commit(calls)
			for i, err := range errs {
				if !told[i] {
					t.Errorf("call %d: not told its outcome", i)
				}
				if !errors.Is(err, tt.wantErrs[i]) || (err == nil) != (tt.wantErrs[i] == nil) {
					t.Errorf("call %d: %v, want %v", i, err, tt.wantErrs[i])
				}
			}
			var keys []string
			_ = s.db.View(func(tx *bolt.Tx) error {
				if b := tx.Bucket([]byte("g")); b != nil {
					return b.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
				}
				return nil
			})
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("keys %v, want %v", keys, tt.wantKeys)
			}
		})
	}
}

// Delivered, Reschedule of items already gone and DeadLetter from many
// goroutines: every call gets its own answer, whatever group it shared.
func TestGroupCommitConcurrentMix(t *testing.T) {
	s := openTest(t)
	ids := make([]int64, 300)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	commit(t, s, "a", Commit{Events: newEvents("a", ids...), Webhooks: []string{"x"}, Cursor: 300})
	items := pending(t, s, "a", "x")
	var wg sync.WaitGroup
	errs := make(chan error, len(items))
	for i, it := range items {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				err = delivered(s, "a", "x", it.Seq)
			case 1:
				it.Seq += 1 << 40 // no such item
				if err = s.Reschedule(it); errors.Is(err, ErrNotFound) {
					err = nil
				} else {
					err = errors.Join(errors.New("want ErrNotFound"), err)
				}
			case 2:
				err = s.DeadLetter("test", t0, it)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p, d, err := s.Counts("a"); err != nil || p != 100 || d != 100 {
		t.Errorf("Counts = %d, %d, %v; want 100 pending, 100 dead", p, d, err)
	}
}

// Under steady load every caller keeps getting answers: none is left
// committing for the others.
func TestGroupCommitNoStarvation(t *testing.T) {
	s := openTest(t)
	const workers, calls = 4, 20
	var mu sync.Mutex
	done := make([]int, workers)
	allDone := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !slices.ContainsFunc(done, func(n int) bool { return n < calls })
	}
	deadline := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for !allDone() && time.Now().Before(deadline) {
				if err := delivered(s, "a", "x", uint64(w)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				done[w]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if !allDone() {
		t.Errorf("calls answered per worker: %v; every worker should reach %d", done, calls)
	}
}

// Delivered does not wait while another commit runs: it returns at once,
// and its outcome comes once the next shared transaction has committed,
// with the mark in the file. That frees a delivery goroutine to send
// again during the fsync.
func TestDeliveredDoesNotWait(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 1), Webhooks: []string{"x"}, Cursor: 1})
	it := pending(t, s, "a", "x")[0]
	release, running := make(chan struct{}), make(chan struct{})
	slow := make(chan error, 1)
	go func() {
		slow <- s.groupDo(func(*bolt.Tx) error {
			close(running)
			<-release
			return nil
		})
	}()
	<-running
	told := make(chan error, 1)
	s.Delivered("a", "x", it.Seq, nil, func(err error) { told <- err })
	select {
	case err := <-told:
		t.Fatalf("told %v while the commit before it still runs", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if err := <-told; err != nil {
		t.Fatal(err)
	}
	if got := pending(t, s, "a", "x"); len(got) != 0 {
		t.Errorf("%d pending after the mark was told committed", len(got))
	}
}
