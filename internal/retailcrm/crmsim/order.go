package crmsim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// timeLayout is RetailCRM's "Y-m-d H:i:s".
const timeLayout = "2006-01-02 15:04:05"

type order struct {
	ID              int64
	ExternalID      string
	Site            string
	Status          string
	CreatedAt       time.Time
	StatusUpdatedAt time.Time
	ManagerID       int64
	FirstName       string
	LastName        string
	Phone           string
	Email           string
	CustomerID      int64
	Items           []wireItem
	Payments        []wirePayment
	// How "payments" is written: an object keyed by id (the usual), a list
	// (as modules send it), and, with no payment, [] (PHP's empty array),
	// {} or no key at all; all seen in the published samples.
	PaymentsAsList bool
	NoPayments     emptyShape
	CustomFields   map[string]any
	DeliveryCost   float64 // with DeliveryCity: "delivery", left out while both are zero
	DeliveryCity   string
	deleted        bool
}

// emptyShape is how an empty collection is written.
type emptyShape uint8

const (
	emptyList   emptyShape = iota // []
	emptyObject                   // {}
	emptyAbsent                   // the key is left out
)

var (
	firstNames = []string{"Kwame", "Ama", "Kofi", "Abena", "Yaw", "Efua", "Olga", "Ivan"}
	lastNames  = []string{"Mensah", "Owusu", "Boateng", "Asante", "Petrova", "Sokolov"}
	products   = []string{"Shea butter 250 ml", "Black soap", "Kente scarf", "Cocoa powder 1 kg", "Coffee beans 500 g"}
)

// newOrder generates plausible order data from the account's random stream.
func (a *Account) newOrder(id int64, site, status string, at time.Time) *order {
	r := a.rng
	fn, ln := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	o := &order{
		ID:              id,
		Site:            site,
		Status:          status,
		CreatedAt:       at,
		StatusUpdatedAt: at,
		ManagerID:       1 + r.Int64N(30),
		FirstName:       fn,
		LastName:        ln,
		Phone:           fmt.Sprintf("+233%09d", r.IntN(1e9)),
		Email:           fmt.Sprintf("%s.%s%d@example.com", fn, ln, r.IntN(1000)),
		CustomerID:      5000 + r.Int64N(5000),
	}
	if r.IntN(2) == 0 {
		o.ExternalID = "ext-" + strconv.FormatInt(id, 10)
	}
	for range 1 + r.IntN(3) {
		o.Items = append(o.Items, a.newItem())
	}
	// Shapes of payments, in rough proportion to the samples: mostly one
	// payment keyed by id; sometimes a list; sometimes none, written as
	// [], {} or not at all.
	switch n := r.IntN(20); {
	case n < 14:
		o.Payments = []wirePayment{a.newPayment(o)}
	case n < 16:
		o.Payments, o.PaymentsAsList = []wirePayment{a.newPayment(o)}, true
	default:
		o.PaymentsAsList = r.IntN(2) == 0
		o.NoPayments = emptyShape(r.IntN(3))
	}
	// Custom fields of every type the samples show: strings, booleans,
	// numbers, lists (multiselect); most orders have none ([]).
	if r.IntN(3) == 0 {
		o.CustomFields = map[string]any{}
		for _, cf := range customFieldValues {
			if r.IntN(2) == 0 {
				o.CustomFields[cf.code] = cf.values[r.IntN(len(cf.values))]
			}
		}
	}
	return o
}

var customFieldValues = []struct {
	code   string
	values []any
}{
	{"delivery_slot", []any{"morning", "evening"}},
	{"gift_wrap", []any{true, false}},
	{"floor", []any{0, 3, 12}},
	{"tags", []any{[]string{"fragile"}, []string{"gift", "express"}, []string{}}},
}

// newItem generates an order item; its id is unique in the account.
func (a *Account) newItem() wireItem {
	a.lastItemID += 1 + a.rng.Int64N(2)
	return wireItem{
		ID:           a.lastItemID,
		Offer:        wireOffer{ID: 1 + a.rng.Int64N(500), Name: products[a.rng.IntN(len(products))]},
		Quantity:     float64(1 + a.rng.IntN(4)),
		InitialPrice: float64(5 + a.rng.IntN(200)),
		Status:       "new",
	}
}

// newPayment generates an unpaid payment of the order's total.
func (a *Account) newPayment(o *order) wirePayment {
	a.lastPaymentID += 1 + a.rng.Int64N(2)
	return wirePayment{ID: a.lastPaymentID, Status: "not-paid", Type: []string{"cash", "bank-card", "bank-transfer"}[a.rng.IntN(3)],
		Amount: o.total()}
}

func (o *order) total() float64 {
	var total float64
	for _, it := range o.Items {
		total += it.InitialPrice * it.Quantity
	}
	return total
}

type wireOrder struct {
	Slug            int64         `json:"slug"`
	ID              int64         `json:"id"`
	Number          string        `json:"number"`
	ExternalID      string        `json:"externalId,omitempty"`
	OrderType       string        `json:"orderType"`
	OrderMethod     string        `json:"orderMethod"`
	CreatedAt       string        `json:"createdAt"`
	StatusUpdatedAt string        `json:"statusUpdatedAt"`
	Summ            float64       `json:"summ"`
	TotalSumm       float64       `json:"totalSumm"`
	PrepaySum       float64       `json:"prepaySum"`
	LastName        string        `json:"lastName"`
	FirstName       string        `json:"firstName"`
	Phone           string        `json:"phone"`
	Email           string        `json:"email"`
	ManagerID       int64         `json:"managerId"`
	Customer        wireCustomer  `json:"customer"`
	Site            string        `json:"site"`
	Status          string        `json:"status"`
	Items           []wireItem    `json:"items"`
	Payments        any           `json:"payments,omitempty"` // see order.PaymentsAsList; nil leaves the key out
	CustomFields    any           `json:"customFields"`       // [] when empty, as PHP encodes an empty map
	Delivery        *wireDelivery `json:"delivery,omitempty"`
}

type wireDelivery struct {
	Cost    float64             `json:"cost"`
	Address wireDeliveryAddress `json:"address"`
}

type wireDeliveryAddress struct {
	City string `json:"city,omitempty"`
}

type wireCustomer struct {
	Type      string      `json:"type"`
	ID        int64       `json:"id"`
	FirstName string      `json:"firstName"`
	LastName  string      `json:"lastName"`
	Email     string      `json:"email"`
	Phones    []wirePhone `json:"phones"`
}

type wirePhone struct {
	Number string `json:"number"`
}

type wireItem struct {
	ID           int64     `json:"id"`
	InitialPrice float64   `json:"initialPrice"`
	Quantity     float64   `json:"quantity"`
	Status       string    `json:"status"`
	Offer        wireOffer `json:"offer"`
}

type wireOffer struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type wirePayment struct {
	ID         int64   `json:"id"`
	Status     string  `json:"status"`
	Type       string  `json:"type"`
	Amount     float64 `json:"amount"`
	ExternalID string  `json:"externalId,omitempty"`
}

// wire renders the full order as GET /api/v5/orders returns it.
func (o *order) wire(tz *time.Location) wireOrder {
	total := o.total()
	var cf any = []any{}
	if len(o.CustomFields) > 0 {
		cf = o.CustomFields
	}
	return wireOrder{
		Slug:            o.ID,
		ID:              o.ID,
		Number:          strconv.FormatInt(o.ID, 10) + "A",
		ExternalID:      o.ExternalID,
		OrderType:       "eshop-individual",
		OrderMethod:     "shopping-cart",
		CreatedAt:       o.CreatedAt.In(tz).Format(timeLayout),
		StatusUpdatedAt: o.StatusUpdatedAt.In(tz).Format(timeLayout),
		Summ:            total,
		TotalSumm:       total,
		LastName:        o.LastName,
		FirstName:       o.FirstName,
		Phone:           o.Phone,
		Email:           o.Email,
		ManagerID:       o.ManagerID,
		Customer: wireCustomer{
			Type: "customer", ID: o.CustomerID,
			FirstName: o.FirstName, LastName: o.LastName, Email: o.Email,
			Phones: []wirePhone{{Number: o.Phone}},
		},
		Site:         o.Site,
		Status:       o.Status,
		Items:        o.Items,
		Payments:     o.wirePayments(),
		CustomFields: cf,
		Delivery:     o.wireDelivery(),
	}
}

func (o *order) wireDelivery() *wireDelivery {
	if o.DeliveryCost == 0 && o.DeliveryCity == "" {
		return nil
	}
	return &wireDelivery{Cost: o.DeliveryCost, Address: wireDeliveryAddress{City: o.DeliveryCity}}
}

func (o *order) wirePayments() any {
	switch {
	case len(o.Payments) > 0 && o.PaymentsAsList:
		return o.Payments
	case len(o.Payments) > 0:
		m := make(map[string]wirePayment, len(o.Payments))
		for _, p := range o.Payments {
			m[strconv.FormatInt(p.ID, 10)] = p
		}
		return m
	case o.NoPayments == emptyList:
		return []any{}
	case o.NoPayments == emptyObject:
		return struct{}{}
	}
	return nil
}

// minimal renders the order as most history entries carry it.
func (o *order) minimal(status string) wireMinimalOrder {
	return wireMinimalOrder{ID: o.ID, ExternalID: o.ExternalID, ManagerID: o.ManagerID, Site: o.Site, Status: status}
}

// entry is one history entry, kept small: benchmarks hold 100,000 of them
// in the same heap as the poller. Order data that never changes in the
// simulator (id, externalId, site, manager) is read from order.
type entry struct {
	id     int64
	at     int64 // unix nanoseconds
	order  *order
	x      *entryExtra // nil for a plain status change
	source string
	apiKey string // for source "api": the key the change was made through
	userID int32
	status int16 // index in the account's statuses: the order's status right after the change
	old    int16 // a status change's previous status; noStatus on creation and other entries
	hidden bool  // a late commit not visible yet (see Account.pending)
	// saveStart: the first entry of a save; the entries up to the next
	// such are one change set (see Account.ChangeSets).
	saveStart bool
}

// noStatus is entry.old when there is no previous status.
const noStatus = -1

// transition reports whether e is a status change or an order's creation,
// i.e. part of the ground truth.
func (e *entry) transition() bool {
	x := e.x
	return x == nil || x.field == "" && !x.deleted && x.odd == oddNone
}

// pendingEntry is a late-committed entry: history[idx] is hidden until visibleAt.
type pendingEntry struct {
	idx       int
	visibleAt int64 // unix nanoseconds
}

// entryExtra holds the parts of the less common entries.
type entryExtra struct {
	created  bool
	deleted  bool
	field    string          // "" means "status"
	oldValue json.RawMessage // of a non-status entry; nil encodes as null
	newValue json.RawMessage
	full     json.RawMessage   // the full order, on a creation entry
	item     json.RawMessage   // "item": the order item the entry is about
	payment  json.RawMessage   // "payment"
	ancestor *wireMinimalOrder // "ancestor": the order a merge moved this change from
	combined *wireMinimalOrder // "combinedTo": the order this one was merged into
	odd      OddEntry          // a shape the API should not send (AppendOddEntry)
}

type wireEntry struct {
	ID         int64             `json:"id"`
	CreatedAt  string            `json:"createdAt"`
	Created    bool              `json:"created,omitempty"`
	Deleted    bool              `json:"deleted,omitempty"`
	Source     string            `json:"source"`
	User       *wireUser         `json:"user,omitempty"`
	APIKey     *wireAPIKey       `json:"apiKey,omitempty"`
	Field      string            `json:"field"`
	OldValue   json.RawMessage   `json:"oldValue"`
	NewValue   json.RawMessage   `json:"newValue"`
	Order      any               `json:"order,omitempty"` // nil leaves the key out
	Item       json.RawMessage   `json:"item,omitempty"`
	Payment    json.RawMessage   `json:"payment,omitempty"`
	Ancestor   *wireMinimalOrder `json:"ancestor,omitempty"`
	CombinedTo *wireMinimalOrder `json:"combinedTo,omitempty"`
}

type wireUser struct {
	ID int64 `json:"id"`
}

type wireAPIKey struct {
	Current bool `json:"current"`
}

type wireMinimalOrder struct {
	ID         int64  `json:"id"`
	ExternalID string `json:"externalId,omitempty"`
	ManagerID  int64  `json:"managerId"`
	Site       string `json:"site"`
	Status     string `json:"status"`
}

var jsonNull = json.RawMessage("null")

// wire renders the entry for a request made with requestKey.
func (e *entry) wire(tz *time.Location, requestKey string, statuses []string, codes []json.RawMessage) wireEntry {
	w := wireEntry{
		ID:        e.id,
		CreatedAt: time.Unix(0, e.at).In(tz).Format(timeLayout),
		Source:    e.source,
		Field:     "status",
		NewValue:  codes[e.status],
	}
	if e.old != noStatus {
		w.OldValue = codes[e.old]
	}
	switch e.source {
	case "user":
		w.User = &wireUser{ID: int64(e.userID)}
	case "api":
		w.APIKey = &wireAPIKey{Current: e.apiKey == requestKey}
	}
	minimal := e.order.minimal(statuses[e.status])
	w.Order = minimal
	if x := e.x; x != nil {
		w.Created, w.Deleted = x.created, x.deleted
		if x.field != "" {
			w.Field, w.OldValue, w.NewValue = x.field, x.oldValue, x.newValue
		}
		if x.full != nil {
			w.Order = x.full
		}
		w.Item, w.Payment, w.Ancestor, w.CombinedTo = x.item, x.payment, x.ancestor, x.combined
		w.Order = x.odd.order(w.Order, minimal)
	}
	if w.OldValue == nil {
		w.OldValue = jsonNull
	}
	if w.NewValue == nil {
		w.NewValue = jsonNull
	}
	return w
}
