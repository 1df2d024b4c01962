package crmsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// This file holds saves that change several fields of an order at once,
// written as RetailCRM writes them: one history entry per field, with
// consecutive ids, one createdAt, one source and author (a change set).

// Save is one save of an order. Zero fields are left as they are.
type Save struct {
	By            Change
	Status        string         // field "status"
	ManagerID     int64          // field "manager": {"id": N}
	DeliveryCost  float64        // field "delivery_cost": a number
	DeliveryCity  string         // field "delivery_address.city": a string
	CustomFields  map[string]any // fields "custom_<code>", in code order
	PaymentStatus string         // field "payments.status" of the order's first payment: {"code": S}, with "payment"
	PaymentAmount float64        // field "payments.amount" of the first payment: a number, with "payment"
}

// SaveOrder applies a save to an order and appends its entries in the
// order of Save's fields, one change set. A status change in it is a
// transition like any other. Fields that would not change write nothing;
// a payment change on an order without a payment adds one first, in the
// same save. It returns the history ids.
func (a *Account) SaveOrder(orderID int64, s Save) []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.save(a.mustOrder(orderID), s)
}

func (a *Account) save(o *order, s Save) []int64 {
	var es []entry
	extra := func(x *entryExtra) { es = append(es, entry{order: o, old: noStatus, x: x}) }
	at := a.tick()
	if (s.PaymentStatus != "" || s.PaymentAmount != 0) && len(o.Payments) == 0 {
		p := a.newPayment(o)
		o.Payments = append(o.Payments, p)
		extra(&entryExtra{created: true, field: "payments", newValue: mustJSON(map[string]any{"id": p.ID, "type": p.Type}), payment: mustJSON(p)})
	}
	if s.Status != "" && s.Status != o.Status {
		a.mustStatus(s.Status)
		// The status entry carries the order's status after the save, as
		// every entry of the set does: it is written last, below.
		old := int16(a.statuses[o.Status])
		o.Status, o.StatusUpdatedAt = s.Status, at
		a.transitions++
		es = append(es, entry{order: o, old: old})
	}
	if s.ManagerID != 0 && s.ManagerID != o.ManagerID {
		extra(&entryExtra{field: "manager", oldValue: mustJSON(map[string]int64{"id": o.ManagerID}), newValue: mustJSON(map[string]int64{"id": s.ManagerID})})
		o.ManagerID = s.ManagerID
	}
	if s.DeliveryCost != 0 && s.DeliveryCost != o.DeliveryCost {
		extra(&entryExtra{field: "delivery_cost", oldValue: mustJSON(o.DeliveryCost), newValue: mustJSON(s.DeliveryCost)})
		o.DeliveryCost = s.DeliveryCost
	}
	if s.DeliveryCity != "" && s.DeliveryCity != o.DeliveryCity {
		var old json.RawMessage
		if o.DeliveryCity != "" {
			old = mustJSON(o.DeliveryCity)
		}
		extra(&entryExtra{field: "delivery_address.city", oldValue: old, newValue: mustJSON(s.DeliveryCity)})
		o.DeliveryCity = s.DeliveryCity
	}
	codes := make([]string, 0, len(s.CustomFields))
	for code := range s.CustomFields {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	for _, code := range codes {
		if o.CustomFields == nil {
			o.CustomFields = map[string]any{}
		}
		var old json.RawMessage
		if v, had := o.CustomFields[code]; had {
			old = mustJSON(v)
		}
		o.CustomFields[code] = s.CustomFields[code]
		extra(&entryExtra{field: "custom_" + code, oldValue: old, newValue: mustJSON(s.CustomFields[code])})
	}
	if len(o.Payments) > 0 {
		p := &o.Payments[0]
		ref := mustJSON(map[string]any{"id": p.ID, "type": p.Type})
		if s.PaymentStatus != "" && s.PaymentStatus != p.Status {
			extra(&entryExtra{field: "payments.status", oldValue: mustJSON(map[string]string{"code": p.Status}),
				newValue: mustJSON(map[string]string{"code": s.PaymentStatus}), payment: ref})
			p.Status = s.PaymentStatus
		}
		if s.PaymentAmount != 0 && s.PaymentAmount != p.Amount {
			extra(&entryExtra{field: "payments.amount", oldValue: mustJSON(p.Amount), newValue: mustJSON(s.PaymentAmount), payment: ref})
			p.Amount = s.PaymentAmount
		}
	}
	if len(es) == 0 {
		return nil
	}
	return a.appendSave(es, at, s.By)
}

// SetTruth is the ground truth of one change set: the entries of one save.
type SetTruth struct {
	IDs     []int64 // ascending, consecutive
	OrderID int64
	Fields  []string
	Source  string
	At      time.Time
}

// ChangeSets returns every save in history id order, including those not
// visible yet: a single entry (a status change, an item added) is a save
// of its own.
func (a *Account) ChangeSets() []SetTruth {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []SetTruth
	for i := range a.history {
		e := &a.history[i]
		field := "status"
		if e.x != nil && e.x.field != "" {
			field = e.x.field
		}
		if e.saveStart || len(out) == 0 {
			out = append(out, SetTruth{OrderID: e.order.ID, Source: e.source, At: time.Unix(0, e.at)})
		}
		last := &out[len(out)-1]
		last.IDs = append(last.IDs, e.id)
		last.Fields = append(last.Fields, field)
	}
	return out
}

// cities are delivery cities of random saves.
var cities = []string{"Accra", "Kumasi", "Tamale", "Moscow", "Kazan"}

// SaveWalk makes `saves` random saves on random orders of at least
// `orders` orders (created first, as RandomWalk does): each changes one to
// four of the status, manager, delivery cost and city, a custom field,
// and the first payment's status and amount, made by a user, the API or
// RetailCRM itself. A save is never about the order of the entry before
// it, and two saves of one order never share their author and second, so
// saves and change sets are one to one, late commits or not. The draws
// come from rng, which must not be used concurrently elsewhere.
func (a *Account) SaveWalk(rng *rand.Rand, orders, saves int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.liveOrders(rng, orders, "SaveWalk")
	for range saves {
		o := a.orders[a.live[rng.IntN(len(a.live))]]
		// Never the order of the entry before: two saves of one order by
		// one author within a second would read as one change set.
		for len(a.live) > 1 && len(a.history) > 0 && a.history[len(a.history)-1].order == o {
			o = a.orders[a.live[rng.IntN(len(a.live))]]
		}
		s := randomSave(rng, a.opts.Statuses, o)
		// Two saves of one order by one author within a second read as one
		// change set when the entries between them are not visible yet:
		// users are told apart by id, and the API or RetailCRM itself never
		// saves an order twice within a second.
		at := a.now()
		if at.Before(a.lastAt) {
			at = a.lastAt
		}
		by := s.By.Source + s.By.APIKey + "@" + at.Truncate(time.Second).String()
		if a.walkBy == nil {
			a.walkBy = map[int64]string{}
		}
		if s.By.Source == "" || a.walkBy[o.ID] == by {
			a.walkUser++
			s.By = Change{UserID: 100000 + a.walkUser}
		} else {
			a.walkBy[o.ID] = by
		}
		a.save(o, s)
	}
}

// randomSave draws a save of one to four changes.
func randomSave(rng *rand.Rand, statuses []string, o *order) Save {
	var s Save
	switch rng.IntN(5) {
	case 0:
		s.By = Change{Source: "api", APIKey: otherKey}
	case 1:
		s.By = Change{Source: "code"}
	}
	for range 1 + rng.IntN(4) {
		switch rng.IntN(7) {
		case 0:
			s.Status = statuses[rng.IntN(len(statuses))]
		case 1:
			s.ManagerID = 1 + rng.Int64N(30)
		case 2:
			s.DeliveryCost = float64(100 + rng.IntN(900))
		case 3:
			s.DeliveryCity = cities[rng.IntN(len(cities))]
		case 4:
			cf := customFieldValues[rng.IntN(len(customFieldValues))]
			s.CustomFields = map[string]any{cf.code: cf.values[rng.IntN(len(cf.values))]}
		case 5:
			s.PaymentStatus = "paid"
			if rng.IntN(3) == 0 {
				s.PaymentStatus = "not-paid"
			}
		default:
			s.PaymentAmount = o.total() + float64(rng.IntN(100))
		}
	}
	return s
}

// PaymentStatus returns the status of an order's first payment ("" when it
// has none).
func (a *Account) PaymentStatus(orderID int64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	o, ok := a.orders[orderID]
	if !ok || len(o.Payments) == 0 {
		return ""
	}
	return o.Payments[0].Status
}

// appendSave appends the entries of one save, as RetailCRM writes them in
// one transaction: consecutive ids (after a random gap), one time, one
// author, and, with a late-commit fault, visible together. It returns the
// history ids.
func (a *Account) appendSave(es []entry, at time.Time, by Change) []int64 {
	// Mostly small gaps, sometimes a big one (entries of other objects).
	gap := 1 + a.rng.Int64N(3)
	if a.rng.IntN(20) == 0 {
		gap += a.rng.Int64N(50)
	}
	if by.Source == "" {
		by.Source = "user"
	}
	if !slices.Contains(sources, by.Source) {
		panic(fmt.Sprintf("crmsim: unknown history source %q", by.Source))
	}
	if by.Source == "user" && by.UserID == 0 {
		by.UserID = int64(1 + a.rng.Int32N(30))
	}
	hidden := false
	if lc := a.faults.LateCommit; lc.Probability > 0 && lc.Delay > 0 && a.rng.Float64() < lc.Probability {
		hidden = true
	}
	ids := make([]int64, len(es))
	for i, e := range es {
		a.lastHistID += gap
		gap = 1
		e.id = a.lastHistID
		e.at = at.UnixNano()
		e.status = int16(a.statuses[e.order.Status])
		e.source, e.userID, e.apiKey = by.Source, int32(by.UserID), by.APIKey
		e.saveStart = i == 0
		if hidden {
			e.hidden = true
			a.pending = append(a.pending, pendingEntry{idx: len(a.history), visibleAt: at.Add(a.faults.LateCommit.Delay).UnixNano()})
		}
		a.history = append(a.history, e)
		ids[i] = e.id
	}
	return ids
}
