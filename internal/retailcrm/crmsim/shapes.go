package crmsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
)

// This file holds the entries besides plain status changes: items and
// payments (their changes and creations), fields whose values are objects,
// numbers, booleans or "", order merges, entries without an order, and
// shapes the API should not send at all.

// OddEntry is a history entry shape the API should not send, appended by
// AppendOddEntry so that tests can check a poller passes over it.
type OddEntry uint8

// Odd shapes. Each is a status entry into the order's current status whose
// order a poller cannot use, except OddStatusValue, whose order is fine but
// whose newValue is the number 7.
const (
	oddNone           OddEntry = iota
	OddOrderEmpty              // "order": [] (PHP's empty array)
	OddOrderNull               // "order": null
	OddOrderMissing            // no "order" key
	OddOrderWithoutID          // an order object without "id"
	OddOrderScalar             // "order": the order id as a string
	OddStatusValue             // "newValue": 7
)

// order returns what the entry's "order" is for this shape; cur is the
// regular value, m the entry's minimal order.
func (o OddEntry) order(cur any, m wireMinimalOrder) any {
	switch o {
	case OddOrderEmpty:
		return json.RawMessage("[]")
	case OddOrderNull:
		return jsonNull
	case OddOrderMissing:
		return nil
	case OddOrderWithoutID:
		return map[string]any{"externalId": m.ExternalID, "managerId": m.ManagerID, "site": m.Site, "status": m.Status}
	case OddOrderScalar:
		return strconv.FormatInt(m.ID, 10)
	}
	return cur
}

// AppendOddEntry appends an entry of the given odd shape about an order,
// made by a user, and returns its history id. The order does not change
// and the entry is not in Transitions: nothing in it can be acted on.
func (a *Account) AppendOddEntry(orderID int64, odd OddEntry) int64 {
	if odd == oddNone || odd > OddStatusValue {
		panic(fmt.Sprintf("crmsim: unknown odd entry shape %d", odd))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.mustOrder(orderID)
	cur := a.statuses[o.Status]
	x := &entryExtra{field: "status", oldValue: a.codes[cur], newValue: a.codes[cur], odd: odd}
	if odd == OddStatusValue {
		x.newValue = json.RawMessage("7")
	}
	return a.appendEntry(entry{order: o, old: noStatus, x: x}, a.tick(), Change{})
}

// AddItem adds an item to an order as a user would: an item creation entry
// ("created": true, field order_product, with "item"). It is not a
// transition: the order itself was created long before. It returns the
// history id.
func (a *Account) AddItem(orderID int64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addItem(a.mustOrder(orderID), Change{}, nil)
}

func (a *Account) addItem(o *order, by Change, ancestor *wireMinimalOrder) int64 {
	it := a.newItem()
	o.Items = append(o.Items, it)
	x := &entryExtra{created: true, field: "order_product", newValue: mustJSON(itemRef(it)), item: mustJSON(it), ancestor: ancestor}
	return a.appendEntry(entry{order: o, old: noStatus, x: x}, a.tick(), by)
}

// AddPayment adds an unpaid payment to an order as a user would: a payment
// creation entry ("created": true, field payments, with "payment"). It is
// not a transition. It returns the history id.
func (a *Account) AddPayment(orderID int64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addPayment(a.mustOrder(orderID), Change{})
}

func (a *Account) addPayment(o *order, by Change) int64 {
	p := a.newPayment(o)
	o.Payments = append(o.Payments, p)
	x := &entryExtra{created: true, field: "payments", newValue: mustJSON(map[string]any{"id": p.ID, "type": p.Type}), payment: mustJSON(p)}
	return a.appendEntry(entry{order: o, old: noStatus, x: x}, a.tick(), by)
}

// MergeOrder merges order from into order into, as RetailCRM's orders
// combine does, made by a user, and returns the history ids it appended:
//
//   - each item of from moves to into: an item creation entry on into,
//     carrying "ancestor" (from);
//   - when status is not "" and differs from into's, into moves to it: a
//     status entry carrying "ancestor", a transition of into like any other;
//   - from is deleted: a deletion entry carrying "combinedTo" (into); GET
//     /api/v5/orders no longer returns from.
//
// A transition of from before the merge stays in Transitions: it happened.
func (a *Account) MergeOrder(from, into int64, status string) []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.merge(a.mustOrder(from), a.mustOrder(into), status, Change{})
}

func (a *Account) merge(from, into *order, status string, by Change) []int64 {
	if from == into {
		panic("crmsim: an order cannot be merged into itself")
	}
	if status != "" {
		a.mustStatus(status)
	}
	ancestor := from.minimal(from.Status)
	var ids []int64
	for range from.Items {
		ids = append(ids, a.addItem(into, by, &ancestor))
	}
	if status != "" && status != into.Status {
		old := into.Status
		at := a.tick()
		into.Status, into.StatusUpdatedAt = status, at
		a.transitions++
		ids = append(ids, a.appendEntry(entry{order: into, old: int16(a.statuses[old]), x: &entryExtra{ancestor: &ancestor}}, at, by))
	}
	combined := into.minimal(into.Status)
	ids = append(ids, a.deleteOrder(from, &combined, by))
	return ids
}

// deleteOrder deletes o: a deletion entry ("deleted": true, field id), with
// combinedTo when o was merged into another order.
func (a *Account) deleteOrder(o *order, combinedTo *wireMinimalOrder, by Change) int64 {
	o.deleted = true
	if i, ok := slices.BinarySearch(a.live, o.ID); ok {
		a.live = slices.Delete(a.live, i, i+1)
	}
	x := &entryExtra{deleted: true, field: "id", oldValue: mustJSON(o.ID), combined: combinedTo}
	return a.appendEntry(entry{order: o, old: noStatus, x: x}, a.tick(), by)
}

type itemOffer struct {
	ID   int64  `json:"id"`
	Name string `json:"name,omitempty"`
}

// itemRef is an item as history entries refer to it: {id, offer}.
func itemRef(it wireItem) any {
	return struct {
		ID    int64     `json:"id"`
		Offer itemOffer `json:"offer"`
	}{it.ID, itemOffer{ID: it.Offer.ID}}
}

// otherKey is the key of "another integration": its changes are source api
// with apiKey.current false for the account's main key.
const otherKey = "another-integration-key"

// randomExtra appends one entry that is not a transition, of a shape drawn
// in rough proportion to the published history samples, about order o.
func (a *Account) randomExtra(rng *rand.Rand, o *order) {
	user, code, api := Change{}, Change{Source: "code"}, Change{Source: "api", APIKey: otherKey}
	n := rng.IntN(100)
	switch {
	case n < 14: // an item's status, quantity, sums or VAT
		it := &o.Items[rng.IntN(len(o.Items))]
		ref := mustJSON(itemRef(*it))
		switch rng.IntN(4) {
		case 0:
			old := it.Status
			it.Status = []string{"confirming", "ready-for-assembly", "saled", "new"}[rng.IntN(4)]
			by := user
			if it.Status == "saled" {
				by = code
			}
			a.appendExtra(o, by, &entryExtra{field: "order_product.status", oldValue: mustJSON(map[string]string{"code": old}),
				newValue: mustJSON(map[string]string{"code": it.Status}), item: ref})
		case 1:
			old := it.Quantity
			it.Quantity = float64(1 + rng.IntN(6))
			a.appendExtra(o, user, &entryExtra{field: "order_product.quantity", oldValue: mustJSON(old), newValue: mustJSON(it.Quantity), item: ref})
		case 2:
			a.appendExtra(o, user, &entryExtra{field: "order_product.discount_total", oldValue: mustJSON(0),
				newValue: mustJSON(float64(rng.IntN(5000)) / 100), item: ref})
		default:
			a.appendExtra(o, user, &entryExtra{field: "order_product.vat_rate", oldValue: mustJSON(20), item: ref})
		}
	case n < 17:
		a.addItem(o, user, nil)
	case n < 29: // a payment's status, date or external id
		if len(o.Payments) == 0 {
			a.comment(rng, o)
			return
		}
		p := &o.Payments[rng.IntN(len(o.Payments))]
		ref := mustJSON(map[string]any{"id": p.ID, "type": p.Type})
		switch rng.IntN(3) {
		case 0:
			old := p.Status
			p.Status = map[string]string{"paid": "not-paid", "not-paid": "paid"}[old]
			a.appendExtra(o, user, &entryExtra{field: "payments.status", oldValue: mustJSON(map[string]string{"code": old}),
				newValue: mustJSON(map[string]string{"code": p.Status}), payment: ref})
		case 1:
			a.appendExtra(o, user, &entryExtra{field: "payments.paid_at", newValue: mustJSON(a.lastAt.In(a.opts.TimeZone).Format(timeLayout)), payment: ref})
		default:
			old := p.ExternalID
			p.ExternalID = "pay-" + strconv.FormatInt(p.ID, 10)
			var oldV json.RawMessage
			if old != "" {
				oldV = mustJSON(old)
			}
			a.appendExtra(o, api, &entryExtra{field: "payments.external_id", oldValue: oldV, newValue: mustJSON(p.ExternalID),
				payment: mustJSON(map[string]any{"id": p.ID, "type": p.Type, "externalId": p.ExternalID})})
		}
	case n < 30:
		a.addPayment(o, user)
	case n < 49: // RetailCRM assigns a manager itself
		old := o.ManagerID
		o.ManagerID = 1 + rng.Int64N(30)
		a.appendExtra(o, code, &entryExtra{field: "manager", oldValue: mustJSON(map[string]int64{"id": old}),
			newValue: mustJSON(map[string]int64{"id": o.ManagerID})})
	case n < 55:
		v := map[string]any{"id": o.CustomerID, "site": o.Site}
		if rng.IntN(2) == 0 {
			v["externalId"] = "cust-" + strconv.FormatInt(o.CustomerID, 10)
		}
		a.appendExtra(o, code, &entryExtra{field: "customer", newValue: mustJSON(v)})
	case n < 59:
		a.appendExtra(o, user, &entryExtra{field: "company", newValue: mustJSON(map[string]any{"id": 700 + rng.IntN(50), "name": "Accra Traders"})})
	case n < 65:
		from := 9 + rng.IntN(8)
		a.appendExtra(o, user, &entryExtra{field: "delivery_time",
			newValue: mustJSON(map[string]string{"from": fmt.Sprintf("%02d:00", from), "to": fmt.Sprintf("%02d:00", from+2)})})
	case n < 71:
		field := []string{"delivery_cost", "discount_manual_percent"}[rng.IntN(2)]
		a.appendExtra(o, user, &entryExtra{field: field, oldValue: mustJSON(0), newValue: mustJSON(5 + rng.IntN(300))})
	case n < 76:
		a.appendExtra(o, api, &entryExtra{field: "shipped", oldValue: mustJSON(false), newValue: mustJSON(true)})
	case n < 81:
		a.appendExtra(o, user, &entryExtra{field: "delivery_type", newValue: mustJSON(map[string]string{"code": "courier"})})
	case n < 96:
		a.comment(rng, o)
	case n < 98: // an entry without an order, as some published samples have
		a.appendExtra(o, code, &entryExtra{field: "customer", newValue: mustJSON(map[string]any{"id": o.CustomerID, "site": o.Site}),
			odd: OddOrderMissing})
	default: // a custom field, of the type its values have
		cf := customFieldValues[rng.IntN(len(customFieldValues))]
		if o.CustomFields == nil {
			o.CustomFields = map[string]any{}
		}
		old, had := o.CustomFields[cf.code]
		o.CustomFields[cf.code] = cf.values[rng.IntN(len(cf.values))]
		var oldV json.RawMessage
		if had {
			oldV = mustJSON(old)
		}
		a.appendExtra(o, user, &entryExtra{field: "custom_" + cf.code, oldValue: oldV, newValue: mustJSON(o.CustomFields[cf.code])})
	}
}

// comment appends a comment made by a user; its old value is "" or null.
func (a *Account) comment(rng *rand.Rand, o *order) {
	field := []string{"manager_comment", "customer_comment"}[rng.IntN(2)]
	var old json.RawMessage
	if rng.IntN(2) == 0 {
		old = mustJSON("")
	}
	a.appendExtra(o, Change{}, &entryExtra{field: field, oldValue: old, newValue: mustJSON(fmt.Sprintf("call back at %d:00", 9+rng.IntN(9)))})
}

// appendExtra appends an entry that is not a status change.
func (a *Account) appendExtra(o *order, by Change, x *entryExtra) int64 {
	return a.appendEntry(entry{order: o, old: noStatus, x: x}, a.tick(), by)
}
