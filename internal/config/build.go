package config

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "time/tzdata" // time_zone must load on hosts without a zoneinfo database

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/tmpl"
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
	dir      string            // relative *_file paths are read from the config's directory
	warnings []*Error          // see Config.Warnings
	cas      map[string][]byte // ca_files read, by path
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
		ShutdownTimeout: dur(raw.ShutdownTimeout),
		Log:             b.log(raw.Log),
	}
	// Every value as written, defaults: included; what follows checks
	// what needs several keys, files or a parse.
	b.checkValues(reflect.ValueOf(raw).Elem())
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
	// The defaults' webhooks as every account would get them, so a mistake
	// there is found before an account inherits it.
	_, _, builtin := builtins()
	for _, rw := range raw.Defaults.Webhooks.V {
		merge(&rw.V, &builtin)
		b.webhook(rw)
	}
	return c
}

func (b *builder) log(raw rawLog) Log {
	l := Log{Format: raw.Format.V}
	if logLevels.has(raw.Level.V) {
		_ = l.Level.UnmarshalText([]byte(raw.Level.V)) // accepts every choice
	}
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
	}
	if !raw.To.Set {
		b.errorf(line, key+".to", "at least one recipient is required")
	}
	for _, to := range raw.To.V {
		e.To = append(e.To, to.V)
	}
	return e
}

func (b *builder) account(ra field[rawAccount]) Account {
	r := ra.V
	a := Account{
		Name:           r.Name.V,
		APIKey:         b.secret(r.APIKey, r.APIKeyFile, true, ra.Line, ra.Key+".api_key"),
		Statuses:       values(r.Statuses),
		Sites:          values(r.Sites),
		Schedule:       r.Schedule.V,
		StartFrom:      r.StartFrom.V,
		OnCreate:       r.OnCreate.V,
		SkipOwnChanges: r.SkipOwnChanges.V,
		RateLimit:      r.RateLimit.V,
		CAFile:         r.CAFile.Raw,
		CA:             b.caFile(r.CAFile),
		LookBack:       r.LookBack.V,
		PageBudget:     r.PageBudget.V,
		Timeout:        dur(r.Timeout),
		Reconcile: Reconcile{
			Every:  dur(r.Reconcile.Every),
			Window: dur(r.Reconcile.Window),
		},
	}
	a.URL, a.URLAsWritten = b.url(ra.Line, ra.Key+".url", r.URL, true)
	if !r.Name.Set {
		b.errorf(ra.Line, ra.Key+".name", "required")
	}
	if _, err := cron.ParseStandard(a.Schedule); err != nil {
		bad(b, r.Schedule, "bad cron spec %s: %s", quoted(r.Schedule), b.scrub(r.Schedule.Raw, err.Error()))
	} else if a.Interval() == 0 {
		bad(b, r.Schedule, "cron spec %s never fires", quoted(r.Schedule))
	}
	b.lookBackTime(&a, r)
	if a.StartFrom != "now" && a.StartFrom != "beginning" {
		a.StartTime, _ = time.Parse(time.RFC3339, a.StartFrom) // checked by its rule
	}
	if r.TimeZone.Set { // unset: the account's own zone, read by the poller
		tz, err := time.LoadLocation(r.TimeZone.V)
		if err != nil || r.TimeZone.V == "" {
			bad(b, r.TimeZone, "unknown time zone %s", quoted(r.TimeZone))
		}
		a.TimeZone = tz
	}
	if !r.Webhooks.Set {
		b.errorf(ra.Line, ra.Key+".webhooks", "at least one webhook is required")
	}
	for _, rw := range r.Webhooks.V {
		a.Webhooks = append(a.Webhooks, b.webhook(rw))
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
	a.LookBackTime = dur(r.LookBackTime)
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
		Timeout:     dur(r.Timeout),
		SuccessBody: r.SuccessBody.V,
		Retry: Retry{
			MaxAttempts: r.Retry.MaxAttempts.V,
			MaxAge:      dur(r.Retry.MaxAge),
		},
		Concurrency: r.Concurrency.V,
	}
	w.URL, w.URLAsWritten = b.url(rw.Line, rw.Key+".url", r.URL, false)
	if formats.has(w.Format) {
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
		case !headerNamePattern.MatchString(h.Name):
			b.errorf(h.Line, h.Key, "not a valid header name")
		case dup:
			// Header names are case-insensitive: two spellings would race
			// for one header.
			b.errorf(h.Line, h.Key, "the same header as at line %d (names ignore case)", first)
		case slices.Contains(reservedHeaders, strings.ToLower(h.Name)):
			b.errorf(h.Line, h.Key, "set by the poller, cannot be configured")
		case !headerValuePattern.MatchString(h.Value):
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

// formatRules checks what goes with a valid format (formatUse): a body
// only with template, a GET only with query.
func (b *builder) formatRules(rw field[rawWebhook], w Webhook) {
	r, use := rw.V, formatUse[w.Format]
	switch {
	case !use.body && r.Body.Set && r.Body.V != "":
		bad(b, r.Body, "only used with format: template (format is %s)", w.Format)
	case use.body && r.Body.V == "" && !r.Body.Invalid:
		b.errorf(rw.Line, rw.Key+".body", "required with format: template")
	}
	if !use.params && len(r.Params.V) > 0 {
		bad(b, r.Params, "not used with format: template (render them in body)")
	}
	if w.Method == "GET" && !use.get {
		bad(b, r.Method, "GET cannot carry a %s body; use format: query", w.Format)
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
	case base && apiPath(u.Path):
		bad(b, f, "must be the account's address without the API path (the poller adds /api/v5), e.g. https://%s, got %s", u.Host, quoted(f))
	}
	if base {
		return strings.TrimRight(f.V, "/"), strings.TrimRight(f.Raw, "/")
	}
	return f.V, f.Raw
}

// apiPath reports whether a base URL's path is RetailCRM's API path,
// /api or /api/v5 (with or without a trailing slash), which the client
// adds itself: every request would then go to /api/v5/api/v5/... and
// answer 404 "API method not found".
func apiPath(p string) bool {
	p = strings.ToLower(strings.TrimRight(p, "/"))
	return strings.HasSuffix(p, "/api") || strings.HasSuffix(p, "/api/v5")
}

func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// values is a list of text as the rules checked it; nil when null or
// absent.
func values(f field[[]field[string]]) []string {
	if f.V == nil {
		return nil
	}
	out := make([]string, 0, len(f.V))
	for _, c := range f.V {
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
