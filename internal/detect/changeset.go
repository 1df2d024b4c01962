package detect

import (
	"encoding/json"
	"strconv"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// Change sets. RetailCRM writes one save of an order (a form submitted, an
// API call, a trigger's action) as several history entries with
// consecutive ids that share the order, createdAt, source, user and API
// key; its trigger conditions see them together as the "change set". A
// history page lists them next to each other, so a set is a run of
// adjacent entries that share those five things (SameSet). Two saves of one
// order by one author within one second are indistinguishable in the
// history and form one set, as they do in RetailCRM's own history view.
//
// Only entries a set can belong to are grouped (Groupable): an entry
// without a readable id or order is odd input (see Detect) and is passed
// over.

// Groupable reports whether e can be part of a change set: it has its own
// id and an order object with an id.
func Groupable(e *retailcrm.HistoryEntry) bool {
	return e.ID > 0 && e.Order != nil && !e.Order.NotObject && e.Order.ID > 0
}

// SameSet reports whether b continues the change set a belongs to: same
// order, createdAt, source, user and API key. Both must be Groupable.
func SameSet(a, b *retailcrm.HistoryEntry) bool {
	return a.Order.ID == b.Order.ID && a.CreatedAt == b.CreatedAt && a.Source == b.Source &&
		userID(a) == userID(b) && apiKey(a) == apiKey(b)
}

func userID(e *retailcrm.HistoryEntry) int64 {
	if e.User == nil {
		return 0
	}
	return e.User.ID
}

// apiKey tells the keys apart as far as the history does: absent, another
// key, the key in use.
func apiKey(e *retailcrm.HistoryEntry) int {
	switch {
	case e.APIKey == nil:
		return 0
	case e.APIKey.Current:
		return 2
	}
	return 1
}

// SetFilter applies the account's site and own-change rules to a change
// set (the first entry speaks for all: they share the order and the key):
// the Reason it is passed over for, or "" when conditions decide.
func SetFilter(r Rules, set []retailcrm.HistoryEntry) Reason {
	e := &set[0]
	switch {
	case len(r.Sites) > 0 && !r.Sites[e.Order.Site]:
		return SkipSite
	case r.SkipOwnChanges && e.APIKey != nil && e.APIKey.Current:
		return SkipOwn
	}
	return ""
}

// SetCandidate is the order.changed event of a change set (ascending ids,
// all Groupable and SameSet), before its full order is fetched: id
// "<account>-<lowest history id>", the entries, source and user.
func SetCandidate(account string, set []retailcrm.HistoryEntry) Candidate {
	first := &set[0]
	entries := make([]event.SetEntry, len(set))
	var order *retailcrm.EntryOrder
	for i := range set {
		e := &set[i]
		entries[i] = event.SetEntry{
			HistoryID: e.ID,
			Field:     e.Field,
			OldValue:  rawOrNull(e.OldValue.Raw),
			NewValue:  rawOrNull(e.NewValue.Raw),
			Created:   e.Created,
			Deleted:   e.Deleted,
			Payment:   e.Payment,
			Item:      e.Item,
		}
		// The creation entry's order is the full one; else the first.
		if order == nil || e.Created {
			order = e.Order
		}
	}
	var user json.RawMessage
	if first.User != nil {
		user = json.RawMessage(`{"id":` + strconv.FormatInt(first.User.ID, 10) + `}`)
	}
	return Candidate{
		Event: event.Event{
			ID:      event.ID(account, first.ID),
			Type:    event.Changed,
			Account: account,
			Change: event.Change{
				HistoryID: first.ID,
				Source:    first.Source,
				CreatedAt: first.CreatedAt,
			},
			ChangeSet: entries,
			Source:    first.Source,
			User:      user,
		},
		OrderID:    first.Order.ID,
		EntryOrder: entryOrderJSON(order),
	}
}

var null = json.RawMessage("null")

func rawOrNull(raw json.RawMessage) json.RawMessage {
	if isNull(raw) {
		return null
	}
	return raw
}
