package store

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// copyFile copies src to a fresh file in a temp dir and returns its path.
func copyFile(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// readV1 returns every item of a schema-1 file, outbox and dead letters,
// with Account and Webhook set and DeadAt telling them apart.
func readV1(t testing.TB, path string) []Item {
	t.Helper()
	var items []Item
	eachQueued(t, path, func(a, w string, k, v []byte) error {
		it := Item{Account: a, Webhook: w}
		if err := decodeV1(v, &it); err != nil {
			return err
		}
		var err error
		it.Seq, err = keyU64(k)
		items = append(items, it)
		return err
	})
	return items
}

// countV1 returns how many records of path are still schema-1 records.
func countV1(t testing.TB, path string) int {
	t.Helper()
	n := 0
	eachQueued(t, path, func(_, _ string, _, v []byte) error {
		if len(v) > 0 && v[0] == recordV1 {
			n++
		}
		return nil
	})
	return n
}

// eachQueued calls fn for every record in the outbox and dead-letter
// queues of every account of the file at path, opened read-only.
func eachQueued(t testing.TB, path string, fn func(account, webhook string, k, v []byte) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for _, a := range accountNames(tx) {
			acct := accountBucket(tx, a)
			for _, kind := range [][]byte{bucketOutbox, bucketDead} {
				for _, w := range queueNames(acct.Bucket(kind)) {
					err := acct.Bucket(kind).Bucket([]byte(w)).ForEach(func(k, v []byte) error { return fn(a, w, k, v) })
					if err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// migrated returns everything the store holds, outbox then dead letters
// of every account and webhook, in Seq order.
func migrated(t testing.TB, s *Store) []Item {
	t.Helper()
	var all []Item
	accounts, err := accountList(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		qs, err := s.QueueCounts(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			all = append(all, pending(t, s, a, q.Webhook)...)
		}
		dead, err := s.Dead(a)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, dead...)
	}
	return all
}

// sameItems compares schema-1 items with migrated ones: everything but
// Seq must be equal, and per account and webhook the migrated Seqs must
// keep the schema-1 order. Items of one event share one Seq.
func sameItems(t testing.TB, v1, v2 []Item) {
	t.Helper()
	key := func(it Item) string {
		return fmt.Sprintf("%s/%s/%t/%s", it.Account, it.Webhook, it.DeadAt.IsZero(), it.Event.ID)
	}
	order := func(items []Item) []Item {
		items = slices.Clone(items)
		slices.SortStableFunc(items, func(a, b Item) int { return cmp.Compare(key(a), key(b)) })
		return items
	}
	a, b := order(v1), order(v2)
	if len(a) != len(b) {
		t.Fatalf("%d items before the migration, %d after", len(a), len(b))
	}
	seqOf := map[string]uint64{} // account/event id -> migrated Seq
	for i := range a {
		want, got := a[i], b[i]
		want.Seq = got.Seq
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("migrated item differs:\n got %+v\nwant %+v", got, want)
		}
		k := got.Account + "/" + got.Event.ID
		if s, ok := seqOf[k]; ok && s != got.Seq && !slices.ContainsFunc(a, func(x Item) bool {
			return x.Account == got.Account && x.Webhook == got.Webhook && x.Event.ID == got.Event.ID && x.Seq != a[i].Seq
		}) {
			t.Errorf("event %s has Seqs %d and %d after the migration", k, s, got.Seq)
		}
		seqOf[k] = got.Seq
	}
	// Detection order per queue: old Seq order and new Seq order agree.
	idx := make([]int, len(a))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int {
		return cmp.Or(cmp.Compare(a[i].Account, a[j].Account), cmp.Compare(a[i].Webhook, a[j].Webhook), cmp.Compare(a[i].Seq, a[j].Seq))
	})
	for n := 1; n < len(idx); n++ {
		i, j := idx[n-1], idx[n]
		if a[i].Account == a[j].Account && a[i].Webhook == a[j].Webhook && b[i].Seq > b[j].Seq {
			t.Fatalf("%s before %s in schema 1, after it once migrated", a[i].Event.ID, a[j].Event.ID)
		}
	}
}

// TestMigrateV1File opens the state file written by the schema-1 code
// (testdata/v1.md) and checks that everything it holds is in the new
// layout: state, seen ids, attempt bookkeeping, dead letters, order ids
// and the delivery order.
func TestMigrateV1File(t *testing.T) {
	path := copyFile(t, "testdata/v1.db")
	before := readV1(t, path)
	if len(before) != 11 {
		t.Fatalf("testdata/v1.db holds %d items, testdata/v1.md describes 11", len(before))
	}
	s := mustOpen(t, path, Options{})
	if got := s.schema(t); got != latestSchema() {
		t.Fatalf("schema version %d after Open, want %d", got, latestSchema())
	}
	sameItems(t, before, migrated(t, s))
	checkQueues(t, s)

	st, err := s.State("ghana")
	if err != nil {
		t.Fatal(err)
	}
	if st.Cursor != 1015 || !st.Initialized || len(st.Marks) != 2 || st.Marks[0].Cursor != 990 || st.Marks[1].Cursor != 1003 {
		t.Errorf("ghana state = %+v", st)
	}
	if seen, _ := s.Seen("ghana", 0, 2000); len(seen) != 5 || !seen[1001] || !seen[1012] {
		t.Errorf("ghana seen = %v", seen)
	}
	if st, _ := s.State("kenya"); st.Cursor != 5010 {
		t.Errorf("kenya cursor = %d", st.Cursor)
	}

	type row struct {
		hid      int64
		order    int64
		attempts int
		status   int
	}
	rows := func(items []Item) []row {
		var out []row
		for _, it := range items {
			out = append(out, row{it.Event.Change.HistoryID, it.OrderID, it.Attempts, it.LastStatus})
		}
		return out
	}
	for _, tt := range []struct {
		account, webhook string
		want             []row
	}{
		{"ghana", "app", []row{{1005, 12, 2, 503}, {1007, 11, 0, 0}, {1012, 14, 0, 0}}},
		{"ghana", "crm", []row{{1001, 11, 0, 0}, {1005, 12, 0, 0}, {1007, 11, 0, 0}, {1010, 13, 0, 0}, {1012, 14, 0, 0}}},
		{"kenya", "1", []row{{5002, 77, 0, 0}, {5009, 78, 0, 0}}},
	} {
		if got := rows(pending(t, s, tt.account, tt.webhook)); !slices.Equal(got, tt.want) {
			t.Errorf("%s/%s pending = %v, want %v", tt.account, tt.webhook, got, tt.want)
		}
	}
	app := pending(t, s, "ghana", "app")
	noon := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	if r := app[0]; !r.FirstAttempt.Equal(noon) || !r.NextAttempt.Equal(noon.Add(time.Hour)) {
		t.Errorf("rescheduled item = %+v, want first attempt %v, next %v", r, noon, noon.Add(time.Hour))
	}
	if crm := pending(t, s, "ghana", "crm"); crm[1].Seq != app[0].Seq {
		t.Errorf("event 1005 has Seq %d on crm and %d on app: one event record each", crm[1].Seq, app[0].Seq)
	}
	dead, _ := s.Dead("ghana")
	if len(dead) != 1 || dead[0].Event.ID != "ghana-1010" || dead[0].Webhook != "app" || dead[0].DeadReason != "max_attempts" ||
		dead[0].Attempts != 12 || dead[0].LastStatus != 500 || !dead[0].DeadAt.Equal(noon.Add(2*time.Hour)) {
		t.Errorf("dead letters = %+v", dead)
	}
	if n := countKeys(t, s, "ghana", bucketEvents); n != 5 {
		t.Errorf("ghana has %d event records, want 5 (one per event)", n)
	}
	for _, tt := range []struct {
		account     string
		pending, dd int
	}{{"ghana", 8, 1}, {"kenya", 2, 0}} {
		if p, d, err := s.Counts(tt.account); p != tt.pending || d != tt.dd || err != nil {
			t.Errorf("Counts(%s) = %d, %d, %v; want %d, %d", tt.account, p, d, err, tt.pending, tt.dd)
		}
	}
	// Delivery order: at 12:30 the heads are due in Seq order, the
	// rescheduled 1005 on app is not, and 1007 waits behind 1001 on crm.
	at := noon.Add(30 * time.Minute)
	for w, want := range map[string][]int64{"app": {1007, 1012}, "crm": {1001, 1005, 1010, 1012}} {
		due, _, err := s.Due("ghana", w, at, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := historyIDs(due); !slices.Equal(got, want) {
			t.Errorf("due on %s at 12:30 = %v, want %v", w, got, want)
		}
	}
	// New events continue above the migrated Seqs.
	commit(t, s, "ghana", Commit{Events: newEvents("ghana", 1020), Webhooks: []string{"app"}, Cursor: 1020})
	if p := pending(t, s, "ghana", "app"); p[len(p)-1].Seq <= app[len(app)-1].Seq {
		t.Errorf("a new event got Seq %d, not above the migrated %d", p[len(p)-1].Seq, app[len(app)-1].Seq)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		for _, a := range accountNames(tx) {
			if accountBucket(tx, a).Bucket(bucketMigrateIDs) != nil {
				t.Errorf("account %s kept the migration's id map", a)
			}
		}
		return nil
	})
	checkQueues(t, s)
}

func (s *Store) schema(t testing.TB) uint64 {
	t.Helper()
	var v uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = schemaVersion(tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// v1Fixture returns the items of a schema-1 file with n events of account
// "big" over orders 0..39 (0: no order id), queued for webhooks a and b the
// way the schema-1 code did (one Seq per item, in event order): some
// delivered (absent), some rescheduled, some dead. One event was detected
// twice (its history id pruned from the seen set in between).
func v1Fixture(n int) []v1Put {
	r := rand.New(rand.NewPCG(11, 12))
	var puts []v1Put
	var seq uint64
	add := func(hid int64) {
		ne := newEvents("big", hid)[0]
		ne.OrderID = int64(r.IntN(40))
		for _, w := range []string{"a", "b"} {
			seq++
			it := Item{Seq: seq, Account: "big", Webhook: w, Event: ne.Event, OrderID: ne.OrderID, DetectedAt: ne.DetectedAt}
			switch r.IntN(10) {
			case 0:
				continue // delivered
			case 1:
				it.Attempts, it.FirstAttempt, it.NextAttempt, it.LastStatus, it.LastError = 3, t0, t0.Add(time.Hour), 503, "busy"
			case 2:
				it.Attempts, it.FirstAttempt, it.LastStatus, it.LastError = 12, t0, 500, "boom"
				it.DeadAt, it.DeadReason = t0.Add(72*time.Hour), "max_attempts"
				puts = append(puts, v1Put{it: it, dead: true})
				continue
			}
			puts = append(puts, v1Put{it: it})
		}
	}
	for hid := int64(1); hid <= int64(n); hid++ {
		add(hid)
	}
	add(7) // detected again
	return puts
}

// TestMigrateResumes: the migration moves items in chunks, each its own
// transaction. A run that stops after a few chunks (here a damaged record
// fails the fourth) leaves a file that the next Open migrates to the end,
// with nothing lost or duplicated: the same result as one run.
func TestMigrateResumes(t *testing.T) {
	puts := v1Fixture(2600)
	clean := filepath.Join(t.TempDir(), FileName)
	writeV1(t, clean, puts)
	want := readV1(t, clean)
	broken := copyFile(t, clean)

	// Damage the item that comes 3,500th in Seq order: chunks 1-3 commit.
	slices.SortFunc(puts, func(a, b v1Put) int { return cmp.Compare(a.it.Seq, b.it.Seq) })
	bad := puts[3*migrateChunk+500]
	if len(puts) < 4*migrateChunk {
		t.Fatalf("only %d items: too few chunks", len(puts))
	}
	kind := bucketOutbox
	if bad.dead {
		kind = bucketDead
	}
	writeRaw(t, broken, func(tx *bolt.Tx) error {
		return sub(accountBucket(tx, "big"), kind, []byte(bad.it.Webhook)).Put(u64(bad.it.Seq), []byte{recordV1, 0xff})
	})
	if _, err := Open(broken, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open over a damaged schema-1 record = %v, want ErrCorrupt", err)
	}
	if v := readVersion(t, broken); v != 1 {
		t.Fatalf("schema version %d after a failed migration, want 1", v)
	}
	left := countV1(t, broken)
	if moved := len(want) - left; moved != 3*migrateChunk {
		t.Fatalf("%d items moved before the damaged one, want %d (three chunks)", moved, 3*migrateChunk)
	}
	// Repair the record and open again: the migration resumes.
	writeRaw(t, broken, func(tx *bolt.Tx) error {
		return sub(accountBucket(tx, "big"), kind, []byte(bad.it.Webhook)).Put(u64(bad.it.Seq), encodeV1(&bad.it))
	})
	resumed := mustOpen(t, broken, Options{})
	one := mustOpen(t, clean, Options{})
	got := migrated(t, resumed)
	sameItems(t, want, got)
	if other := migrated(t, one); !reflect.DeepEqual(got, other) {
		t.Error("a resumed migration differs from one run")
	}
	checkQueues(t, resumed)
	checkQueues(t, one)
}

// TestMigrateLargeOutbox: migrating a long schema-1 outbox holds one chunk
// in memory at a time. 20,000 items by default, 1,000,000 with -long or
// STORE_LONG=1; reports the time, the peak heap and the file sizes.
func TestMigrateLargeOutbox(t *testing.T) {
	n := 20_000
	if *long || os.Getenv("STORE_LONG") == "1" {
		n = 1_000_000
	}
	order := []byte(`{"id":1,"items":"` + strings.Repeat("x", 1000) + `"}`)
	puts := make([]v1Put, 0, n)
	for i := range n / 2 {
		hid := int64(i + 1)
		ne := newEvents("big", hid)[0]
		ne.Event.Order = order
		for j, w := range []string{"a", "b"} {
			puts = append(puts, v1Put{it: Item{Seq: uint64(2*i + j + 1), Account: "big", Webhook: w, Event: ne.Event,
				OrderID: hid%5000 + 1, DetectedAt: ne.DetectedAt}})
		}
	}
	path := filepath.Join(t.TempDir(), FileName)
	writeV1(t, path, puts)
	puts = nil
	before := fileSize(t, path)
	runtime.GC()

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	s, err := Open(path, Options{})
	took := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	t.Logf("%d items migrated in %v; peak heap in use %.1f MB; file %.1f MB before, %.1f MB after",
		n, took.Round(time.Millisecond), float64(peak.Load())/1e6, float64(before)/1e6, float64(fileSize(t, path))/1e6)
	if p, d, err := s.Counts("big"); err != nil || p != n || d != 0 {
		t.Fatalf("Counts = %d, %d, %v; want %d pending", p, d, err, n)
	}
	if got := countKeys(t, s, "big", bucketEvents); got != n/2 {
		t.Errorf("%d event records, want %d (one per event)", got, n/2)
	}
	if got := peak.Load(); got > 200<<20 {
		t.Errorf("peak heap %d MB while migrating: not bounded by the chunk", got>>20)
	}
}
