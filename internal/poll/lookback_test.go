package poll

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

func TestLookBackMarks(t *testing.T) {
	t0 := newClock().Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	stored := []store.Mark{{At: at(0), Cursor: 100, Entries: 40}, {At: at(30), Cursor: 150, Entries: 10}}

	t.Run("start", func(t *testing.T) {
		if got := newLookBack(stored, time.Minute, 10000).start(200); got != 100 {
			t.Errorf("start = %d, want the oldest mark 100", got)
		}
		if got := newLookBack(nil, time.Minute, 10000).start(200); got != 200 {
			t.Errorf("start without marks = %d, want the cursor", got)
		}
	})
	t.Run("a tick's stretches merge up to mergeEntries", func(t *testing.T) {
		lb := newLookBack(stored, time.Minute, 10000)
		lb.pass(200, 600, at(40))
		lb.pass(300, 400, at(41)) // 600 + 400 <= 1000: the same mark, later
		lb.pass(400, 1, at(42))   // over 1000: a new mark
		want := []store.Mark{stored[0], stored[1], {At: at(41), Cursor: 200, Entries: 1000}, {At: at(42), Cursor: 400, Entries: 1}}
		if !slices.Equal(lb.marks, want) {
			t.Errorf("marks %+v, want %+v", lb.marks, want)
		}
		if !lb.changed(stored) || newLookBack(stored, time.Minute, 10000).changed(stored) {
			t.Error("changed() wrong")
		}
	})
	t.Run("stored marks are never extended", func(t *testing.T) {
		lb := newLookBack(stored, time.Minute, 10000)
		lb.pass(200, 5, at(40))
		if len(lb.marks) != 3 || lb.marks[1] != stored[1] {
			t.Errorf("marks %+v: a stored mark was changed", lb.marks)
		}
	})
	t.Run("overflow drops the oldest stretch", func(t *testing.T) {
		lb := newLookBack(stored, time.Minute, 100)
		if dropped := lb.pass(200, 60, at(40)); dropped != 40 {
			t.Errorf("dropped %d entries, want the oldest mark's 40", dropped)
		}
		if len(lb.marks) != 2 || lb.marks[0].Cursor != 150 || lb.start(300) != 150 {
			t.Errorf("marks %+v, want the window to start at 150", lb.marks)
		}
	})
	t.Run("look_back 0 keeps no marks", func(t *testing.T) {
		lb := newLookBack(nil, time.Minute, 0)
		lb.pass(200, 60, at(40))
		if len(lb.marks) != 0 {
			t.Errorf("marks %+v with look_back 0", lb.marks)
		}
	})
	t.Run("retire", func(t *testing.T) {
		lb := newLookBack(stored, time.Minute, 10000)
		lb.pass(200, 5, at(40))
		lb.retire(at(59)) // a tick started before any mark's At + 1m: nothing retires
		if len(lb.marks) != 3 {
			t.Fatalf("marks %+v", lb.marks)
		}
		lb.retire(at(60)) // started exactly a minute after the first mark
		if len(lb.marks) != 2 || lb.marks[0] != stored[1] {
			t.Fatalf("marks %+v, want the first retired", lb.marks)
		}
		lb.retire(at(1000)) // this tick's own marks never retire in it
		if len(lb.marks) != 1 || lb.marks[0].Cursor != 200 {
			t.Errorf("marks %+v, want only this tick's", lb.marks)
		}
	})
	t.Run("a retired middle mark joins the one before", func(t *testing.T) {
		marks := []store.Mark{{At: at(50), Cursor: 100, Entries: 40}, {At: at(0), Cursor: 150, Entries: 10}}
		lb := newLookBack(marks, time.Minute, 10000)
		lb.retire(at(60))
		if len(lb.marks) != 1 || lb.marks[0].Cursor != 100 || lb.marks[0].Entries != 50 {
			t.Errorf("marks %+v, want one mark from 100 with 50 entries", lb.marks)
		}
	})
}

// lateEntry makes the next change a late commit: it gets its id now and is
// served only after delay.
func lateEntry(h *harness, delay time.Duration, change func() int64) int64 {
	h.crm.SetFaults(crmsim.Faults{LateCommit: crmsim.LateCommit{Probability: 1, Delay: delay}})
	defer h.crm.SetFaults(crmsim.Faults{})
	return change()
}

// has reports whether the outbox holds exactly one event of history id.
func hasOnce(items []store.Item, id int64) bool { return countID(items, id) == 1 }

// countID counts the outbox's events of history id.
func countID(items []store.Item, id int64) int {
	n := 0
	for _, it := range items {
		if it.Event.Change.HistoryID == id {
			n++
		}
	}
	return n
}

// A late entry that becomes visible during a CRM outage three times longer
// than look_back_time is found by the first successful poll after it.
func TestLateEntryFoundAfterOutage(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 5, retries: -1, account: func(a *config.Account) { a.LookBackTime = 5 * time.Second }})
	o1, o2 := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
	h.poll()
	late := lateEntry(h, 10*time.Second, func() int64 { return h.crm.SetStatus(o1, "approved") })
	h.crm.SetStatus(o2, "cancel") // visible, above the late id
	h.clock.Advance(time.Second)
	h.poll() // the cursor passes the late id
	if c := h.state().Cursor; c <= late {
		t.Fatalf("cursor %d did not pass the late id %d", c, late)
	}
	// 15 s of 503s, a poll attempt every second: the entry shows at +10 s.
	h.crm.SetFaults(crmsim.Faults{Fail503: 1000})
	for range 15 {
		h.clock.Advance(time.Second)
		if err := h.p.Poll(context.Background()); !errors.Is(err, retailcrm.ErrRateLimited) {
			t.Fatalf("Poll during the outage = %v", err)
		}
	}
	h.crm.SetFaults(crmsim.Faults{})
	h.clock.Advance(time.Second)
	h.poll()
	if items := h.outbox(); !hasOnce(items, late) {
		t.Fatalf("late entry %d not delivered after the outage: %v", late, ids(items))
	}
	if st := h.state(); len(st.Marks) != 0 {
		t.Errorf("marks %+v: the successful poll long after them should retire them", st.Marks)
	}
}

// A late entry behind a burst of 300 entries in the same tick is found:
// the window counts entries, not ids.
func TestLateEntryBehindBurst(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 6})
	orders := make([]int64, 20)
	for i := range orders {
		orders[i] = h.crm.CreateOrder("main", "new")
	}
	h.drain()
	late := lateEntry(h, 30*time.Second, func() int64 { return h.crm.SetStatus(orders[0], "approved") })
	for i := range 300 {
		h.crm.SetField(orders[1+i%19], "manager_comment", nil, "call back")
	}
	h.poll()
	h.clock.Advance(31 * time.Second)
	h.crm.SetFaults(crmsim.Faults{})
	for range 150 { // another burst, then the late entry shows
		h.crm.SetField(orders[1], "manager_comment", nil, "again")
	}
	h.poll()
	if items := h.outbox(); !hasOnce(items, late) {
		t.Fatalf("late entry %d behind a 300-entry burst not delivered: %v", late, ids(items))
	}
}

// Beyond look_back entries the oldest stretch leaves the window, logged and
// counted.
func TestLookBackOverflowCounted(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 7, account: func(a *config.Account) { a.LookBack = 150 }})
	o := h.crm.CreateOrder("main", "new")
	h.drain()
	for round := range 2 {
		for range 100 {
			h.crm.SetField(o, "manager_comment", nil, "x")
		}
		h.clock.Advance(time.Second)
		h.poll()
		if round == 0 && testutil.ToFloat64(h.m.HistoryAnomalies.WithLabelValues("acme", anomalyOverflow)) != 0 {
			t.Fatal("overflow counted under the bound")
		}
	}
	if got := testutil.ToFloat64(h.m.HistoryAnomalies.WithLabelValues("acme", anomalyOverflow)); got != 1 {
		t.Errorf("look_back_overflow = %v, want 1", got)
	}
	total := 0
	for _, m := range h.state().Marks {
		total += m.Entries
	}
	if total > 150 {
		t.Errorf("marks cover %d entries, more than look_back 150", total)
	}
}

// A catch-up over old history (older than twice look_back_time by the
// server's clock) leaves no marks: the next poll reads one page.
func TestCatchUpOverOldHistoryLeavesNoMarks(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 8})
	h.crm.RandomWalk(rand.New(rand.NewPCG(8, 1)), 30, 2000)
	h.clock.Advance(time.Hour)
	h.poll()
	if st := h.state(); len(st.Marks) != 0 || st.Cursor != h.crm.LastHistoryID() {
		t.Fatalf("state %+v after catching up on hour-old history, want no marks", st)
	}
	hist, _ := h.requests()
	h.poll()
	if dh, _ := h.requests(); dh-hist != 1 {
		t.Errorf("the poll after the catch-up made %d history requests, want 1", dh-hist)
	}
	checkOutbox(t, "acme", h.outbox(), expected(h.cfg, h.crm.Transitions()))
}

// A long poll logs its progress every 10 s: entries read, cursor, rate, ETA.
func TestCatchUpLogsProgress(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 9})
	h.crm.RandomWalk(rand.New(rand.NewPCG(9, 1)), 30, 3000)
	var logs testkit.SyncBuffer
	h.p.log = slog.New(slog.NewTextHandler(&logs, nil))
	h.p.now = func() time.Time { h.clock.Advance(time.Second); return h.clock.Now() } // every read of the clock is a second later
	h.poll()
	lines := strings.Count(logs.String(), "catching up on the order history")
	if lines == 0 {
		t.Fatalf("no progress line:\n%s", logs.String())
	}
	for _, k := range []string{"entries_read=", "cursor=", "entries_per_second=", "entries_left=", "eta="} {
		if !strings.Contains(logs.String(), k) {
			t.Errorf("progress line without %s:\n%s", k, logs.String())
		}
	}
	checkOutbox(t, "acme", h.outbox(), expected(h.cfg, h.crm.Transitions()))
}

// Property: over random interleavings of changes, late commits (within
// look_back_time), failed polls, outages and gaps longer than
// look_back_time between polls, every qualifying transition is emitted
// exactly once and nothing else.
func TestLookBackProperty(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	for seed := range seeds {
		t.Run("seed="+string(rune('a'+seed)), func(t *testing.T) {
			lbt := 20 * time.Second
			h := newHarness(t, harnessOptions{seed: int64(100 + seed), retries: -1, account: func(a *config.Account) {
				a.LookBackTime = lbt
				a.PageBudget = 1 + seed%3
			}})
			rng := rand.New(rand.NewPCG(uint64(seed), 99))
			h.crm.SetFaults(crmsim.Faults{LateCommit: crmsim.LateCommit{Probability: 0.15, Delay: time.Duration(1+rng.IntN(20)) * time.Second}})
			failed, late := 0, 0
			for range 60 {
				h.crm.RandomWalk(rng, 25, rng.IntN(15))
				late = max(late, h.crm.Pending())
				switch r := rng.IntN(10); {
				case r == 0: // an outage longer than the window
					h.crm.UpdateFaults(func(f *crmsim.Faults) { f.Fail503 = 1 << 20 })
					for range 1 + rng.IntN(4) {
						h.clock.Advance(lbt)
						if h.p.Poll(context.Background()) == nil {
							t.Fatal("poll succeeded during an outage")
						}
						failed++
					}
					h.crm.UpdateFaults(func(f *crmsim.Faults) { f.Fail503 = 0 })
				case r <= 2: // a skipped or slow tick
					h.clock.Advance(lbt + time.Duration(rng.IntN(30))*time.Second)
				default:
					h.clock.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
				}
				if rng.IntN(6) == 0 { // a failing page somewhere in the poll
					h.failHistoryAfter(int64(rng.IntN(3)))
				}
				if h.p.Poll(context.Background()) != nil {
					failed++
				}
				h.failHistoryAfter(-1)
			}
			if failed == 0 || late == 0 {
				t.Fatalf("failed polls %d, late entries %d: the run exercised too little", failed, late)
			}
			// Let every late entry show, then poll until the window settles.
			h.clock.Advance(lbt)
			h.crm.SetFaults(crmsim.Faults{})
			for range 3 {
				h.poll()
				h.clock.Advance(lbt)
			}
			if h.crm.Pending() != 0 {
				t.Fatal("late entries still hidden")
			}
			exp := expected(h.cfg, h.crm.Transitions())
			if len(exp) < 30 {
				t.Fatalf("only %d qualifying transitions", len(exp))
			}
			checkOutbox(t, "acme", h.outbox(), exp)
		})
	}
}
