package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestCompact: after a backlog was delivered the file keeps its size;
// Compact gives the space back and keeps every live record, state and
// sequence.
func TestCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := mustOpen(t, path, Options{})
	last := fill(t, s, 0, 20_000)
	deliverAll(t, s, pending(t, s, "a", "1")[:19_900])
	dead := pending(t, s, "a", "1")[:10]
	if err := s.DeadLetter("test", t0, dead...); err != nil {
		t.Fatal(err)
	}
	wantPending, wantDead := pending(t, s, "a", "1"), mustDead(t, s)
	wantState, _ := s.State("a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	size := fileSize(t, path)

	before, after, err := Compact(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file %d bytes before, %d after", before, after)
	if before != size || after != fileSize(t, path) {
		t.Errorf("Compact reported %d -> %d bytes, the file had %d and has %d", before, after, size, fileSize(t, path))
	}
	if after > before/4 {
		t.Errorf("compacted file %d bytes of %d: space not given back", after, before)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %o, want 600", fi.Mode().Perm())
	}

	s = mustOpen(t, path, Options{})
	if got := pending(t, s, "a", "1"); !reflect.DeepEqual(got, wantPending) {
		t.Errorf("pending after compaction differs: %d items, want %d", len(got), len(wantPending))
	}
	if got := mustDead(t, s); !reflect.DeepEqual(got, wantDead) {
		t.Errorf("dead letters after compaction differ")
	}
	if got, _ := s.State("a"); !stateEqual(got, wantState) {
		t.Errorf("state after compaction = %+v, want %+v", got, wantState)
	}
	checkQueues(t, s)
	// The account sequence survived: new events get new Seqs.
	fill(t, s, last, 1)
	if p := pending(t, s, "a", "1"); p[len(p)-1].Seq <= wantPending[len(wantPending)-1].Seq {
		t.Errorf("new event got Seq %d after compaction", p[len(p)-1].Seq)
	}
}

func mustDead(t testing.TB, s *Store) []Item {
	t.Helper()
	d, err := s.Dead("")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Compact refuses a file another process holds (the daemon), and leaves
// it untouched.
func TestCompactRefusesLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := mustOpen(t, path, Options{})
	fill(t, s, 0, 100)
	size := fileSize(t, path)
	if _, _, err := Compact(path, 100*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Compact of a locked file = %v, want ErrTimeout", err)
	}
	if fileSize(t, path) != size {
		t.Error("a refused Compact changed the file")
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Compact left a file: %v", err)
	}
	if p, _, err := s.Counts("a"); err != nil || p != 100 {
		t.Errorf("the holder's store after a refused Compact: %d, %v", p, err)
	}
}

// A process that waited for the lock while a new file was renamed over
// the path (what Compact does) opens the new file, not the unlinked one.
func TestOpenAfterFileReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	old := mustOpen(t, path, Options{})
	commit(t, old, "old", Commit{Cursor: 1})
	opened := make(chan *Store, 1)
	go func() {
		s, err := Open(path, Options{Timeout: 20 * time.Second})
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	time.Sleep(200 * time.Millisecond) // the goroutine waits for the lock
	replacement := filepath.Join(dir, "new.db")
	r := mustOpen(t, replacement, Options{})
	commit(t, r, "new", Commit{Cursor: 2})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(replacement, path); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := <-opened
	if s == nil {
		t.FailNow()
	}
	t.Cleanup(func() { _ = s.Close() })
	if names, err := accountList(s); err != nil || len(names) != 1 || names[0] != "new" {
		t.Errorf("accounts of the opened file = %v, %v; want the new file's [new]", names, err)
	}
}
