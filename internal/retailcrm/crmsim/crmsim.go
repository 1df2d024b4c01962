// Package crmsim is an in-process simulator of the RetailCRM (Simla.com)
// API v5, shared by the tests, the demo and the benchmarks. It is a plain
// net/http handler: mount it on an httptest.Server (or any server) and point
// a client at Account.BaseURL(server.URL).
//
// What matches the real API (DESIGN.md, "RetailCRM API facts"):
//   - each account lives under a path prefix ("/<name>"); an unknown prefix
//     answers a text/html 404 page, as a non-RetailCRM host would;
//   - the key is read from the X-API-KEY header or the apiKey query
//     parameter; a wrong or missing key answers 403
//     {"success":false,"errorMsg":"Wrong \"apiKey\" value."};
//   - 10 requests per second per key (sliding one-second window), then 503
//     with a JSON error body;
//   - GET /api/credentials, /api/v5/orders/history, /api/v5/orders and
//     /api/v5/reference/statuses with the documented JSON shapes: history
//     entries sorted by id with gaps, creation entries carrying "created":
//     true, field "status", oldValue null and the full order, other entries a
//     minimal order {id, externalId, managerId, site, status}; status values
//     as {"code": ...}; source user with user{id} or api with
//     apiKey{current}; "Y-m-d H:i:s" times in the account time zone; orders
//     with payments as an object keyed by id and customFields as [] when
//     empty; limit restricted to 20, 50 or 100 (400 otherwise);
//   - history ids may become visible out of order (Faults.LateCommit): an id
//     is assigned when the change happens but the entry is served only after
//     a delay, the way a long transaction commits after later ones.
//
// Tests drive an account with Go calls (CreateOrder, SetStatus,
// SetStatusVia, SetField, DeleteOrder, RandomWalk, Drive), inject faults
// with SetFaults (latency, 503/429/500 bursts, HTML pages, malformed or
// truncated bodies, empty pages claiming more, late commits) and compare
// what a poller emitted with Transitions, the ground truth. Requests counts
// the calls per endpoint.
//
// What it does not model: writes through the API (changes are made with Go
// calls such as Account.SetStatus), filters other than those listed, keys
// restricted to some sites (access_selective), customers, products and every
// other endpoint, the exact wording of error messages other than the 403
// one, and the exact shape of deletion entries (modelled as "deleted": true,
// field "id").
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
