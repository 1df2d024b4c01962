package deliver

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// changedEvent is an order.changed event: a payment paid and a delivery
// city set in one save.
func changedEvent() event.Event {
	return event.Event{
		ID: "ghana-7050", Type: event.Changed, Account: "ghana",
		Change: event.Change{HistoryID: 7050, Source: "user", CreatedAt: "2026-11-23 10:00:00"},
		ChangeSet: []event.SetEntry{
			{HistoryID: 7050, Field: "payments.status", OldValue: json.RawMessage(`{"code":"not-paid"}`),
				NewValue: json.RawMessage(`{"code":"paid"}`), Payment: json.RawMessage(`{"id":31,"type":"cash"}`)},
			{HistoryID: 7051, Field: "delivery_address.city", OldValue: json.RawMessage(`null`), NewValue: json.RawMessage(`"Kumasi"`)},
		},
		Source: "user", User: json.RawMessage(`{"id":12}`),
		Order: json.RawMessage(`{"id":4242,"totalSumm":1500.5}`),
	}
}

// The JSON envelope of order.changed carries the set, source and user;
// form, query and template formats see them as changeSet, source and user.
func TestRenderChangeSet(t *testing.T) {
	ev := changedEvent()
	r, err := Render(config.Webhook{}, ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"ghana-7050","type":"order.changed","account":"ghana",` +
		`"change":{"historyId":7050,"field":"","oldValue":"","newValue":"","source":"user","createdAt":"2026-11-23 10:00:00"},` +
		`"changeSet":[{"historyId":7050,"field":"payments.status","oldValue":{"code":"not-paid"},"newValue":{"code":"paid"},"created":false,"deleted":false,"payment":{"id":31,"type":"cash"}},` +
		`{"historyId":7051,"field":"delivery_address.city","oldValue":null,"newValue":"Kumasi","created":false,"deleted":false}],` +
		`"source":"user","user":{"id":12},"order":{"id":4242,"totalSumm":1500.5}}`
	if string(r.Body) != want {
		t.Errorf("envelope:\n got %s\nwant %s", r.Body, want)
	}

	form := config.Webhook{Format: FormatForm, Params: params(t,
		"field", "{{ changeSet.0.field }}",
		"paid", "{{ changeSet.0.newValue.code }}",
		"payment", "{{ changeSet.0.payment.id }}",
		"city", "{{ changeSet.1.newValue }}",
		"by", "{{ source }}:{{ user.id }}",
		"type", "{{ event.type }}",
		"order", "{{ order.id }}")}
	r, err = Render(form, ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"field": "payments.status", "paid": "paid", "payment": "31", "city": "Kumasi",
		"by": "user:12", "type": "order.changed", "order": "4242"} {
		if got.Get(k) != v {
			t.Errorf("param %s = %q, want %q (body %s)", k, got.Get(k), v, r.Body)
		}
	}

	tpl := config.Webhook{Format: FormatTemplate, Body: mustTmpl(t, `{"set": {{ changeSet|json_encode }}, "n": "{{ changeSet.1.historyId }}"}`)}
	r, err = Render(tpl, ev)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Set []map[string]any `json:"set"`
		N   string           `json:"n"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Set) != 2 || body.N != "7051" {
		t.Errorf("template body %s: %v", r.Body, err)
	}
}

// Status events keep their template context: no changeSet, source or user.
func TestStatusTemplateDataUnchanged(t *testing.T) {
	data, err := TemplateData(testEvent("ghana", 7044, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"changeSet", "source", "user"} {
		if _, ok := data[k]; ok {
			t.Errorf("status event's template data has %s", k)
		}
	}
}
