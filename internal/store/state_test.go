package store

import (
	"slices"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// created returns an order.created event of order at history id.
func created(account string, id, order int64) NewEvent {
	ne := newEvents(account, id)[0]
	ne.Event.Type, ne.Event.Change.OldValue = event.Created, ""
	ne.OrderID = order
	return ne
}

func TestOrderMarks(t *testing.T) {
	s := openTest(t)
	a := created("a", 10, 77)
	a.ChangedAt = t0
	b := created("a", 12, 77) // a second creation entry of the same order
	b.ChangedAt = t0.Add(time.Minute)
	c := newEvents("a", 14)[0]
	c.OrderID, c.ChangedAt = 77, t0.Add(2*time.Minute)
	commit(t, s, "a", Commit{Events: []NewEvent{a, b, c}, Webhooks: []string{"1"}, Cursor: 14, At: t0})

	items := pending(t, s, "a", "1")
	var got []int64
	for _, it := range items {
		got = append(got, it.Event.Change.HistoryID)
	}
	if !slices.Equal(got, []int64{10, 14}) {
		t.Fatalf("enqueued %v, want 10 and 14: one order.created per order", got)
	}
	seen, err := s.Seen("a", 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	if !seen[10] || seen[12] || !seen[14] {
		t.Errorf("seen %v, want 10 and 14 only", seen)
	}
	marks, err := s.OrderMarks("a", []int64{77, 78})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := marks[77]; !ok || !m.Created || !m.At.Equal(c.ChangedAt) {
		t.Errorf("mark of 77 = %+v, want created, at %v", m, c.ChangedAt)
	}
	if _, ok := marks[78]; ok {
		t.Error("a mark for an order without events")
	}
	// A later commit cannot move a mark back, nor create the order again.
	d := created("a", 20, 77)
	commit(t, s, "a", Commit{Events: []NewEvent{d}, Webhooks: []string{"1"}, Cursor: 20, At: t0})
	if n := len(pending(t, s, "a", "1")); n != 2 {
		t.Errorf("outbox %d items after a third creation entry, want 2", n)
	}
	marks, _ = s.OrderMarks("a", []int64{77})
	if !marks[77].At.Equal(c.ChangedAt) {
		t.Errorf("mark moved back to %v", marks[77].At)
	}
}

func TestCommitSweep(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 5), Webhooks: []string{"1"}, Cursor: 30, At: t0})
	before, _ := s.State("a")
	evs := newEvents("a", 5, 9) // 5 the poll already emitted
	added, err := s.CommitSweep("a", Sweep{Events: evs, Webhooks: []string{"1"},
		Orders: []OrderMark{{OrderID: 500, At: t0.Add(time.Hour)}}, At: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(added, []int{1}) {
		t.Errorf("sweep enqueued %v, want only index 1 (history id 9)", added)
	}
	if n := len(pending(t, s, "a", "1")); n != 2 {
		t.Errorf("outbox %d items, want 2", n)
	}
	marks, _ := s.OrderMarks("a", []int64{500})
	if !marks[500].At.Equal(t0.Add(time.Hour)) || marks[500].Created {
		t.Errorf("checked order mark %+v", marks[500])
	}
	if after, _ := s.State("a"); after.Cursor != before.Cursor || !after.LastSuccess.Equal(before.LastSuccess) {
		t.Errorf("sweep changed the poll state: %+v, was %+v", after, before)
	}
	if _, err := s.CommitSweep("a", Sweep{Events: newEvents("a", 40)}); err == nil {
		t.Error("sweep commit of events without webhooks succeeded")
	}
}

func TestPruneByAge(t *testing.T) {
	s := openTest(t)
	day := 24 * time.Hour
	commit(t, s, "a", Commit{Events: newEvents("a", 1, 2, 3), Webhooks: []string{"1"}, Cursor: 3, At: t0})
	commit(t, s, "a", Commit{Events: newEvents("a", 4, 5), Webhooks: []string{"1"}, Cursor: 5, At: t0.Add(day)})
	mark := func(at time.Time) {
		if _, err := s.CommitSweep("a", Sweep{Orders: []OrderMark{{OrderID: 900, At: at}}, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	mark(t0)
	// Below the window (5) and recorded before t0+1h: 1, 2, 3 go; 4 is too young.
	commit(t, s, "a", Commit{Cursor: 6, At: t0.Add(day), Prune: Prune{SeenBelow: 5, Before: t0.Add(time.Hour)}})
	seen, _ := s.Seen("a", 0, 10)
	if len(seen) != 2 || !seen[4] || !seen[5] {
		t.Errorf("seen %v after pruning, want 4 and 5", seen)
	}
	marks, _ := s.OrderMarks("a", []int64{900})
	if _, ok := marks[900]; !ok {
		t.Error("order mark pruned without Prune.Orders")
	}
	commit(t, s, "a", Commit{Cursor: 6, At: t0.Add(day), Prune: Prune{Before: t0.Add(time.Hour), Orders: true}})
	marks, _ = s.OrderMarks("a", []int64{900})
	if _, ok := marks[900]; ok {
		t.Error("old order mark kept")
	}
}

func TestStartIDAndLastSuccess(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Cursor: 700, StartID: 700, At: t0})
	commit(t, s, "a", Commit{Cursor: 800, StartID: 800, At: t0.Add(time.Minute)})
	st, _ := s.State("a")
	if st.StartID != 700 || st.Cursor != 800 {
		t.Errorf("state %+v, want start 700 (the first commit's), cursor 800", st)
	}
	later := t0.Add(time.Hour)
	if err := s.RecordLastSuccess(map[string]time.Time{"a": later, "unknown": later}); err != nil {
		t.Fatal(err)
	}
	if st, _ = s.State("a"); !st.LastSuccess.Equal(later) || st.Cursor != 800 {
		t.Errorf("state %+v, want last success %v", st, later)
	}
	if names, _ := accountList(s); !slices.Equal(names, []string{"a"}) {
		t.Errorf("accounts %v: RecordLastSuccess created one", names)
	}
}

// A file written by the v1 code gets start_id = cursor, so the orders
// sweep never re-emits what it delivered before the upgrade.
func TestMigrateStartID(t *testing.T) {
	s, err := Open(copyFile(t, "testdata/v1.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for account, want := range map[string]int64{"ghana": 1015, "kenya": 5010} {
		st, err := s.State(account)
		if err != nil {
			t.Fatal(err)
		}
		if st.StartID != want || st.Cursor != want {
			t.Errorf("%s: state %+v, want start_id = cursor = %d", account, st, want)
		}
	}
	if _, err := s.OrderMarks("ghana", []int64{11}); err != nil {
		t.Error(err)
	}
	// New events of a migrated account get order marks.
	ne := newEvents("ghana", 1020)[0]
	commit(t, s, "ghana", Commit{Events: []NewEvent{ne}, Webhooks: []string{"app"}, Cursor: 1020, At: t0})
	if marks, _ := s.OrderMarks("ghana", []int64{ne.OrderID}); len(marks) != 1 {
		t.Error("no order mark for a migrated account's new event")
	}
}

// Replay queues events whatever the seen set says and records them seen.
func TestReplayEvents(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 5, 7), Webhooks: []string{"1", "2"}, Cursor: 10, At: t0})
	if err := s.Replay("a", []string{"2"}, newEvents("a", 5, 12), t0); err != nil {
		t.Fatal(err)
	}
	if got := len(pending(t, s, "a", "2")); got != 4 {
		t.Errorf("webhook 2 holds %d items, want 4 (5 and 7, then 5 and 12 again)", got)
	}
	if got := len(pending(t, s, "a", "1")); got != 2 {
		t.Errorf("webhook 1 holds %d items, want 2: the replay was for webhook 2 only", got)
	}
	if seen, _ := s.Seen("a", 11, 12); !seen[12] {
		t.Error("a replayed id is not recorded as seen")
	}
	if err := s.Replay("a", nil, newEvents("a", 13), t0); err == nil {
		t.Error("replay without webhooks succeeded")
	}
}
