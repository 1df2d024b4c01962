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

// Event is one detected transition. Order is the full order exactly as
// GET /api/v5/orders returned it, or the history entry's order when the API
// no longer returns it (OrderMissing).
type Event struct {
	ID           string          `json:"id"`
	Type         Type            `json:"type"`
	Account      string          `json:"account"`
	Change       Change          `json:"change"`
	Order        json.RawMessage `json:"order"`
	OrderMissing bool            `json:"orderMissing,omitempty"`
}

// ID returns the stable event id for a history entry: "<account>-<historyId>".
func ID(account string, historyID int64) string {
	return account + "-" + strconv.FormatInt(historyID, 10)
}
