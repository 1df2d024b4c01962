package crmsim

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// AccountOptions configures one simulated account.
type AccountOptions struct {
	Name   string // path prefix: the account is served under "/<Name>"
	APIKey string // the key that the credentials and data endpoints accept
	// ExtraKeys are further valid keys (each with its own rate limit), e.g.
	// to check apiKey.current from another integration's point of view.
	ExtraKeys []string
	Sites     []string // site codes; default ["main"]
	// Statuses are the status codes of the account, in ordering order;
	// default new, approved, assembling, complete, cancel.
	Statuses  []string
	RateLimit int // requests per second per key; 0 = 10, -1 = unlimited
	// TimeZone is the account's zone, as GET /api/v5/settings names it:
	// every date filter is read and every date written in it. Default UTC.
	TimeZone *time.Location
	// KeySites restricts the main key to these sites (siteAccess
	// access_selective): /api/credentials lists them and the sites
	// reference returns only them. History and orders are not filtered by
	// them. Empty: access_full.
	KeySites []string
	// CredentialsWithoutSites leaves sitesAvailable out of /api/credentials,
	// as api-client-php's published sample does.
	CredentialsWithoutSites bool
	// SettingsForbidden: GET /api/v5/settings answers 403, as for a key
	// without access to the settings.
	SettingsForbidden bool
}

// DefaultStatuses are the status codes of an account created without Statuses.
var DefaultStatuses = []string{"new", "approved", "assembling", "complete", "cancel"}

// Transition is the ground truth of one status change or order creation.
type Transition struct {
	HistoryID int64
	OrderID   int64
	Site      string
	Old       string // "" on creation
	New       string
	Created   bool
	Source    string // "user", "api", "code", "rule", "combine" or "split"
	// APIKey is the key an "api" change was made through; APIKeyCurrent
	// tells whether that is the account's main APIKey, i.e. whether a
	// client using that key sees apiKey.current == true.
	APIKey        string
	APIKeyCurrent bool
	At            time.Time
}

// Account is one simulated RetailCRM account. Its methods change data the
// way users and integrations would; every change appends history entries.
type Account struct {
	opts AccountOptions
	now  func() time.Time

	mu          sync.Mutex
	rng         *rand.Rand
	keys        map[string]*keyState
	statuses    map[string]int // code -> index in opts.Statuses
	orders      map[int64]*order
	live        []int64 // ids of orders not deleted, ascending
	lastOrderID int64
	lastHistID  int64
	// lastItemID and lastPaymentID number items and payments account-wide.
	lastItemID    int64
	lastPaymentID int64
	lastAt        time.Time
	codes         []json.RawMessage // {"code": ...} of each status, shared by entries
	history       []entry           // ascending id
	pending       []pendingEntry    // late commits, maybe visible by now
	transitions   int               // status entries in history, for Transitions
	requests      map[string]int
	rateLimited   int
	faults        Faults
	walkUser      int64            // SaveWalk's last user id: each user save has its own
	walkBy        map[int64]string // SaveWalk: per order, the author and second of its last save
}

// keyState tracks one key's requests for the sliding-window rate limit.
type keyState struct {
	window []time.Time // ring of the last limit request times
	next   int
}

func newAccount(o AccountOptions, seed, nameHash uint64, now func() time.Time) *Account {
	if len(o.Sites) == 0 {
		o.Sites = []string{"main"}
	}
	if len(o.Statuses) == 0 {
		o.Statuses = DefaultStatuses
	}
	o.Sites = slices.Clone(o.Sites)
	o.Statuses = slices.Clone(o.Statuses)
	o.KeySites = slices.Clone(o.KeySites)
	for _, s := range o.KeySites {
		if !slices.Contains(o.Sites, s) {
			panic(fmt.Sprintf("crmsim: key site %q is not a site of account %s", s, o.Name))
		}
	}
	if o.RateLimit == 0 {
		o.RateLimit = 10
	}
	if o.TimeZone == nil {
		o.TimeZone = time.UTC
	}
	a := &Account{
		opts:     o,
		now:      now,
		rng:      rand.New(rand.NewPCG(seed, nameHash)),
		keys:     make(map[string]*keyState),
		statuses: make(map[string]int),
		orders:   make(map[int64]*order),
		requests: make(map[string]int),
	}
	for _, k := range append([]string{o.APIKey}, o.ExtraKeys...) {
		a.keys[k] = &keyState{}
	}
	for i, s := range o.Statuses {
		a.statuses[s] = i
		a.codes = append(a.codes, mustJSON(map[string]string{"code": s}))
	}
	// Real accounts have a history behind them: start ids somewhere above 1.
	a.lastHistID = 1000 + a.rng.Int64N(9000)
	a.lastOrderID = 100 + a.rng.Int64N(900)
	a.lastItemID = 10 * a.lastOrderID
	a.lastPaymentID = 5 * a.lastOrderID
	return a
}

// Name returns the account name (its path prefix).
func (a *Account) Name() string { return a.opts.Name }

// APIKey returns the account's main key.
func (a *Account) APIKey() string { return a.opts.APIKey }

// BaseURL returns the account's base URL under serverURL; see URL.
func (a *Account) BaseURL(serverURL string) string { return URL(serverURL, a.opts.Name) }

// Sites returns the account's site codes.
func (a *Account) Sites() []string { return slices.Clone(a.opts.Sites) }

// Statuses returns the account's status codes.
func (a *Account) Statuses() []string { return slices.Clone(a.opts.Statuses) }

// CreateOrder creates an order on site in status and appends its creation
// history entry (made by a user). It returns the order id.
func (a *Account) CreateOrder(site, status string) int64 {
	return a.CreateOrderBy(site, status, Change{})
}

// CreateOrderBy is CreateOrder made by the given user or key.
func (a *Account) CreateOrderBy(site, status string, by Change) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.createOrder(site, status, by)
}

func (a *Account) createOrder(site, status string, by Change) int64 {
	if !slices.Contains(a.opts.Sites, site) {
		panic(fmt.Sprintf("crmsim: account %s has no site %q", a.opts.Name, site))
	}
	a.mustStatus(status)
	at := a.tick()
	a.lastOrderID += 1 + a.rng.Int64N(3)
	o := a.newOrder(a.lastOrderID, site, status, at)
	a.orders[o.ID] = o
	a.live = append(a.live, o.ID)
	full, err := json.Marshal(o.wire(a.opts.TimeZone))
	if err != nil {
		panic("crmsim: encode order: " + err.Error())
	}
	a.appendEntry(entry{order: o, old: noStatus, x: &entryExtra{created: true, full: full}}, at, by)
	a.transitions++
	return o.ID
}

// SetStatus changes an order's status as a user would and returns the id of
// the new history entry. Setting the status the order already has changes
// nothing and returns 0, as RetailCRM records no entry then.
func (a *Account) SetStatus(orderID int64, status string) int64 {
	return a.SetStatusBy(orderID, status, Change{})
}

// SetStatusVia changes an order's status through the API with apiKey
// (source "api"): a client using that same key sees apiKey.current == true.
func (a *Account) SetStatusVia(orderID int64, status, apiKey string) int64 {
	return a.SetStatusBy(orderID, status, Change{Source: "api", APIKey: apiKey})
}

// SetStatusBy changes an order's status, made by the given user or key.
func (a *Account) SetStatusBy(orderID int64, status string, by Change) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.setStatus(orderID, status, by)
}

func (a *Account) setStatus(orderID int64, status string, by Change) int64 {
	a.mustStatus(status)
	o := a.mustOrder(orderID)
	if o.Status == status {
		return 0
	}
	old := o.Status
	at := a.tick()
	o.Status = status
	o.StatusUpdatedAt = at
	a.transitions++
	return a.appendEntry(entry{order: o, old: int16(a.statuses[old])}, at, by)
}

// SetField appends a non-status entry (e.g. "manager_comment",
// "customer_comment", "payments.status") with arbitrary JSON-encodable old
// and new values, made by a user. The order itself is not changed. It
// returns the history id.
func (a *Account) SetField(orderID int64, field string, oldV, newV any) int64 {
	return a.SetFieldBy(orderID, field, oldV, newV, Change{})
}

// SetFieldBy is SetField made by the given user or key.
func (a *Account) SetFieldBy(orderID int64, field string, oldV, newV any, by Change) int64 {
	if field == "status" {
		panic("crmsim: use SetStatus for the status field")
	}
	ov, nv := mustJSON(oldV), mustJSON(newV)
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.appendExtra(a.mustOrder(orderID), by, &entryExtra{field: field, oldValue: ov, newValue: nv})
}

// DeleteOrder deletes an order: GET /api/v5/orders no longer returns it and
// a deletion entry ("deleted": true) is appended. It returns the history id.
func (a *Account) DeleteOrder(orderID int64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deleteOrder(a.mustOrder(orderID), nil, Change{})
}

// SetCustomField sets a custom field on an order (customFields becomes an
// object) without a history entry.
func (a *Account) SetCustomField(orderID int64, code string, value any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.mustOrder(orderID)
	if o.CustomFields == nil {
		o.CustomFields = make(map[string]any)
	}
	o.CustomFields[code] = value
}

// Transitions returns the ground truth: every order creation and status
// change in history id order, including entries not yet visible (late
// commits), whatever their source (user, api or code) and whether or not
// the order was merged or deleted since. Item and payment creations, other
// fields, deletions and odd entries (AppendOddEntry) are not transitions.
func (a *Account) Transitions() []Transition {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Transition, 0, a.transitions)
	for i := range a.history {
		if e := &a.history[i]; e.transition() {
			out = append(out, a.transition(e))
		}
	}
	return out
}

// Orders returns the ids of the orders not deleted, ascending.
func (a *Account) Orders() []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.live)
}

// OrderStatus returns an order's current status; ok is false for an unknown
// or deleted order.
func (a *Account) OrderStatus(orderID int64) (status string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	o, ok := a.orders[orderID]
	if !ok || o.deleted {
		return "", false
	}
	return o.Status, true
}

// OrderJSON returns the order as GET /api/v5/orders would return it now.
func (a *Account) OrderJSON(orderID int64) (json.RawMessage, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	o, ok := a.orders[orderID]
	if !ok || o.deleted {
		return nil, false
	}
	b, err := json.Marshal(o.wire(a.opts.TimeZone))
	if err != nil {
		panic("crmsim: encode order: " + err.Error())
	}
	return b, true
}

// LastHistoryID returns the highest history id assigned so far (visible or
// not); before any change it is the account's starting point, with no entry.
func (a *Account) LastHistoryID() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastHistID
}

// HistoryLen returns the number of history entries, visible or not.
func (a *Account) HistoryLen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.history)
}

// liveOrders creates random orders until at least n (and one) are live,
// for the random walks; walk names the caller in the panic on a
// simulator without two statuses to move between. a.mu is held.
func (a *Account) liveOrders(rng *rand.Rand, n int, walk string) {
	if len(a.opts.Statuses) < 2 {
		panic("crmsim: " + walk + " needs at least two statuses")
	}
	for len(a.live) < max(n, 1) {
		site := a.opts.Sites[rng.IntN(len(a.opts.Sites))]
		a.createOrder(site, a.opts.Statuses[rng.IntN(len(a.opts.Statuses))], Change{})
	}
}

// RandomWalk makes the account busy the way a shop is: it first creates
// orders until at least `orders` orders exist (at least one; on random
// sites, in random statuses), then makes `changes` status changes, each on
// a random order to a different random status. About one change in ten is
// made through the API with the main key, one in ten with another key and
// one in ten by RetailCRM itself (source "code"); the rest by users. Before
// each change come 0 to 3 other entries (1.15 on average) of the shapes
// the published samples show, in rough proportion: item and payment
// changes and creations ("created": true with "item" or "payment"),
// managers and customers set by "code", values shaped {"id"},
// {"id","site"}, {"id","name"}, {"from","to"}, numbers, booleans and "",
// custom fields, and now and then an entry without an order. About one
// change in 150 (with three orders or more) is a merge: another order is
// merged into the changed one, which moves to the change's status (see
// MergeOrder). Everything is recorded in Transitions; the draws come from
// rng, which must not be used concurrently elsewhere.
func (a *Account) RandomWalk(rng *rand.Rand, orders, changes int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.liveOrders(rng, orders, "RandomWalk")
	for range changes {
		for range extrasPerChange[rng.IntN(len(extrasPerChange))] {
			a.randomExtra(rng, a.orders[a.live[rng.IntN(len(a.live))]])
		}
		id := a.live[rng.IntN(len(a.live))]
		o := a.orders[id]
		st := a.opts.Statuses[rng.IntN(len(a.opts.Statuses)-1)]
		if st == o.Status { // pick among the others, uniformly
			st = a.opts.Statuses[len(a.opts.Statuses)-1]
		}
		by := Change{}
		switch rng.IntN(10) {
		case 0:
			by = Change{Source: "api", APIKey: a.opts.APIKey}
		case 1:
			by = Change{Source: "api", APIKey: otherKey}
		case 2:
			by = Change{Source: "code"}
		}
		if len(a.live) >= 3 && rng.IntN(150) == 0 {
			from := a.live[rng.IntN(len(a.live))]
			for from == id {
				from = a.live[rng.IntN(len(a.live))]
			}
			a.merge(a.orders[from], o, st, by)
			continue
		}
		a.setStatus(id, st, by)
	}
}

// extrasPerChange: how many other entries come before a status change,
// drawn uniformly from this list (0: 35%, 1: 30%, 2: 20%, 3: 15%).
var extrasPerChange = []int{0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3}

// Drive keeps the account busy until ctx ends: every `every` it makes one
// RandomWalk step over at least `orders` orders. For the demo and soak
// tests; rng is used by this goroutine only (a *rand.Rand is not safe for
// concurrent use).
func (a *Account) Drive(ctx context.Context, rng *rand.Rand, orders int, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.RandomWalk(rng, orders, 1)
		}
	}
}

// tick returns the time of a change: the clock, but never before the
// previous change, so createdAt rises with the id (date filters rely on it).
func (a *Account) tick() time.Time {
	t := a.now()
	if t.Before(a.lastAt) {
		t = a.lastAt
	}
	a.lastAt = t
	return t
}

// appendEntry assigns e the next history id (with a random gap), its time
// and author, and appends it; with a late-commit fault it becomes visible
// only later. The entry's status is the order's current one. It returns the
// history id.
func (a *Account) appendEntry(e entry, at time.Time, by Change) int64 {
	return a.appendSave([]entry{e}, at, by)[0]
}

// transition returns the ground truth of a status entry.
func (a *Account) transition(e *entry) Transition {
	t := Transition{
		HistoryID:     e.id,
		OrderID:       e.order.ID,
		Site:          e.order.Site,
		New:           a.opts.Statuses[e.status],
		Created:       e.x != nil && e.x.created, // only an order's creation among transitions
		Source:        e.source,
		APIKey:        e.apiKey,
		APIKeyCurrent: e.source == "api" && e.apiKey == a.opts.APIKey,
		At:            time.Unix(0, e.at),
	}
	if e.old != noStatus {
		t.Old = a.opts.Statuses[e.old]
	}
	return t
}

func (a *Account) mustStatus(status string) {
	if _, ok := a.statuses[status]; !ok {
		panic(fmt.Sprintf("crmsim: account %s has no status %q", a.opts.Name, status))
	}
}

func (a *Account) mustOrder(id int64) *order {
	o, ok := a.orders[id]
	if !ok || o.deleted {
		panic("crmsim: account " + a.opts.Name + " has no order " + strconv.FormatInt(id, 10))
	}
	return o
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("crmsim: value not JSON-encodable: " + err.Error())
	}
	return b
}
