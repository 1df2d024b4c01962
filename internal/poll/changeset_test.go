package poll

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// Conditions of the tests: a payment became paid (over the entries), an
// order delivered to Kumasi (over the order), every change set (over the
// order, so it always waits for the orders request).
const (
	whenPaid   = `changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "paid")`
	whenKumasi = `changeSet.hasChangedField("delivery_address.city") and order.getDeliveryAddress().city == "Kumasi"`
	whenEvery  = `order.id > 0`
)

func mustWhen(t testing.TB, src string) *condition.Condition {
	t.Helper()
	c, err := condition.Compile(src)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return c
}

// withHooks adds webhooks with conditions (name, expression pairs) after
// the status webhook "1".
func withHooks(t testing.TB, pairs ...string) func(*config.Account) {
	return func(a *config.Account) {
		for i := 0; i < len(pairs); i += 2 {
			a.Webhooks = append(a.Webhooks, config.Webhook{Name: pairs[i], When: mustWhen(t, pairs[i+1])})
		}
	}
}

func (h *harness) outboxOf(webhook string) []store.Item {
	h.t.Helper()
	items, err := h.st.Pending("acme", webhook, 0, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return items
}

// setIDs lists the history ids of an order.changed event's set.
func setIDs(ev event.Event) []int64 {
	var ids []int64
	for _, e := range ev.ChangeSet {
		ids = append(ids, e.HistoryID)
	}
	return ids
}

// shop makes the same changes in an account of either harness: orders,
// status changes, a payment paid, a delivery to Kumasi with a status
// change in the same save. It returns the two saves' ids.
func shop(crm *crmsim.Account) (paid, kumasi []int64) {
	a := crm.CreateOrder("main", "new")
	b := crm.CreateOrder("main", "approved")
	crm.SetStatus(a, "approved")
	paid = crm.SaveOrder(a, crmsim.Save{PaymentStatus: "paid", ManagerID: 7})
	kumasi = crm.SaveOrder(b, crmsim.Save{Status: "assembling", DeliveryCity: "Kumasi", DeliveryCost: 300})
	crm.SaveOrder(a, crmsim.Save{DeliveryCity: "Accra", Status: "assembling"})
	crm.SetStatus(b, "approved")
	return paid, kumasi
}

// A webhook with a condition gets order.changed for exactly its change
// sets; the status webhook gets the status events it would get without
// any condition in the account, byte for byte.
func TestConditionsRouteChangeSets(t *testing.T) {
	plain := newHarness(t, harnessOptions{seed: 5})
	shop(plain.crm)
	plain.poll()
	h := newHarness(t, harnessOptions{seed: 5, account: withHooks(t, "paid", whenPaid, "kumasi", whenKumasi)})
	paid, kumasi := shop(h.crm)
	h.poll()

	want, got := plain.outbox(), h.outbox()
	if len(want) != 3 || len(got) != len(want) {
		t.Fatalf("status webhook: %d events, want the %d of an account without conditions (3)", len(got), len(want))
	}
	for i := range want {
		w, _ := json.Marshal(want[i].Event)
		g, _ := json.Marshal(got[i].Event)
		if string(w) != string(g) {
			t.Errorf("status event %d:\n got %s\nwant %s", i, g, w)
		}
	}
	for _, tc := range []struct {
		webhook string
		ids     []int64
		fields  []string
	}{
		{"paid", paid, []string{"manager", "payments.status"}},
		{"kumasi", kumasi, []string{"status", "delivery_cost", "delivery_address.city"}},
	} {
		items := h.outboxOf(tc.webhook)
		if len(items) != 1 {
			t.Fatalf("webhook %s: %d events, want 1", tc.webhook, len(items))
		}
		ev := items[0].Event
		var fields []string
		for _, e := range ev.ChangeSet {
			fields = append(fields, e.Field)
		}
		if ev.Type != event.Changed || ev.ID != event.ID("acme", tc.ids[0]) || !slices.Equal(setIDs(ev), tc.ids) ||
			ev.Change.HistoryID != tc.ids[0] || ev.Source != "user" || len(ev.User) == 0 || len(ev.Order) == 0 || ev.OrderMissing {
			t.Errorf("webhook %s: event %+v, want order.changed of set %v", tc.webhook, ev, tc.ids)
		}
		if !slices.Equal(fields, tc.fields) {
			t.Errorf("webhook %s: fields %v, want %v", tc.webhook, fields, tc.fields)
		}
	}
	if n := testutil.ToFloat64(h.m.EventsDetected.WithLabelValues("acme", string(event.Changed))); n != 2 {
		t.Errorf("poller_events_detected_total{type=order.changed} = %v, want 2", n)
	}
}

// A change set across a page boundary is never split: a tick that commits
// after the first page and then fails leaves the cursor below the set, and
// the next tick reports it whole, once.
func TestChangeSetAcrossPages(t *testing.T) {
	hooks := withHooks(t, "every", whenEvery)
	h := newHarness(t, harnessOptions{seed: 6, retries: -1, account: func(a *config.Account) {
		hooks(a)
		a.PageBudget = 1 // a commit after the first page
	}})
	var orders []int64
	for range 5 {
		orders = append(orders, h.crm.CreateOrder("main", "new"))
	}
	for i := 0; h.crm.HistoryLen() < 97; i++ {
		h.crm.SetField(orders[i%5], "manager_comment", nil, "call "+string(rune('a'+i%26)))
	}
	set := h.crm.SaveOrder(orders[0], crmsim.Save{Status: "approved", ManagerID: 3, DeliveryCost: 10, DeliveryCity: "Tamale", PaymentStatus: "paid"})
	if len(set) < 5 {
		t.Fatalf("save of %d entries", len(set))
	}
	h.failHistoryAfter(1)
	t.Logf("history %d entries, set %v", h.crm.HistoryLen(), set)
	if err := h.p.Poll(t.Context()); err == nil {
		hist, ord := h.requests()
		t.Fatalf("poll with a failing second page succeeded; %d history, %d orders requests, cursor %d, left %d", hist, ord, h.state().Cursor, h.fail.historyLeft.Load())
	}
	if c := h.state().Cursor; c >= set[0] {
		t.Fatalf("cursor %d passed the first entry %d of a set only partly read", c, set[0])
	}
	for _, it := range h.outboxOf("every") {
		if it.Event.ID == event.ID("acme", set[0]) || slices.Contains(set, it.Event.Change.HistoryID) {
			t.Fatalf("event %s for a set only partly read", it.Event.ID)
		}
	}
	h.failHistoryAfter(-1)
	h.poll()
	h.poll()
	var found []store.Item
	for _, it := range h.outboxOf("every") {
		if it.Event.ID == event.ID("acme", set[0]) {
			found = append(found, it)
		}
	}
	if len(found) != 1 || !slices.Equal(setIDs(found[0].Event), set) {
		t.Fatalf("events of the set: %+v, want one with ids %v", found, set)
	}
}

// A set whose verdict read the order is decided once: an order that
// changed since cannot turn the look-back re-read's verdict into an event.
func TestChangeSetDecidedOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 7, account: withHooks(t, "new-manager",
		`changeSet.hasChangedField("manager") and order.status.code == "new"`)})
	id := h.crm.CreateOrder("main", "new")
	h.crm.SetStatus(id, "approved")
	h.crm.SaveOrder(id, crmsim.Save{ManagerID: 12}) // the order is approved by now: no
	h.poll()
	if n := len(h.outboxOf("new-manager")); n != 0 {
		t.Fatalf("%d events for a set whose order is approved", n)
	}
	h.crm.SetStatus(id, "new") // now the order would match
	for range 3 {
		h.clock.Advance(30 * time.Second) // within look_back_time: re-read
		h.poll()
	}
	if n := len(h.outboxOf("new-manager")); n != 0 {
		t.Fatalf("%d events after the look-back re-read the decided set", n)
	}
	// The set the condition read the order for is recorded, until the
	// look-back window has passed it; the others were ruled out by
	// hasChangedField("manager") alone, before the order, and need no record.
	marks, err := h.st.SetMarks("acme", 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if len(marks) != 1 || marks[0].OrderID != id {
		t.Errorf("set marks %+v, want the manager's set only", marks)
	}
}

// A late-committed save is found by the look-back, whole, once.
func TestLateChangeSetInLookBack(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 8, account: withHooks(t, "paid", whenPaid)})
	id := h.crm.CreateOrder("main", "new")
	other := h.crm.CreateOrder("main", "new")
	h.crm.SetFaults(crmsim.Faults{LateCommit: crmsim.LateCommit{Probability: 1, Delay: 40 * time.Second}})
	set := h.crm.SaveOrder(id, crmsim.Save{PaymentStatus: "paid", DeliveryCost: 20})
	h.crm.SetFaults(crmsim.Faults{})
	h.crm.SetStatus(other, "approved") // visible at once, above the late set
	h.poll()
	if h.state().Cursor <= set[len(set)-1] {
		t.Fatalf("cursor %d did not pass the hidden set %v", h.state().Cursor, set)
	}
	for range 6 {
		h.clock.Advance(20 * time.Second)
		h.poll()
	}
	items := h.outboxOf("paid")
	if len(items) != 1 || !slices.Equal(setIDs(items[0].Event), set) {
		t.Fatalf("events %+v, want one of set %v", items, set)
	}
}

// A condition that fails on a set is that set's anomaly for that webhook:
// counted, and the other webhooks still get their events.
func TestConditionErrorIsAnAnomaly(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 9, account: withHooks(t,
		"broken", `changeSet.newValue("manager").code == "x"`, "paid", whenPaid)})
	id := h.crm.CreateOrder("main", "new")
	h.crm.SaveOrder(id, crmsim.Save{PaymentStatus: "paid"})
	h.poll()
	if n := len(h.outboxOf("paid")); n != 1 {
		t.Errorf("paid: %d events, want 1", n)
	}
	if n := len(h.outboxOf("broken")); n != 0 {
		t.Errorf("broken: %d events, want 0", n)
	}
	if n := testutil.ToFloat64(h.m.HistoryAnomalies.WithLabelValues("acme", anomalyCondition)); n < 1 {
		t.Errorf("condition_error anomalies = %v, want at least 1", n)
	}
}

// With a condition on every webhook, no status event is detected and the
// sweep has nothing to reconcile.
func TestOnlyConditions(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 10, account: func(a *config.Account) {
		a.Webhooks = []config.Webhook{{Name: "paid", When: mustWhen(t, whenPaid)}}
	}})
	id := h.crm.CreateOrder("main", "approved")
	h.crm.SetStatus(id, "new")
	h.crm.SetStatus(id, "approved")
	h.crm.SaveOrder(id, crmsim.Save{PaymentStatus: "paid"})
	h.poll()
	items := h.outboxOf("paid")
	if len(items) != 1 || items[0].Event.Type != event.Changed {
		t.Fatalf("events %+v, want one order.changed", items)
	}
	res, err := h.p.Sweep(t.Context())
	if err != nil || res.Requests != 0 {
		t.Fatalf("sweep: %+v, %v; want nothing done", res, err)
	}
	// A set decided over its entries alone is not recorded: only the
	// event's own set is.
	marks, err := h.st.SetMarks("acme", 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if len(marks) != 1 || marks[0].Lo != items[0].Event.Change.HistoryID {
		t.Errorf("set marks %+v, want only the paid set's", marks)
	}
}

// The statuses reference (a status's group) is read at the first poll and
// then at most every statusesTTL; a failed refresh keeps the copy, and
// without one the poll fails rather than guess a group.
func TestStatusGroupsCached(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 11, retries: -1, account: withHooks(t, "complete",
		`changeSet.hasChangedField("status") and changeSet.newValue("status").group.code == "complete"`)})
	id := h.crm.CreateOrder("main", "new")
	h.crm.SetFaults(crmsim.Faults{Endpoint: crmsim.EndpointStatuses, Fail500: 1})
	if err := h.p.Poll(t.Context()); err == nil {
		t.Fatal("a poll without the statuses reference succeeded")
	}
	h.poll()
	h.crm.SetStatus(id, "complete")
	h.clock.Advance(time.Minute)
	h.poll()
	if n := h.crm.Requests(crmsim.EndpointStatuses); n != 2 {
		t.Errorf("%d statuses requests within %v, want 2 (the failed one, then one for every poll after)", n, statusesTTL)
	}
	h.clock.Advance(statusesTTL)
	h.crm.SetFaults(crmsim.Faults{Endpoint: crmsim.EndpointStatuses, Fail500: 1})
	h.crm.SetStatus(id, "new")
	h.crm.SetStatus(id, "complete")
	h.poll() // the refresh fails: the copy stands
	if n := len(h.outboxOf("complete")); n != 2 {
		t.Errorf("%d events into the group complete, want 2", n)
	}
}
