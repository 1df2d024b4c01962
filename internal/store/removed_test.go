package store

import (
	"testing"
	"time"
)

// TestRemoval: the first removal mark stays (a restart or another reload
// does not move its deadline), is read with the state, and goes when the
// account returns; DeadLetterPending empties every webhook's queue in
// chunks, keeping the queues' invariants.
func TestRemoval(t *testing.T) {
	s := openTest(t)
	if r, err := s.MarkRemoved("ghost", t0, t0.Add(time.Hour)); err != nil || !r.IsZero() {
		t.Errorf("mark of an account without state: %+v, %v", r, err)
	}
	if err := s.CommitPoll("gh", Commit{Events: newEvents("gh", 1, 2, 3, 4, 5), Webhooks: []string{"a", "b"}, Cursor: 5, At: t0}); err != nil {
		t.Fatal(err)
	}
	first, err := s.MarkRemoved("gh", t0, t0.Add(72*time.Hour))
	if err != nil || !first.At.Equal(t0) || !first.Deadline.Equal(t0.Add(72*time.Hour)) {
		t.Fatalf("first mark: %+v, %v", first, err)
	}
	if again, err := s.MarkRemoved("gh", t0.Add(time.Hour), t0.Add(100*time.Hour)); err != nil || again != first {
		t.Errorf("second mark: %+v, %v; want the first kept", again, err)
	}
	if st, err := s.State("gh"); err != nil || st.Removed != first {
		t.Errorf("state: %+v, %v", st.Removed, err)
	}

	var dead []Item
	for {
		items, err := s.DeadLetterPending("gh", "account removed", t0.Add(73*time.Hour), 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		if len(items) > 3 {
			t.Fatalf("%d items in a chunk of 3", len(items))
		}
		dead = append(dead, items...)
	}
	if len(dead) != 10 {
		t.Errorf("%d dead-lettered, want 10 (5 events × 2 webhooks)", len(dead))
	}
	if p, d, err := s.Counts("gh"); err != nil || p != 0 || d != 10 {
		t.Errorf("counts %d pending, %d dead, %v", p, d, err)
	}
	all, err := s.Dead("gh")
	if err != nil || len(all) != 10 || all[0].DeadReason != "account removed" {
		t.Errorf("dead letters %d, %v", len(all), err)
	}
	checkQueues(t, s)

	if err := s.ClearRemoved("gh"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State("gh"); !st.Removed.IsZero() {
		t.Errorf("removal still recorded: %+v", st.Removed)
	}
	if r, _ := s.MarkRemoved("gh", t0.Add(5*time.Hour), t0.Add(6*time.Hour)); !r.At.Equal(t0.Add(5 * time.Hour)) {
		t.Errorf("a new removal after the return: %+v", r)
	}
}
