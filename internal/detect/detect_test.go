package detect

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// Entries in the shape GET /api/v5/orders/history returns them.
const (
	statusEntry = `{"id": 7044, "createdAt": "2018-10-03 11:28:38", "source": "user", "user": {"id": 12},
		"field": "status", "oldValue": {"code": "new"}, "newValue": {"code": "approved"},
		"order": {"id": 512, "externalId": "ext-512", "managerId": 3, "site": "main", "status": "approved"}}`
	creationEntry = `{"id": 7001, "createdAt": "2018-10-03 11:20:00", "created": true, "source": "user", "user": {"id": 1},
		"field": "status", "oldValue": null, "newValue": {"code": "approved"},
		"order": {"slug": 513, "id": 513, "number": "513A", "site": "shop2", "status": "approved",
		"payments": {"5131": {"id": 5131, "status": "paid"}}, "customFields": []}}`
	apiEntry = `{"id": 7050, "createdAt": "2018-10-03 11:30:00", "source": "api", "apiKey": {"current": true},
		"field": "status", "oldValue": {"code": "new"}, "newValue": {"code": "approved"},
		"order": {"id": 512, "managerId": 3, "site": "main", "status": "approved"}}`
	commentEntry = `{"id": 7060, "createdAt": "2018-10-03 11:31:00", "source": "user", "user": {"id": 12},
		"field": "manager_comment", "oldValue": null, "newValue": "call back",
		"order": {"id": 512, "managerId": 3, "site": "main", "status": "approved"}}`
	itemCreation = `{"id": 7080, "createdAt": "2018-10-03 11:33:00", "created": true, "source": "user", "user": {"id": 12},
		"field": "order_product", "oldValue": null, "newValue": {"id": 90, "offer": {"id": 3, "externalId": "sku-3"}},
		"order": {"id": 512, "managerId": 3, "site": "main", "status": "approved"},
		"item": {"id": 90, "initialPrice": 15, "quantity": 1, "status": "new", "offer": {"id": 3, "externalId": "sku-3"}}}`
	paymentCreation = `{"id": 7081, "createdAt": "2018-10-03 11:34:00", "created": "true", "source": "api", "apiKey": {"current": false},
		"field": "payments", "oldValue": null, "newValue": {"id": 91, "type": "cash"},
		"order": {"id": 512, "managerId": 3, "site": "main", "status": "approved"},
		"payment": {"id": 91, "status": "not-paid", "type": "cash", "amount": 100}}`
	mergedAway = `{"id": 7090, "createdAt": "2018-10-03 11:40:00", "deleted": true, "source": "user", "user": {"id": 12},
		"field": "id", "oldValue": 512, "newValue": null,
		"order": {"id": 512, "managerId": 3, "site": "main", "status": "approved"},
		"combinedTo": {"id": 530, "managerId": 3, "site": "main", "status": "approved"}}`
	deletionEntry = `{"id": 7070, "createdAt": "2018-10-03 11:32:00", "deleted": true, "source": "user", "user": {"id": 12},
		"field": "id", "oldValue": 512, "newValue": null,
		"order": {"id": 512, "managerId": 3, "site": "main", "status": "approved"}}`
)

func decode(t testing.TB, s string) retailcrm.HistoryEntry {
	t.Helper()
	var e retailcrm.HistoryEntry
	if err := json.Unmarshal([]byte(s), &e); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return e
}

// with returns entry s with one top-level key replaced (or removed when v is nil).
func with(t testing.TB, s, key string, v any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		delete(m, key)
	} else {
		m[key] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func rules(mod func(*config.Account)) Rules {
	a := config.Account{Name: "ghana", Statuses: []string{"approved"}, OnCreate: true}
	if mod != nil {
		mod(&a)
	}
	return NewRules(a)
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		rules   Rules
		entry   string
		emit    bool
		typ     event.Type
		change  event.Change
		skip    Reason
		anomaly Reason
	}{
		{
			name: "status into target", rules: rules(nil), entry: statusEntry, emit: true, typ: event.StatusChanged,
			change: event.Change{HistoryID: 7044, Field: "status", OldValue: "new", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:28:38"},
		},
		{
			name: "status into other", rules: rules(nil), skip: SkipStatus,
			entry: with(t, statusEntry, "newValue", map[string]string{"code": "complete"}),
		},
		{
			name: "one of several targets", rules: rules(func(a *config.Account) { a.Statuses = []string{"complete", "approved"} }),
			entry: with(t, statusEntry, "newValue", map[string]string{"code": "complete"}), emit: true, typ: event.StatusChanged,
			change: event.Change{HistoryID: 7044, Field: "status", OldValue: "new", NewValue: "complete", Source: "user", CreatedAt: "2018-10-03 11:28:38"},
		},
		{
			name: "creation in target", rules: rules(nil), entry: creationEntry, emit: true, typ: event.Created,
			change: event.Change{HistoryID: 7001, Field: "status", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:20:00"},
		},
		{
			name: "creation with on_create off", rules: rules(func(a *config.Account) { a.OnCreate = false }),
			entry: creationEntry, skip: SkipOnCreate,
		},
		{
			name: "creation in other status", rules: rules(nil), skip: SkipStatus,
			entry: with(t, creationEntry, "newValue", map[string]string{"code": "new"}),
		},
		{
			// The status set at creation counts, not a later one the order snapshot may show.
			name: "creation status from newValue", rules: rules(nil), skip: SkipStatus,
			entry: with(t, with(t, creationEntry, "newValue", map[string]string{"code": "new"}), "order",
				map[string]any{"id": 513, "site": "main", "status": "approved"}),
		},
		{
			// A customer's creation has this shape; an order's never does.
			name: "creation entry of field id", rules: rules(nil), skip: SkipField,
			entry: with(t, with(t, with(t, creationEntry, "field", "id"), "newValue", 513), "oldValue", nil),
		},
		{
			name: "creation without field", rules: rules(nil), skip: AnomalyNoField, anomaly: AnomalyNoField,
			entry: with(t, creationEntry, "field", nil),
		},
		{
			name: "creation with null newValue takes the order's status", rules: rules(nil), emit: true, typ: event.Created,
			entry:  with(t, creationEntry, "newValue", nil),
			change: event.Change{HistoryID: 7001, Field: "status", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:20:00"},
		},
		{name: "item creation", rules: rules(nil), entry: itemCreation, skip: SkipItem},
		{name: "payment creation", rules: rules(nil), entry: paymentCreation, skip: SkipPayment},
		{
			name: "item creation with field status", rules: rules(nil), skip: SkipItem,
			entry: with(t, creationEntry, "item", map[string]any{"id": 90, "offer": map[string]int{"id": 3}}),
		},
		{
			name: "payment creation with field status", rules: rules(nil), skip: SkipPayment,
			entry: with(t, creationEntry, "payment", map[string]any{"id": 91, "type": "cash"}),
		},
		{
			// PHP's empty array is no item: this is still the order's creation.
			name: "creation with empty item", rules: rules(nil), emit: true, typ: event.Created,
			entry:  with(t, with(t, creationEntry, "item", []any{}), "payment", map[string]any{}),
			change: event.Change{HistoryID: 7001, Field: "status", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:20:00"},
		},
		{
			// An item change (not a creation) in field status is still the order's status.
			name: "status change with an item", rules: rules(nil), emit: true, typ: event.StatusChanged,
			entry:  with(t, statusEntry, "item", map[string]any{"id": 90}),
			change: event.Change{HistoryID: 7044, Field: "status", OldValue: "new", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:28:38"},
		},
		{
			name: "status change by code", rules: rules(func(a *config.Account) { a.SkipOwnChanges = true }), emit: true, typ: event.StatusChanged,
			entry:  with(t, with(t, statusEntry, "source", "code"), "user", nil),
			change: event.Change{HistoryID: 7044, Field: "status", OldValue: "new", NewValue: "approved", Source: "code", CreatedAt: "2018-10-03 11:28:38"},
		},
		{name: "merged away", rules: rules(nil), entry: mergedAway, skip: SkipDeleted},
		{
			name: "site filter passes", rules: rules(func(a *config.Account) { a.Sites = []string{"main", "shop3"} }),
			entry: statusEntry, emit: true, typ: event.StatusChanged,
			change: event.Change{HistoryID: 7044, Field: "status", OldValue: "new", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:28:38"},
		},
		{
			name: "site filter drops", rules: rules(func(a *config.Account) { a.Sites = []string{"shop3"} }),
			entry: statusEntry, skip: SkipSite,
		},
		{
			name: "site filter on creation", rules: rules(func(a *config.Account) { a.Sites = []string{"main"} }),
			entry: creationEntry, skip: SkipSite,
		},
		{
			name: "own change skipped", rules: rules(func(a *config.Account) { a.SkipOwnChanges = true }),
			entry: apiEntry, skip: SkipOwn,
		},
		{
			name: "own change kept by default", rules: rules(nil), entry: apiEntry, emit: true, typ: event.StatusChanged,
			change: event.Change{HistoryID: 7050, Field: "status", OldValue: "new", NewValue: "approved", Source: "api", CreatedAt: "2018-10-03 11:30:00"},
		},
		{
			name: "other integration's change kept", rules: rules(func(a *config.Account) { a.SkipOwnChanges = true }),
			entry: with(t, apiEntry, "apiKey", map[string]bool{"current": false}), emit: true, typ: event.StatusChanged,
			change: event.Change{HistoryID: 7050, Field: "status", OldValue: "new", NewValue: "approved", Source: "api", CreatedAt: "2018-10-03 11:30:00"},
		},
		{name: "other field", rules: rules(nil), entry: commentEntry, skip: SkipField},
		{name: "deletion", rules: rules(nil), entry: deletionEntry, skip: SkipDeleted},
		{name: "no order", rules: rules(nil), entry: with(t, statusEntry, "order", nil), skip: AnomalyNoOrder, anomaly: AnomalyNoOrder},
		{name: "order []", rules: rules(nil), entry: with(t, statusEntry, "order", []any{}), skip: AnomalyOrderNotObject, anomaly: AnomalyOrderNotObject},
		{name: "order a string", rules: rules(nil), entry: with(t, statusEntry, "order", "512"), skip: AnomalyOrderNotObject, anomaly: AnomalyOrderNotObject},
		{name: "order without id", rules: rules(nil), entry: with(t, statusEntry, "order", map[string]string{"site": "main"}), skip: AnomalyBadOrderID, anomaly: AnomalyBadOrderID},
		{
			// Odd input is counted even where the rules would pass over the entry.
			name: "comment with order []", rules: rules(nil), entry: with(t, commentEntry, "order", []any{}),
			skip: AnomalyOrderNotObject, anomaly: AnomalyOrderNotObject,
		},
		{name: "entry without id", rules: rules(nil), entry: with(t, statusEntry, "id", nil), skip: AnomalyBadID, anomaly: AnomalyBadID},
		{name: "entry with id x", rules: rules(nil), entry: with(t, statusEntry, "id", "x"), skip: AnomalyBadID, anomaly: AnomalyBadID},
		{name: "null order", rules: rules(nil), entry: `{"id": 5, "field": "status", "newValue": {"code": "approved"}, "order": null}`, skip: AnomalyNoOrder, anomaly: AnomalyNoOrder},
		{name: "no field", rules: rules(nil), entry: with(t, statusEntry, "field", nil), skip: AnomalyNoField, anomaly: AnomalyNoField},
		{name: "numeric status", rules: rules(nil), entry: with(t, statusEntry, "newValue", 7), skip: AnomalyStatusValue, anomaly: AnomalyStatusValue},
		{name: "null status", rules: rules(nil), entry: with(t, statusEntry, "newValue", nil), skip: AnomalyStatusValue, anomaly: AnomalyStatusValue},
		{name: "list status", rules: rules(nil), entry: with(t, statusEntry, "newValue", []string{"approved"}), skip: AnomalyStatusValue, anomaly: AnomalyStatusValue},
		{name: "object without code", rules: rules(nil), entry: with(t, statusEntry, "newValue", map[string]int{"id": 2}), skip: AnomalyStatusValue, anomaly: AnomalyStatusValue},
		{
			name: "status as plain string", rules: rules(nil), entry: with(t, statusEntry, "newValue", "approved"), emit: true, typ: event.StatusChanged,
			change: event.Change{HistoryID: 7044, Field: "status", OldValue: "new", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:28:38"},
		},
		{
			name: "odd oldValue still emits", rules: rules(nil), entry: with(t, statusEntry, "oldValue", 42), emit: true, typ: event.StatusChanged,
			anomaly: AnomalyOldValue,
			change:  event.Change{HistoryID: 7044, Field: "status", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:28:38"},
		},
		{
			name: "null oldValue is fine", rules: rules(nil), entry: with(t, statusEntry, "oldValue", nil), emit: true, typ: event.StatusChanged,
			change: event.Change{HistoryID: 7044, Field: "status", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:28:38"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := decode(t, tt.entry)
			v := Detect(tt.rules, e)
			if v.Emit != tt.emit || v.Skip != tt.skip || v.Anomaly != tt.anomaly {
				t.Fatalf("Detect = emit %v skip %q anomaly %q, want emit %v skip %q anomaly %q",
					v.Emit, v.Skip, v.Anomaly, tt.emit, tt.skip, tt.anomaly)
			}
			if !tt.emit {
				if v.Candidate.Event.ID != "" {
					t.Errorf("skipped entry has a candidate %+v", v.Candidate)
				}
				return
			}
			c := v.Candidate
			if want := event.ID("ghana", e.ID); c.Event.ID != want || c.Event.Account != "ghana" {
				t.Errorf("id %q account %q, want %q ghana", c.Event.ID, c.Event.Account, want)
			}
			if c.Event.Type != tt.typ {
				t.Errorf("type %q, want %q", c.Event.Type, tt.typ)
			}
			if c.Event.Change != tt.change {
				t.Errorf("change %+v, want %+v", c.Event.Change, tt.change)
			}
			if c.OrderID != e.Order.ID {
				t.Errorf("order id %d, want %d", c.OrderID, e.Order.ID)
			}
			if c.Event.Order != nil || c.Event.OrderMissing {
				t.Errorf("candidate already has an order")
			}
			var fromEntry, sent map[string]any
			var whole map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tt.entry), &whole); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(whole["order"], &sent); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(c.EntryOrder, &fromEntry); err != nil {
				t.Fatalf("entry order %s: %v", c.EntryOrder, err)
			}
			if len(fromEntry) != len(sent) {
				t.Errorf("entry order %s, want the order as sent %s", c.EntryOrder, whole["order"])
			}
		})
	}
}

// Negative ids can only come from entries built in Go (the decoder reads
// them as 0); Detect must still refuse them.
func TestDetectBadIDs(t *testing.T) {
	tests := []struct {
		name          string
		id, orderID   int64
		status        string
		skip, anomaly Reason
	}{
		{"zero id", 0, 512, "approved", AnomalyBadID, AnomalyBadID},
		{"negative id", -3, 512, "approved", AnomalyBadID, AnomalyBadID},
		{"zero order id", 7044, 0, "approved", AnomalyBadOrderID, AnomalyBadOrderID},
		{"negative order id", 7044, -1, "approved", AnomalyBadOrderID, AnomalyBadOrderID},
		{"zero order id, other status", 7044, 0, "new", AnomalyBadOrderID, AnomalyBadOrderID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := decode(t, with(t, statusEntry, "newValue", tt.status))
			e.ID, e.Order.ID = tt.id, tt.orderID
			v := Detect(rules(nil), e)
			if v.Emit || v.Skip != tt.skip || v.Anomaly != tt.anomaly {
				t.Fatalf("Detect = %+v, want skip %q anomaly %q", v, tt.skip, tt.anomaly)
			}
		})
	}
}

// An entry built in Go (no raw bytes) still yields an order object.
func TestDetectEntryOrderWithoutRaw(t *testing.T) {
	e := retailcrm.HistoryEntry{
		ID: 9, Field: "status", NewValue: retailcrm.Value{Raw: json.RawMessage(`{"code":"approved"}`)},
		Order: &retailcrm.EntryOrder{ID: 77, Site: "main", Status: "approved"},
	}
	v := Detect(rules(nil), e)
	if !v.Emit {
		t.Fatalf("not emitted: %+v", v)
	}
	var o struct {
		ID     int64  `json:"id"`
		Site   string `json:"site"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(v.Candidate.EntryOrder, &o); err != nil || o.ID != 77 || o.Site != "main" || o.Status != "approved" {
		t.Fatalf("entry order %s (%v)", v.Candidate.EntryOrder, err)
	}
}

func TestNewRules(t *testing.T) {
	r := NewRules(config.Account{Name: "a", Statuses: []string{"approved", "complete"}, Sites: []string{"s1"}, OnCreate: true, SkipOwnChanges: true})
	if r.Account != "a" || !r.Statuses["approved"] || !r.Statuses["complete"] || r.Statuses["new"] ||
		!r.Sites["s1"] || len(r.Sites) != 1 || !r.OnCreate || !r.SkipOwnChanges {
		t.Fatalf("NewRules = %+v", r)
	}
	if r := NewRules(config.Account{Name: "a"}); len(r.Sites) != 0 || len(r.Statuses) != 0 {
		t.Fatalf("empty account: %+v", r)
	}
}

func TestReasonAnomaly(t *testing.T) {
	for _, r := range []Reason{SkipField, SkipDeleted, SkipItem, SkipPayment, SkipStatus, SkipSite, SkipOwn, SkipOnCreate} {
		if r.Anomaly() {
			t.Errorf("%q counted as an anomaly", r)
		}
	}
	kinds := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	for _, r := range []Reason{AnomalyBadID, AnomalyNoOrder, AnomalyOrderNotObject, AnomalyBadOrderID, AnomalyNoField, AnomalyStatusValue, AnomalyOldValue} {
		if !r.Anomaly() || !kinds.MatchString(string(r)) {
			t.Errorf("%q not counted as an anomaly, or not a snake_case kind", r)
		}
	}
}

// TestOddPage: one page with every kind of odd entry among good ones. The
// good entries give their events, the odd ones none, each with its kind,
// and no creation is invented from an item or a payment.
func TestOddPage(t *testing.T) {
	const page = `{"success": true, "history": [
		{"id": 10, "created": true, "source": "user", "field": "status", "oldValue": null, "newValue": {"code": "approved"},
		 "order": {"id": 1, "site": "main", "status": "approved"}},
		{"id": 11, "source": "user", "field": "status", "oldValue": {"code": "new"}, "newValue": {"code": "approved"}, "order": []},
		{"id": 12, "source": "user", "field": "status", "oldValue": {"code": "new"}, "newValue": {"code": "approved"}, "order": null},
		{"id": 13, "source": "user", "field": "status", "oldValue": {"code": "new"}, "newValue": {"code": "approved"},
		 "order": {"externalId": "x-13", "site": "main", "status": "approved"}},
		{"id": 14, "created": true, "source": "user", "field": "order_product", "oldValue": null,
		 "newValue": {"id": 70, "offer": {"id": 5}}, "order": {"id": 2, "site": "main", "status": "approved"},
		 "item": {"id": 70, "offer": {"id": 5}, "quantity": 1}},
		{"id": 15, "created": true, "source": "api", "apiKey": {"current": false}, "field": "payments", "oldValue": null,
		 "newValue": {"id": 71, "type": "cash"}, "order": {"id": 2, "site": "main", "status": "approved"},
		 "payment": {"id": 71, "type": "cash", "status": "paid", "amount": 10}},
		{"id": 16, "source": "code", "field": "status", "oldValue": {"code": "new"}, "newValue": {"code": "approved"},
		 "order": {"id": 3, "site": "main", "status": "approved"}},
		{"id": 17, "source": "user", "field": "status", "oldValue": {"code": "new"}, "newValue": 7,
		 "order": {"id": 4, "site": "main", "status": "approved"}},
		{"id": "x", "source": "user", "field": "status", "newValue": {"code": "approved"}, "order": {"id": 5}},
		"not an entry",
		{"id": 20, "source": "user", "field": "status", "oldValue": {"code": "approved"}, "newValue": {"code": "approved"},
		 "order": {"id": 6, "site": "main", "status": "approved"}}
	]}`
	var p retailcrm.HistoryPage
	if err := json.Unmarshal([]byte(page), &p); err != nil {
		t.Fatal(err)
	}
	var events []string
	anomalies := map[int]Reason{}
	for i, e := range p.History {
		v := Detect(rules(nil), e)
		if v.Emit {
			events = append(events, fmt.Sprintf("%d %s %d", e.ID, v.Candidate.Event.Type, v.Candidate.OrderID))
		}
		if v.Anomaly != "" {
			anomalies[i] = v.Anomaly
		}
	}
	if want := []string{"10 order.created 1", "16 order.status_changed 3", "20 order.status_changed 6"}; !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
	want := map[int]Reason{1: AnomalyOrderNotObject, 2: AnomalyNoOrder, 3: AnomalyBadOrderID, 7: AnomalyStatusValue, 8: AnomalyBadID, 9: AnomalyBadID}
	if !maps.Equal(anomalies, want) {
		t.Errorf("anomalies by position %v, want %v", anomalies, want)
	}
}

// FuzzDetect feeds arbitrary entries through the client's decoder and the
// rules: Detect never panics and an emitted event is always consistent.
func FuzzDetect(f *testing.F) {
	for _, s := range []string{statusEntry, creationEntry, apiEntry, commentEntry, deletionEntry,
		`{"id": 1, "field": "status", "newValue": {"code": {"code": "approved"}}, "order": {"id": 1}}`,
		`{"id": 1, "created": true, "field": "status", "newValue": null, "order": {"id": 1, "status": "approved"}}`,
		`{"id": "2", "field": "status", "oldValue": [], "newValue": "approved", "order": {"id": "3", "site": 4}}`,
		`{"id": 5, "field": "status", "newValue": "approved", "apiKey": {"current": "1"}, "order": {"id": 6, "site": "main"}}`,
		`{"id": 5, "created": "true", "deleted": 1, "field": "status", "newValue": "approved", "order": {"id": 6}}`,
		`{"id": 5, "field": "status", "oldValue": {"code": null}, "newValue": {"code": 7}, "order": {"id": 6, "status": {"code": "approved"}}}`,
		itemCreation, paymentCreation, mergedAway,
		`{"id": 5, "field": "status", "newValue": "approved", "order": []}`,
		`{"id": 5, "field": "status", "newValue": "approved", "order": {"id": 0, "site": "main"}}`,
		`{"id": 5, "created": true, "field": "status", "newValue": "approved", "order": {"id": 6}, "item": [], "payment": {}}`,
		`{"id": 5, "created": true, "field": "status", "newValue": "approved", "order": {"id": 6}, "item": 0}`,
		`{"id": 5, "source": "code", "field": "status", "newValue": {"code": "approved"}, "order": {"id": 6}, "ancestor": {"id": 2}}`,
		`"x"`, `7`, `[]`,
	} {
		f.Add([]byte(s))
	}
	all := []Rules{
		rules(nil),
		rules(func(a *config.Account) { a.Sites = []string{"main"}; a.SkipOwnChanges = true; a.OnCreate = false }),
		rules(func(a *config.Account) { a.Statuses = []string{"new", "approved", "7"}; a.Sites = []string{"", "4"} }),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var e retailcrm.HistoryEntry
		if json.Unmarshal(data, &e) != nil {
			return
		}
		for _, r := range all {
			v := Detect(r, e)
			if v.Emit == (v.Skip != "") {
				t.Fatalf("emit %v with skip %q", v.Emit, v.Skip)
			}
			if v.Skip.Anomaly() && v.Anomaly != v.Skip {
				t.Fatalf("anomalous skip %q not reported as anomaly %q", v.Skip, v.Anomaly)
			}
			if !v.Emit {
				continue
			}
			c := v.Candidate
			if c.Event.Change.HistoryID != e.ID || e.ID <= 0 || c.OrderID <= 0 || c.Event.ID != event.ID(r.Account, e.ID) {
				t.Fatalf("inconsistent candidate %+v for entry %d", c, e.ID)
			}
			if !r.Statuses[c.Event.Change.NewValue] {
				t.Fatalf("emitted status %q not a target", c.Event.Change.NewValue)
			}
			if !json.Valid(c.EntryOrder) {
				t.Fatalf("entry order is not JSON: %q", c.EntryOrder)
			}
			switch {
			case c.Event.Account != r.Account || c.OrderID != e.Order.ID:
				t.Fatalf("event %+v for account %q, order %d", c.Event, r.Account, e.Order.ID)
			case e.Deleted:
				t.Fatal("event for a deletion entry")
			case len(r.Sites) > 0 && !r.Sites[e.Order.Site]:
				t.Fatalf("event for site %q outside %v", e.Order.Site, r.Sites)
			case r.SkipOwnChanges && e.APIKey != nil && e.APIKey.Current:
				t.Fatal("event for our own change with skip_own_changes")
			case (c.Event.Type == event.Created) != e.Created || e.Created && !r.OnCreate:
				t.Fatalf("event type %q for created=%v, on_create=%v", c.Event.Type, e.Created, r.OnCreate)
			case e.Field != "status":
				t.Fatalf("event from field %q", e.Field)
			case e.Created && (e.Item != nil || e.Payment != nil):
				t.Fatal("order.created from an item or payment creation")
			case e.Order.NotObject || e.Order.ID <= 0:
				t.Fatalf("event for an odd order %+v", e.Order)
			}
		}
	})
}
