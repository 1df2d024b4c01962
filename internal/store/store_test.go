package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)

// openTest opens a fresh store in a temp dir, closed at cleanup.
func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newEvents returns one status event per history id.
func newEvents(account string, ids ...int64) []NewEvent {
	evs := make([]NewEvent, len(ids))
	for i, id := range ids {
		evs[i] = NewEvent{
			Event: event.Event{
				ID:      event.ID(account, id),
				Type:    event.StatusChanged,
				Account: account,
				Change: event.Change{HistoryID: id, Field: "status", OldValue: "new", NewValue: "approved",
					Source: "user", CreatedAt: "2026-11-23 10:00:00"},
				Order: json.RawMessage(fmt.Sprintf(`{"id":%d,"status":"approved"}`, id%7+1)),
			},
			OrderID:    id%7 + 1,
			DetectedAt: t0.Add(time.Duration(id) * time.Second),
		}
	}
	return evs
}

// accountList lists the accounts with state in the file, in name order.
func accountList(s *Store) ([]string, error) {
	o, err := s.Overviews(false)
	return slices.Sorted(maps.Keys(o)), err
}

func commit(t testing.TB, s *Store, account string, c Commit) {
	t.Helper()
	if err := s.CommitPoll(account, c); err != nil {
		t.Fatal(err)
	}
}

func pending(t testing.TB, s *Store, account, webhook string) []Item {
	t.Helper()
	items, err := s.Pending(account, webhook, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// deliverAll marks items delivered from 16 goroutines, so the group commit
// shares transactions as it does under the delivery workers.
// delivered waits for Delivered's outcome.
func delivered(s *Store, account, webhook string, seq uint64) error {
	done := make(chan error, 1)
	s.Delivered(account, webhook, seq, nil, func(err error) { done <- err })
	return <-done
}

func deliverAll(t testing.TB, s *Store, items []Item) {
	t.Helper()
	work := make(chan Item)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for it := range work {
				if err := delivered(s, it.Account, it.Webhook, it.Seq); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
}

// anyWebhook accepts every webhook as configured.
func anyWebhook(string, string) bool { return true }

func historyIDs(items []Item) []int64 {
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.Event.Change.HistoryID
	}
	return ids
}

func seqs(items []Item) []uint64 {
	s := make([]uint64, len(items))
	for i, it := range items {
		s[i] = it.Seq
	}
	return s
}

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	path := filepath.Join(dir, FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.mode {
			t.Errorf("%s mode = %o, want %o", c.path, got, c.mode)
		}
	}
	if err := s.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestReopenKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	marks := []Mark{{At: t0, Cursor: 5}, {At: t0.Add(time.Minute), Cursor: 7}}
	commit(t, s, "ghana", Commit{Events: newEvents("ghana", 5, 7), Webhooks: []string{"1"}, Cursor: 7, Marks: marks, At: t0})
	wantItems := pending(t, s, "ghana", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	st, err := s.State("ghana")
	if err != nil {
		t.Fatal(err)
	}
	want := AccountState{Initialized: true, Cursor: 7, Marks: marks, LastSuccess: t0}
	if !stateEqual(st, want) {
		t.Errorf("state after reopen = %+v, want %+v", st, want)
	}
	if got := pending(t, s, "ghana", "1"); !reflect.DeepEqual(got, wantItems) || len(got) != 2 {
		t.Errorf("pending after reopen = %+v, want %+v", got, wantItems)
	}
}

func stateEqual(a, b AccountState) bool {
	if a.Initialized != b.Initialized || a.Cursor != b.Cursor || !a.LastSuccess.Equal(b.LastSuccess) || len(a.Marks) != len(b.Marks) {
		return false
	}
	for i := range a.Marks {
		if a.Marks[i].Cursor != b.Marks[i].Cursor || !a.Marks[i].At.Equal(b.Marks[i].At) {
			return false
		}
	}
	return true
}

// readVersion reads meta/schema_version with bbolt directly.
func readVersion(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	if err := db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = schemaVersion(tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// writeRaw runs fn on the file with bbolt directly, bypassing Open.
func writeRaw(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readVersion(t, path); got != latestSchema() || got < 1 {
		t.Fatalf("schema_version = %d, want %d", got, latestSchema())
	}

	writeRaw(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, u64(latestSchema()+1))
	})
	for _, ro := range []bool{false, true} {
		_, err = Open(path, Options{ReadOnly: ro})
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Errorf("Open(readOnly=%v) of a newer file: %v, want ErrSchemaTooNew", ro, err)
		}
	}
	if got := readVersion(t, path); got != latestSchema()+1 {
		t.Errorf("a refused Open changed schema_version to %d", got)
	}
}

func TestMigrationsRunInOrderFromStoredVersion(t *testing.T) {
	orig := migrations
	t.Cleanup(func() { migrations = orig })
	var ran []int
	step := func(n int) migration {
		return func(db *bolt.DB) error {
			ran = append(ran, n)
			return db.Update(func(tx *bolt.Tx) error {
				_, err := tx.CreateBucketIfNotExists(fmt.Appendf(nil, "step%d", n))
				return err
			})
		}
	}
	path := filepath.Join(t.TempDir(), FileName)
	// A bare bbolt file (version 0) gets every step.
	writeRaw(t, path, func(*bolt.Tx) error { return nil })
	migrations = []migration{orig[0], step(2)}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if !slices.Equal(ran, []int{2}) {
		t.Fatalf("ran %v, want [2]", ran)
	}
	// A later binary runs only the new steps, in order.
	ran = nil
	migrations = []migration{orig[0], step(2), step(3), step(4)}
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if !slices.Equal(ran, []int{3, 4}) {
		t.Fatalf("ran %v, want [3 4]", ran)
	}
	if got := readVersion(t, path); got != 4 {
		t.Errorf("schema_version = %d, want 4", got)
	}
	// A failing step stops the migration: the steps before it are
	// recorded, the failed one is not, and the next Open runs it again.
	migrations = append(migrations, step(5), func(*bolt.DB) error { return errors.New("boom") })
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("Open with a failing migration succeeded")
	}
	if got := readVersion(t, path); got != 5 {
		t.Errorf("schema_version after failed migration = %d, want 5", got)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAccounts) == nil || tx.Bucket([]byte("step5")) == nil {
			t.Error("buckets of applied steps are missing")
		}
		return nil
	})
}

func TestLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := mustOpen(t, path, Options{})
	for _, ro := range []bool{false, true} {
		start := time.Now()
		_, err := Open(path, Options{Timeout: 300 * time.Millisecond, ReadOnly: ro})
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, berrors.ErrTimeout) {
			t.Errorf("second Open(readOnly=%v) = %v, want ErrTimeout", ro, err)
		}
		// bbolt gives up one 50ms retry step early.
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("second Open gave up after %v, before its timeout", d)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, path, Options{Timeout: 100 * time.Millisecond})
	if err := s2.Ping(); err != nil {
		t.Error(err)
	}
}

func mustOpen(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if _, err := Open(filepath.Join(dir, "missing", FileName), Options{ReadOnly: true}); err == nil {
		t.Error("read-only Open of a missing file succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Error("read-only Open created the state dir")
	}
	s := mustOpen(t, path, Options{})
	commit(t, s, "a", Commit{Events: newEvents("a", 1), Webhooks: []string{"1"}, Cursor: 1, At: t0})
	_ = s.Close()

	ro := mustOpen(t, path, Options{ReadOnly: true})
	if st, err := ro.State("a"); err != nil || st.Cursor != 1 {
		t.Errorf("read-only State = %+v, %v", st, err)
	}
	// Two readers share the lock.
	ro2 := mustOpen(t, path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if n, _, err := ro2.Counts("a"); err != nil || n != 1 {
		t.Errorf("second reader Counts = %d, %v", n, err)
	}
	if err := ro.CommitPoll("a", Commit{Cursor: 2}); err == nil {
		t.Error("CommitPoll on a read-only store succeeded")
	}
}

func TestCommitPollDedupsSeen(t *testing.T) {
	s := openTest(t)
	hooks := []string{"1", "2"}
	commit(t, s, "a", Commit{Events: newEvents("a", 10, 11, 12), Webhooks: hooks, Cursor: 12, At: t0})
	// Same events again, overlapping ones, and a duplicate inside one commit.
	commit(t, s, "a", Commit{Events: newEvents("a", 10, 11, 12), Webhooks: hooks, Cursor: 12, At: t0})
	commit(t, s, "a", Commit{Events: newEvents("a", 11, 13, 13, 9), Webhooks: hooks, Cursor: 13, At: t0})
	for _, w := range hooks {
		got := historyIDs(pending(t, s, "a", w))
		if want := []int64{10, 11, 12, 13, 9}; !slices.Equal(got, want) {
			t.Errorf("webhook %s history ids = %v, want %v", w, got, want)
		}
	}
	seen, err := s.Seen("a", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 5 || !seen[9] || !seen[13] {
		t.Errorf("seen = %v", seen)
	}
	if p, d, err := s.Counts("a"); p != 10 || d != 0 || err != nil {
		t.Errorf("Counts = %d, %d, %v; want 10, 0", p, d, err)
	}
}

func TestCommitPollState(t *testing.T) {
	s := openTest(t)
	st, err := s.State("new")
	if err != nil || !stateEqual(st, AccountState{}) {
		t.Fatalf("state of an unknown account = %+v, %v", st, err)
	}
	tests := []struct {
		name string
		c    Commit
		want AccountState
	}{
		{"empty commit still records state", Commit{Cursor: 100, Marks: []Mark{{At: t0, Cursor: 100}}, At: t0},
			AccountState{Initialized: true, Cursor: 100, Marks: []Mark{{At: t0, Cursor: 100}}, LastSuccess: t0}},
		{"cursor moves up", Commit{Events: newEvents("x", 101), Webhooks: []string{"1"}, Cursor: 150, At: t0.Add(time.Minute)},
			AccountState{Initialized: true, Cursor: 150, LastSuccess: t0.Add(time.Minute)}},
		{"cursor never lowered", Commit{Cursor: 120, Marks: []Mark{{At: t0, Cursor: 150}}, At: t0.Add(2 * time.Minute)},
			AccountState{Initialized: true, Cursor: 150, Marks: []Mark{{At: t0, Cursor: 150}}, LastSuccess: t0.Add(2 * time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			commit(t, s, "x", tt.c)
			got, err := s.State("x")
			if err != nil {
				t.Fatal(err)
			}
			if !stateEqual(got, tt.want) {
				t.Errorf("state = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCommitPollRejects(t *testing.T) {
	s := openTest(t)
	tests := []struct {
		name    string
		account string
		c       Commit
	}{
		{"events without webhooks", "a", Commit{Events: newEvents("a", 1), Cursor: 1}},
		{"empty webhook name", "a", Commit{Events: newEvents("a", 1), Webhooks: []string{"1", ""}, Cursor: 1}},
		{"history id zero", "a", Commit{Events: newEvents("a", 0), Webhooks: []string{"1"}, Cursor: 1}},
		{"empty account", "", Commit{Cursor: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.CommitPoll(tt.account, tt.c); err == nil {
				t.Fatal("CommitPoll succeeded")
			}
			if st, _ := s.State(tt.account); st.Initialized || st.Cursor != 0 {
				t.Errorf("a refused commit changed state: %+v", st)
			}
		})
	}
}

func TestCommitPollIsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := mustOpen(t, path, Options{})
	commit(t, s, "a", Commit{Cursor: 5, At: t0})
	_ = s.Close()
	// Corrupt marks make the commit fail after its events were written.
	writeRaw(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).Bucket([]byte("a")).Bucket(bucketState).Put(keyMarks, []byte("{"))
	})
	s = mustOpen(t, path, Options{})
	if err := s.CommitPoll("a", Commit{Events: newEvents("a", 6, 7), Webhooks: []string{"1"}, Cursor: 7, At: t0}); err == nil {
		t.Fatal("commit over corrupt state succeeded")
	}
	if got := pending(t, s, "a", "1"); len(got) != 0 {
		t.Errorf("failed commit left %d outbox items", len(got))
	}
	if seen, _ := s.Seen("a", 0, 100); len(seen) != 0 {
		t.Errorf("failed commit left seen ids %v", seen)
	}
}

func TestPruneSeen(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 1, 2, 3, 5, 8, 13), Webhooks: []string{"1"}, Cursor: 13})
	commit(t, s, "a", Commit{Events: newEvents("a", 21), Webhooks: []string{"1"}, Cursor: 21, At: t0, Prune: Prune{SeenBelow: 8, Before: t0.Add(time.Second)}})
	tests := []struct {
		from, to int64
		want     []int64
	}{
		{0, 100, []int64{8, 13, 21}},
		{8, 21, []int64{13, 21}},
		{7, 8, []int64{8}},
		{13, 20, nil},
		{21, 5, nil},
	}
	for _, tt := range tests {
		seen, err := s.Seen("a", tt.from, tt.to)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for id := range seen {
			got = append(got, id)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Seen(%d, %d) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
	if got := len(pending(t, s, "a", "1")); got != 7 {
		t.Errorf("pruning touched the outbox: %d items, want 7", got)
	}
	// A pruned id is new again: the look-back window never reaches it.
	commit(t, s, "a", Commit{Events: newEvents("a", 2), Webhooks: []string{"1"}, Cursor: 21})
	if got := len(pending(t, s, "a", "1")); got != 8 {
		t.Errorf("after re-adding a pruned id: %d items, want 8", got)
	}
}

func TestPendingOrderAfterLimit(t *testing.T) {
	s := openTest(t)
	evs := newEvents("a", 30, 10, 20)
	evs[1].Event.OrderMissing = true
	evs[1].Event.Type = event.Created
	commit(t, s, "a", Commit{Events: evs, Webhooks: []string{"x", "y"}, Cursor: 30})
	commit(t, s, "a", Commit{Events: newEvents("a", 40), Webhooks: []string{"x", "y"}, Cursor: 40})

	all := pending(t, s, "a", "x")
	if got, want := seqs(all), []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("x seqs = %v, want %v (one Seq per event)", got, want)
	}
	if got, want := seqs(pending(t, s, "a", "y")), []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("y seqs = %v, want %v (shared with x)", got, want)
	}
	if got, want := historyIDs(all), []int64{30, 10, 20, 40}; !slices.Equal(got, want) {
		t.Errorf("history ids = %v, want detection order %v", got, want)
	}
	for i, it := range all {
		want := Item{Seq: it.Seq, Account: "a", Webhook: "x", Event: evs[min(i, 2)].Event,
			OrderID: evs[min(i, 2)].OrderID, DetectedAt: evs[min(i, 2)].DetectedAt}
		if i == 3 {
			want.Event, want.OrderID, want.DetectedAt = newEvents("a", 40)[0].Event, newEvents("a", 40)[0].OrderID, newEvents("a", 40)[0].DetectedAt
		}
		if !reflect.DeepEqual(it, want) {
			t.Errorf("item %d = %+v\nwant %+v", i, it, want)
		}
	}

	tests := []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 2, []uint64{1, 2}},
		{1, 0, []uint64{2, 3, 4}},
		{2, 1, []uint64{3}},
		{3, 10, []uint64{4}},
		{4, 10, nil},
	}
	for _, tt := range tests {
		got, err := s.Pending("a", "x", tt.after, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(got), tt.want) {
			t.Errorf("Pending(after=%d, limit=%d) = %v, want %v", tt.after, tt.limit, seqs(got), tt.want)
		}
	}
	for _, c := range [][2]string{{"a", "nope"}, {"nope", "x"}, {"", ""}} {
		if got, err := s.Pending(c[0], c[1], 0, 0); err != nil || len(got) != 0 {
			t.Errorf("Pending(%q, %q) = %v, %v; want empty", c[0], c[1], got, err)
		}
	}
}

func TestDeliveredAndQueueCounts(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 1, 2, 3), Webhooks: []string{"x", "y"}, Cursor: 3})
	x := pending(t, s, "a", "x")
	for _, it := range x[:2] {
		if err := delivered(s, "a", "x", it.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := delivered(s, "a", "x", x[0].Seq); err != nil {
		t.Errorf("second Delivered of the same item: %v", err)
	}
	if err := delivered(s, "nope", "x", 1); err != nil {
		t.Errorf("Delivered on an unknown account: %v", err)
	}
	if err := delivered(s, "a", "nope", 1); err != nil {
		t.Errorf("Delivered on an unknown webhook: %v", err)
	}
	if got := seqs(pending(t, s, "a", "x")); !slices.Equal(got, []uint64{x[2].Seq}) {
		t.Errorf("x after Delivered = %v", got)
	}
	if p, _, _ := s.Counts("a"); p != 4 {
		t.Errorf("pending count = %d, want 4", p)
	}
	want := []QueueCount{{Webhook: "x", Pending: 1}, {Webhook: "y", Pending: 3}}
	if got, err := s.QueueCounts("a"); err != nil || !slices.Equal(got, want) {
		t.Errorf("QueueCounts = %v, %v; want %v", got, err, want)
	}
	// The events of x's delivered items stay: y still has them.
	if n := countKeys(t, s, "a", bucketEvents); n != 3 {
		t.Errorf("%d event records, want 3", n)
	}
	deliverAll(t, s, pending(t, s, "a", "y"))
	if got, err := s.QueueCounts("a"); err != nil || !slices.Equal(got, want[:1]) {
		t.Errorf("QueueCounts after draining y = %v, %v; want %v", got, err, want[:1])
	}
	if n := countKeys(t, s, "a", bucketEvents); n != 1 {
		t.Errorf("%d event records after y drained, want 1 (x's last)", n)
	}
	if got, err := s.QueueCounts("nope"); err != nil || len(got) != 0 {
		t.Errorf("QueueCounts of unknown account = %v, %v", got, err)
	}
}

// countKeys counts the keys of accounts/<account>/<kind> (and of its
// webhook sub-buckets) with bbolt directly.
func countKeys(t testing.TB, s *Store, account string, kind []byte) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		b := sub(accountBucket(tx, account), kind)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				n += b.Bucket(k).Stats().KeyN
			} else {
				n++
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReschedule(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 1), Webhooks: []string{"x"}, Cursor: 1})
	it := pending(t, s, "a", "x")[0]
	orig := it
	// Only the attempt fields are taken from the argument.
	upd := Item{Seq: it.Seq, Account: "a", Webhook: "x", Attempts: 3, FirstAttempt: t0, NextAttempt: t0.Add(time.Hour),
		LastStatus: 503, LastError: "503 Service Unavailable", DeadReason: "ignored"}
	if err := s.Reschedule(upd); err != nil {
		t.Fatal(err)
	}
	got := pending(t, s, "a", "x")[0]
	want := orig
	want.Attempts, want.FirstAttempt, want.NextAttempt, want.LastStatus, want.LastError = 3, t0, t0.Add(time.Hour), 503, upd.LastError
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after Reschedule = %+v\nwant %+v", got, want)
	}
	if err := delivered(s, "a", "x", it.Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(upd); !errors.Is(err, ErrNotFound) {
		t.Errorf("Reschedule of a delivered item = %v, want ErrNotFound", err)
	}
}

func TestDeadLetterRoundTrip(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 1, 2, 3), Webhooks: []string{"x", "y"}, Cursor: 3})
	commit(t, s, "b", Commit{Events: newEvents("b", 9), Webhooks: []string{"x"}, Cursor: 9})
	deadAt := t0.Add(72 * time.Hour)
	kill := func(account, webhook string, hid int64) Item {
		t.Helper()
		for _, it := range pending(t, s, account, webhook) {
			if it.Event.Change.HistoryID == hid {
				it.Attempts, it.LastStatus, it.LastError, it.FirstAttempt = 12, 500, "boom", t0
				if err := s.DeadLetter("max_attempts", deadAt, it); err != nil {
					t.Fatal(err)
				}
				return it
			}
		}
		t.Fatalf("no item %d in %s/%s", hid, account, webhook)
		return Item{}
	}
	a2x := kill("a", "x", 2)
	kill("a", "y", 2)
	kill("a", "y", 3)
	kill("b", "x", 9)

	if err := s.DeadLetter("again", deadAt, a2x); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeadLetter of a moved item = %v, want ErrNotFound", err)
	}
	dead, err := s.Dead("a")
	if err != nil {
		t.Fatal(err)
	}
	if got := historyIDs(dead); !slices.Equal(got, []int64{2, 2, 3}) {
		t.Fatalf("Dead(a) history ids = %v", got)
	}
	if !slices.IsSorted(seqs(dead)) {
		t.Errorf("Dead(a) not in Seq order: %v", seqs(dead))
	}
	d := dead[0]
	if d.Webhook != "x" || d.Seq != a2x.Seq || d.Attempts != 12 || d.LastStatus != 500 || d.LastError != "boom" ||
		!d.DeadAt.Equal(deadAt) || d.DeadReason != "max_attempts" || !reflect.DeepEqual(d.Event, a2x.Event) {
		t.Errorf("dead letter = %+v", d)
	}
	if p, n, _ := s.Counts("a"); p != 3 || n != 3 {
		t.Errorf("Counts(a) = %d, %d; want 3, 3", p, n)
	}
	if all, _ := s.Dead(""); len(all) != 4 || all[3].Account != "b" {
		t.Errorf(`Dead("") = %v`, historyIDs(all))
	}

	// Unknown ids change nothing.
	if _, err := s.RetryDead("a", []string{"a-2", "a-77"}, anyWebhook); !errors.Is(err, ErrNotFound) {
		t.Errorf("RetryDead with an unknown id = %v, want ErrNotFound", err)
	}
	if _, err := s.DropDead("a", []string{"a-77"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("DropDead with an unknown id = %v, want ErrNotFound", err)
	}
	if _, n, _ := s.Counts("a"); n != 3 {
		t.Fatalf("refused retry/drop changed dead count to %d", n)
	}

	// Retry one event id: both webhooks' copies return under their Seq, reset.
	moved, err := s.RetryDead("a", []string{"a-2"}, anyWebhook)
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) != 2 {
		t.Fatalf("RetryDead moved %d items, want 2", len(moved))
	}
	x := pending(t, s, "a", "x")
	if got := historyIDs(x); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("x after retry = %v, want original order [1 2 3]", got)
	}
	r := x[1]
	if r.Seq != a2x.Seq || r.Attempts != 0 || r.LastStatus != 0 || r.LastError != "" || !r.FirstAttempt.IsZero() ||
		!r.NextAttempt.IsZero() || !r.DeadAt.IsZero() || r.DeadReason != "" || !reflect.DeepEqual(r.Event, a2x.Event) {
		t.Errorf("retried item = %+v", r)
	}
	if !reflect.DeepEqual(moved[0], r) {
		t.Errorf("RetryDead returned %+v, stored %+v", moved[0], r)
	}

	// Drop all of a, then retry everything left anywhere.
	if n, err := s.DropDead("a", nil); err != nil || n != 1 {
		t.Errorf("DropDead(a) = %d, %v; want 1", n, err)
	}
	if moved, err := s.RetryDead("", nil, anyWebhook); err != nil || len(moved) != 1 || moved[0].Account != "b" {
		t.Errorf(`RetryDead("") = %v, %v`, moved, err)
	}
	if all, _ := s.Dead(""); len(all) != 0 {
		t.Errorf("dead letters left: %v", historyIDs(all))
	}
	if moved, err := s.RetryDead("nope", nil, anyWebhook); err != nil || len(moved) != 0 {
		t.Errorf("RetryDead of an unknown account = %v, %v", moved, err)
	}
}

func TestAccounts(t *testing.T) {
	s := openTest(t)
	if names, err := accountList(s); err != nil || len(names) != 0 {
		t.Fatalf("Accounts of an empty store = %v, %v", names, err)
	}
	for _, a := range []string{"zeta", "alpha", "mid"} {
		commit(t, s, a, Commit{Cursor: 1})
	}
	if names, err := accountList(s); err != nil || !slices.Equal(names, []string{"alpha", "mid", "zeta"}) {
		t.Errorf("Accounts = %v, %v", names, err)
	}
}

func TestClosed(t *testing.T) {
	s := openTest(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	calls := map[string]func() error{
		"Ping":        s.Ping,
		"State":       func() error { _, err := s.State("a"); return err },
		"Seen":        func() error { _, err := s.Seen("a", 0, 10); return err },
		"CommitPoll":  func() error { return s.CommitPoll("a", Commit{}) },
		"Pending":     func() error { _, err := s.Pending("a", "x", 0, 1); return err },
		"Delivered":   func() error { return delivered(s, "a", "x", 1) },
		"Reschedule":  func() error { return s.Reschedule(Item{Account: "a", Webhook: "x", Seq: 1}) },
		"DeadLetter":  func() error { return s.DeadLetter("r", t0, Item{Account: "a", Webhook: "x", Seq: 1}) },
		"Dead":        func() error { _, err := s.Dead(""); return err },
		"RetryDead":   func() error { _, err := s.RetryDead("", nil, anyWebhook); return err },
		"DropDead":    func() error { _, err := s.DropDead("", nil); return err },
		"Counts":      func() error { _, _, err := s.Counts("a"); return err },
		"Overviews":   func() error { _, err := s.Overviews(false); return err },
		"QueueCounts": func() error { _, err := s.QueueCounts("a"); return err },
		"Due": func() error {
			_, _, err := s.Due("a", "x", t0, 1, nil)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestConcurrentDelivered(t *testing.T) {
	s := openTest(t)
	const workers, perWorker = 8, 100
	ids := make([]int64, workers*perWorker)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	commit(t, s, "a", Commit{Events: newEvents("a", ids...), Webhooks: []string{"x"}, Cursor: int64(len(ids))})
	items := pending(t, s, "a", "x")
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(items); i += workers {
				if err := delivered(s, "a", "x", items[i].Seq); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// A poller keeps committing and a reader keeps reading meanwhile.
	wg.Go(func() {
		for i := range 20 {
			id := int64(10000 + i)
			if err := s.CommitPoll("a", Commit{Events: newEvents("a", id), Webhooks: []string{"y"}, Cursor: id}); err != nil {
				errs <- err
				return
			}
			if _, err := s.Pending("a", "x", 0, 50); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p, _, err := s.Counts("a"); err != nil || p != 20 {
		t.Errorf("Counts = %d, %v; want 20 (x drained, y has 20)", p, err)
	}
	if got := pending(t, s, "a", "x"); len(got) != 0 {
		t.Errorf("%d items left in x", len(got))
	}
}

func TestCountsLargeOutbox(t *testing.T) {
	s := openTest(t)
	fill(t, s, 0, 5000) // many pages: Counts must not read only the first
	items := pending(t, s, "a", "1")
	deliverAll(t, s, items[:1234])
	if err := s.DeadLetter("test", t0, items[1234:1300]...); err != nil {
		t.Fatal(err)
	}
	if p, d, err := s.Counts("a"); err != nil || p != 5000-1300 || d != 66 {
		t.Errorf("Counts = %d, %d, %v; want %d, 66", p, d, err, 5000-1300)
	}
	if p, d, err := s.Counts("nope"); err != nil || p != 0 || d != 0 {
		t.Errorf("Counts of an unknown account = %d, %d, %v", p, d, err)
	}
}

func TestCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := mustOpen(t, path, Options{})
	commit(t, s, "a", Commit{Events: newEvents("a", 1, 2), Webhooks: []string{"x"}, Cursor: 2})
	items := pending(t, s, "a", "x")
	_ = s.Close()
	writeRaw(t, path, func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketAccounts).Bucket([]byte("a")).Bucket(bucketOutbox).Bucket([]byte("x"))
		return q.Put(u64(items[1].Seq), []byte{recordAttempt, 0xff})
	})
	s = mustOpen(t, path, Options{})
	if _, err := s.Pending("a", "x", 0, 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Pending over a corrupt record = %v, want ErrCorrupt", err)
	}
	if got, err := s.Pending("a", "x", 0, 1); err != nil || len(got) != 1 {
		t.Errorf("Pending before the corrupt record = %d items, %v", len(got), err)
	}
	if _, _, err := s.Due("a", "x", t0.Add(time.Hour), 10, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Due over a corrupt record = %v, want ErrCorrupt", err)
	}
	for name, err := range map[string]error{
		"Reschedule": s.Reschedule(items[1]),
		"Delivered":  delivered(s, "a", "x", items[1].Seq),
		"DeadLetter": s.DeadLetter("r", t0, items[1]),
	} {
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s of a corrupt record = %v, want ErrCorrupt", name, err)
		}
	}
	// Nothing else was touched by the refused writes.
	if p, d, err := s.Counts("a"); p != 2 || d != 0 || err != nil {
		t.Errorf("Counts = %d, %d, %v; want 2, 0", p, d, err)
	}
	if err := delivered(s, "a", "x", items[0].Seq); err != nil {
		t.Fatal(err)
	}

	// Keys that are not 8 bytes are reported, not a panic.
	_ = s.Close()
	writeRaw(t, path, func(tx *bolt.Tx) error {
		acct := tx.Bucket(bucketAccounts).Bucket([]byte("a"))
		if err := acct.Bucket(bucketSeen).Put([]byte{0, 0, 1}, nil); err != nil {
			return err
		}
		return acct.Bucket(bucketOutbox).Bucket([]byte("x")).Put([]byte{0, 0, 1}, encodeAttempt(&items[0]))
	})
	s = mustOpen(t, path, Options{})
	if _, err := s.Seen("a", 0, 1<<50); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Seen over a short key = %v, want ErrCorrupt", err)
	}
	if _, err := s.Pending("a", "x", 0, 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Pending over a short key = %v, want ErrCorrupt", err)
	}
}
