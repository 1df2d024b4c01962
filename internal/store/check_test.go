package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// stateFixture writes a state file deep enough for branch pages and over
// 1 MiB: two accounts, two webhooks, pending events, dead letters.
func stateFixture(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, account := range []string{"a", "b"} {
		for from := int64(0); from < 3000; from += 100 {
			ids := make([]int64, 100)
			for i := range ids {
				ids[i] = from + int64(i) + 1
			}
			commit(t, s, account, Commit{Events: newEvents(account, ids...), Webhooks: []string{"1", "2"}, Cursor: from + 100, At: t0})
		}
	}
	items := pending(t, s, "a", "1")
	if err := s.DeadLetter("test", t0, items[:10]...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) <= 1<<20 {
		t.Fatalf("fixture is %d bytes, want over 1 MiB", len(data))
	}
	return data
}

// layout reads the fixture's page size, current meta and reachable pages.
func layout(t testing.TB, data []byte) (w *walker) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "layout.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := checkFile(f)
	if err != nil {
		t.Fatal(err)
	}
	w = &walker{f: f, meta: m, reached: make([]uint64, (m.pgid+63)/64)}
	if err := w.walk(); err != nil {
		t.Fatal(err)
	}
	return w
}

// pagesOf lists the reachable pages whose header has flags.
func pagesOf(w *walker, data []byte, flags uint16) []uint64 {
	var ids []uint64
	for id := uint64(2); id < w.meta.pgid; id++ {
		off := id * w.meta.pageSize
		if w.reached[id/64]&(1<<(id%64)) != 0 && native.Uint64(data[off:]) == id && native.Uint16(data[off+8:]) == flags {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestOpenRefusesDamagedFile: every command opens the file through Open,
// read-write (run, compact, dlq retry) or read-only (status, dlq list):
// an empty, cut or damaged file is ErrDamaged naming the file, the damage
// and what to do, in one line, and the file is left as it was. Without
// the check bbolt dies of SIGBUS, panics in a goroutine or starts fresh.
func TestOpenRefusesDamagedFile(t *testing.T) {
	data := stateFixture(t)
	w := layout(t, data)
	ps := w.meta.pageSize
	branches, leaves := pagesOf(w, data, branchPage), pagesOf(w, data, leafPage)
	if len(branches) == 0 || len(leaves) == 0 {
		t.Fatalf("fixture has %d branch and %d leaf pages; want both", len(branches), len(leaves))
	}
	at := func(id uint64, off int, b ...byte) func([]byte) []byte {
		return func(d []byte) []byte {
			copy(d[id*ps+uint64(off):], b)
			return d
		}
	}
	cut := func(n int) func([]byte) []byte { return func(d []byte) []byte { return d[:n] } }
	u64le := func(v uint64) []byte { return native.AppendUint64(nil, v) }
	cases := []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"empty", cut(0), "it is empty (0 bytes)"},
		{"cut to 100 bytes", cut(100), "shorter than its two meta pages"},
		{"cut to one page", cut(int(ps)), "shorter than its two meta pages"},
		{"cut to 500 bytes", cut(500), "cut short"},
		{"cut to 8 KiB", cut(8 << 10), "cut short"},
		{"cut to 1 MiB", cut(1 << 20), "cut short"},
		{"cut by one page", cut(int(w.meta.pgid-1) * int(ps)), "cut short"},
		{"meta 0 root flipped", at(0, pageHeaderSize+16, 0xFF), "meta page 0 is damaged (checksum mismatch"},
		{"meta 1 txid flipped", at(1, pageHeaderSize+48, 0x5A), "meta page 1 is damaged (checksum mismatch"},
		{"both meta pages zeroed", func(d []byte) []byte {
			clear(d[:2*ps])
			return d
		}, "neither meta page is valid"},
		{"branch page type zeroed", at(branches[0], 8, 0, 0), "is not a branch or leaf page"},
		{"branch child out of range", at(branches[0], pageHeaderSize+8, u64le(1<<40)...), "outside pages"},
		{"branch child points at a meta page", at(branches[0], pageHeaderSize+8, u64le(1)...), "outside pages"},
		{"leaf element count too big", at(leaves[0], 10, 0xFF, 0xFE), "more than it holds"},
		{"leaf key size past the end", at(leaves[len(leaves)/2], pageHeaderSize+8, 0xFF, 0xFF, 0, 0), "past the page's end"},
		{"page header names another page", at(leaves[1], 0, u64le(leaves[0])...), "has the header of page"},
		{"overflow past the high-water mark", at(leaves[0], 12, 0xFF, 0xFF, 0xFF, 0), "past the high-water mark"},
		{"keys out of order", func(d []byte) []byte {
			// Swap the first two elements' headers of a leaf with several keys.
			for _, id := range leaves {
				off := id*ps + pageHeaderSize
				if native.Uint16(d[id*ps+10:]) < 2 {
					continue
				}
				a, b := bytes.Clone(d[off:off+elementSize]), bytes.Clone(d[off+elementSize:off+2*elementSize])
				// Positions are relative to each element: adjust so each
				// points at the other's key.
				pa, pb := native.Uint32(a[4:]), native.Uint32(b[4:])
				native.PutUint32(a[4:], pa-elementSize)
				native.PutUint32(b[4:], pb+elementSize)
				copy(d[off:], b)
				copy(d[off+elementSize:], a)
				return d
			}
			t.Fatal("no leaf with two keys")
			return d
		}, "out of order"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".db")
			bad := c.damage(bytes.Clone(data))
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				s, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					s.Close()
					t.Fatalf("read-only %v: opened", ro)
				}
				if !errors.Is(err, ErrDamaged) {
					t.Fatalf("read-only %v: %v, want ErrDamaged", ro, err)
				}
				msg := err.Error()
				for _, want := range []string{path, c.want, DamageHint} {
					if !strings.Contains(msg, want) {
						t.Errorf("read-only %v: %q does not say %q", ro, msg, want)
					}
				}
				if strings.Contains(msg, "\n") {
					t.Errorf("message has more than one line: %q", msg)
				}
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, bad) {
				t.Errorf("the refused file was changed (%v)", err)
			}
			r, err := VerifyFile(path, time.Second)
			if err != nil || len(r.Problems) == 0 || !strings.Contains(r.Problems[0], c.want) {
				t.Errorf("VerifyFile: %v, %q; want a problem saying %q", err, r.Problems, c.want)
			}
			if _, err := BackupFile(path, filepath.Join(dir, "backup.db"), time.Second); !errors.Is(err, ErrDamaged) {
				t.Errorf("BackupFile of a damaged file: %v, want ErrDamaged", err)
			}
		})
	}
}

// TestOpenNeverPanicsOnRandomDamage writes random bytes into reachable
// pages, where bbolt's structure lives: each file is refused as damaged,
// or opens and then reads (status, dead letters, verify) without a panic.
func TestOpenNeverPanicsOnRandomDamage(t *testing.T) {
	data := stateFixture(t)
	w := layout(t, data)
	var reached []uint64
	for id := uint64(2); id < w.meta.pgid; id++ {
		if w.reached[id/64]&(1<<(id%64)) != 0 {
			reached = append(reached, id)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	refused, opened := 0, 0
	for i := range 150 {
		bad := bytes.Clone(data)
		id := reached[r.IntN(len(reached))]
		for range 1 + r.IntN(4) {
			// Mostly the header and element area, where a bad byte
			// sends bbolt astray; sometimes anywhere in the page.
			span := uint64(pageHeaderSize + 8*elementSize)
			if r.IntN(4) == 0 {
				span = w.meta.pageSize
			}
			bad[id*w.meta.pageSize+r.Uint64N(span)] = byte(r.Uint32())
		}
		path := filepath.Join(dir, "random.db")
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{ReadOnly: i%2 == 1})
		if err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("damage %d in page %d: %v, want ErrDamaged or ErrCorrupt", i, id, err)
			}
			refused++
			continue
		}
		opened++
		_, _ = s.Overviews(true)
		_, _ = s.Dead("")
		_, _ = s.Verify()
		s.Close()
		if _, err := VerifyFile(path, time.Second); err != nil {
			t.Fatalf("VerifyFile after damage %d: %v", i, err)
		}
	}
	t.Logf("%d refused, %d opened", refused, opened)
	if refused == 0 {
		t.Error("no random damage was refused")
	}
}

// TestOpenEmptyFile: an existing empty file is refused, a missing one is
// created.
func TestOpenEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("empty file: %v, want ErrDamaged", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("empty file changed: %v", err)
	}
	fresh := filepath.Join(t.TempDir(), FileName)
	s, err := Open(fresh, Options{})
	if err != nil {
		t.Fatalf("new file: %v", err)
	}
	s.Close()
	s, err = Open(fresh, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()
}

// TestVerify: a sound file verifies with its counts, directly and through
// the open store; a broken invariant is named.
func TestVerify(t *testing.T) {
	data := stateFixture(t)
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := VerifyFile(path, time.Second)
	if err != nil || len(r.Problems) != 0 {
		t.Fatalf("sound file: %v, %q", err, r.Problems)
	}
	// 3000 events per account for two webhooks; 10 of a's "1" are dead.
	if r.Accounts != 2 || r.Pending != 4*3000-10 || r.Dead != 10 || r.Schema != latestSchema() || r.TxID == 0 || r.Size != int64(len(data)) {
		t.Errorf("report %+v", r)
	}
	s := mustOpen(t, path, Options{})
	live, err := s.Verify()
	if err != nil || len(live.Problems) != 0 || live.Pending != r.Pending || live.Dead != r.Dead {
		t.Fatalf("live verify: %v, %+v", err, live)
	}
	if _, err := VerifyFile(path, 100*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("VerifyFile of a file held open: %v, want ErrTimeout", err)
	}
	s.Close()
	// Break invariants the way a bug or a bad edit would, one per copy.
	breaks := []struct {
		name string
		fn   func(*bolt.Tx) error
		want string
	}{
		{"counter off by one", func(tx *bolt.Tx) error {
			b := accountBucket(tx, "b").Bucket(bucketCounts)
			v := bytes.Clone(b.Get([]byte("2")))
			binary.BigEndian.PutUint64(v, binary.BigEndian.Uint64(v)+1)
			return b.Put([]byte("2"), v)
		}, "account b: webhook 2: counts say 3001 pending"},
		{"due key lost", func(tx *bolt.Tx) error {
			due := sub(accountBucket(tx, "a"), bucketDue, []byte("2"))
			k, _ := due.Cursor().First()
			return due.Delete(k)
		}, "account a: webhook 2: due holds"},
		{"chain key added", func(tx *bolt.Tx) error {
			return sub(accountBucket(tx, "a"), bucketChain, []byte("1")).Put(chainKey(99, 99999), nil)
		}, "account a: webhook 1: chain holds key"},
		{"event record lost", func(tx *bolt.Tx) error {
			return accountBucket(tx, "b").Bucket(bucketEvents).Delete(u64(7))
		}, "account b: webhook 1: outbox: store: corrupt record: seq 7 has no event record"},
		{"sequence behind", func(tx *bolt.Tx) error { return accountBucket(tx, "a").SetSequence(5) }, "above the account's sequence 5"},
		{"attempt log outlives its event", func(tx *bolt.Tx) error {
			b, err := accountBucket(tx, "a").CreateBucketIfNotExists(bucketAttempts)
			if err != nil {
				return err
			}
			return b.Put(append(u64(99999), u64(1)...), nil)
		}, "account a: attempt log of seq 99999 outlives its event"},
		{"schema from the future", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, u64(latestSchema()+1))
		}, "is newer than this binary's"},
	}
	for _, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			writeRaw(t, path, b.fn)
			r, err := VerifyFile(path, time.Second)
			if err != nil || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], b.want) {
				t.Errorf("%v, %q; want one problem saying %q", err, r.Problems, b.want)
			}
		})
	}
}
