package detect

import (
	"encoding/json"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

func entry(t *testing.T, src string) retailcrm.HistoryEntry {
	t.Helper()
	var e retailcrm.HistoryEntry
	if err := json.Unmarshal([]byte(src), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSameSet(t *testing.T) {
	base := `{"id": 10, "createdAt": "2026-12-01 10:00:00", "source": "user", "user": {"id": 4}, "field": "status", "order": {"id": 5, "site": "s1"}}`
	tests := []struct {
		name, next string
		same       bool
	}{
		{"same save", `{"id": 11, "createdAt": "2026-12-01 10:00:00", "source": "user", "user": {"id": 4}, "field": "manager", "order": {"id": 5}}`, true},
		{"other order", `{"id": 11, "createdAt": "2026-12-01 10:00:00", "source": "user", "user": {"id": 4}, "field": "manager", "order": {"id": 6}}`, false},
		{"other second", `{"id": 11, "createdAt": "2026-12-01 10:00:01", "source": "user", "user": {"id": 4}, "field": "manager", "order": {"id": 5}}`, false},
		{"other source", `{"id": 11, "createdAt": "2026-12-01 10:00:00", "source": "api", "user": {"id": 4}, "field": "manager", "order": {"id": 5}}`, false},
		{"other user", `{"id": 11, "createdAt": "2026-12-01 10:00:00", "source": "user", "user": {"id": 9}, "field": "manager", "order": {"id": 5}}`, false},
		{"another key", `{"id": 11, "createdAt": "2026-12-01 10:00:00", "source": "user", "user": {"id": 4}, "apiKey": {"current": false}, "field": "manager", "order": {"id": 5}}`, false},
	}
	a := entry(t, base)
	for _, tc := range tests {
		b := entry(t, tc.next)
		if got := SameSet(&a, &b); got != tc.same {
			t.Errorf("%s: SameSet = %v, want %v", tc.name, got, tc.same)
		}
	}
	for _, odd := range []string{`{"id": 0, "order": {"id": 5}}`, `{"id": 3, "order": []}`, `{"id": 3}`, `{"id": 3, "order": {"site": "x"}}`} {
		if e := entry(t, odd); Groupable(&e) {
			t.Errorf("%s is groupable", odd)
		}
	}
}

func TestSetCandidate(t *testing.T) {
	set := []retailcrm.HistoryEntry{
		entry(t, `{"id": 20, "createdAt": "2026-12-01 10:00:00", "created": true, "source": "user", "user": {"id": 4}, "field": "payments", "newValue": {"id": 3}, "payment": {"id": 3, "type": "cash"}, "order": {"id": 5, "site": "s1"}}`),
		entry(t, `{"id": 21, "createdAt": "2026-12-01 10:00:00", "source": "user", "user": {"id": 4}, "field": "payments.status", "oldValue": {"code": "not-paid"}, "newValue": {"code": "paid"}, "payment": {"id": 3}, "order": {"id": 5, "site": "s1"}}`),
	}
	c := SetCandidate("ghana", set)
	ev := c.Event
	if ev.ID != "ghana-20" || ev.Type != event.Changed || ev.Change.HistoryID != 20 || ev.Source != "user" ||
		string(ev.User) != `{"id":4}` || c.OrderID != 5 || len(ev.ChangeSet) != 2 {
		t.Fatalf("candidate %+v", c)
	}
	if e := ev.ChangeSet[0]; !e.Created || string(e.OldValue) != "null" || string(e.Payment) != `{"id": 3, "type": "cash"}` {
		t.Errorf("first entry %+v", e)
	}
	if e := ev.ChangeSet[1]; e.HistoryID != 21 || string(e.NewValue) != `{"code": "paid"}` {
		t.Errorf("second entry %+v", e)
	}
	if r := SetFilter(Rules{Sites: map[string]bool{"s2": true}}, set); r != SkipSite {
		t.Errorf("SetFilter with another site = %q, want %q", r, SkipSite)
	}
	if r := SetFilter(Rules{}, set); r != "" {
		t.Errorf("SetFilter = %q, want none", r)
	}
}
