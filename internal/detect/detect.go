// Package detect decides, for one order history entry, whether it is a
// transition the account wants an event for. It is pure: no I/O, no clock,
// so the poll job stays the only place with side effects and every rule is
// testable with a table of entries.
//
// Order creation. RetailCRM records an order's creation as a single entry
// with "created": true, field "status", oldValue null and newValue the
// initial status (the official clients' and modules' samples all have this
// shape); no separate status entry follows it. Only that entry is the
// order's own creation. An entry with "created": true about an order item
// (field order_product, with an "item" object) or a payment (with a
// "payment" object) is a creation inside an existing order: ordinary
// filtering, never an event. One entry yields at most one event, keyed by
// its history id, so a creation is never reported twice: with on_create it
// is an order.created event, without it nothing. (That an order has only
// one creation across polls is the poll's concern.)
//
// Status changes by any source count alike: user, api, and "code" (changes
// RetailCRM makes itself, e.g. by triggers); skip_own_changes skips only
// entries with apiKey.current == true.
//
// Merged orders. When order A is merged into order B ("combine"), A is
// deleted: its history gets a deletion entry carrying "combinedTo" (B), and
// the entries that move A's items into B may carry "ancestor" (A). A
// transition of A into a target status before the merge was real and is
// emitted once, under its own history id, like any other (if A is already
// gone when the poll fetches orders, the event carries the order as the
// entry has it). The merge itself emits nothing: the deletion entry is
// skipped and item entries are ordinary filtering; only a status entry of
// B into a target status, made by the merge, is a transition of B and is
// emitted as such.
//
// Odd entries. Input the API should not send gives a Verdict with an
// Anomaly and no event; the caller logs it with the history id and counts
// it in poller_history_anomalies_total{kind}. The good entries of the same
// page are unaffected. The kinds:
//
//	bad_id            the entry's own history id is missing or not a
//	                  positive integer (or the entry is not an object);
//	                  the poll must not move past it
//	no_order          "order" is absent or null
//	order_not_object  "order" is [] (PHP's empty array), a list or a scalar
//	bad_order_id      the order has no positive id
//	no_field          an entry without a field
//	status_value      a status newValue that is not a status code (a
//	                  number, a list, an object without "code", ...)
//	old_value         a status oldValue that is not a status code; the
//	                  event is still emitted, without oldValue
package detect

import (
	"bytes"
	"encoding/json"
	"slices"

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
// (metrics.HistoryAnomalies, label kind = the reason; see the package
// comment).
const (
	SkipField    Reason = "field"      // neither a status change nor the order's creation
	SkipDeleted  Reason = "deleted"    // a deletion entry (merged orders' included)
	SkipItem     Reason = "item"       // the creation of an order item ("created" with "item")
	SkipPayment  Reason = "payment"    // the creation of a payment ("created" with "payment")
	SkipStatus   Reason = "status"     // the new status is not a target
	SkipSite     Reason = "site"       // the order's site is filtered out
	SkipOwn      Reason = "own_change" // made through our own key, skip_own_changes
	SkipOnCreate Reason = "on_create"  // a creation, on_create is off

	AnomalyBadID          Reason = "bad_id"           // history id <= 0
	AnomalyNoOrder        Reason = "no_order"         // order absent or null
	AnomalyOrderNotObject Reason = "order_not_object" // order [], a list or a scalar
	AnomalyBadOrderID     Reason = "bad_order_id"     // order id <= 0
	AnomalyNoField        Reason = "no_field"         // entry without a field
	AnomalyStatusValue    Reason = "status_value"     // status newValue that is not a status code
	AnomalyOldValue       Reason = "old_value"        // status oldValue that is not a status code (event still emitted)
)

// Anomalies lists every anomaly kind, for metrics and documentation.
var Anomalies = []Reason{AnomalyBadID, AnomalyNoOrder, AnomalyOrderNotObject, AnomalyBadOrderID,
	AnomalyNoField, AnomalyStatusValue, AnomalyOldValue}

// Anomaly reports whether r is odd input rather than ordinary filtering.
func (r Reason) Anomaly() bool {
	return slices.Contains(Anomalies, r)
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
	case e.Order.NotObject:
		return skip(AnomalyOrderNotObject)
	case e.Order.ID <= 0:
		return skip(AnomalyBadOrderID)
	case e.Deleted:
		return skip(SkipDeleted)
	case e.Field == "":
		return skip(AnomalyNoField)
	case e.Created && e.Item != nil:
		return skip(SkipItem)
	case e.Created && e.Payment != nil:
		return skip(SkipPayment)
	case e.Field != "status":
		return skip(SkipField)
	}

	// The status the entry moved the order into. A creation entry carries
	// it as newValue; the entry's order is the fallback when newValue is
	// null or odd there, as its snapshot was taken at creation.
	status := e.NewValue.Code()
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
