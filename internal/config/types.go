package config

import (
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/tmpl"
)

// Config is a loaded, defaulted and validated configuration. Everything the
// daemon needs is resolved here: secrets read from files, ${ENV} expanded,
// templates compiled. A reload builds a new Config and swaps it whole.
type Config struct {
	Path            string        // the file it was loaded from
	StateDir        string        // poller.db lives here
	Listen          string        // metrics/health address; "" disables
	AdminSocket     string        // unix socket for status/dlq; "" disables
	ShutdownTimeout time.Duration // bound for in-flight work on SIGTERM (default 20s)
	Log             Log
	Alerts          Alerts
	Accounts        []Account
	FromEnv         []FromEnv // secrets and URLs written with ${VAR}: a reload cannot change them
	// Warnings are problems that do not stop the config from loading (a
	// condition naming a field the order history does not have); poller
	// check prints them.
	Warnings []*Error
}

// Log selects the log level and format.
type Log struct {
	Level  slog.Level
	Format string // text | json
}

// Alerts configures notifications about dead letters.
type Alerts struct {
	Email *Email // nil: no e-mail
}

// Email sends a message over SMTP when an event is dead-lettered.
type Email struct {
	SMTP     string // host:port
	Username string
	Password Secret
	From     string
	To       []string
	StartTLS bool // require STARTTLS (default: use it when offered)
}

// Account is one RetailCRM account, with defaults merged in.
type Account struct {
	Name           string
	URL            string // base URL, no trailing slash, e.g. https://aff-gh.retailcrm.ru
	URLAsWritten   string // URL as the file writes it, ${VAR} unexpanded: what logs and messages show
	APIKey         Secret
	Statuses       []string
	Sites          []string // empty: all sites the key sees
	Schedule       string   // robfig/cron spec, validated
	StartFrom      string   // now | beginning | RFC 3339 time
	StartTime      time.Time
	TimeZone       *time.Location // time_zone: overrides the account's own zone; nil (default) reads it from the account
	OnCreate       bool
	SkipOwnChanges bool
	RateLimit      float64       // API requests per second, 1..10 (default 8)
	CAFile         string        // ca_file as written, for messages; "" when unset
	CA             []byte        // PEM certificates of ca_file, trusted besides the system's; nil: the system's only
	LookBack       int           // most history entries re-read below the cursor per poll (default 10000)
	LookBackTime   time.Duration // successful polling a passed cursor position stays in the look-back window (default 2m or two intervals)
	PageBudget     int           // history pages per tick (default 50)
	Timeout        time.Duration // per API request (default 30s)
	Reconcile      Reconcile
	Webhooks       []Webhook
}

// Reconcile is the orders sweep that catches transitions the history poll
// missed: every Every, the orders in a target status whose status changed
// within Window are checked against what was emitted.
type Reconcile struct {
	Every  time.Duration // 0 turns the sweep off (default 10m)
	Window time.Duration // default 24h
}

// Webhook is one downstream endpoint of an account.
type Webhook struct {
	Name         string // unique within the account: its identity (store key, metric label); required unless it is the only one ("1")
	URL          string
	URLAsWritten string // URL as the file writes it, ${VAR} unexpanded: what logs and messages show
	Method       string // POST | GET
	Format       string // json | form | query | template
	Params       []Param
	Body         *tmpl.Template // format: template
	Headers      Headers        // extra request headers; values print as REDACTED
	Secrets      []Secret       // "whsec_..." values; several during rotation, one signature each
	Timeout      time.Duration
	SuccessBody  string
	Retry        Retry
	Concurrency  int // parallel deliveries (default 4)
	// When is the webhook's trigger condition: with one, the webhook gets
	// order.changed for each change set it holds for, and no status
	// events. Nil: the account's statuses and on_create.
	When *condition.Condition
}

// Param is one trigger-style parameter, in the order the config lists them.
type Param struct {
	Name  string
	Value *tmpl.Template
}

// Retry bounds how long an event is retried before it is dead-lettered.
type Retry struct {
	MaxAttempts int           // default 12
	MaxAge      time.Duration // default 72h
}

// Headers are a webhook's extra request headers. Values often carry
// credentials (Authorization: Bearer ${TOKEN}), so like Secret they print as
// REDACTED; range over the map to send them.
type Headers map[string]string

// String implements fmt.Stringer: header names with redacted values.
func (h Headers) String() string {
	names := slices.Sorted(maps.Keys(h))
	for i, n := range names {
		names[i] = n + ":" + redacted
	}
	return "map[" + strings.Join(names, " ") + "]"
}

// GoString implements fmt.GoStringer.
func (h Headers) GoString() string { return h.String() }

// LogValue implements slog.LogValuer.
func (h Headers) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(h))
	for _, n := range slices.Sorted(maps.Keys(h)) {
		attrs = append(attrs, slog.String(n, redacted))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON keeps header values out of JSON dumps.
func (h Headers) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, len(h))
	for n := range h {
		m[n] = redacted
	}
	return json.Marshal(m)
}

// Secret is a credential. It prints as REDACTED in logs, fmt and JSON.
type Secret string

const redacted = "REDACTED"

// Reveal returns the secret's value, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return redacted }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON keeps secrets out of JSON dumps.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// String implements fmt.Stringer: what LogValue shows. Printing an Account
// with %v, inside a slice or a Config, must not show an expanded URL.
func (a Account) String() string { return a.LogValue().String() }

// GoString implements fmt.GoStringer.
func (a Account) GoString() string { return a.String() }

// MarshalJSON keeps expanded URLs and secrets out of JSON dumps.
func (a Account) MarshalJSON() ([]byte, error) { return groupJSON(a.LogValue()) }

// String implements fmt.Stringer: what LogValue shows.
func (w Webhook) String() string { return w.LogValue().String() }

// GoString implements fmt.GoStringer.
func (w Webhook) GoString() string { return w.String() }

// MarshalJSON keeps expanded URLs and secrets out of JSON dumps.
func (w Webhook) MarshalJSON() ([]byte, error) { return groupJSON(w.LogValue()) }

// groupJSON renders a LogValue group as a JSON object.
func groupJSON(v slog.Value) ([]byte, error) {
	m := map[string]any{}
	for _, a := range v.Group() {
		m[a.Key] = a.Value.Resolve().Any()
	}
	return json.Marshal(m)
}

// LogValue logs an account as its identity, never its key's value; the URL
// as written, since a variable in it may hold a token.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", a.Name),
		slog.String("url", a.URLAsWritten),
		slog.Any("api_key", a.APIKey),
		slog.Any("statuses", a.Statuses),
		slog.Int("webhooks", len(a.Webhooks)),
	)
}

// LogValue logs a webhook without its secrets or header values (an
// Authorization header is as secret as the signing key), and its URL as
// written (a token in its query or path stays ${TOKEN}).
func (w Webhook) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", w.Name),
		slog.String("url", w.URLAsWritten),
		slog.String("method", w.Method),
		slog.String("format", w.Format),
		slog.Int("secrets", len(w.Secrets)),
	)
}

// ClientSettings are what the account's API client needs, the API key
// revealed (see retailcrm.AccountOptions).
func (a Account) ClientSettings() (baseURL, apiKey string, rateLimit float64, timeout time.Duration, ca []byte) {
	return a.URL, a.APIKey.Reveal(), a.RateLimit, a.Timeout, a.CA
}
