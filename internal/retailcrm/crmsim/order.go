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
	PaymentID       int64
	Paid            bool
	CustomFields    map[string]any
	deleted         bool
}

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
		PaymentID:       id*10 + 1,
		Paid:            r.IntN(2) == 0,
	}
	if r.IntN(2) == 0 {
		o.ExternalID = "ext-" + strconv.FormatInt(id, 10)
	}
	for i := range 1 + r.IntN(3) {
		o.Items = append(o.Items, wireItem{
			ID:           id*100 + int64(i),
			Offer:        wireOffer{ID: 1 + r.Int64N(500), Name: products[r.IntN(len(products))]},
			Quantity:     float64(1 + r.IntN(4)),
			InitialPrice: float64(5 + r.IntN(200)),
			Status:       "new",
		})
	}
	if r.IntN(4) == 0 {
		o.CustomFields = map[string]any{"delivery_slot": []string{"morning", "evening"}[r.IntN(2)]}
	}
	return o
}

type wireOrder struct {
	Slug            int64                  `json:"slug"`
	ID              int64                  `json:"id"`
	Number          string                 `json:"number"`
	ExternalID      string                 `json:"externalId,omitempty"`
	OrderType       string                 `json:"orderType"`
	OrderMethod     string                 `json:"orderMethod"`
	CreatedAt       string                 `json:"createdAt"`
	StatusUpdatedAt string                 `json:"statusUpdatedAt"`
	Summ            float64                `json:"summ"`
	TotalSumm       float64                `json:"totalSumm"`
	PrepaySum       float64                `json:"prepaySum"`
	LastName        string                 `json:"lastName"`
	FirstName       string                 `json:"firstName"`
	Phone           string                 `json:"phone"`
	Email           string                 `json:"email"`
	ManagerID       int64                  `json:"managerId"`
	Customer        wireCustomer           `json:"customer"`
	Site            string                 `json:"site"`
	Status          string                 `json:"status"`
	Items           []wireItem             `json:"items"`
	Payments        map[string]wirePayment `json:"payments"`
	CustomFields    any                    `json:"customFields"` // [] when empty, as PHP encodes an empty map
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
	ID     int64   `json:"id"`
	Status string  `json:"status"`
	Type   string  `json:"type"`
	Amount float64 `json:"amount"`
}

// wire renders the full order as GET /api/v5/orders returns it.
func (o *order) wire(tz *time.Location) wireOrder {
	var total float64
	for _, it := range o.Items {
		total += it.InitialPrice * it.Quantity
	}
	payStatus := "not-paid"
	if o.Paid {
		payStatus = "paid"
	}
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
		Site:   o.Site,
		Status: o.Status,
		Items:  o.Items,
		Payments: map[string]wirePayment{
			strconv.FormatInt(o.PaymentID, 10): {ID: o.PaymentID, Status: payStatus, Type: "cash", Amount: total},
		},
		CustomFields: cf,
	}
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
}

// noStatus is entry.old when there is no previous status.
const noStatus = -1

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
	full     json.RawMessage // the full order, on a creation entry
}

type wireEntry struct {
	ID        int64           `json:"id"`
	CreatedAt string          `json:"createdAt"`
	Created   bool            `json:"created,omitempty"`
	Deleted   bool            `json:"deleted,omitempty"`
	Source    string          `json:"source"`
	User      *wireUser       `json:"user,omitempty"`
	APIKey    *wireAPIKey     `json:"apiKey,omitempty"`
	Field     string          `json:"field"`
	OldValue  json.RawMessage `json:"oldValue"`
	NewValue  json.RawMessage `json:"newValue"`
	Order     any             `json:"order"`
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
	x := e.x
	if x != nil {
		w.Created, w.Deleted = x.created, x.deleted
		if x.field != "" {
			w.Field, w.OldValue, w.NewValue = x.field, x.oldValue, x.newValue
		}
	}
	if w.OldValue == nil {
		w.OldValue = jsonNull
	}
	if w.NewValue == nil {
		w.NewValue = jsonNull
	}
	switch e.source {
	case "user":
		w.User = &wireUser{ID: int64(e.userID)}
	case "api":
		w.APIKey = &wireAPIKey{Current: e.apiKey == requestKey}
	}
	if x != nil && x.full != nil {
		w.Order = x.full
	} else {
		w.Order = wireMinimalOrder{
			ID: e.order.ID, ExternalID: e.order.ExternalID, ManagerID: e.order.ManagerID,
			Site: e.order.Site, Status: statuses[e.status],
		}
	}
	return w
}
