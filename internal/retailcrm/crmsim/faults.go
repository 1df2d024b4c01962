package crmsim

import (
	"time"
)

// Faults are injected into an account's answers. Counts are consumed one
// per request, in the order the fields are listed; set them at any time with
// SetFaults (which replaces all of them) or the helpers below.
type Faults struct {
	// Endpoint restricts the counted faults to one endpoint ("history",
	// "orders", "statuses", "credentials"); "" means every endpoint.
	Endpoint string
	// Latency delays every answer (the wait ends early if the client gives up).
	Latency time.Duration

	Fail503   int // next N requests: 503 with a JSON error body
	Fail429   int // next N requests: 429, as some proxies answer over the limit
	Fail500   int // next N requests: 500 with a JSON error body
	HTML      int // next N requests: a 502 text/html page (an nginx error page)
	Malformed int // next N requests: 200 with a body that is not JSON
	Truncated int // next N requests: 200 with the first half of the real body
	// EmptyPages: next N history requests answer an empty history with
	// pagination claiming more pages (totalPageCount >= 2).
	EmptyPages int

	// LateCommit makes new history entries become visible late.
	LateCommit LateCommit
}

// LateCommit: each new history entry, with Probability, gets its id at
// change time but is served only Delay later, so entries with higher ids
// may be seen first.
type LateCommit struct {
	Probability float64
	Delay       time.Duration
}

// SetFaults replaces the account's faults.
func (a *Account) SetFaults(f Faults) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = f
}

// Faults returns the account's faults with the counts still to be consumed.
func (a *Account) Faults() Faults {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.faults
}

// UpdateFaults changes the faults in place, e.g.
// acct.UpdateFaults(func(f *crmsim.Faults) { f.Fail503 += 3 }).
func (a *Account) UpdateFaults(fn func(f *Faults)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(&a.faults)
}

// CommitAll makes every late entry visible now (e.g. before a final drain).
func (a *Account) CommitAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pending {
		a.history[p.idx].hidden = false
	}
	a.pending = nil
}

// Pending returns how many history entries are assigned but not visible yet.
func (a *Account) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prunePending(a.now())
	return len(a.pending)
}

// prunePending drops the entries that have become visible from a.pending.
func (a *Account) prunePending(now time.Time) {
	kept := a.pending[:0]
	for _, p := range a.pending {
		if now.UnixNano() < p.visibleAt {
			kept = append(kept, p)
		} else {
			a.history[p.idx].hidden = false
		}
	}
	a.pending = kept
}

// fault is what one request got.
type fault int

const (
	faultNone fault = iota
	fault503
	fault429
	fault500
	faultHTML
	faultMalformed
	faultTruncated
)

// takeFault consumes one counted fault for endpoint, if any applies.
func (a *Account) takeFault(endpoint string) fault {
	f := &a.faults
	if f.Endpoint != "" && f.Endpoint != endpoint {
		return faultNone
	}
	for _, c := range []struct {
		n    *int
		kind fault
	}{
		{&f.Fail503, fault503}, {&f.Fail429, fault429}, {&f.Fail500, fault500},
		{&f.HTML, faultHTML}, {&f.Malformed, faultMalformed}, {&f.Truncated, faultTruncated},
	} {
		if *c.n > 0 {
			*c.n--
			return c.kind
		}
	}
	return faultNone
}

// SetRateLimit changes the requests per second allowed per key (0 = 10,
// -1 = unlimited) and forgets the requests seen so far.
func (a *Account) SetRateLimit(rps int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if rps == 0 {
		rps = 10
	}
	a.opts.RateLimit = rps
	for _, k := range a.keys {
		*k = keyState{}
	}
}

// allow applies the sliding one-second window rate limit of one key.
func (a *Account) allow(k *keyState, now time.Time) bool {
	limit := a.opts.RateLimit
	if limit < 0 {
		return true
	}
	if len(k.window) < limit {
		k.window = append(k.window, now)
		return true
	}
	// k.window[k.next] is the oldest of the last `limit` accepted requests.
	if now.Sub(k.window[k.next]) < time.Second {
		return false
	}
	k.window[k.next] = now
	k.next = (k.next + 1) % limit
	return true
}
