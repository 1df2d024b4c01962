package config

import (
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "time/tzdata" // time_zone must load on hosts without a zoneinfo database

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/tmpl"
)

var (
	namePattern = regexp.MustCompile(`^[a-z0-9_-]+$`)
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// minLookBackTime is the look-back window of fast schedules.
const minLookBackTime = 2 * time.Minute

// reservedHeaders are set by the deliverer on every request.
var reservedHeaders = []string{"webhook-id", "webhook-timestamp", "webhook-signature", "content-length", "host"}

// builder converts merged raw values into a Config, collecting every error.
// Messages quote values as written (field.Raw): an expanded ${VAR} may be a
// key or token, and an operator fixes the file, not the environment.
type builder struct {
	*decoder
	dir      string   // relative *_file paths are read from the config's directory
	warnings []*Error // see Config.Warnings
}

// bad reports an invalid value at the place f was written, unless decoding
// it already failed (one error per mistake).
func bad[T any](b *builder, f field[T], format string, args ...any) {
	if !f.Invalid {
		b.errorf(f.Line, f.Key, format, args...)
	}
}

// quoted is what a message shows of a value: the text as written, quoted.
func quoted[T any](f field[T]) string { return strconv.Quote(f.Raw) }

// The checks shared by many keys: a range, a lower bound, a choice.

// between requires lo <= f.V <= hi; unit follows the bounds in the message.
func between[T int | float64](b *builder, f field[T], lo, hi T, unit string) T {
	if f.V < lo || f.V > hi {
		bad(b, f, "must be between %v and %v%s, got %s", lo, hi, unit, f.Raw)
	}
	return f.V
}

// atLeast requires f.V >= lo.
func atLeast(b *builder, f field[int], lo int) int {
	switch {
	case f.V >= lo:
	case lo == 0:
		bad(b, f, "must not be negative, got %s", f.Raw)
	default:
		bad(b, f, "must be at least %d, got %s", lo, f.Raw)
	}
	return f.V
}

// oneOf requires v, f's value as the code compares it (upper-cased, say),
// to be one of choices.
func oneOf(b *builder, f field[string], v string, choices ...string) bool {
	if slices.Contains(choices, v) {
		return true
	}
	bad(b, f, "must be %s or %s, got %s", strings.Join(choices[:len(choices)-1], ", "), choices[len(choices)-1], quoted(f))
	return false
}

// duration parses a Go duration ("10s", "2m", "72h"), positive or, with
// zeroOK, 0 (off) too.
func (b *builder) duration(f field[string], zeroOK bool) time.Duration {
	d, err := time.ParseDuration(f.V)
	switch {
	case err != nil:
		bad(b, f, "bad duration %s (want e.g. 10s, 2m, 72h)", quoted(f))
		return 0
	case d < 0 && zeroOK:
		bad(b, f, "must not be negative, got %s", f.Raw)
	case d <= 0 && !zeroOK:
		bad(b, f, "must be positive, got %s", f.Raw)
	}
	return d
}

// scrub hides, in a parser's message about a value, what the value's
// variables expanded to: raw is the value as written.
func (b *builder) scrub(raw, msg string) string {
	for _, name := range vars(raw) {
		if v, ok := b.env(name); ok && v != "" {
			msg = strings.ReplaceAll(msg, v, "${"+name+"}")
		}
	}
	return msg
}

func (b *builder) config(raw *rawConfig) *Config {
	c := &Config{
		Path:            b.file,
		StateDir:        raw.StateDir.V,
		Listen:          raw.Listen.V,
		AdminSocket:     raw.AdminSocket.V,
		ShutdownTimeout: b.duration(raw.ShutdownTimeout, false),
		Log:             b.log(raw.Log),
	}
	if c.StateDir == "" {
		bad(b, raw.StateDir, "must not be empty")
	}
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
			bad(b, raw.Listen, "must be host:port (\"\" disables), got %s", quoted(raw.Listen))
		}
	}
	if len(c.AdminSocket) > maxSocketPath {
		bad(b, raw.AdminSocket, "path longer than %d bytes cannot be a unix socket", maxSocketPath)
	}
	if raw.Alerts.Email.Set {
		c.Alerts.Email = b.email(raw.Alerts.Email)
	}
	if len(raw.Accounts.V) == 0 {
		b.errorf(raw.Accounts.Line, "accounts", "at least one account is required")
	}
	names := map[string]int{}
	for _, ra := range raw.Accounts.V {
		a := b.account(ra)
		if first, dup := names[a.Name]; dup && a.Name != "" {
			bad(b, ra.V.Name, "duplicate account name %s (first at line %d)", quoted(ra.V.Name), first)
		}
		names[a.Name] = ra.V.Name.Line
		c.Accounts = append(c.Accounts, a)
	}
	return c
}

func (b *builder) log(raw rawLog) Log {
	l := Log{Format: raw.Format.V}
	if oneOf(b, raw.Level, raw.Level.V, "debug", "info", "warn", "error") {
		_ = l.Level.UnmarshalText([]byte(raw.Level.V)) // accepts every choice
	}
	oneOf(b, raw.Format, l.Format, "text", "json")
	return l
}

func (b *builder) email(f field[rawEmail]) *Email {
	raw, line, key := f.V, f.Line, f.Key
	e := &Email{
		SMTP:     raw.SMTP.V,
		Username: raw.Username.V,
		Password: b.secret(raw.Password, raw.PasswordFile, false, line, key+".password"),
		From:     raw.From.V,
		StartTLS: raw.StartTLS.V,
	}
	if !raw.SMTP.Set {
		b.errorf(line, key+".smtp", "required")
	} else if host, port, err := net.SplitHostPort(e.SMTP); err != nil || host == "" || port == "" {
		bad(b, raw.SMTP, "must be host:port, got %s", quoted(raw.SMTP))
	}
	if (e.Username == "") != (e.Password == "") {
		const msg = "username and password (or password_file) go together"
		if raw.Username.Set {
			bad(b, raw.Username, msg)
		} else {
			b.errorf(line, key+".username", msg) // a password alone: no username line to point at
		}
	}
	if !raw.From.Set {
		b.errorf(line, key+".from", "required")
	} else if _, err := mail.ParseAddress(e.From); err != nil {
		bad(b, raw.From, "not an e-mail address: %s", quoted(raw.From))
	}
	if raw.To.Invalid {
		return e
	}
	if len(raw.To.V) == 0 {
		toLine := line
		if raw.To.Set {
			toLine = raw.To.Line
		}
		b.errorf(toLine, key+".to", "at least one recipient is required")
	}
	for _, to := range raw.To.V {
		if _, err := mail.ParseAddress(to.V); err != nil {
			bad(b, to, "not an e-mail address: %s", quoted(to))
		}
		e.To = append(e.To, to.V)
	}
	return e
}

func (b *builder) account(ra field[rawAccount]) Account {
	r := ra.V
	a := Account{
		Name:           r.Name.V,
		APIKey:         b.secret(r.APIKey, r.APIKeyFile, true, ra.Line, ra.Key+".api_key"),
		Statuses:       b.codes(r.Statuses, false),
		Sites:          b.codes(r.Sites, true),
		Schedule:       r.Schedule.V,
		StartFrom:      r.StartFrom.V,
		OnCreate:       r.OnCreate.V,
		SkipOwnChanges: r.SkipOwnChanges.V,
		RateLimit:      between(b, r.RateLimit, 1, 10, " requests per second"),
		LookBack:       atLeast(b, r.LookBack, 0),
		PageBudget:     atLeast(b, r.PageBudget, 1),
		Timeout:        b.duration(r.Timeout, false),
		Reconcile: Reconcile{
			Every:  b.duration(r.Reconcile.Every, true),
			Window: b.duration(r.Reconcile.Window, false),
		},
	}
	a.URL, a.URLAsWritten = b.url(ra.Line, ra.Key+".url", r.URL, true)
	if !r.Name.Set {
		b.errorf(ra.Line, ra.Key+".name", "required")
	} else if !namePattern.MatchString(a.Name) {
		bad(b, r.Name, "must match [a-z0-9_-]+, got %s", quoted(r.Name))
	}
	if _, err := cron.ParseStandard(a.Schedule); err != nil {
		bad(b, r.Schedule, "bad cron spec %s: %s", quoted(r.Schedule), b.scrub(r.Schedule.Raw, err.Error()))
	} else if a.Interval() == 0 {
		bad(b, r.Schedule, "cron spec %s never fires", quoted(r.Schedule))
	}
	b.lookBackTime(&a, r)
	switch a.StartFrom {
	case "now", "beginning":
	default:
		t, err := time.Parse(time.RFC3339, a.StartFrom)
		if err != nil {
			bad(b, r.StartFrom, "must be now, beginning or an RFC 3339 time, got %s", quoted(r.StartFrom))
		}
		a.StartTime = t
	}
	tz, err := time.LoadLocation(r.TimeZone.V)
	if err != nil || r.TimeZone.V == "" {
		bad(b, r.TimeZone, "unknown time zone %s", quoted(r.TimeZone))
		tz = time.UTC
	}
	a.TimeZone = tz
	if len(r.Webhooks.V) == 0 {
		b.errorf(ra.Line, ra.Key+".webhooks", "at least one webhook is required")
	}
	names := map[string]int{}
	for _, rw := range r.Webhooks.V {
		w := b.webhook(rw)
		switch first, dup := names[w.Name]; {
		case !rw.V.Name.Set:
			// Identity by position would send a queue to another URL
			// once the list is reordered.
			b.errorf(rw.Line, rw.Key+".name", "required when an account has more than one webhook (the name keys its queue of events)")
		case dup:
			bad(b, rw.V.Name, "duplicate webhook name %s (first at line %d)", quoted(rw.V.Name), first)
		default:
			names[w.Name] = rw.V.Name.Line
		}
		a.Webhooks = append(a.Webhooks, w)
	}
	return a
}

// lookBackTime sets the look-back window: at least two schedule intervals,
// so an entry committed late is re-read by two polls at least. Unset, it is
// 2m or two intervals, whichever is longer.
func (b *builder) lookBackTime(a *Account, r rawAccount) {
	two := 2 * a.Interval()
	if !r.LookBackTime.Set {
		a.LookBackTime = max(minLookBackTime, two)
		return
	}
	a.LookBackTime = b.duration(r.LookBackTime, false)
	if a.LookBackTime > 0 && a.LookBackTime < two {
		bad(b, r.LookBackTime, "must be at least two intervals of the schedule %s (2 × %s = %s), got %s",
			quoted(r.Schedule), a.Interval(), two, r.LookBackTime.Raw)
	}
}

func (b *builder) webhook(rw field[rawWebhook]) Webhook {
	r := rw.V
	w := Webhook{
		Name:        r.Name.V,
		Method:      strings.ToUpper(r.Method.V),
		Format:      r.Format.V,
		Timeout:     b.duration(r.Timeout, false),
		SuccessBody: r.SuccessBody.V,
		Retry: Retry{
			MaxAttempts: atLeast(b, r.Retry.MaxAttempts, 1),
			MaxAge:      b.duration(r.Retry.MaxAge, false),
		},
		Concurrency: between(b, r.Concurrency, 1, 64, ""),
	}
	w.URL, w.URLAsWritten = b.url(rw.Line, rw.Key+".url", r.URL, false)
	if r.Name.Set && !namePattern.MatchString(w.Name) {
		bad(b, r.Name, "must match [a-z0-9_-]+, got %s", quoted(r.Name))
	}
	oneOf(b, r.Method, w.Method, "POST", "GET")
	if oneOf(b, r.Format, w.Format, "json", "form", "query", "template") {
		b.formatRules(rw, w)
	}
	for _, p := range r.Params.V {
		if p.Name == "" {
			b.errorf(p.Line, p.Key, "parameter name must not be empty")
		}
		if t := b.template(p.Line, p.Key, p.Raw, p.Value); t != nil {
			w.Params = append(w.Params, Param{Name: p.Name, Value: t})
		}
	}
	if w.Format == "template" {
		w.Body = b.template(r.Body.Line, r.Body.Key, r.Body.Raw, r.Body.V)
	}
	if len(r.Headers.V) > 0 {
		w.Headers = make(Headers, len(r.Headers.V))
	}
	headerLines := map[string]int{} // canonical name -> line
	for _, h := range r.Headers.V {
		canon := http.CanonicalHeaderKey(h.Name)
		first, dup := headerLines[canon]
		headerLines[canon] = h.Line
		switch {
		case !validHeaderName(h.Name):
			b.errorf(h.Line, h.Key, "not a valid header name")
		case dup:
			// Header names are case-insensitive: two spellings would race
			// for one header.
			b.errorf(h.Line, h.Key, "the same header as at line %d (names ignore case)", first)
		case slices.Contains(reservedHeaders, strings.ToLower(h.Name)):
			b.errorf(h.Line, h.Key, "set by the poller, cannot be configured")
		case !validHeaderValue(h.Value):
			b.errorf(h.Line, h.Key, "header value must not contain CR, LF or other control characters")
		}
		w.Headers[h.Name] = h.Value
	}
	if s := b.secret(r.Secret, r.SecretFile, false, rw.Line, rw.Key+".secret"); s != "" {
		w.Secrets = b.signingSecrets(r.Secret, r.SecretFile, s)
	}
	w.When = b.condition(r.When)
	return w
}

// formatRules checks what goes with a valid format: a body only with
// template, a GET only with query.
func (b *builder) formatRules(rw field[rawWebhook], w Webhook) {
	r := rw.V
	if w.Format != "template" {
		if r.Body.Set && r.Body.V != "" {
			bad(b, r.Body, "only used with format: template (format is %s)", w.Format)
		}
		if w.Method == "GET" && w.Format != "query" {
			bad(b, r.Method, "GET cannot carry a %s body; use format: query", w.Format)
		}
		return
	}
	if r.Body.V == "" && !r.Body.Invalid {
		b.errorf(rw.Line, rw.Key+".body", "required with format: template")
	}
	if len(r.Params.V) > 0 {
		bad(b, r.Params, "not used with format: template (render them in body)")
	}
	if w.Method == "GET" {
		bad(b, r.Method, "GET cannot carry a template body; use format: query")
	}
}

// url checks an http(s) URL with a host; base URLs lose a trailing slash
// and may carry no query, fragment or user info (the API key goes in a
// header). It returns the URL and its text as written.
func (b *builder) url(line int, key string, f field[string], base bool) (expanded, written string) {
	if f.Invalid {
		return "", ""
	}
	if !f.Set || f.V == "" {
		if f.Set {
			line = f.Line
		}
		b.errorf(line, key, "required")
		return "", ""
	}
	u, err := url.Parse(f.V)
	switch {
	case err != nil:
		bad(b, f, "not a URL: %s", b.scrub(f.Raw, unwrapURL(err).Error()))
	case u.Scheme != "http" && u.Scheme != "https":
		bad(b, f, "must be an http or https URL, got %s", quoted(f))
	case u.Host == "":
		bad(b, f, "must have a host, got %s", quoted(f))
	case base && (u.RawQuery != "" || u.Fragment != "" || u.User != nil):
		bad(b, f, "must not have a query, fragment or user info, got %s", quoted(f))
	}
	if base {
		return strings.TrimRight(f.V, "/"), strings.TrimRight(f.Raw, "/")
	}
	return f.V, f.Raw
}

func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// codes checks a list of status or site codes.
func (b *builder) codes(f field[[]field[string]], emptyOK bool) []string {
	if len(f.V) == 0 && !emptyOK {
		bad(b, f, "must list at least one code")
	}
	if f.V == nil {
		return nil // null or absent: the list stays nil
	}
	out := make([]string, 0, len(f.V))
	for _, c := range f.V {
		switch {
		case !codePattern.MatchString(c.V):
			bad(b, c, "not a code: %s", quoted(c))
		case slices.Contains(out, c.V):
			bad(b, c, "%s listed twice", quoted(c))
		}
		out = append(out, c.V)
	}
	return out
}

func (b *builder) template(line int, key, raw, src string) *tmpl.Template {
	t, err := tmpl.Parse(src)
	if err != nil {
		b.errorf(line, key, "bad template: %s", b.scrub(raw, err.Error()))
		return nil
	}
	return t
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c >= 0x7f || c <= ' ' || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters (CR and LF above all: they
// would inject headers); tab is allowed.
func validHeaderValue(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
