// Package retailcrm is a client for the parts of the RetailCRM (Simla.com)
// API v5 the poller uses: credentials, order history, orders (by id and by
// status), the statuses and sites references, and the account's settings
// (its time zone).
// It rate-limits per account, retries 503/429/5xx and timeouts honouring
// Retry-After, and never puts the API key anywhere but the X-API-KEY header.
package retailcrm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/retailcrm-poller/retailcrm-poller/internal/redact"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

// Options configures a Client. Zero values take the documented defaults.
type Options struct {
	// BaseURL is the account URL, e.g. https://aff-gh.retailcrm.ru; it may
	// carry a path prefix (http://127.0.0.1:4000/acme) that API paths follow.
	BaseURL string
	APIKey  string // sent only as X-API-KEY
	// RateLimit is requests per second, applied to every attempt including
	// retries: a token bucket (burst 1) at 95% of it, plus a check on real
	// send times (see pacer). 0 means 8; a negative value disables the
	// limit (simulator benchmarks only).
	RateLimit  float64
	Timeout    time.Duration // per attempt (default 30s)
	MaxRetries int           // retries of 503/429/5xx/timeouts/truncated bodies (0: 5; negative: none)
	// RetryWait and RetryMaxWait bound the exponential backoff with jitter
	// (defaults 500ms and 10s). A Retry-After longer than RetryMaxWait ends
	// the retries: the server asked for more patience than the caller has.
	RetryWait    time.Duration
	RetryMaxWait time.Duration
	Logger       *slog.Logger // resty chatter and retries at Debug; nil discards
	UserAgent    string       // default version.UserAgent()
	// Observe, when set, is called once per HTTP response or transport error
	// with the endpoint name ("history", "orders", "statuses", "sites",
	// "credentials", "settings") and the HTTP status code (0 for a transport error).
	// Metrics hook.
	Observe func(endpoint string, code int)
	// Transport carries the requests; nil gives the client a pool of its
	// own, trusting CA besides the system's CAs. The daemon shares one
	// (NewTransport) between the accounts of one CA, so idle connections
	// are bounded by the pool, not by the accounts.
	Transport http.RoundTripper
	CA        []byte // PEM CA certificates for a pool of the client's own (ca_file)
}

// Defaults of Options.
const (
	DefaultRateLimit    = 8
	DefaultTimeout      = 30 * time.Second
	DefaultMaxRetries   = 5
	DefaultRetryWait    = 500 * time.Millisecond
	DefaultRetryMaxWait = 10 * time.Second
	// MaxOrderIDs is the most ids Orders accepts per call (the API's page size).
	MaxOrderIDs = 100
	// PageLimit is the page size the list calls ask for by default: the
	// largest the API accepts (it allows 20, 50 and 100).
	PageLimit = 100
)

// maxBody bounds a response body; a page of 100 full orders is far smaller.
const maxBody = 64 << 20

// API paths, also used to name the endpoint in errors.
const (
	pathCredentials = "/api/credentials"
	pathHistory     = "/api/v5/orders/history"
	pathOrders      = "/api/v5/orders"
	pathStatuses    = "/api/v5/reference/statuses"
	pathSites       = "/api/v5/reference/sites"
)

// Client talks to one account. Safe for concurrent use.
type Client struct {
	rc    *resty.Client
	pacer *pacer
	log   *slog.Logger
}

// New builds a client; it does no I/O.
func New(opts Options) (*Client, error) {
	// The URL is quoted only in parts: a misplaced key could sit in its
	// query or user info.
	u, err := url.Parse(opts.BaseURL)
	if err != nil {
		return nil, errors.New("retailcrm: base URL does not parse; want http(s)://host[/prefix]")
	}
	where := u.Scheme + "://" + u.Host + u.EscapedPath()
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("retailcrm: base URL %q: want http(s)://host[/prefix]", where)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("retailcrm: base URL %q: no query, fragment or user info allowed", where)
	}
	if opts.APIKey == "" {
		return nil, errors.New("retailcrm: empty API key")
	}
	if strings.ContainsFunc(opts.APIKey, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("retailcrm: API key contains spaces or control characters")
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	switch {
	case opts.MaxRetries == 0:
		opts.MaxRetries = DefaultMaxRetries
	case opts.MaxRetries < 0:
		opts.MaxRetries = 0
	}
	if opts.RetryWait <= 0 {
		opts.RetryWait = DefaultRetryWait
	}
	if opts.RetryMaxWait <= 0 {
		opts.RetryMaxWait = DefaultRetryMaxWait
	}
	if opts.RetryMaxWait < opts.RetryWait {
		opts.RetryMaxWait = opts.RetryWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.UserAgent == "" {
		opts.UserAgent = version.UserAgent()
	}

	c := &Client{pacer: newPacer(opts.RateLimit), log: opts.Logger}

	transport := opts.Transport
	if transport == nil {
		if transport, err = NewTransport(TransportOptions{CA: opts.CA}); err != nil {
			return nil, err
		}
	}
	hc := &http.Client{
		Transport: attempts{next: transport, timeout: opts.Timeout, observe: opts.Observe},
		// A redirect would carry X-API-KEY to wherever it points; a real
		// account URL answers directly, so a redirect is reported instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.rc = resty.NewWithClient(hc).
		SetBaseURL(strings.TrimSuffix(u.String(), "/")).
		SetHeader("X-API-KEY", opts.APIKey).
		SetHeader("User-Agent", opts.UserAgent).
		SetHeader("Accept", "application/json").
		SetResponseBodyLimit(maxBody).
		SetLogger(restyLogger{opts.Logger}).
		SetRetryCount(opts.MaxRetries).
		SetRetryWaitTime(opts.RetryWait).
		SetRetryMaxWaitTime(opts.RetryMaxWait).
		SetRetryAfter(func(_ *resty.Client, r *resty.Response) (time.Duration, error) {
			return retryAfter(r.Header().Get("Retry-After"), time.Now(), opts.RetryMaxWait)
		}).
		AddRetryHook(c.logRetry).
		OnBeforeRequest(c.wait)
	return c, nil
}

// Account is what AccountOptions reads of a configured account;
// config.Account implements it. (This package cannot import config, whose
// webhook conditions read history entries.)
type Account interface {
	ClientSettings() (baseURL, apiKey string, rateLimit float64, timeout time.Duration, ca []byte)
}

// AccountOptions are the options of a configured account's client: its
// URL, key, rate limit, timeout and ca_file. Callers add the rest (logger, user
// agent, metrics hook, transport), so that the daemon, check and replay
// build their clients alike.
func AccountOptions(acct Account) Options {
	o := Options{}
	o.BaseURL, o.APIKey, o.RateLimit, o.Timeout, o.CA = acct.ClientSettings()
	return o
}

// Credentials checks the key and returns its scopes and sites.
func (c *Client) Credentials(ctx context.Context) (Credentials, error) {
	body, err := c.get(ctx, "credentials", pathCredentials, nil)
	if err != nil {
		return Credentials{}, err
	}
	cr, err := decodeCredentials(body)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: %s: %w", ErrBadResponse, pathCredentials, err)
	}
	return cr, nil
}

// History returns one page of order history. An entry that cannot be read
// never fails the page: see HistoryEntry.
func (c *Client) History(ctx context.Context, f HistoryFilter) (HistoryPage, error) {
	if f.SinceID > 0 && f.Page > 0 {
		return HistoryPage{}, fmt.Errorf("%w: %s", ErrIncompatibleFilter, pathHistory)
	}
	q := url.Values{}
	if f.SinceID > 0 {
		q.Set("filter[sinceId]", strconv.FormatInt(f.SinceID, 10))
	}
	if f.OrderID > 0 {
		q.Set("filter[orderId]", strconv.FormatInt(f.OrderID, 10))
	}
	if !f.StartDate.IsZero() {
		q.Set("filter[startDate]", apiTime(f.StartDate, f.Location))
	}
	if !f.EndDate.IsZero() {
		q.Set("filter[endDate]", apiTime(f.EndDate, f.Location))
	}
	q.Set("limit", strconv.Itoa(cmp.Or(max(f.Limit, 0), PageLimit)))
	if f.Page > 0 {
		q.Set("page", strconv.Itoa(f.Page))
	}
	body, err := c.get(ctx, "history", pathHistory, q)
	if err != nil {
		return HistoryPage{}, err
	}
	p, err := decodeHistory(body)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("%w: %s: %w", ErrBadResponse, pathHistory, err)
	}
	return p, nil
}

// Orders returns the orders with the given internal ids (at most
// MaxOrderIDs per call; the caller batches). Orders the API does not return
// are absent, and so is an order without a usable id (logged at Warn).
func (c *Client) Orders(ctx context.Context, ids []int64) ([]Order, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > MaxOrderIDs {
		return nil, fmt.Errorf("retailcrm: %s: %d ids, at most %d per call", pathOrders, len(ids), MaxOrderIDs)
	}
	q := url.Values{"limit": {strconv.Itoa(MaxOrderIDs)}}
	for _, id := range ids {
		q.Add("filter[ids][]", strconv.FormatInt(id, 10))
	}
	page, err := c.orders(ctx, q)
	return page.Orders, err
}

// OrderList returns one page of the orders f selects, newest first, with
// the pagination that tells how many pages there are. An order without a
// usable id is left out (logged at Warn).
func (c *Client) OrderList(ctx context.Context, f OrdersFilter) (OrdersPage, error) {
	q := url.Values{}
	for _, s := range f.ExtendedStatus {
		q.Add("filter[extendedStatus][]", s)
	}
	if !f.StatusUpdatedAtFrom.IsZero() {
		q.Set("filter[statusUpdatedAtFrom]", apiTime(f.StatusUpdatedAtFrom, f.Location))
	}
	for _, s := range f.Sites {
		q.Add("filter[sites][]", s)
	}
	q.Set("limit", strconv.Itoa(cmp.Or(max(f.Limit, 0), PageLimit)))
	q.Set("page", strconv.Itoa(max(f.Page, 1)))
	return c.orders(ctx, q)
}

// orders performs GET /api/v5/orders for Orders and OrderList.
func (c *Client) orders(ctx context.Context, q url.Values) (OrdersPage, error) {
	body, err := c.get(ctx, "orders", pathOrders, q)
	if err != nil {
		return OrdersPage{}, err
	}
	page, skipped, err := decodeOrders(body)
	if err != nil {
		return OrdersPage{}, fmt.Errorf("%w: %s: %w", ErrBadResponse, pathOrders, err)
	}
	for _, e := range skipped {
		c.log.LogAttrs(ctx, slog.LevelWarn, "retailcrm: order skipped", slog.String("endpoint", pathOrders), slog.Any("error", e))
	}
	return page, nil
}

// Statuses returns the account's order statuses keyed by code.
func (c *Client) Statuses(ctx context.Context) (map[string]Status, error) {
	return reference[Status](ctx, c, "statuses", pathStatuses)
}

// Sites returns the account's sites (shops) keyed by code. With a key
// restricted to some sites (access_selective) the API lists those.
func (c *Client) Sites(ctx context.Context) (map[string]Site, error) {
	return reference[Site](ctx, c, "sites", pathSites)
}

// reference reads one reference endpoint; name is both the endpoint name
// and the key of the reference object in the answer.
func reference[T any, P refEntry[T]](ctx context.Context, c *Client, name, path string) (map[string]T, error) {
	body, err := c.get(ctx, name, path, nil)
	if err != nil {
		return nil, err
	}
	m, err := decodeReference[T, P](body, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadResponse, path, err)
	}
	return m, nil
}

// attemptKey carries an attemptInfo in a request's context, for the
// round tripper (attempts) and the retry log.
type attemptKey struct{}

type attemptInfo struct {
	endpoint string          // "history", "orders", ...
	parent   context.Context // the caller's context, to tell cancellation from failure
}

// get performs one API call with rate limiting and retries and returns the
// body of a successful JSON answer; every other outcome is a typed error.
func (c *Client) get(ctx context.Context, endpoint, path string, q url.Values) ([]byte, error) {
	rctx := context.WithValue(ctx, attemptKey{}, attemptInfo{endpoint: endpoint, parent: ctx})
	resp, err := c.rc.R().
		SetContext(rctx).
		SetQueryParamsFromValues(q).
		AddRetryCondition(retryCondition(ctx)).
		Get(path)
	var tooLong *retryAfterTooLong
	switch {
	case errors.As(err, &tooLong) && resp != nil && resp.RawResponse != nil:
		// The server asked to wait longer than we retry; report its answer.
	case errors.Is(err, resty.ErrResponseBodyTooLarge):
		return nil, fmt.Errorf("%w: %s: %w", ErrBadResponse, path, err)
	case err != nil:
		// Without the request URL: the account's may hold a token in its
		// path, and this error reaches logs, status and check -online.
		return nil, fmt.Errorf("retailcrm: %s: %w", path, redact.URLError(err))
	}
	body := resp.Body()
	if err := classify(path, resp.StatusCode(), resp.Header(), body); err != nil {
		return nil, err
	}
	return body, nil
}

// wait paces every attempt, retries included.
func (c *Client) wait(_ *resty.Client, r *resty.Request) error {
	ctx := r.Context()
	if err := c.pacer.wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The deadline falls before the next token: as good as expired.
		return &limiterError{err: err}
	}
	return nil
}

// limiterError: the context deadline is too close for a rate-limit token.
type limiterError struct{ err error }

func (e *limiterError) Error() string { return "rate limit wait: " + e.err.Error() }
func (e *limiterError) Unwrap() []error {
	return []error{context.DeadlineExceeded, e.err}
}

// logRetry is resty's retry hook; resty also calls it after the last attempt.
func (c *Client) logRetry(r *resty.Response, err error) {
	if r == nil || r.Request == nil {
		return
	}
	info, _ := r.Request.Context().Value(attemptKey{}).(attemptInfo)
	attrs := []slog.Attr{slog.String("endpoint", info.endpoint), slog.Int("attempt", r.Request.Attempt)}
	if err != nil {
		attrs = append(attrs, slog.Any("error", redact.URLError(err)))
	} else {
		attrs = append(attrs, slog.Int("status", r.StatusCode()))
	}
	c.log.LogAttrs(r.Request.Context(), slog.LevelDebug, "retailcrm: retryable answer", attrs...)
}

// attempts is the client's round tripper: it bounds each attempt by
// timeout, reading the body included, and reports each attempt's outcome to
// observe (nil: nobody). The deadline is set on the request's context here
// rather than as http.Client.Timeout, for which net/http runs a goroutine
// and a timer per request in front of any transport it does not know.
type attempts struct {
	next    http.RoundTripper
	timeout time.Duration
	observe func(endpoint string, code int)
}

func (a attempts) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), a.timeout)
	resp, err := a.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
	} else {
		resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	}
	info, ok := req.Context().Value(attemptKey{}).(attemptInfo)
	switch {
	case !ok || a.observe == nil:
	case err == nil:
		a.observe(info.endpoint, resp.StatusCode)
	case info.parent.Err() == nil: // a cancelled call is not a failed attempt
		a.observe(info.endpoint, 0)
	}
	return resp, err
}

// cancelOnClose ends an attempt's context once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// restyLogger sends resty's own messages (failed attempts, giving up) to
// slog at Debug: the caller reports the final error. Resty's debug dumps,
// the only output with headers, stay off. Errors lose their request URL,
// which may hold a token (see redact).
type restyLogger struct{ l *slog.Logger }

func (r restyLogger) Errorf(format string, v ...any) { r.log(format, v) }
func (r restyLogger) Warnf(format string, v ...any)  { r.log(format, v) }
func (r restyLogger) Debugf(format string, v ...any) { r.log(format, v) }

func (r restyLogger) log(format string, v []any) {
	if !r.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for i, a := range v {
		if err, ok := a.(error); ok {
			v[i] = redact.URLError(err)
		}
	}
	r.l.Debug("resty: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}
