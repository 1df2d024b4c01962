// Package crmsim is an in-process simulator of the RetailCRM (Simla.com)
// API v5, shared by the tests, the demo and the benchmarks. It is a plain
// net/http handler: mount it on an httptest.Server (or any server) and point
// a client at Account.BaseURL(server.URL).
//
// It speaks the way the real API does, as far as the samples RetailCRM
// publishes in its own clients' and modules' tests show:
//   - each account lives under a path prefix ("/<name>"); an unknown prefix
//     answers a text/html 404 page, as a non-RetailCRM host would;
//   - the key is read from the X-API-KEY header or the apiKey query
//     parameter; a wrong or missing key answers 403
//     {"success":false,"errorMsg":"Wrong \"apiKey\" value."};
//   - 10 requests per second per key (sliding one-second window), then 503
//     with a JSON error body;
//   - GET /api/credentials (scopes, credentials, siteAccess and, unless
//     AccountOptions.CredentialsWithoutSites, sitesAvailable; a main key
//     limited by AccountOptions.KeySites is access_selective),
//     /api/v5/reference/statuses and /api/v5/reference/sites (objects keyed
//     by code; sites as the requesting key sees them), /api/v5/settings
//     (each setting {value, updated_at}; timezone is the account's zone,
//     AccountOptions.TimeZone; 403 with AccountOptions.SettingsForbidden);
//   - GET /api/v5/orders/history with filter[sinceId], filter[startDate],
//     filter[endDate] and filter[orderId] (one order's entries), limit 20,
//     50 or 100 (400 otherwise) and page (deep pages refused; with
//     filter[sinceId] refused with a 400, as the API has done since 2023): entries
//     sorted by id with gaps; an order's creation as one entry with
//     "created": true, field "status", oldValue null and the full order;
//     other entries with a minimal order {id, externalId, managerId, site,
//     status}; status values as {"code": ...}; sources user (with user{id}),
//     api (with apiKey{current}), code (RetailCRM itself), rule (a
//     trigger's action), combine and split (merging and splitting orders),
//     the last four with neither; "Y-m-d H:i:s" times (createdAt,
//     generatedAt, statusUpdatedAt) in the account time zone, in which
//     every date filter is read too;
//   - GET /api/v5/orders with filter[ids][], filter[extendedStatus][]
//     (status codes; status group codes are not modelled),
//     filter[statusUpdatedAtFrom] (the order's statusUpdatedAt at or after
//     it, to the second, in the account time zone; "Y-m-d" also taken) and
//     filter[sites][], newest first, paged; statusUpdatedAt follows every
//     status change; payments as an object keyed by id, a list, [] or {},
//     or no key at all; customFields as [] when empty, else an object whose
//     values are strings, booleans, numbers or lists;
//   - history ids may become visible out of order (Faults.LateCommit): an id
//     is assigned when the change happens but the entry is served only after
//     a delay, the way a long transaction commits after later ones; late
//     entries stay invisible to every filter until then.
//
// Entries besides status changes (RandomWalk makes them all, in rough
// proportion to the published samples): item changes and creations
// (fields order_product.*, "created": true with "item"), payment changes
// and creations ("payment"), managers and customers set by source "code",
// values shaped {"id"}, {"id","site"}, {"id","name"}, {"from","to"},
// numbers, booleans and "", custom fields, deletions, and now and then an
// entry without an order. AppendOddEntry adds the shapes the API should
// not send: order [], null, absent, without id, a scalar, a numeric status.
//
// Merged orders (MergeOrder, and about one change in 150 of RandomWalk):
// merging order A into order B moves A's items to B (item creation entries
// on B carrying "ancestor": A), optionally moves B into a new status (a
// status entry carrying "ancestor", a transition of B) and deletes A (a
// deletion entry carrying "combinedTo": B; GET /api/v5/orders no longer
// returns A). A's own earlier transitions, an approval included, stay in
// the ground truth: a correct poller emits each once, and nothing for the
// merge except B's status change when there is one.
//
// Tests drive an account with Go calls (CreateOrder, SetStatus,
// SetStatusVia, SetStatusBy, SetField, AddItem, AddPayment, MergeOrder,
// DeleteOrder, AppendOddEntry, RandomWalk, Drive), inject faults with
// SetFaults (latency, 503/429/500 bursts, HTML pages, malformed or
// truncated bodies, empty pages claiming more, late commits) and compare
// what a poller emitted with Transitions, the ground truth: every order
// creation and status change (whatever its source), nothing else. Requests
// counts the calls per endpoint.
//
// What it does not model: writes through the API (changes are made with Go
// calls), filters other than those listed, history and orders restricted to
// a selective key's sites, customers, products and every other endpoint,
// the exact wording of error messages other than the 403 one, status
// groups in filter[extendedStatus], and the exact shape of deletion and
// merge entries (modelled as above: "deleted": true, field "id").
//
// All methods are safe for concurrent use. With the same Options.Seed and the
// same sequence of calls per account, ids, gaps and generated order data are
// the same on every run; accounts draw from their own random streams, so
// concurrent activity on one account does not perturb another.
package crmsim

import (
	"hash/fnv"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configures a Sim.
type Options struct {
	Seed int64            // seeds ids, gaps, late commits and generated order data
	Now  func() time.Time // clock for createdAt, rate limits and late commits; default time.Now
}

// Sim simulates any number of RetailCRM accounts. It implements http.Handler.
type Sim struct {
	opts Options

	mu       sync.RWMutex
	accounts map[string]*Account
}

// New returns an empty simulator; add accounts with AddAccount.
func New(opts Options) *Sim {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sim{opts: opts, accounts: make(map[string]*Account)}
}

// URL returns the base URL of an account served under serverURL, the value
// to configure as the account's url (the client appends /api/v5/...).
func URL(serverURL, account string) string {
	return strings.TrimSuffix(serverURL, "/") + "/" + account
}

// AddAccount creates an account. It panics on an empty or duplicate name or
// an empty key: these are mistakes in the calling test.
func (s *Sim) AddAccount(o AccountOptions) *Account {
	if o.Name == "" || strings.Contains(o.Name, "/") || o.APIKey == "" {
		panic("crmsim: AddAccount needs a Name without '/' and an APIKey")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.accounts[o.Name]; dup {
		panic("crmsim: duplicate account " + o.Name)
	}
	h := fnv.New64a()
	h.Write([]byte(o.Name))
	a := newAccount(o, uint64(s.opts.Seed), h.Sum64(), s.opts.Now)
	s.accounts[o.Name] = a
	return a
}

// Account returns the account with the given name.
func (s *Sim) Account(name string) (*Account, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.accounts[name]
	return a, ok
}

// Accounts returns the number of accounts.
func (s *Sim) Accounts() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.accounts)
}

// ServeHTTP routes "/<account>/..." to the account; anything else gets the
// HTML page a host without RetailCRM would serve.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	a, ok := s.Account(name)
	if !ok {
		writeHTML(w, http.StatusNotFound, notFoundPage)
		return
	}
	a.serve(w, r, "/"+rest)
}

const notFoundPage = `<!DOCTYPE html>
<html><head><title>404 Not Found</title></head>
<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>
`

const badGatewayPage = `<html>
<head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body>
</html>
`

func writeHTML(w http.ResponseWriter, code int, page string) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(page))
}
