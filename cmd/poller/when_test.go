package main

import (
	"bytes"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

func TestChangeText(t *testing.T) {
	set := event.Event{Type: event.Changed, ChangeSet: []event.SetEntry{{Field: "payments.status"}, {Field: "manager"}}}
	for _, tc := range []struct {
		ev   event.Event
		want string
	}{
		{event.Event{Type: event.StatusChanged, Change: event.Change{OldValue: "new", NewValue: "approved"}}, "new -> approved"},
		{event.Event{Type: event.Created, Change: event.Change{NewValue: "approved"}}, "- -> approved"},
		{set, "payments.status, manager"},
	} {
		if got := changeText(tc.ev); got != tc.want {
			t.Errorf("changeText(%s) = %q, want %q", tc.ev.Type, got, tc.want)
		}
	}
	var b bytes.Buffer
	set.ID, set.Change.CreatedAt = "shop-12", "2026-12-05 10:00:00"
	printMatch(&b, store.NewEvent{Event: set, OrderID: 7, Webhooks: []string{"paid", "vip"}}, true)
	if want := "shop-12  2026-12-05 10:00:00  order 7  payments.status, manager  -> paid, vip\n"; b.String() != want {
		t.Errorf("printMatch:\n got %q\nwant %q", b.String(), want)
	}
}
