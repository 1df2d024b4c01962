// Package event defines the event the poller detects in an account's order
// history and delivers to webhooks. Its JSON form is the default webhook body
// (docs/REFERENCE.md, "The event"), so field names are part of the contract.
package event

import (
	"encoding/json"
	"strconv"
)

// Type is the kind of transition an event reports.
type Type string

// Event types.
const (
	StatusChanged Type = "order.status_changed" // status changed into a target status
	Created       Type = "order.created"        // order created already in a target status
	Test          Type = "poller.test"          // the synthetic event of poller send-test, never a real change
	Changed       Type = "order.changed"        // a change set for which a webhook's `when` holds
)

// Change describes the history entry that produced the event.
type Change struct {
	HistoryID int64  `json:"historyId"`
	Field     string `json:"field"`
	OldValue  string `json:"oldValue"`
	NewValue  string `json:"newValue"`
	Source    string `json:"source"`
	CreatedAt string `json:"createdAt"` // as RetailCRM wrote it: "2006-01-02 15:04:05", account time zone
}

// SetEntry is one history entry of a change set, its values as the
// history wrote them (a reference value is an object with a code; absent is
// null). Payment and Item are the payment or order item the entry is about.
type SetEntry struct {
	HistoryID int64           `json:"historyId"`
	Field     string          `json:"field"`
	OldValue  json.RawMessage `json:"oldValue"`
	NewValue  json.RawMessage `json:"newValue"`
	Created   bool            `json:"created"`
	Deleted   bool            `json:"deleted"`
	Payment   json.RawMessage `json:"payment,omitempty"`
	Item      json.RawMessage `json:"item,omitempty"`
}

// Event is one detected transition. Order is the full order exactly as
// GET /api/v5/orders returned it, or the history entry's order when the API
// no longer returns it (OrderMissing).
//
// An order.changed event also carries its change set (ChangeSet, in
// history id order), the set's Source and User ({"id": N} for a user's
// change, absent otherwise); its Change holds the set's lowest history id,
// createdAt and source, with field, oldValue and newValue empty. The three
// are left out of the status events, which keep their form.
type Event struct {
	ID           string          `json:"id"`
	Type         Type            `json:"type"`
	Account      string          `json:"account"`
	Change       Change          `json:"change"`
	ChangeSet    []SetEntry      `json:"changeSet,omitempty"`
	Source       string          `json:"source,omitempty"`
	User         json.RawMessage `json:"user,omitempty"`
	Order        json.RawMessage `json:"order"`
	OrderMissing bool            `json:"orderMissing,omitempty"`
}

// ID returns the stable event id for a history entry: "<account>-<historyId>".
func ID(account string, historyID int64) string {
	return account + "-" + strconv.FormatInt(historyID, 10)
}
