// Package retailcrm is a client for the parts of the RetailCRM (Simla.com)
// API v5 the poller uses: credentials, order history, orders and statuses.
// It rate-limits per account, retries 503/429/5xx and timeouts honouring
// Retry-After, and never puts the API key anywhere but the X-API-KEY header.
package retailcrm

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"
)

// Options configures a Client.
type Options struct {
	BaseURL    string  // e.g. https://aff-gh.retailcrm.ru
	APIKey     string  // sent only as X-API-KEY
	RateLimit  float64 // requests per second (token bucket, burst 1)
	Timeout    time.Duration
	MaxRetries int // retries of 503/429/5xx/timeouts (default 5)
	Logger     *slog.Logger
	UserAgent  string
	// Observe, when set, is called once per HTTP response or transport error
	// with the endpoint name ("history", "orders", "statuses", "credentials")
	// and the HTTP status code (0 for a transport error). Metrics hook.
	Observe func(endpoint string, code int)
}

// Client talks to one account. Safe for concurrent use.
type Client struct{}

// New builds a client; it does no I/O.
func New(opts Options) (*Client, error) { panic("to be implemented") }

// HistoryFilter selects history entries.
type HistoryFilter struct {
	SinceID   int64     // filter[sinceId], exclusive; 0 omits it
	StartDate time.Time // filter[startDate], formatted "2006-01-02 15:04:05" in Location; zero omits it
	Location  *time.Location
	Limit     int // default 100
	Page      int // 0 omits it
}

// HistoryPage is one page of GET /api/v5/orders/history.
type HistoryPage struct {
	GeneratedAt string         `json:"generatedAt"`
	History     []HistoryEntry `json:"history"`
	Pagination  Pagination     `json:"pagination"`
}

// Pagination as RetailCRM returns it.
type Pagination struct {
	Limit          int `json:"limit"`
	TotalCount     int `json:"totalCount"`
	CurrentPage    int `json:"currentPage"`
	TotalPageCount int `json:"totalPageCount"`
}

// HistoryEntry is one change of one order field.
type HistoryEntry struct {
	ID        int64       `json:"id"`
	CreatedAt string      `json:"createdAt"`
	Created   bool        `json:"created"`
	Deleted   bool        `json:"deleted"`
	Source    string      `json:"source"`
	Field     string      `json:"field"`
	OldValue  Value       `json:"oldValue"`
	NewValue  Value       `json:"newValue"`
	User      *User       `json:"user,omitempty"`
	APIKey    *APIKeyInfo `json:"apiKey,omitempty"`
	Order     *EntryOrder `json:"order,omitempty"`
}

// Value is a history oldValue/newValue: a scalar, or an object such as a
// status {"code": "approved"}. Raw keeps the JSON as sent.
type Value struct {
	Raw json.RawMessage
}

// Code returns the "code" of an object value, or the string itself for a
// string value, or "" for anything else (null, numbers, missing).
func (v Value) Code() string { panic("to be implemented") }

// User made the change.
type User struct {
	ID int64 `json:"id"`
}

// APIKeyInfo tells whether the change came through the API key in use.
type APIKeyInfo struct {
	Current bool `json:"current"`
}

// EntryOrder is the order attached to a history entry: full on a creation
// entry, minimal {id, externalId, managerId, site, status} otherwise.
// Raw keeps the JSON as sent.
type EntryOrder struct {
	ID         int64           `json:"id"`
	ExternalID string          `json:"externalId,omitempty"`
	Number     string          `json:"number,omitempty"`
	Site       string          `json:"site,omitempty"`
	Status     string          `json:"status,omitempty"`
	Raw        json.RawMessage `json:"-"`
}

// Order is a full order from GET /api/v5/orders. Only the fields the poller
// reads are decoded; Raw is the order exactly as the API returned it.
type Order struct {
	ID         int64           `json:"id"`
	ExternalID string          `json:"externalId,omitempty"`
	Number     string          `json:"number,omitempty"`
	Site       string          `json:"site,omitempty"`
	Status     string          `json:"status,omitempty"`
	Raw        json.RawMessage `json:"-"`
}

// Status is a reference status.
type Status struct {
	Name     string `json:"name"`
	Code     string `json:"code"`
	Active   bool   `json:"active"`
	Ordering int    `json:"ordering"`
	Group    string `json:"group"`
}

// Credentials is GET /api/credentials.
type Credentials struct {
	Scopes         []string `json:"scopes"`
	SiteAccess     string   `json:"siteAccess"` // access_full | access_selective
	SitesAvailable []string `json:"sitesAvailable"`
}

// Credentials checks the key and returns its scopes and sites.
func (c *Client) Credentials(ctx context.Context) (Credentials, error) { panic("to be implemented") }

// History returns one page of order history.
func (c *Client) History(ctx context.Context, f HistoryFilter) (HistoryPage, error) {
	panic("to be implemented")
}

// Orders returns the orders with the given internal ids (at most 100 per
// call; the caller batches). Orders the API does not return are absent.
func (c *Client) Orders(ctx context.Context, ids []int64) ([]Order, error) {
	panic("to be implemented")
}

// Statuses returns the account's order statuses keyed by code.
func (c *Client) Statuses(ctx context.Context) (map[string]Status, error) { panic("to be implemented") }
