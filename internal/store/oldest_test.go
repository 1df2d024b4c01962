package store

import (
	"errors"
	"maps"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OldestPending names each queue's oldest pending event by its detection
// time, follows deliveries and dead letters, survives a reopen, and leaves
// out queues with nothing pending.
func TestOldestPending(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := mustOpen(t, path, Options{})
	commit(t, s, "a", Commit{Events: newEvents("a", 1, 2, 3), Webhooks: []string{"x", "y"}, Cursor: 3})
	commit(t, s, "b", Commit{Events: newEvents("b", 5), Webhooks: []string{"z"}, Cursor: 5})
	x := pending(t, s, "a", "x")
	if err := delivered(s, "a", "x", x[0].Seq); err != nil {
		t.Fatal(err)
	}
	z := pending(t, s, "b", "z")
	if err := s.DeadLetter("test", t0, z...); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]time.Time{
		"a": {"x": t0.Add(2 * time.Second), "y": t0.Add(time.Second)},
	}
	check := func(when string) {
		t.Helper()
		got, err := s.OldestPending()
		if err != nil {
			t.Fatal(err)
		}
		if !maps.EqualFunc(got, want, func(g, w map[string]time.Time) bool {
			return maps.EqualFunc(g, w, time.Time.Equal)
		}) {
			t.Errorf("%s: OldestPending = %v, want %v", when, got, want)
		}
	}
	check("open")
	_ = s.Close()
	s = mustOpen(t, path, Options{})
	check("after a reopen")

	// A damaged first record is reported, not skipped.
	_ = s.Close()
	writeRaw(t, path, func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketAccounts).Bucket([]byte("a")).Bucket(bucketOutbox).Bucket([]byte("y"))
		return q.Put(u64(x[0].Seq), []byte{recordAttempt, 0xff})
	})
	s = mustOpen(t, path, Options{})
	if _, err := s.OldestPending(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged record: %v, want ErrCorrupt", err)
	}
}
