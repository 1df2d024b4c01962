package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	_ "time/tzdata" // time_zone must load on hosts without a zoneinfo database

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/tmpl"
)

// Reasons a secret file is refused.
var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = fmt.Errorf("larger than %d bytes", maxSecretFile)
)

var (
	namePattern = regexp.MustCompile(`^[a-z0-9_-]+$`)
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// reservedHeaders are set by the deliverer on every request.
var reservedHeaders = []string{"webhook-id", "webhook-timestamp", "webhook-signature", "content-length", "host"}

// builder converts merged raw values into a Config, collecting every error.
type builder struct {
	*decoder
	dir string // relative *_file paths are read from the config's directory
}

// bad reports an invalid value at the place f was written, unless decoding
// it already failed (one error per mistake).
func bad[T any](b *builder, f field[T], format string, args ...any) {
	if !f.Invalid {
		b.errorf(f.Line, f.Key, format, args...)
	}
}

func (b *builder) config(raw *rawConfig) *Config {
	c := &Config{
		Path:            b.file,
		StateDir:        raw.StateDir.V,
		Listen:          raw.Listen.V,
		AdminSocket:     raw.AdminSocket.V,
		ShutdownTimeout: b.duration(raw.ShutdownTimeout),
		Log:             b.log(raw.Log),
	}
	if c.StateDir == "" {
		bad(b, raw.StateDir, "must not be empty")
	}
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
			bad(b, raw.Listen, "must be host:port (\"\" disables), got %q", c.Listen)
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
			bad(b, ra.V.Name, "duplicate account name %q (first at line %d)", a.Name, first)
		}
		names[a.Name] = ra.V.Name.Line
		c.Accounts = append(c.Accounts, a)
	}
	return c
}

func (b *builder) log(raw rawLog) Log {
	l := Log{Format: raw.Format.V}
	switch raw.Level.V {
	case "debug":
		l.Level = slog.LevelDebug
	case "info":
		l.Level = slog.LevelInfo
	case "warn":
		l.Level = slog.LevelWarn
	case "error":
		l.Level = slog.LevelError
	default:
		bad(b, raw.Level, "must be debug, info, warn or error, got %q", raw.Level.V)
	}
	if l.Format != "text" && l.Format != "json" {
		bad(b, raw.Format, "must be text or json, got %q", l.Format)
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
		To:       raw.To.V,
		StartTLS: raw.StartTLS.V,
	}
	if !raw.SMTP.Set {
		b.errorf(line, key+".smtp", "required")
	} else if host, port, err := net.SplitHostPort(e.SMTP); err != nil || host == "" || port == "" {
		bad(b, raw.SMTP, "must be host:port, got %q", e.SMTP)
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
		bad(b, raw.From, "not an e-mail address: %q", e.From)
	}
	if raw.To.Invalid {
		return e
	}
	if len(e.To) == 0 {
		toLine := line
		if raw.To.Set {
			toLine = raw.To.Line
		}
		b.errorf(toLine, key+".to", "at least one recipient is required")
	}
	for i, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			b.errorf(raw.To.Line, fmt.Sprintf("%s.to[%d]", key, i), "not an e-mail address: %q", to)
		}
	}
	return e
}

func (b *builder) account(ra field[rawAccount]) Account {
	r := ra.V
	a := Account{
		Name:           r.Name.V,
		URL:            b.url(ra.Line, ra.Key+".url", r.URL, true),
		APIKey:         b.secret(r.APIKey, r.APIKeyFile, true, ra.Line, ra.Key+".api_key"),
		Statuses:       b.codes(r.Statuses, false),
		Sites:          b.codes(r.Sites, true),
		Schedule:       r.Schedule.V,
		StartFrom:      r.StartFrom.V,
		OnCreate:       r.OnCreate.V,
		SkipOwnChanges: r.SkipOwnChanges.V,
		RateLimit:      r.RateLimit.V,
		LookBack:       r.LookBack.V,
		LookBackTime:   b.duration(r.LookBackTime),
		PageBudget:     r.PageBudget.V,
		Timeout:        b.duration(r.Timeout),
		Reconcile: Reconcile{
			Every:  b.durationOrZero(r.Reconcile.Every),
			Window: b.duration(r.Reconcile.Window),
		},
	}
	if !r.Name.Set {
		b.errorf(ra.Line, ra.Key+".name", "required")
	} else if !namePattern.MatchString(a.Name) {
		bad(b, r.Name, "must match [a-z0-9_-]+, got %q", a.Name)
	}
	if _, err := cron.ParseStandard(a.Schedule); err != nil {
		bad(b, r.Schedule, "bad cron spec %q: %v", a.Schedule, err)
	}
	switch a.StartFrom {
	case "now", "beginning":
	default:
		t, err := time.Parse(time.RFC3339, a.StartFrom)
		if err != nil {
			bad(b, r.StartFrom, "must be now, beginning or an RFC 3339 time, got %q", a.StartFrom)
		}
		a.StartTime = t
	}
	if a.RateLimit < 1 || a.RateLimit > 10 {
		bad(b, r.RateLimit, "must be between 1 and 10 requests per second, got %v", a.RateLimit)
	}
	if a.LookBack < 0 {
		bad(b, r.LookBack, "must not be negative, got %d", a.LookBack)
	}
	if a.PageBudget < 1 {
		bad(b, r.PageBudget, "must be at least 1, got %d", a.PageBudget)
	}
	tz, err := time.LoadLocation(r.TimeZone.V)
	if err != nil || r.TimeZone.V == "" {
		bad(b, r.TimeZone, "unknown time zone %q", r.TimeZone.V)
		tz = time.UTC
	}
	a.TimeZone = tz
	if len(r.Webhooks.V) == 0 {
		b.errorf(ra.Line, ra.Key+".webhooks", "at least one webhook is required")
	}
	names := map[string]int{}
	for _, rw := range r.Webhooks.V {
		w := b.webhook(rw)
		if first, dup := names[w.Name]; dup {
			bad(b, rw.V.Name, "duplicate webhook name %q (first at line %d)", w.Name, first)
		}
		names[w.Name] = rw.V.Name.Line
		a.Webhooks = append(a.Webhooks, w)
	}
	return a
}

func (b *builder) webhook(rw field[rawWebhook]) Webhook {
	r := rw.V
	w := Webhook{
		Name:        r.Name.V,
		URL:         b.url(rw.Line, rw.Key+".url", r.URL, false),
		Method:      strings.ToUpper(r.Method.V),
		Format:      r.Format.V,
		Timeout:     b.duration(r.Timeout),
		SuccessBody: r.SuccessBody.V,
		Retry: Retry{
			MaxAttempts: r.Retry.MaxAttempts.V,
			MaxAge:      b.duration(r.Retry.MaxAge),
		},
		Concurrency: r.Concurrency.V,
	}
	if !namePattern.MatchString(w.Name) {
		bad(b, r.Name, "must match [a-z0-9_-]+, got %q", w.Name)
	}
	if w.Method != "POST" && w.Method != "GET" {
		bad(b, r.Method, "must be POST or GET, got %q", r.Method.V)
	}
	switch w.Format {
	case "json", "form", "query":
		if r.Body.Set && r.Body.V != "" {
			bad(b, r.Body, "only used with format: template (format is %s)", w.Format)
		}
		if w.Method == "GET" && w.Format != "query" {
			bad(b, r.Method, "GET cannot carry a %s body; use format: query", w.Format)
		}
	case "template":
		if r.Body.V == "" && !r.Body.Invalid {
			b.errorf(rw.Line, rw.Key+".body", "required with format: template")
		}
		if len(r.Params.V) > 0 {
			bad(b, r.Params, "not used with format: template (render them in body)")
		}
		if w.Method == "GET" {
			bad(b, r.Method, "GET cannot carry a template body; use format: query")
		}
	default:
		bad(b, r.Format, "must be json, form, query or template, got %q", w.Format)
	}
	for _, p := range r.Params.V {
		if p.Name == "" {
			b.errorf(p.Line, p.Key, "parameter name must not be empty")
		}
		if t := b.template(p.Line, p.Key, p.Value); t != nil {
			w.Params = append(w.Params, Param{Name: p.Name, Value: t})
		}
	}
	if w.Format == "template" {
		w.Body = b.template(r.Body.Line, r.Body.Key, r.Body.V)
	}
	if len(r.Headers.V) > 0 {
		w.Headers = make(Headers, len(r.Headers.V))
	}
	for _, h := range r.Headers.V {
		switch {
		case !validHeaderName(h.Name):
			b.errorf(h.Line, h.Key, "not a valid header name")
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
	if w.Retry.MaxAttempts < 1 {
		bad(b, r.Retry.MaxAttempts, "must be at least 1, got %d", w.Retry.MaxAttempts)
	}
	if w.Concurrency < 1 || w.Concurrency > 64 {
		bad(b, r.Concurrency, "must be between 1 and 64, got %d", w.Concurrency)
	}
	return w
}

// signingSecrets splits a secret into its space-separated rotation set and
// checks each is a Standard Webhooks key: whsec_ + base64 (the prefix is
// optional). The message never echoes the value.
func (b *builder) signingSecrets(inline, file field[string], s Secret) []Secret {
	at := inline
	if file.Set {
		at = file
	}
	var out []Secret
	for i, v := range strings.Fields(s.Reveal()) {
		// The same parsing as standardwebhooks.NewWebhook, which the
		// deliverer signs with; it would accept an empty key, we do not.
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, "whsec_"))
		if err != nil || len(key) == 0 {
			bad(b, at, "secret %d is not whsec_ followed by a base64 key", i+1)
			continue
		}
		out = append(out, Secret(v))
	}
	return out
}

// secret resolves a value given inline or as name_file (read, trimmed).
// required: exactly one of the two must be set.
func (b *builder) secret(inline, file field[string], required bool, line int, key string) Secret {
	switch {
	case inline.Set && file.Set:
		bad(b, file, "set only one of %s and %s", lastKey(inline.Key), lastKey(file.Key))
		return ""
	case file.Set:
		p := file.V
		if p != "" && !filepath.IsAbs(p) {
			p = filepath.Join(b.dir, p)
		}
		data, err := readSecretFile(p)
		if err != nil {
			bad(b, file, "cannot read %s: %v", p, err)
			return ""
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			bad(b, file, "%s is empty", p)
		}
		return Secret(v)
	case inline.Set:
		if inline.V == "" && required {
			bad(b, inline, "must not be empty")
		}
		return Secret(inline.V)
	case required:
		b.errorf(line, key, "%s or %s_file is required", lastKey(key), lastKey(key))
	}
	return ""
}

// maxSecretFile bounds what a *_file may hold; a key is a few dozen bytes.
const maxSecretFile = 64 << 10

// readSecretFile reads a small regular file. A FIFO or device (a typo'd
// /dev/stdin, /dev/zero) would block or never end.
func readSecretFile(p string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	if fi.Size() > maxSecretFile {
		return nil, errTooLarge
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, unwrapPath(err)
	}
	return data, nil
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func lastKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}

// url checks an http(s) URL with a host; base URLs lose a trailing slash.
func (b *builder) url(line int, key string, f field[string], base bool) string {
	if f.Invalid {
		return ""
	}
	if !f.Set || f.V == "" {
		if f.Set {
			line = f.Line
		}
		b.errorf(line, key, "required")
		return ""
	}
	u, err := url.Parse(f.V)
	switch {
	case err != nil:
		bad(b, f, "not a URL: %v", unwrapURL(err))
	case u.Scheme != "http" && u.Scheme != "https":
		bad(b, f, "must be an http or https URL, got %q", f.V)
	case u.Host == "":
		bad(b, f, "must have a host, got %q", f.V)
	case base && (u.RawQuery != "" || u.Fragment != ""):
		bad(b, f, "must not have a query or fragment, got %q", f.V)
	}
	if base {
		return strings.TrimRight(f.V, "/")
	}
	return f.V
}

func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// codes checks a list of status or site codes.
func (b *builder) codes(f field[[]string], emptyOK bool) []string {
	if f.Invalid {
		return f.V
	}
	if len(f.V) == 0 && !emptyOK {
		bad(b, f, "must list at least one code")
	}
	for i, c := range f.V {
		k := fmt.Sprintf("%s[%d]", f.Key, i)
		switch {
		case !codePattern.MatchString(c):
			b.errorf(f.Line, k, "not a code: %q", c)
		case slices.Index(f.V, c) < i:
			b.errorf(f.Line, k, "%q listed twice", c)
		}
	}
	return f.V
}

// duration parses a positive Go duration ("10s", "2m", "72h").
func (b *builder) duration(f field[string]) time.Duration {
	d, err := time.ParseDuration(f.V)
	if err != nil {
		bad(b, f, "bad duration %q (want e.g. 10s, 2m, 72h)", f.V)
		return 0
	}
	if d <= 0 {
		bad(b, f, "must be positive, got %s", f.V)
	}
	return d
}

// durationOrZero parses a Go duration that may be 0 (off).
func (b *builder) durationOrZero(f field[string]) time.Duration {
	if f.V == "0" {
		return 0
	}
	return b.duration(f)
}

func (b *builder) template(line int, key, src string) *tmpl.Template {
	t, err := tmpl.Parse(src)
	if err != nil {
		b.errorf(line, key, "bad template: %v", err)
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
