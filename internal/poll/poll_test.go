package poll

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// 1,000 random status changes over 50 orders, with late-committed entries
// and 503 bursts, polled as they happen: exactly one event per qualifying
// transition, none extra.
func TestRandomWalkExactlyOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 7, retries: 2, account: func(a *config.Account) {
		a.LookBackTime = 30 * time.Second
	}})
	h.crm.SetFaults(crmsim.Faults{LateCommit: crmsim.LateCommit{Probability: 0.1, Delay: 4 * time.Second}})
	rng := rand.New(rand.NewPCG(7, 8))
	ctx := context.Background()
	failed, maxLate := 0, 0
	for changes := 0; changes < 1000; {
		n := min(1+rng.IntN(40), 1000-changes)
		h.crm.RandomWalk(rng, 50, n)
		changes += n
		maxLate = max(maxLate, h.crm.Pending())
		h.clock.Advance(time.Duration(rng.IntN(2500)) * time.Millisecond)
		if rng.IntN(4) == 0 { // more 503s than the client retries: the poll fails
			h.crm.UpdateFaults(func(f *crmsim.Faults) { f.Fail503 += 1 + rng.IntN(5) })
		}
		if err := h.p.Poll(ctx); err != nil {
			if !errors.Is(err, retailcrm.ErrRateLimited) {
				t.Fatalf("Poll: %v, want a rate-limit error", err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no poll failed: the 503 bursts were not exercised")
	}
	if maxLate == 0 {
		t.Fatal("no entry was ever committed late")
	}

	// approved -> new -> approved is two events.
	order := h.crm.Orders()[0]
	if st, _ := h.crm.OrderStatus(order); st == "approved" {
		h.crm.SetStatus(order, "complete")
	}
	first := h.crm.SetStatus(order, "approved")
	h.crm.SetStatus(order, "new")
	second := h.crm.SetStatus(order, "approved")

	h.crm.UpdateFaults(func(f *crmsim.Faults) { f.Fail503 = 0 })
	h.crm.CommitAll()
	h.clock.Advance(time.Second)
	h.drain()

	exp := expected(h.cfg, h.crm.Transitions())
	if len(exp) < 150 {
		t.Fatalf("only %d qualifying transitions: the walk is too small to mean anything", len(exp))
	}
	items := h.outbox()
	checkOutbox(t, "acme", items, exp)
	n := 0
	for _, it := range items {
		if id := it.Event.Change.HistoryID; id == first || id == second {
			n++
		}
	}
	if n != 2 {
		t.Errorf("approved -> new -> approved gave %d events, want 2", n)
	}
	if got := testutil.ToFloat64(h.m.PollsTotal.WithLabelValues("acme", "error")); int(got) != failed {
		t.Errorf("polls_total{error} = %v, want %d", got, failed)
	}
	detected := testutil.ToFloat64(h.m.EventsDetected.WithLabelValues("acme", string(event.StatusChanged))) +
		testutil.ToFloat64(h.m.EventsDetected.WithLabelValues("acme", string(event.Created)))
	if int(detected) != len(exp) {
		t.Errorf("events_detected_total = %v, want %d", detected, len(exp))
	}
	if got := testutil.ToFloat64(h.m.CursorHistoryID.WithLabelValues("acme")); int64(got) != h.crm.LastHistoryID() {
		t.Errorf("cursor gauge = %v, want %d", got, h.crm.LastHistoryID())
	}
	if h.notified.Load() == 0 {
		t.Error("notify never called")
	}
}

// Once the look-back window has settled, an idle poll is one history
// request and writes nothing to the store.
func TestIdlePollIsOneRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 3})
	h.crm.RandomWalk(rand.New(rand.NewPCG(3, 3)), 20, 300)
	h.drain()
	h.clock.Advance(h.cfg.LookBackTime + time.Second)
	h.poll() // re-reads the window late enough: the marks retire
	if st := h.state(); len(st.Marks) != 0 {
		t.Fatalf("marks %+v after a poll look_back_time later, want none", st.Marks)
	}
	settled := h.state()
	file := h.fileInfo()
	for range 3 {
		hist, orders := h.requests()
		h.clock.Advance(time.Minute)
		h.poll()
		dh, do := h.requests()
		if dh-hist != 1 || do-orders != 0 {
			t.Fatalf("idle poll made %d history and %d orders requests, want 1 and 0", dh-hist, do-orders)
		}
	}
	if st := h.state(); !st.LastSuccess.Equal(settled.LastSuccess) || st.Cursor != settled.Cursor {
		t.Errorf("idle polls changed the stored state: %+v, was %+v", st, settled)
	}
	if now := h.fileInfo(); !now.ModTime().Equal(file.ModTime()) || now.Size() != file.Size() {
		t.Errorf("idle polls wrote to the state file (mtime %v -> %v)", file.ModTime(), now.ModTime())
	}
	if got := testutil.ToFloat64(h.m.LastPollSuccess.WithLabelValues("acme")); got != float64(h.clock.Now().Unix()) {
		t.Errorf("last poll success gauge %v, want %d", got, h.clock.Now().Unix())
	}
	// Before the window settles a poll re-reads it, and that is all it does.
	h.crm.SetStatus(h.crm.Orders()[0], "cancel")
	h.poll()
	hist, orders := h.requests()
	h.poll()
	dh, do := h.requests()
	if dh-hist != 1 || do != orders {
		t.Errorf("poll within the look-back time made %d history and %d orders requests, want 1 and 0", dh-hist, do-orders)
	}
	st := h.state()
	if st.Cursor != h.crm.LastHistoryID() || len(st.Marks) != 1 {
		t.Errorf("state %+v, want cursor %d and one mark", st, h.crm.LastHistoryID())
	}
}

// A burst of N approvals over H entries costs at most
// ceil(H/100) + ceil(N/100) + 1 requests.
func TestBurstRequestBudget(t *testing.T) {
	for _, n := range []int{1, 99, 100, 130, 250} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			h := newHarness(t, harnessOptions{seed: int64(n), account: func(a *config.Account) { a.PageBudget = 1000 }})
			orders := make([]int64, 30)
			for i := range orders {
				orders[i] = h.crm.CreateOrder("main", "new")
			}
			h.drain()
			h.clock.Advance(h.cfg.LookBackTime + time.Second)
			h.poll()
			before := h.crm.HistoryLen()
			hist, ord := h.requests()
			for i := range n {
				o := orders[i%len(orders)]
				h.crm.SetStatus(o, "approved")
				h.crm.SetField(o, "manager_comment", nil, "called")
				h.crm.SetStatus(o, "new")
			}
			entries := h.crm.HistoryLen() - before
			h.poll()
			dh, do := h.requests()
			budget := ceil(entries, 100) + ceil(n, 100) + 1
			if got := dh - hist + do - ord; got > budget {
				t.Errorf("%d approvals over %d entries: %d history + %d orders requests, budget %d", n, entries, dh-hist, do-ord, budget)
			}
			if got := len(h.outbox()); got != n {
				t.Errorf("outbox has %d events, want %d", got, n)
			}
			if got := h.state().Cursor; got != h.crm.LastHistoryID() {
				t.Errorf("cursor %d, want %d (drained in one poll)", got, h.crm.LastHistoryID())
			}
		})
	}
}

func ceil(a, b int) int { return (a + b - 1) / b }

// A long history is drained in one poll at the rate limit, committing
// every page_budget pages: a failure keeps the pages committed before it.
func TestCatchUpCommitsEveryPageBudget(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 11, retries: -1, account: func(a *config.Account) { a.PageBudget = 2 }})
	h.crm.RandomWalk(rand.New(rand.NewPCG(11, 1)), 30, 900)
	pages := ceil(h.crm.HistoryLen(), 100)
	h.poll()
	if hist, _ := h.requests(); hist != pages {
		t.Fatalf("poll made %d history requests, want all %d pages in one poll", hist, pages)
	}
	checkOutbox(t, "acme", h.outbox(), expected(h.cfg, h.crm.Transitions()))

	// The fifth page fails: two commits of two pages stand.
	g := newHarness(t, harnessOptions{seed: 11, retries: -1, account: func(a *config.Account) { a.PageBudget = 2 }})
	g.crm.RandomWalk(rand.New(rand.NewPCG(11, 1)), 30, 900)
	g.failHistoryAfter(4)
	if err := g.p.Poll(context.Background()); err == nil {
		t.Fatal("Poll succeeded through a failing page")
	}
	if got, want := g.state().Cursor, g.historyIDs()[399]; got != want {
		t.Errorf("cursor %d after a failure on page 5, want %d (end of page 4)", got, want)
	}
	g.failHistoryAfter(-1)
	g.drain()
	checkOutbox(t, "acme", g.outbox(), expected(g.cfg, g.crm.Transitions()))
}

func TestStartFromNow(t *testing.T) {
	t.Run("recent activity: one request", func(t *testing.T) {
		h := newHarness(t, harnessOptions{seed: 21, account: func(a *config.Account) { a.StartFrom = "now" }})
		h.crm.RandomWalk(rand.New(rand.NewPCG(21, 1)), 20, 200) // the past
		h.clock.Advance(2 * time.Hour)
		o := h.crm.Orders()[0]
		h.crm.SetStatus(o, "complete")
		h.crm.SetStatus(o, "approved") // recent, still the past
		h.clock.Advance(10 * time.Second)
		h.poll()
		if hist, orders := h.requests(); hist != 1 || orders != 0 {
			t.Errorf("first start made %d history and %d orders requests, want 1 and 0", hist, orders)
		}
		st := h.state()
		if !st.Initialized || st.Cursor != h.crm.LastHistoryID() {
			t.Fatalf("state %+v, want initialized at %d", st, h.crm.LastHistoryID())
		}
		if n := len(h.outbox()); n != 0 {
			t.Fatalf("%d events for the past", n)
		}
		o = h.crm.Orders()[1]
		if st, _ := h.crm.OrderStatus(o); st == "approved" {
			h.crm.SetStatus(o, "new")
		}
		id := h.crm.SetStatus(o, "approved")
		h.poll()
		items := h.outbox()
		if len(items) != 1 || items[0].Event.Change.HistoryID != id {
			t.Fatalf("outbox %v, want the one new approval %d", ids(items), id)
		}
	})
	t.Run("old activity: the search widens", func(t *testing.T) {
		h := newHarness(t, harnessOptions{seed: 22, account: func(a *config.Account) { a.StartFrom = "now" }})
		h.crm.RandomWalk(rand.New(rand.NewPCG(22, 1)), 20, 300)
		h.clock.Advance(10 * 24 * time.Hour)
		h.poll()
		// 1m, 1h and 1d find nothing; 30d counts the entries; its last page
		// is asked for directly.
		if hist, _ := h.requests(); hist != 5 {
			t.Errorf("widening search made %d history requests, want 5", hist)
		}
		startedAtNewest(t, h)
	})
	t.Run("idle for more than a year: a few requests", func(t *testing.T) {
		h := newHarness(t, harnessOptions{seed: 24, account: func(a *config.Account) { a.StartFrom = "now" }})
		rng := rand.New(rand.NewPCG(24, 1))
		for range 100 { // about four days of activity, more entries than the API pages to
			h.crm.RandomWalk(rng, 50, 120)
			h.clock.Advance(time.Hour)
		}
		total := h.crm.HistoryLen()
		if total <= maxPageDepth {
			t.Fatalf("the history holds %d entries, want more than %d", total, maxPageDepth)
		}
		h.clock.Advance(400 * 24 * time.Hour)
		h.poll()
		// 1m, 1h, 1d, 30d and 365d find nothing; 10 years counts the
		// entries and is narrowed by halves until its last page is within
		// the API's page depth, then that page is asked for.
		hist, orders := h.requests()
		if limit := len(startSearch) + 25; hist > limit || orders != 0 {
			t.Errorf("the search made %d history and %d orders requests, want at most %d and 0 (a walk: %d)", hist, orders, limit, total/pageLimit)
		}
		t.Logf("%d entries, the last %v ago: %d history requests", total, 400*24*time.Hour, hist)
		startedAtNewest(t, h)
	})
	t.Run("empty history", func(t *testing.T) {
		h := newHarness(t, harnessOptions{seed: 23, account: func(a *config.Account) { a.StartFrom = "now" }})
		h.poll()
		if hist, _ := h.requests(); hist != len(startSearch)+1 {
			t.Errorf("%d history requests, want %d (every window, then the whole history)", hist, len(startSearch)+1)
		}
		if st := h.state(); !st.Initialized || st.Cursor != 0 {
			t.Fatalf("state %+v, want initialized at 0", st)
		}
		o := h.crm.CreateOrder("main", "approved")
		h.poll()
		items := h.outbox()
		if len(items) != 1 || items[0].Event.Type != event.Created || items[0].OrderID != o {
			t.Fatalf("outbox %v, want the creation of order %d", ids(items), o)
		}
	})
}

// startedAtNewest checks that a first start with start_from: now set the
// cursor at the newest history id and that the next poll reports nothing of
// the past.
func startedAtNewest(t *testing.T, h *harness) {
	t.Helper()
	if st := h.state(); !st.Initialized || st.Cursor != h.crm.LastHistoryID() {
		t.Fatalf("state %+v, want initialized at %d", st, h.crm.LastHistoryID())
	}
	h.poll()
	if n := len(h.outbox()); n != 0 {
		t.Fatalf("%d events for the past", n)
	}
}

func TestStartFromBeginning(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 31})
	h.crm.RandomWalk(rand.New(rand.NewPCG(31, 1)), 20, 300)
	h.drain()
	exp := expected(h.cfg, h.crm.Transitions())
	if len(exp) == 0 {
		t.Fatal("no qualifying transitions")
	}
	checkOutbox(t, "acme", h.outbox(), exp)
}

// start_from as a time: filter[startDate] in the account's time zone first,
// then sinceId; nothing before the time is reported.
func TestStartFromTime(t *testing.T) {
	moscow := time.FixedZone("MSK", 3*60*60)
	start := newClock().Now().Add(time.Hour) // 10:00 UTC, 13:00 in Moscow
	at := func(a *config.Account) {
		a.StartFrom, a.StartTime, a.TimeZone = start.Format(time.RFC3339), start, moscow
	}
	t.Run("past time", func(t *testing.T) {
		h := newHarness(t, harnessOptions{seed: 41, account: at, sim: crmsim.AccountOptions{TimeZone: moscow}})
		rng := rand.New(rand.NewPCG(41, 1))
		h.crm.RandomWalk(rng, 20, 200) // 09:00 UTC: before start
		h.clock.Advance(90 * time.Minute)
		mark := h.crm.LastHistoryID()
		h.crm.RandomWalk(rng, 20, 200) // 10:30 UTC: after
		h.drain()
		exp := expected(h.cfg, h.crm.Transitions())
		for id := range exp {
			if id <= mark {
				delete(exp, id)
			}
		}
		if len(exp) == 0 {
			t.Fatal("no qualifying transitions after the start time")
		}
		checkOutbox(t, "acme", h.outbox(), exp)
	})
	t.Run("future time", func(t *testing.T) {
		h := newHarness(t, harnessOptions{seed: 42, account: at, sim: crmsim.AccountOptions{TimeZone: moscow}})
		o := h.crm.CreateOrder("main", "approved") // 09:00 UTC
		h.poll()
		if st := h.state(); st.Initialized || st.Cursor != 0 {
			t.Fatalf("state %+v: nothing after start_from yet, want uninitialised", st)
		}
		h.clock.Advance(2 * time.Hour)
		h.crm.SetStatus(o, "new")
		id := h.crm.SetStatus(o, "approved")
		h.poll()
		items := h.outbox()
		if len(items) != 1 || items[0].Event.Change.HistoryID != id {
			t.Fatalf("outbox %v, want only %d", ids(items), id)
		}
		if !h.state().Initialized {
			t.Fatal("not initialised after entries arrived")
		}
	})
}

// Sites, skip_own_changes and on_create against the simulator.
func TestRules(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*config.Account)
		count int
	}{
		{"defaults", func(*config.Account) {}, 6},
		{"one site", func(a *config.Account) { a.Sites = []string{"main"} }, 4},
		{"skip own changes", func(a *config.Account) { a.SkipOwnChanges = true }, 5},
		{"no creations", func(a *config.Account) { a.OnCreate = false }, 4},
		{"all three", func(a *config.Account) {
			a.Sites, a.SkipOwnChanges, a.OnCreate = []string{"main"}, true, false
		}, 2},
		{"two statuses", func(a *config.Account) { a.Statuses = []string{"approved", "new"} }, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{seed: 51, account: tt.mod,
				sim: crmsim.AccountOptions{Sites: []string{"main", "shop2"}, ExtraKeys: []string{"other-key"}}})
			h.crm.CreateOrder("main", "approved")  // created in target
			h.crm.CreateOrder("shop2", "approved") // created in target, other site
			o1 := h.crm.CreateOrder("main", "new")
			o2 := h.crm.CreateOrder("shop2", "new")
			h.crm.SetStatus(o1, "approved")
			h.crm.SetStatus(o2, "approved")
			h.crm.SetStatus(o1, "new")
			h.crm.SetStatusVia(o1, "approved", "key-acme") // our own change
			h.crm.SetStatus(o1, "new")
			h.crm.SetStatusVia(o1, "approved", "other-key") // another integration's
			h.drain()
			items := h.outbox()
			if len(items) != tt.count {
				t.Errorf("%d events, want %d: %v", len(items), tt.count, ids(items))
			}
			checkOutbox(t, "acme", items, expected(h.cfg, h.crm.Transitions()))
		})
	}
}

// An order the API no longer returns still yields its event, with the
// history entry's order and orderMissing.
func TestOrderMissing(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 61})
	kept := h.crm.CreateOrder("main", "new")
	gone := h.crm.CreateOrder("main", "new")
	h.crm.SetStatus(kept, "approved")
	h.crm.SetStatus(gone, "approved")
	h.crm.DeleteOrder(gone)
	h.poll()
	items := h.outbox()
	if len(items) != 2 {
		t.Fatalf("%d events, want 2", len(items))
	}
	for _, it := range items {
		var o struct {
			ID     int64  `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(it.Event.Order, &o); err != nil {
			t.Fatalf("order of %s: %v", it.Event.ID, err)
		}
		switch it.OrderID {
		case kept:
			want, _ := h.crm.OrderJSON(kept)
			if it.Event.OrderMissing || string(it.Event.Order) != string(want) {
				t.Errorf("kept order: missing %v, order %s, want %s", it.Event.OrderMissing, it.Event.Order, want)
			}
		case gone:
			if !it.Event.OrderMissing || o.ID != gone || o.Status != "approved" {
				t.Errorf("deleted order: missing %v, order %s", it.Event.OrderMissing, it.Event.Order)
			}
		default:
			t.Errorf("event for order %d", it.OrderID)
		}
	}
	// The delivered body carries the flag.
	b, err := json.Marshal(items[1].Event)
	if err != nil || !strings.Contains(string(b), `"orderMissing":true`) {
		t.Errorf("event JSON %s (%v)", b, err)
	}
}

// A failed API call commits nothing and moves no cursor; the next poll
// catches up exactly once.
func TestFailureCommitsNothing(t *testing.T) {
	for _, endpoint := range []string{crmsim.EndpointHistory, crmsim.EndpointOrders} {
		t.Run(endpoint, func(t *testing.T) {
			h := newHarness(t, harnessOptions{seed: 71, retries: 1})
			h.crm.RandomWalk(rand.New(rand.NewPCG(71, 1)), 10, 100)
			h.crm.SetFaults(crmsim.Faults{Endpoint: endpoint, Fail500: 100})
			if err := h.p.Poll(context.Background()); err == nil {
				t.Fatal("Poll succeeded through 500s")
			}
			if st := h.state(); st.Initialized || st.Cursor != 0 {
				t.Fatalf("state %+v after a failed poll, want untouched", st)
			}
			if n := len(h.outbox()); n != 0 {
				t.Fatalf("%d events after a failed poll", n)
			}
			if got := testutil.ToFloat64(h.m.PollsTotal.WithLabelValues("acme", "error")); got != 1 {
				t.Errorf("polls_total{error} = %v, want 1", got)
			}
			h.crm.SetFaults(crmsim.Faults{})
			h.drain()
			checkOutbox(t, "acme", h.outbox(), expected(h.cfg, h.crm.Transitions()))
		})
	}
}

// A failure after some chunks were committed keeps those chunks and leaves
// the cursor on the last committed entry, not past the uncommitted ones.
func TestFailureMidPoll(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 81, retries: 1, failOrders: true, account: func(a *config.Account) { a.PageBudget = 1000 }})
	orders := make([]int64, 50)
	for i := range orders {
		orders[i] = h.crm.CreateOrder("main", "new")
	}
	var approvals []int64
	for i := range 250 {
		o := orders[i%len(orders)]
		approvals = append(approvals, h.crm.SetStatus(o, "approved"))
		h.crm.SetStatus(o, "new")
	}
	// The first orders request succeeds; the second fails for good.
	h.fail.on.Store(true)
	if err := h.p.Poll(context.Background()); err == nil {
		t.Fatal("Poll succeeded")
	}
	if n := len(h.outbox()); n != 100 {
		t.Fatalf("%d events committed before the failure, want the first chunk of 100", n)
	}
	if c := h.state().Cursor; c != approvals[99] {
		t.Fatalf("cursor %d, want %d (the 100th approval)", c, approvals[99])
	}
	h.fail.on.Store(false)
	h.drain()
	checkOutbox(t, "acme", h.outbox(), expected(h.cfg, h.crm.Transitions()))
}

// Seen ids below the look-back window are pruned and marks stay few.
func TestStateStaysSmall(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 91, account: func(a *config.Account) { a.Reconcile.Window = time.Minute }})
	rng := rand.New(rand.NewPCG(91, 1))
	for range 30 {
		h.crm.RandomWalk(rng, 20, 50)
		h.poll()
		h.clock.Advance(20 * time.Second)
	}
	st := h.state()
	if len(st.Marks) > 7 { // look_back_time 2m / 20s per poll, +1
		t.Errorf("%d marks, want at most 7: %+v", len(st.Marks), st.Marks)
	}
	seen, err := h.st.Seen("acme", 0, st.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	// Kept: ids in the look-back window, and ids recorded within the
	// sweep's window (one minute here; polls are 20 s apart).
	floor := st.Cursor
	if len(st.Marks) > 0 {
		floor = st.Marks[0].Cursor
	}
	recent := map[int64]bool{}
	for _, it := range h.outbox() {
		if !it.DetectedAt.Before(h.clock.Now().Add(-h.cfg.Reconcile.Window - 20*time.Second)) {
			recent[it.Event.Change.HistoryID] = true
		}
	}
	for id := range seen {
		if id < floor && !recent[id] {
			t.Errorf("seen id %d kept below the window start %d, older than the sweep's window", id, floor)
		}
	}
	if len(h.outbox()) <= len(seen) {
		t.Errorf("nothing pruned: %d seen ids for %d events", len(seen), len(h.outbox()))
	}
}

func ids(items []store.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Event.ID
	}
	return out
}
