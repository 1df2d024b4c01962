package store

import (
	"testing"
	"time"
)

// The pruning watermark moves up with the ids pruning deletes, in the same
// commit, and never down.
func TestSeenPrunedWatermark(t *testing.T) {
	s := openTest(t)
	day := 24 * time.Hour
	commit(t, s, "a", Commit{Events: newEvents("a", 10, 20, 30), Webhooks: []string{"1"}, Cursor: 30, At: t0})
	commit(t, s, "a", Commit{Events: newEvents("a", 40), Webhooks: []string{"1"}, Cursor: 40, At: t0.Add(day)})
	if st, _ := s.State("a"); st.SeenPruned != 0 {
		t.Fatalf("watermark %d before any prune", st.SeenPruned)
	}
	steps := []struct {
		below int64
		want  int64
	}{
		{15, 10}, // 10 pruned
		{35, 30}, // 20 and 30
		{45, 30}, // 40 is too young: nothing more
		{5, 30},  // nothing below 5: the watermark stays
	}
	for _, st := range steps {
		commit(t, s, "a", Commit{Cursor: 40, At: t0.Add(day), Prune: Prune{SeenBelow: st.below, Before: t0.Add(time.Hour)}})
		got, err := s.State("a")
		if err != nil {
			t.Fatal(err)
		}
		if got.SeenPruned != st.want {
			t.Errorf("prune below %d: watermark %d, want %d", st.below, got.SeenPruned, st.want)
		}
	}
	if seen, _ := s.Seen("a", 0, 50); len(seen) != 1 || !seen[40] {
		t.Errorf("seen %v, want only 40", seen)
	}
}
