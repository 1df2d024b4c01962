package store

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// changedEvent is an order.changed event of the set ids (ascending) of
// order 9, for the named webhooks.
func changedEvent(ids []int64, webhooks ...string) NewEvent {
	set := make([]event.SetEntry, len(ids))
	for i, id := range ids {
		set[i] = event.SetEntry{HistoryID: id, Field: "payments.status", OldValue: json.RawMessage(`{"code":"not-paid"}`),
			NewValue: json.RawMessage(`{"code":"paid"}`), Payment: json.RawMessage(`{"id":3}`)}
	}
	return NewEvent{
		Event: event.Event{
			ID: event.ID("acme", ids[0]), Type: event.Changed, Account: "acme",
			Change:    event.Change{HistoryID: ids[0], Source: "user", CreatedAt: "2026-11-23 10:00:00"},
			ChangeSet: set, Source: "user", User: json.RawMessage(`{"id":4}`),
			Order: json.RawMessage(`{"id":9}`),
		},
		OrderID: 9, DetectedAt: t0, Webhooks: webhooks,
	}
}

// An event that names webhooks goes to those only; one that names none to
// every webhook of the commit. An order.changed event whose lowest id is
// a status event's id is still enqueued (its own key space), once: a
// retried commit adds nothing.
func TestCommitRoutesEventsToTheirWebhooks(t *testing.T) {
	s := openTest(t)
	status := newEvents("acme", 10)
	status[0].Webhooks = []string{"plain"}
	evs := append(status, changedEvent([]int64{10, 11}, "paid"), changedEvent([]int64{12}, "paid", "gone"))
	c := Commit{Events: evs, Webhooks: []string{"plain", "paid", "other"}, Cursor: 12, At: t0}
	commit(t, s, "acme", c)
	commit(t, s, "acme", c) // retried: nothing new
	if got := historyIDs(pending(t, s, "acme", "plain")); !slices.Equal(got, []int64{10}) {
		t.Errorf("plain: %v, want [10]", got)
	}
	paid := pending(t, s, "acme", "paid")
	if got := historyIDs(paid); !slices.Equal(got, []int64{10, 12}) {
		t.Errorf("paid: %v, want [10 12]", got)
	}
	if n := len(pending(t, s, "acme", "other")); n != 0 {
		t.Errorf("other: %d events, want none", n)
	}
	// The event record keeps the change set, source and user.
	if want := changedEvent([]int64{10, 11}).Event; !reflect.DeepEqual(paid[0].Event, want) {
		t.Errorf("stored event:\n got %+v\nwant %+v", paid[0].Event, want)
	}
	marks, err := s.SetMarks("acme", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []SetMark{{10, 11, 9}, {12, 12, 9}}; !slices.Equal(marks, want) {
		t.Errorf("set marks %v, want %v", marks, want)
	}
}

// Decided sets without an event are recorded with the commit and pruned
// once the look-back window is wholly above them.
func TestSetMarksRecordedAndPruned(t *testing.T) {
	s := openTest(t)
	commit(t, s, "acme", Commit{Webhooks: []string{"1"}, Cursor: 30, At: t0,
		Sets: []SetMark{{Lo: 5, Hi: 7, OrderID: 1}, {Lo: 8, Hi: 12, OrderID: 2}, {Lo: 20, Hi: 20, OrderID: 3}}})
	commit(t, s, "acme", Commit{Webhooks: []string{"1"}, Cursor: 30, At: t0, Prune: Prune{SeenBelow: 10, Before: t0}})
	marks, err := s.SetMarks("acme", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []SetMark{{8, 12, 2}, {20, 20, 3}}; !slices.Equal(marks, want) {
		t.Errorf("set marks %v, want %v (the window at 10 still reaches into 8-12)", marks, want)
	}
}

// A replayed order.changed event is recorded by its set, so the poll does
// not send it on its own as well; one for a webhook the replay does not
// name is left out.
func TestReplayRecordsSets(t *testing.T) {
	s := openTest(t)
	if err := s.Replay("acme", []string{"paid"}, []NewEvent{changedEvent([]int64{4, 5}, "paid"), changedEvent([]int64{6}, "other")}, t0); err != nil {
		t.Fatal(err)
	}
	if got := historyIDs(pending(t, s, "acme", "paid")); !slices.Equal(got, []int64{4}) {
		t.Errorf("paid: %v, want [4]", got)
	}
	commit(t, s, "acme", Commit{Events: []NewEvent{changedEvent([]int64{4, 5}, "paid")}, Webhooks: []string{"paid"}, Cursor: 6, At: t0})
	if got := historyIDs(pending(t, s, "acme", "paid")); !slices.Equal(got, []int64{4}) {
		t.Errorf("paid after the poll found the set too: %v, want [4] once", got)
	}
}
