// Package detect decides, for one order history entry, whether it is a
// transition the account wants an event for. It is pure: no I/O, no clock,
// so the poll job stays the only place with side effects and every rule is
// testable with a table of entries.
//
// RetailCRM records an order's creation as a single entry with
// "created": true, field "status", oldValue null and newValue the initial
// status (the official modules' history fixtures have exactly this shape);
// no separate status entry follows it. One entry yields at most one event,
// keyed by its history id, so a creation is never reported twice: with
// on_create it is an order.created event, without it nothing.
package detect

import (
	"bytes"
	"encoding/json"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// Rules are an account's detection settings.
type Rules struct {
	Account        string
	Statuses       map[string]bool // target status codes
	Sites          map[string]bool // empty: every site
	OnCreate       bool            // report orders created already in a target status
	SkipOwnChanges bool            // ignore entries with apiKey.current == true
}

// NewRules builds the rules of a configured account.
func NewRules(acct config.Account) Rules {
	r := Rules{
		Account:        acct.Name,
		Statuses:       make(map[string]bool, len(acct.Statuses)),
		Sites:          make(map[string]bool, len(acct.Sites)),
		OnCreate:       acct.OnCreate,
		SkipOwnChanges: acct.SkipOwnChanges,
	}
	for _, s := range acct.Statuses {
		r.Statuses[s] = true
	}
	for _, s := range acct.Sites {
		r.Sites[s] = true
	}
	return r
}

// Candidate is a detected transition before its full order is fetched.
type Candidate struct {
	Event      event.Event     // everything but Order and OrderMissing
	OrderID    int64           // the order to fetch with GET /api/v5/orders
	EntryOrder json.RawMessage // the entry's own order: the event's order if the API no longer returns it
}

// Reason says why an entry yields no event, or what was odd about it.
type Reason string

// Reasons. The first group is ordinary filtering; the second is input that
// the API should not send, which the caller logs and counts
// (metrics.HistoryAnomalies, label kind = the reason).
const (
	SkipField    Reason = "field"      // neither a status change nor a creation
	SkipDeleted  Reason = "deleted"    // a deletion entry
	SkipStatus   Reason = "status"     // the new status is not a target
	SkipSite     Reason = "site"       // the order's site is filtered out
	SkipOwn      Reason = "own_change" // made through our own key, skip_own_changes
	SkipOnCreate Reason = "on_create"  // a creation, on_create is off

	AnomalyBadID       Reason = "bad_id"       // history id <= 0
	AnomalyNoOrder     Reason = "no_order"     // entry without an order
	AnomalyBadOrderID  Reason = "bad_order_id" // order id <= 0
	AnomalyNoField     Reason = "no_field"     // entry without a field
	AnomalyStatusValue Reason = "status_value" // status newValue that is not a status code
	AnomalyOldValue    Reason = "old_value"    // status oldValue that is not a status code (event still emitted)
)

// Anomaly reports whether r is odd input rather than ordinary filtering.
func (r Reason) Anomaly() bool {
	switch r {
	case AnomalyBadID, AnomalyNoOrder, AnomalyBadOrderID, AnomalyNoField, AnomalyStatusValue, AnomalyOldValue:
		return true
	}
	return false
}

// Verdict is the outcome for one entry. When Emit is set Candidate is
// valid; otherwise Skip says why. Anomaly, if set, is odd input to log and
// count; it can come with an emitted event (an odd oldValue does not make
// the transition less real).
type Verdict struct {
	Emit      bool
	Candidate Candidate
	Skip      Reason
	Anomaly   Reason
}

// skip is a verdict without an event; anomalies are counted as such.
func skip(r Reason) Verdict {
	v := Verdict{Skip: r}
	if r.Anomaly() {
		v.Anomaly = r
	}
	return v
}

// Detect applies the rules to one history entry.
func Detect(r Rules, e retailcrm.HistoryEntry) Verdict {
	switch {
	case e.ID <= 0:
		return skip(AnomalyBadID)
	case e.Order == nil:
		return skip(AnomalyNoOrder)
	case e.Deleted:
		return skip(SkipDeleted)
	case e.Field == "" && !e.Created:
		return skip(AnomalyNoField)
	case e.Field != "status" && !e.Created:
		return skip(SkipField)
	}

	// The status the entry moved the order into. A creation entry carries
	// it as newValue when its field is "status" (the documented shape); the
	// entry's order is the fallback for other creation shapes.
	status := ""
	if e.Field == "status" {
		status = e.NewValue.Code()
	}
	if status == "" && e.Created {
		status = e.Order.Status
	}
	if status == "" {
		return skip(AnomalyStatusValue)
	}

	switch {
	case !r.Statuses[status]:
		return skip(SkipStatus)
	case len(r.Sites) > 0 && !r.Sites[e.Order.Site]:
		return skip(SkipSite)
	case r.SkipOwnChanges && e.APIKey != nil && e.APIKey.Current:
		return skip(SkipOwn)
	case e.Created && !r.OnCreate:
		return skip(SkipOnCreate)
	case e.Order.ID <= 0:
		return skip(AnomalyBadOrderID)
	}

	v := Verdict{Emit: true}
	typ, old := event.StatusChanged, ""
	if e.Created {
		typ = event.Created
	} else {
		old = e.OldValue.Code()
		if old == "" && !isNull(e.OldValue.Raw) {
			v.Anomaly = AnomalyOldValue
		}
	}
	v.Candidate = Candidate{
		Event: event.Event{
			ID:      event.ID(r.Account, e.ID),
			Type:    typ,
			Account: r.Account,
			Change: event.Change{
				HistoryID: e.ID,
				Field:     "status",
				OldValue:  old,
				NewValue:  status,
				Source:    e.Source,
				CreatedAt: e.CreatedAt,
			},
		},
		OrderID:    e.Order.ID,
		EntryOrder: entryOrderJSON(e.Order),
	}
	return v
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// entryOrderJSON returns the entry's order as sent or, when no raw copy
// was kept, its decoded fields: an event always carries an order object.
func entryOrderJSON(o *retailcrm.EntryOrder) json.RawMessage {
	if !isNull(o.Raw) {
		return o.Raw
	}
	// EntryOrder marshals as its Raw bytes, so copy the fields out. Plain
	// strings and an integer cannot fail to marshal.
	b, _ := json.Marshal(struct {
		ID         int64  `json:"id"`
		ExternalID string `json:"externalId,omitempty"`
		Number     string `json:"number,omitempty"`
		Site       string `json:"site,omitempty"`
		Status     string `json:"status,omitempty"`
	}{o.ID, o.ExternalID, o.Number, o.Site, o.Status})
	return b
}
