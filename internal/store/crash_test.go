package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// crashChildEnv names the store file a re-executed test binary commits
// polls to until it is killed (see TestCrashConsistency).
const crashChildEnv = "STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		if err := crashChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild commits polls of 1..40 events (ids with gaps) to webhooks a and
// b forever, pruning seen ids 300 below the cursor, printing each committed
// cursor; a second goroutine delivers b's items. Webhook a is never
// delivered, so it is the record of every event ever committed.
func crashChild(path string) error {
	s, err := Open(path, Options{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	st, err := s.State("acct")
	if err != nil {
		return err
	}
	go func() {
		for {
			items, err := s.Pending("acct", "b", 0, 20)
			if err != nil {
				return
			}
			for _, it := range items {
				if delivered(s, "acct", "b", it.Seq) != nil {
					return
				}
			}
		}
	}()
	out := bufio.NewWriter(os.Stdout)
	cursor := st.Cursor
	for {
		ids := make([]int64, 1+rand.IntN(40))
		for i := range ids {
			cursor += 1 + rand.Int64N(3)
			ids[i] = cursor
		}
		err := s.CommitPoll("acct", Commit{
			Events:   newEvents("acct", ids...),
			Webhooks: []string{"a", "b"},
			Cursor:   cursor,
			Marks:    []Mark{{At: time.Now(), Cursor: cursor}},
			Prune:    Prune{SeenBelow: cursor - 300, Before: time.Now()},
			At:       time.Now(),
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(out, cursor)
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

func TestCrashConsistency(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	const kills = 20
	var maxAcked int64
	for i := range kills {
		acked := runAndKill(t, path, time.Duration(rand.IntN(80))*time.Millisecond)
		maxAcked = max(maxAcked, acked)
		checkCrashInvariants(t, path, maxAcked)
		if t.Failed() {
			t.Fatalf("invariants broken after kill %d", i+1)
		}
	}
	t.Logf("%d kills; children committed up to history id %d", kills, maxAcked)
	if maxAcked < kills {
		t.Errorf("children committed up to cursor %d only; the test exercised too little", maxAcked)
	}
}

// runAndKill starts a child, lets it run until its first commit plus extra,
// SIGKILLs it and returns the highest cursor it reported as committed.
func runAndKill(t *testing.T, path string, extra time.Duration) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked atomic.Int64
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for n := 0; sc.Scan(); n++ {
			v, err := strconv.ParseInt(sc.Text(), 10, 64)
			if err != nil {
				t.Errorf("child output %q: %v", sc.Text(), err)
				return
			}
			acked.Store(v)
			if n == 0 {
				close(first)
			}
		}
	}()
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Error("child made no commit in 10s")
	}
	time.Sleep(extra)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := cmd.Wait(); err == nil {
		t.Error("child exited cleanly; it should have been killed")
	}
	return acked.Load()
}

// checkCrashInvariants opens the file the way the daemon would and checks
// that what the child committed is all there and consistent.
func checkCrashInvariants(t *testing.T, path string, acked int64) {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	if err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("bbolt consistency check: %v", err)
	}
	st, err := s.State("acct")
	if err != nil {
		t.Fatal(err)
	}
	if st.Cursor < acked {
		t.Errorf("cursor %d is below the last acknowledged commit %d", st.Cursor, acked)
	}
	seen, err := s.Seen("acct", 0, st.Cursor+1000)
	if err != nil {
		t.Fatal(err)
	}
	var seenIDs []int64
	for id := range seen {
		seenIDs = append(seenIDs, id)
	}
	slices.Sort(seenIDs)
	if len(seenIDs) == 0 || seenIDs[len(seenIDs)-1] != st.Cursor {
		t.Errorf("cursor %d, highest seen id %v", st.Cursor, seenIDs[max(len(seenIDs)-1, 0):])
	}
	if len(st.Marks) != 1 || st.Marks[0].Cursor != st.Cursor {
		t.Errorf("marks %v do not match cursor %d", st.Marks, st.Cursor)
	}

	a := pending(t, s, "acct", "a")
	aIDs := historyIDs(a)
	if !slices.IsSorted(aIDs) || len(slices.Compact(slices.Clone(aIDs))) != len(aIDs) {
		t.Errorf("webhook a history ids not strictly rising in Seq order")
	}
	bySeq := make(map[uint64]int64, len(a))
	for _, it := range a {
		bySeq[it.Seq] = it.Event.Change.HistoryID
	}
	if len(seenIDs) > 0 {
		// Every seen id has its item, and every item at or above the
		// oldest kept seen id is seen.
		lo := seenIDs[0]
		var tail []int64
		for _, id := range aIDs {
			if id >= lo {
				tail = append(tail, id)
			}
		}
		if !slices.Equal(tail, seenIDs) {
			t.Errorf("webhook a items from %d (%d) differ from seen ids (%d)", lo, len(tail), len(seenIDs))
		}
	}
	// b's items are a's twins: the same events under the same Seq.
	for _, it := range pending(t, s, "acct", "b") {
		if hid, ok := bySeq[it.Seq]; !ok || hid != it.Event.Change.HistoryID {
			t.Errorf("webhook b item seq %d (history %d) has no twin in a", it.Seq, it.Event.Change.HistoryID)
			break
		}
	}
	checkQueues(t, s)
}
