package event

import (
	"encoding/json"
	"testing"
)

func TestEnvelopeFieldNames(t *testing.T) {
	e := Event{
		ID: ID("ghana", 7044), Type: StatusChanged, Account: "ghana",
		Change: Change{HistoryID: 7044, Field: "status", OldValue: "new", NewValue: "approved", Source: "user", CreatedAt: "2018-10-03 11:28:38"},
		Order:  json.RawMessage(`{"id":1}`),
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"ghana-7044","type":"order.status_changed","account":"ghana","change":{"historyId":7044,"field":"status","oldValue":"new","newValue":"approved","source":"user","createdAt":"2018-10-03 11:28:38"},"order":{"id":1}}`
	if string(b) != want {
		t.Fatalf("envelope:\n got %s\nwant %s", b, want)
	}
}
