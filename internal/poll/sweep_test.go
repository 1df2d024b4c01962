package poll

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

func (h *harness) sweep() SweepResult {
	h.t.Helper()
	res, err := h.p.Sweep(context.Background())
	if err != nil {
		h.t.Fatalf("Sweep: %v", err)
	}
	return res
}

// A transition that commits later than look_back_time is missed by the
// history poll and recovered by the sweep, once, under its history id.
func TestSweepRecoversLateEntry(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 201, account: func(a *config.Account) { a.LookBackTime = 5 * time.Second }})
	o1, o2 := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
	h.poll()
	late := lateEntry(h, 20*time.Second, func() int64 { return h.crm.SetStatus(o1, "approved") })
	h.crm.SetStatus(o2, "cancel")
	for range 4 { // polls every 2 s: the look-back window retires before the entry shows
		h.poll()
		h.clock.Advance(2 * time.Second)
	}
	h.clock.Advance(15 * time.Second)
	h.poll()
	if hasOnce(h.outbox(), late) {
		t.Fatal("the history poll found the entry: the test needs it to be missed")
	}
	res := h.sweep()
	if res.Recovered != 1 || res.Checked != 1 || res.Orders != 1 {
		t.Errorf("sweep %+v, want 1 order checked and 1 recovered", res)
	}
	items := h.outbox()
	if !hasOnce(items, late) {
		t.Fatalf("late entry %d not recovered: %v", late, ids(items))
	}
	for _, it := range items {
		if it.Event.Change.HistoryID == late && (it.Event.ID != event.ID("acme", late) || it.Event.Type != event.StatusChanged ||
			it.Event.Change.OldValue != "new" || it.OrderID != o1) {
			t.Errorf("recovered event %+v", it.Event)
		}
	}
	if got := testutil.ToFloat64(h.m.ReconciledEvents.WithLabelValues("acme")); got != 1 {
		t.Errorf("reconciled_events_total = %v, want 1", got)
	}
	// Nothing twice: neither the next sweep nor the poll.
	hist, _ := h.requests()
	if res := h.sweep(); res.Recovered != 0 || res.Checked != 0 {
		t.Errorf("second sweep %+v, want nothing to check", res)
	}
	if dh, _ := h.requests(); dh != hist {
		t.Errorf("second sweep read %d history pages, want none", dh-hist)
	}
	h.drain()
	if !hasOnce(h.outbox(), late) {
		t.Error("the event was emitted twice")
	}
}

// An order whose status change is not in its history yet (the entry
// commits late) is looked at again by the next sweep, which recovers it.
func TestSweepWaitsForALateEntry(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 205, account: func(a *config.Account) { a.LookBackTime = 5 * time.Second }})
	o, other := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
	h.poll()
	late := lateEntry(h, time.Minute, func() int64 { return h.crm.SetStatus(o, "approved") })
	h.crm.SetStatus(other, "cancel") // the cursor passes the late id
	h.clock.Advance(time.Second)
	h.poll()
	h.clock.Advance(10 * time.Second)
	h.poll() // the look-back window retires, the entry still hidden
	if res := h.sweep(); res.Checked != 1 || res.Recovered != 0 {
		t.Fatalf("sweep before the entry shows: %+v", res)
	}
	h.clock.Advance(time.Minute)
	h.poll()
	if hasOnce(h.outbox(), late) {
		t.Fatal("the poll found the entry: the test needs the sweep to")
	}
	if res := h.sweep(); res.Checked != 1 || res.Recovered != 1 {
		t.Errorf("sweep after the entry shows: %+v, want it checked again and recovered", res)
	}
	if !hasOnce(h.outbox(), late) {
		t.Errorf("outbox %v, want %d once", ids(h.outbox()), late)
	}
}

// When the poll emitted everything, a sweep costs ceil(M/100) requests.
func TestSweepNothingMissing(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 202})
	for range 230 {
		h.crm.SetStatus(h.crm.CreateOrder("main", "new"), "approved")
	}
	h.crm.RandomWalk(rand.New(rand.NewPCG(202, 1)), 20, 100)
	h.drain()
	before := h.crm.Requests("")
	res := h.sweep()
	if res.Recovered != 0 || res.Checked != 0 {
		t.Errorf("sweep %+v, want nothing checked or recovered", res)
	}
	approved := 0
	for _, o := range h.crm.Orders() {
		if st, _ := h.crm.OrderStatus(o); st == "approved" {
			approved++
		}
	}
	want := ceil(res.Orders, 100)
	if got := h.crm.Requests("") - before; got != want || res.Requests != want || res.Orders != approved || approved <= 100 {
		t.Errorf("sweep of %d orders (%d approved) made %d requests (counted %d), want %d", res.Orders, approved, got, res.Requests, want)
	}
	checkOutbox(t, "acme", h.outbox(), expected(h.cfg, h.crm.Transitions()))
}

// The sweep goes through the same rules and never emits at or below the
// start point, nor above the cursor.
func TestSweepRules(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 203, sim: crmsim.AccountOptions{Sites: []string{"main", "other"}},
		account: func(a *config.Account) {
			a.StartFrom, a.Sites, a.SkipOwnChanges = "now", []string{"main"}, true
		}})
	past := h.crm.CreateOrder("main", "new")
	h.crm.SetStatus(past, "approved") // before the start: the past
	h.clock.Advance(time.Second)
	h.poll() // start_from now
	own := h.crm.CreateOrder("main", "new")
	h.crm.SetStatusVia(own, "approved", "key-acme") // our own change, skipped
	elsewhere := h.crm.CreateOrder("other", "new")
	h.crm.SetStatus(elsewhere, "approved") // another site
	h.poll()
	ahead := h.crm.SetStatus(h.crm.CreateOrder("main", "new"), "approved") // not polled yet
	res := h.sweep()
	if res.Recovered != 0 {
		t.Errorf("sweep %+v recovered something: %v", res, ids(h.outbox()))
	}
	if n := len(h.outbox()); n != 0 {
		t.Fatalf("outbox %v, want empty", ids(h.outbox()))
	}
	// What it checked is not read again; the entry ahead of the cursor is.
	res = h.sweep()
	if res.Checked != 1 {
		t.Errorf("second sweep checked %d orders, want only the one ahead of the cursor", res.Checked)
	}
	h.poll()
	if items := h.outbox(); len(items) != 1 || !hasOnce(items, ahead) {
		t.Errorf("outbox %v, want only %d from the poll", ids(items), ahead)
	}
	if res := h.sweep(); res.Checked != 0 || res.Recovered != 0 {
		t.Errorf("sweep after the poll %+v, want nothing", res)
	}
}

// Replay hands every transition the rules select within the window, with
// its order, in chunks of at most 100, whatever was emitted before.
func TestReplay(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 206})
	h.crm.RandomWalk(rand.New(rand.NewPCG(206, 1)), 20, 50) // before the window
	h.clock.Advance(time.Hour)
	from := h.clock.Now()
	h.crm.RandomWalk(rand.New(rand.NewPCG(206, 2)), 20, 600)
	h.clock.Advance(time.Hour)
	to := h.clock.Now().Add(-time.Minute)
	h.crm.RandomWalk(rand.New(rand.NewPCG(206, 3)), 20, 50) // after it
	h.drain()                                               // emitted once already

	qualifying := expected(h.cfg, h.crm.Transitions())
	want := map[int64]bool{}
	for _, tr := range h.crm.Transitions() {
		if _, ok := qualifying[tr.HistoryID]; ok && !tr.At.Before(from) && !tr.At.After(to) {
			want[tr.HistoryID] = true
		}
	}
	var got []store.NewEvent
	chunks := 0
	res, err := h.p.Replay(context.Background(), from, to, func(evs []store.NewEvent) error {
		if len(evs) == 0 || len(evs) > 100 {
			t.Errorf("chunk of %d events", len(evs))
		}
		chunks++
		got = append(got, evs...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) <= 100 || res.Events != len(got) || chunks < 2 {
		t.Fatalf("%d events in %d chunks (result %+v) for %d expected: the window is too small to test chunking", len(got), chunks, res, len(want))
	}
	prev := int64(0)
	for _, ne := range got {
		id := ne.Event.Change.HistoryID
		if !want[id] {
			t.Errorf("replayed %s, not in the window's transitions", ne.Event.ID)
		}
		delete(want, id)
		if id <= prev {
			t.Errorf("replay out of history order: %d after %d", id, prev)
		}
		prev = id
		if len(ne.Event.Order) == 0 || ne.OrderID <= 0 {
			t.Errorf("%s without its order", ne.Event.ID)
		}
	}
	if len(want) > 0 {
		t.Errorf("%d transitions of the window not replayed", len(want))
	}
}
