package crmsim

import (
	"encoding/json"
	"fmt"
	"maps"
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
	EndpointSites       = "sites"
	EndpointSettings    = "settings"
	EndpointUnknown     = "unknown" // any other path under the account
)

// sinceIDWithPage is the error of a history request with both
// filter[sinceId] and page (the wording is the simulator's own).
const sinceIDWithPage = "The page parameter cannot be used with filter[sinceId]: page through the history with sinceId alone."

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
	case "/api/v5/reference/sites":
		return EndpointSites
	case "/api/v5/settings":
		return EndpointSettings
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
		return a.credentials(key), f, latency
	case EndpointHistory:
		return a.historyPage(q, key, now), f, latency
	case EndpointOrders:
		return a.ordersPage(q), f, latency
	case EndpointStatuses:
		return a.statusesAnswer(), f, latency
	case EndpointSites:
		return a.sitesAnswer(key), f, latency
	case EndpointSettings:
		return a.settingsAnswer(), f, latency
	}
	return errAnswer(http.StatusNotFound, "API method not found", nil), f, latency
}

func (a *Account) credentials(key string) answer {
	body := map[string]any{
		"success":     true,
		"scopes":      []string{"order_read", "order_write", "reference_read", "customer_read"},
		"credentials": []string{"/api/v5/orders", "/api/v5/orders/history", "/api/v5/reference/statuses", "/api/v5/reference/sites", "/api/v5/settings"},
		"siteAccess":  "access_full",
	}
	if key == a.opts.APIKey && len(a.opts.KeySites) > 0 {
		body["siteAccess"] = "access_selective"
	}
	if !a.opts.CredentialsWithoutSites {
		body["sitesAvailable"] = a.keySites(key)
	}
	return jsonAnswer(http.StatusOK, body)
}

// keySites returns the sites a key sees.
func (a *Account) keySites(key string) []string {
	if key == a.opts.APIKey && len(a.opts.KeySites) > 0 {
		return a.opts.KeySites
	}
	return a.opts.Sites
}

type wireSite struct {
	Name          string `json:"name"`
	URL           string `json:"url"`
	Code          string `json:"code"`
	DefaultForCRM bool   `json:"defaultForCrm"`
	Currency      string `json:"currency"`
}

// sitesAnswer is GET /api/v5/reference/sites: an object keyed by code.
func (a *Account) sitesAnswer(key string) answer {
	sites := make(map[string]wireSite)
	for i, code := range a.keySites(key) {
		sites[code] = wireSite{Name: "Shop " + code, URL: "https://" + code + ".example.com", Code: code, DefaultForCRM: i == 0, Currency: "GHS"}
	}
	return jsonAnswer(http.StatusOK, map[string]any{"success": true, "sites": sites})
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
	sinceID := intParam(q, "sinceId", errs)
	if sinceID > 0 && q.Get("page") != "" {
		// The API refuses this since 2023: sinceId pages by itself.
		return errAnswer(http.StatusBadRequest, sinceIDWithPage, nil)
	}
	orderID := intParam(q, "orderId", errs)
	start := timeParam(q, "startDate", a.opts.TimeZone, errs)
	end := timeParam(q, "endDate", a.opts.TimeZone, errs)
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
	// served: the entry is visible and passes the filters the range does
	// not express.
	served := func(e *entry) bool { return !e.hidden && (orderID == 0 || e.order.ID == orderID) }
	total := 0
	if orderID == 0 {
		total = hi - lo
		for _, p := range a.pending {
			if p.idx >= lo && p.idx < hi {
				total--
			}
		}
	} else {
		for i := lo; i < hi; i++ {
			if served(&h[i]) {
				total++
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
			if !served(e) {
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

// ordersPage is GET /api/v5/orders with filter[ids][], filter[extendedStatus][]
// (status codes), filter[statusUpdatedAtFrom] (the order's statusUpdatedAt
// at or after it, to the second, in the account time zone) and
// filter[sites][], all optional and combined with AND; newest first.
func (a *Account) ordersPage(q url.Values) answer {
	limit, page, errs := limitAndPage(q)
	var ids []int64
	for _, v := range listParam(q, "ids") {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs["ids"] = "This value should be of type integer."
			continue
		}
		ids = append(ids, id)
	}
	statuses := listParam(q, "extendedStatus")
	sites := listParam(q, "sites")
	from := timeParam(q, "statusUpdatedAtFrom", a.opts.TimeZone, errs)
	if len(errs) > 0 {
		return errAnswer(http.StatusBadRequest, "Errors in the filter", errs)
	}
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
	found = slices.DeleteFunc(found, func(o *order) bool {
		return len(statuses) > 0 && !slices.Contains(statuses, o.Status) ||
			len(sites) > 0 && !slices.Contains(sites, o.Site) ||
			!from.IsZero() && o.StatusUpdatedAt.Unix() < from.Unix()
	})
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

// listParam returns the values of filter[name][] (and filter[name][N]).
func listParam(q url.Values, name string) []string {
	var out []string
	prefix := "filter[" + name + "]["
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if strings.HasPrefix(k, prefix) && strings.HasSuffix(k, "]") {
			out = append(out, q[k]...)
		}
	}
	return out
}

// intParam reads filter[name], a non-negative integer; 0 when absent. A
// bad value is recorded in errs.
func intParam(q url.Values, name string, errs map[string]string) int64 {
	v := q.Get("filter[" + name + "]")
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		errs[name] = "This value should be of type integer."
		return 0
	}
	return n
}

// timeParam reads filter[name] as "Y-m-d H:i:s" or "Y-m-d" in tz; zero
// when absent. A bad value is recorded in errs.
func timeParam(q url.Values, name string, tz *time.Location, errs map[string]string) time.Time {
	v := q.Get("filter[" + name + "]")
	if v == "" {
		return time.Time{}
	}
	for _, layout := range []string{timeLayout, time.DateOnly} {
		if t, err := time.ParseInLocation(layout, v, tz); err == nil {
			return t
		}
	}
	errs[name] = "This value is not a valid datetime."
	return time.Time{}
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

// settingsAnswer is GET /api/v5/settings: each setting an object with its
// value and when it last changed. The zone is the one every date of the
// account is read and written in.
func (a *Account) settingsAnswer() answer {
	if a.opts.SettingsForbidden {
		return errAnswer(http.StatusForbidden, "Access denied.", nil)
	}
	type value struct {
		Value     string `json:"value"`
		UpdatedAt string `json:"updated_at"`
	}
	since := "2020-01-01 00:00:00"
	return jsonAnswer(http.StatusOK, map[string]any{"success": true, "settings": map[string]any{
		"default_currency": value{"GHS", since},
		"system_language":  value{"EN", since},
		"timezone":         value{a.opts.TimeZone.String(), since},
		"work_times":       []any{},
		"non_working_days": []any{},
	}})
}
