package crmsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Endpoint names, as counted by Account.Requests.
const (
	EndpointCredentials = "credentials"
	EndpointHistory     = "history"
	EndpointOrders      = "orders"
	EndpointStatuses    = "statuses"
	EndpointUnknown     = "unknown" // any other path under the account
)

// maxPageDepth: pages reaching past this many entries are refused, as the
// real API refuses deep paging (use filter[sinceId] instead).
const maxPageDepth = 10000

func endpointOf(path string) string {
	switch strings.TrimSuffix(path, "/") {
	case "/api/credentials", "/api/v5/credentials":
		return EndpointCredentials
	case "/api/v5/orders/history":
		return EndpointHistory
	case "/api/v5/orders":
		return EndpointOrders
	case "/api/v5/reference/statuses":
		return EndpointStatuses
	}
	return EndpointUnknown
}

// apiError is RetailCRM's error body.
type apiError struct {
	Success  bool              `json:"success"`
	ErrorMsg string            `json:"errorMsg"`
	Errors   map[string]string `json:"errors,omitempty"`
}

// answer is a response built under the account lock and written after it.
type answer struct {
	code int
	body []byte
	html string // non-empty: an HTML page instead of body
}

func jsonAnswer(code int, v any) answer {
	b, err := json.Marshal(v)
	if err != nil {
		panic("crmsim: encode answer: " + err.Error())
	}
	return answer{code: code, body: b}
}

func errAnswer(code int, msg string, errs map[string]string) answer {
	return jsonAnswer(code, apiError{ErrorMsg: msg, Errors: errs})
}

func (a *Account) serve(w http.ResponseWriter, r *http.Request, path string) {
	endpoint := endpointOf(path)
	// Read the clock at the door: under load, requests queue on the account
	// lock, and stamping them after it would bunch well-paced requests.
	ans, f, latency := a.handle(r, endpoint, a.now())
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if ans.html != "" {
		writeHTML(w, ans.code, ans.html)
		return
	}
	body := ans.body
	switch f {
	case faultMalformed:
		body = []byte(`{"success":true,"history":[{"id":` + "\x00<br />\n<b>Fatal error</b>")
	case faultTruncated:
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ans.code)
	_, _ = w.Write(body)
}

// handle does everything that needs the account lock: counting, faults,
// auth, rate limit and building the answer. now is the request's arrival.
func (a *Account) handle(r *http.Request, endpoint string, now time.Time) (answer, fault, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests[endpoint]++
	latency := a.faults.Latency
	f := a.takeFault(endpoint)
	switch f {
	case fault503:
		return errAnswer(http.StatusServiceUnavailable, "Service temporarily unavailable", nil), f, latency
	case fault429:
		return errAnswer(http.StatusTooManyRequests, "Too Many Requests", nil), f, latency
	case fault500:
		return errAnswer(http.StatusInternalServerError, "Internal Server Error", nil), f, latency
	case faultHTML:
		return answer{code: http.StatusBadGateway, html: badGatewayPage}, f, latency
	}
	q := r.URL.Query()
	key := r.Header.Get("X-API-KEY")
	if key == "" {
		key = q.Get("apiKey")
	}
	ks, ok := a.keys[key]
	if !ok {
		return errAnswer(http.StatusForbidden, `Wrong "apiKey" value.`, nil), f, latency
	}
	if !a.allow(ks, now) {
		a.rateLimited++
		return errAnswer(http.StatusServiceUnavailable,
			fmt.Sprintf("Rate limit exceeded: no more than %d requests per second", a.opts.RateLimit), nil), f, latency
	}
	if r.Method != http.MethodGet {
		return errAnswer(http.StatusMethodNotAllowed, "Method not allowed", nil), f, latency
	}
	switch endpoint {
	case EndpointCredentials:
		return a.credentials(), f, latency
	case EndpointHistory:
		return a.historyPage(q, key, now), f, latency
	case EndpointOrders:
		return a.ordersPage(q), f, latency
	case EndpointStatuses:
		return a.statusesAnswer(), f, latency
	}
	return errAnswer(http.StatusNotFound, "API method not found", nil), f, latency
}

func (a *Account) credentials() answer {
	return jsonAnswer(http.StatusOK, map[string]any{
		"success":        true,
		"scopes":         []string{"order_read", "order_write", "reference_read", "customer_read"},
		"siteAccess":     "access_full",
		"sitesAvailable": a.opts.Sites,
	})
}

var statusGroups = map[string]string{
	"new": "new", "approved": "approval", "assembling": "assembling",
	"complete": "complete", "cancel": "cancel",
}

type wireStatus struct {
	Name     string `json:"name"`
	Code     string `json:"code"`
	Active   bool   `json:"active"`
	Ordering int    `json:"ordering"`
	Group    string `json:"group"`
}

func (a *Account) statusesAnswer() answer {
	sts := make(map[string]wireStatus, len(a.opts.Statuses))
	for i, code := range a.opts.Statuses {
		group, ok := statusGroups[code]
		if !ok {
			group = "approval"
		}
		name := strings.ToUpper(code[:1]) + strings.ReplaceAll(code[1:], "-", " ")
		sts[code] = wireStatus{Name: name, Code: code, Active: true, Ordering: (i + 1) * 10, Group: group}
	}
	return jsonAnswer(http.StatusOK, map[string]any{"success": true, "statuses": sts})
}

type pagination struct {
	Limit          int `json:"limit"`
	TotalCount     int `json:"totalCount"`
	CurrentPage    int `json:"currentPage"`
	TotalPageCount int `json:"totalPageCount"`
}

func newPagination(limit, total, page int) pagination {
	return pagination{Limit: limit, TotalCount: total, CurrentPage: page, TotalPageCount: (total + limit - 1) / limit}
}

// limitAndPage validates limit (20, 50 or 100; default 20) and page.
func limitAndPage(q url.Values) (limit, page int, errs map[string]string) {
	errs = make(map[string]string)
	limit, page = 20, 1
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 20 && n != 50 && n != 100) {
			errs["limit"] = "The value you selected is not a valid choice."
		} else {
			limit = n
		}
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs["page"] = "This value should be greater than or equal to 1."
		} else {
			page = n
		}
	}
	if len(errs) == 0 && (page-1)*limit >= maxPageDepth {
		errs["page"] = "Page is too deep: use filter[sinceId] to page through the history."
	}
	return limit, page, errs
}

func (a *Account) historyPage(q url.Values, key string, now time.Time) answer {
	limit, page, errs := limitAndPage(q)
	var sinceID int64
	if v := q.Get("filter[sinceId]"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs["sinceId"] = "This value should be of type integer."
		}
		sinceID = n
	}
	var start, end time.Time
	for _, d := range []struct {
		name string
		t    *time.Time
	}{{"startDate", &start}, {"endDate", &end}} {
		if v := q.Get("filter[" + d.name + "]"); v != "" {
			t, err := time.ParseInLocation(timeLayout, v, a.opts.TimeZone)
			if err != nil {
				errs[d.name] = "This value is not a valid datetime."
			}
			*d.t = t
		}
	}
	if len(errs) > 0 {
		return errAnswer(http.StatusBadRequest, "Errors in the filter", errs)
	}

	// [lo, hi) is the id and date range; entries in it are sorted by id
	// and, since createdAt never goes back, by time too.
	h := a.history
	lo := sort.Search(len(h), func(i int) bool { return h[i].id > sinceID })
	if !start.IsZero() {
		lo += sort.Search(len(h)-lo, func(i int) bool { return seconds(h[lo+i].at) >= start.Unix() })
	}
	hi := len(h)
	if !end.IsZero() {
		hi = lo + sort.Search(len(h)-lo, func(i int) bool { return seconds(h[lo+i].at) > end.Unix() })
	}
	a.prunePending(now)
	total := hi - lo
	if total > 0 {
		for _, p := range a.pending {
			if p.idx >= lo && p.idx < hi {
				total--
			}
		}
	}
	p := newPagination(limit, total, page)
	out := make([]wireEntry, 0, limit)
	if a.faults.EmptyPages > 0 && (a.faults.Endpoint == "" || a.faults.Endpoint == EndpointHistory) {
		a.faults.EmptyPages--
		p.TotalPageCount = max(p.TotalPageCount, 2)
		p.TotalCount = max(p.TotalCount, limit+1)
	} else {
		skip := (page - 1) * limit
		for i := lo; i < hi && len(out) < limit; i++ {
			e := &h[i]
			if e.hidden {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, e.wire(a.opts.TimeZone, key, a.opts.Statuses, a.codes))
		}
	}
	return jsonAnswer(http.StatusOK, struct {
		Success     bool        `json:"success"`
		GeneratedAt string      `json:"generatedAt"`
		History     []wireEntry `json:"history"`
		Pagination  pagination  `json:"pagination"`
	}{true, now.In(a.opts.TimeZone).Format(timeLayout), out, p})
}

func (a *Account) ordersPage(q url.Values) answer {
	limit, page, errs := limitAndPage(q)
	var ids []int64
	for k, vs := range q {
		if k != "filter[ids][]" && !strings.HasPrefix(k, "filter[ids][") {
			continue
		}
		for _, v := range vs {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs["ids"] = "This value should be of type integer."
				continue
			}
			ids = append(ids, id)
		}
	}
	if len(errs) > 0 {
		return errAnswer(http.StatusBadRequest, "Errors in the filter", errs)
	}
	// Like the real list, newest first; without filter[ids] every order.
	var found []*order
	if len(ids) == 0 {
		for _, id := range a.live {
			found = append(found, a.orders[id])
		}
	} else {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		for _, id := range ids {
			if o, ok := a.orders[id]; ok && !o.deleted {
				found = append(found, o)
			}
		}
	}
	slices.Reverse(found)
	p := newPagination(limit, len(found), page)
	out := make([]wireOrder, 0, limit)
	for i := (page - 1) * limit; i < len(found) && len(out) < limit; i++ {
		out = append(out, found[i].wire(a.opts.TimeZone))
	}
	return jsonAnswer(http.StatusOK, struct {
		Success    bool        `json:"success"`
		Pagination pagination  `json:"pagination"`
		Orders     []wireOrder `json:"orders"`
	}{true, p, out})
}

// Requests returns how many requests reached an endpoint of the account
// (EndpointHistory etc.), whatever their outcome; "" counts all endpoints.
func (a *Account) Requests(endpoint string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if endpoint == "" {
		n := 0
		for _, c := range a.requests {
			n += c
		}
		return n
	}
	return a.requests[endpoint]
}

// RateLimited returns how many requests were refused with 503 for going
// over the rate limit.
func (a *Account) RateLimited() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rateLimited
}

// seconds truncates unix nanoseconds to whole seconds, the precision of
// createdAt and of the date filters.
func seconds(ns int64) int64 { return time.Unix(0, ns).Unix() }
