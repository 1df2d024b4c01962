package poll

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// decide evaluates every condition over the entries: a verdict reached
// without the order is final, one that reaches the order waits for it.
func TestDecideWithoutOrder(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 13, account: withHooks(t,
		"status-first", `changeSet.hasChangedField("status") and changeSet.newValue("status").code == "approved" and order.orderType.code == "eshop-legal"`,
		"order-first", `order.orderType.code == "eshop-legal" and changeSet.hasChangedField("status")`,
		"or", `changeSet.hasChangedField("status") or order.site == "main"`,
		"bare", `changeSet.newValue("status").code == "approved"`,
	)})
	set := func(field, oldV, newV string) []retailcrm.HistoryEntry {
		var s []retailcrm.HistoryEntry
		js := fmt.Sprintf(`[{"id": 7, "createdAt": "2026-12-01 10:00:00", "source": "user", "field": %q, "oldValue": %s, "newValue": %s, "order": {"id": 3, "site": "main"}}]`, field, oldV, newV)
		if err := json.Unmarshal([]byte(js), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name           string
		set            []retailcrm.HistoryEntry
		matched, later []string
		anomalies      float64
	}{
		// A comment: the first change-set part of status-first is false,
		// or's left side is false so it reads the order, bare fails.
		{"comment", set("manager_comment", `null`, `"call"`), nil, []string{"order-first", "or"}, 1},
		{"approved", set("status", `{"code": "new"}`, `{"code": "approved"}`), []string{"or", "bare"}, []string{"status-first", "order-first"}, 0},
		{"complete", set("status", `{"code": "new"}`, `{"code": "complete"}`), []string{"or"}, []string{"order-first"}, 0},
	} {
		before := testutil.ToFloat64(h.m.HistoryAnomalies.WithLabelValues("acme", anomalyCondition))
		sc, ok := h.p.decide(tc.set, statusGroups{})
		var later []string
		for _, l := range sc.later {
			later = append(later, l.name)
		}
		if !ok || !slices.Equal(sc.matched, tc.matched) || !slices.Equal(later, tc.later) {
			t.Errorf("%s: %v, matched %q, later %q; want matched %q, later %q", tc.name, ok, sc.matched, later, tc.matched, tc.later)
		}
		if n := testutil.ToFloat64(h.m.HistoryAnomalies.WithLabelValues("acme", anomalyCondition)) - before; n != tc.anomalies {
			t.Errorf("%s: %v condition_error anomalies, want %v", tc.name, n, tc.anomalies)
		}
	}
}

// A condition over the order whose change-set part is false for a set
// decides it without an orders request, and does not record it.
func TestConditionOverOrderDecidedFromEntries(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 12, account: func(a *config.Account) {
		a.Statuses = []string{"complete"} // the status webhook finds nothing here
		withHooks(t, "main-status", `changeSet.hasChangedField("status") and order.site == "main"`)(a)
	}})
	id := h.crm.CreateOrder("main", "new")
	h.poll()
	_, before := h.requests()
	for i := range 50 {
		h.crm.SetField(id, "manager_comment", nil, fmt.Sprint("call ", i))
	}
	h.poll()
	if _, after := h.requests(); after != before {
		t.Errorf("%d orders requests for sets without a status change, want 0", after-before)
	}
	h.crm.SetStatus(id, "approved")
	h.poll()
	if _, after := h.requests(); after != before+1 {
		t.Errorf("%d orders requests for one status change, want 1", after-before)
	}
	if n := len(h.outboxOf("main-status")); n != 2 {
		t.Errorf("%d events, want 2 (the creation and the status change)", n)
	}
	// Only the events' sets are recorded: the comments were decided from
	// their entries.
	if marks, err := h.st.SetMarks("acme", 0, 1<<62); err != nil || len(marks) != 2 {
		t.Errorf("set marks %+v, %v; want the two events' sets", marks, err)
	}
}

// A condition that reads the order before its change-set part needs the
// order for every set, and records every set it decided with it.
func TestConditionReadingOrderFirstFetchesIt(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 14, account: func(a *config.Account) {
		a.Statuses = []string{"complete"}
		withHooks(t, "main-status", `order.site == "main" and changeSet.hasChangedField("status")`)(a)
	}})
	id := h.crm.CreateOrder("main", "new")
	h.poll()
	_, before := h.requests()
	marksBefore, err := h.st.SetMarks("acme", 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		h.crm.SetField(id, "manager_comment", nil, fmt.Sprint("call ", i))
	}
	h.poll()
	if _, after := h.requests(); after != before+1 {
		t.Errorf("%d orders requests for 50 sets that need the order, want 1", after-before)
	}
	if n := len(h.outboxOf("main-status")); n != 1 {
		t.Errorf("%d events, want 1 (the creation)", n)
	}
	marks, err := h.st.SetMarks("acme", 0, 1<<62)
	if err != nil || len(marks)-len(marksBefore) != 50 {
		t.Errorf("%d set marks recorded for the comments, %v; want 50", len(marks)-len(marksBefore), err)
	}
}
