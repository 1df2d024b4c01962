package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// env is a fake environment for Parse.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func parseFile(t *testing.T, path string, vars map[string]string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(path, data, env(vars))
}

// Every file in testdata/bad has its exact message here.
var badConfigs = []struct {
	file string
	want string
}{
	{"malformed.yaml", "malformed.yaml:4: did not find expected '-' indicator"},
	{"empty.yaml", "empty.yaml: accounts: at least one account is required"},
	{"unknown_key_top.yaml", "unknown_key_top.yaml:1: stat_dir: unknown key"},
	{"unknown_key_nested.yaml", "unknown_key_nested.yaml:7: accounts[0].webhooks[0].formt: unknown key"},
	{"duplicate_key.yaml", "duplicate_key.yaml:7: accounts[0].name: duplicate key (first at line 2)"},
	{"missing_key_file.yaml", "missing_key_file.yaml:4: accounts[0].api_key_file: cannot read testdata/bad/missing.key: no such file or directory"},
	{"unset_env.yaml", "unset_env.yaml:4: accounts[0].api_key: environment variable NOPE_API_KEY is not set"},
	{"unclosed_env.yaml", "unclosed_env.yaml:4: accounts[0].api_key: unclosed ${ (write $$ for a literal $)"},
	{"bad_cron.yaml", `bad_cron.yaml:7: accounts[0].schedule: bad cron spec "every minute": expected exactly 5 fields, found 2: [every minute]`},
	{"bad_defaults.yaml", `bad_defaults.yaml:2: defaults.schedule: bad cron spec "@every": unrecognized descriptor: @every`},
	{"bad_duration.yaml", `bad_duration.yaml:7: accounts[0].webhooks[0].timeout: bad duration "10" (want e.g. 10s, 2m, 72h)`},
	{"bad_duration_nested.yaml", `bad_duration_nested.yaml:7: accounts[0].webhooks[0].retry.max_age: bad duration "3 days" (want e.g. 10s, 2m, 72h)`},
	{"duplicate_account.yaml", `duplicate_account.yaml:7: accounts[1].name: duplicate account name "ghana" (first at line 2)`},
	{"missing_url.yaml", "missing_url.yaml:2: accounts[0].url: required"},
	{"missing_api_key.yaml", "missing_api_key.yaml:2: accounts[0].api_key: api_key or api_key_file is required"},
	{"both_api_keys.yaml", "both_api_keys.yaml:7: accounts[0].api_key_file: set only one of api_key and api_key_file"},
	{"rate_limit.yaml", "rate_limit.yaml:7: accounts[0].rate_limit: must be between 1 and 10 requests per second, got 11"},
	{"rate_limit_type.yaml", `rate_limit_type.yaml:7: accounts[0].rate_limit: must be a number, got "fast"`},
	{"bad_format.yaml", `bad_format.yaml:7: accounts[0].webhooks[0].format: must be json, form, query or template, got "xml"`},
	{"bad_template.yaml", `bad_template.yaml:10: accounts[0].webhooks[0].params.name: bad template: unknown filter "upper" at column 19
bad_template.yaml:11: accounts[0].webhooks[0].params.number: bad template: unclosed {{ at column 1`},
	{"template_without_body.yaml", "template_without_body.yaml:6: accounts[0].webhooks[0].body: required with format: template"},
	{"get_with_json.yaml", "get_with_json.yaml:7: accounts[0].webhooks[0].method: GET cannot carry a json body; use format: query"},
	{"bad_secret.yaml", "bad_secret.yaml:7: accounts[0].webhooks[0].secret: secret 1 is not whsec_ followed by a base64 key"},
	{"bad_secret_rotation.yaml", "bad_secret_rotation.yaml:7: accounts[0].webhooks[0].secret: secret 2 is not whsec_ followed by a base64 key"},
	{"bad_header.yaml", `bad_header.yaml:8: accounts[0].webhooks[0].headers.X-Evil: header value must not contain CR, LF or other control characters
bad_header.yaml:9: accounts[0].webhooks[0].headers.webhook-id: set by the poller, cannot be configured`},
	{"statuses_scalar.yaml", "statuses_scalar.yaml:7: accounts[0].statuses: must be a list"},
	{"statuses_empty.yaml", "statuses_empty.yaml:7: accounts[0].statuses: must list at least one code"},
	{"no_accounts.yaml", "no_accounts.yaml: accounts: at least one account is required"},
	{"no_webhooks.yaml", "no_webhooks.yaml:2: accounts[0].webhooks: at least one webhook is required"},
	{"bad_name.yaml", `bad_name.yaml:2: accounts[0].name: must match [a-z0-9_-]+, got "Ghana Main"`},
	{"bad_account_values.yaml", `bad_account_values.yaml:7: accounts[0].start_from: must be now, beginning or an RFC 3339 time, got "yesterday"
bad_account_values.yaml:8: accounts[0].time_zone: unknown time zone "Africa/Atlantis"
bad_account_values.yaml:9: accounts[0].look_back: must not be negative, got -1
bad_account_values.yaml:10: accounts[0].page_budget: must be at least 1, got 0`},
	{"bad_webhook_values.yaml", `bad_webhook_values.yaml:6: accounts[0].webhooks[0].name: required when an account has more than one webhook (the name keys its queue of events)
bad_webhook_values.yaml:7: accounts[0].webhooks[0].concurrency: must be between 1 and 64, got 0
bad_webhook_values.yaml:8: accounts[0].webhooks[0].retry.max_attempts: must be at least 1, got 0
bad_webhook_values.yaml:10: accounts[0].webhooks[1].url: must be an http or https URL, got "ftp://x"`},
	{"bad_top_values.yaml", `bad_top_values.yaml:1: log.level: must be debug, info, warn or error, got "verbose"
bad_top_values.yaml:1: log.format: must be text or json, got "xml"
bad_top_values.yaml:2: listen: must be host:port ("" disables), got "9464"
bad_top_values.yaml:3: shutdown_timeout: must be positive, got -5s`},
	{"bad_email.yaml", `bad_email.yaml:9: alerts.email.smtp: must be host:port, got "smtp.example.com"
bad_email.yaml:10: alerts.email.username: username and password (or password_file) go together
bad_email.yaml:11: alerts.email.from: not an e-mail address: "not an address"
bad_email.yaml:12: alerts.email.to: at least one recipient is required`},
	// All errors at once, sorted by line; a decoding error (the unset
	// variable) is not followed by a second one for the same key.
	{"many_errors.yaml", `many_errors.yaml:3: accounts[0].url: must be an http or https URL, got "aff-gh.retailcrm.ru"
many_errors.yaml:4: accounts[0].api_key: environment variable NOPE_API_KEY is not set
many_errors.yaml:5: accounts[0].rate_limit: must be between 1 and 10 requests per second, got 0
many_errors.yaml:8: accounts[0].webhooks[0].format: must be json, form, query or template, got "xml"
many_errors.yaml:9: accounts[0].webhooks[0].colour: unknown key
many_errors.yaml:10: accounts[1].url: required
many_errors.yaml:10: accounts[1].name: duplicate account name "ghana" (first at line 2)`},
}

func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, tt := range badConfigs {
		listed = append(listed, filepath.Join("testdata/bad", tt.file))
	}
	slices.Sort(listed)
	if !slices.Equal(files, listed) {
		t.Errorf("testdata/bad has %v,\nthe table lists %v", files, listed)
	}
	for _, tt := range badConfigs {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata/bad", tt.file)
			cfg, err := parseFile(t, path, nil)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with the error")
			}
			want := strings.ReplaceAll("testdata/bad/"+tt.want, "\n", "\ntestdata/bad/")
			if err.Error() != want {
				t.Errorf("error:\n%s\nwant:\n%s", err, want)
			}
			// Every line is a *Error for this file, so callers can
			// errors.As and cmd/poller exits 78.
			var ce *Error
			if !errors.As(err, &ce) || ce.File != path {
				t.Errorf("errors.As(*Error) = %v, %+v", ce != nil, ce)
			}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				if n := len(j.Unwrap()); n != strings.Count(want, "\n")+1 {
					t.Errorf("%d joined errors, want one per line", n)
				}
			}
		})
	}
}

const (
	ghanaKey    = "ghana-secret-key-123"
	hookSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	token       = "receiver-token-456"
	fileKey     = "ghana-key-from-file"
	smtpPass    = "smtp-pass"
	hookSecret2 = "whsec_dGVzdC1rZXktMg=="
)

var validEnv = map[string]string{"GHANA_API_KEY": ghanaKey, "WEBHOOK_SECRET": hookSecret, "RECEIVER_TOKEN": token}

// sameLoad reports whether two loads of one file are alike: conditions by
// source (a compiled program holds functions, which DeepEqual never finds
// equal), the rest deeply. It clears the conditions of both.
func sameLoad(a, b *Config) bool {
	if len(a.Accounts) != len(b.Accounts) {
		return false
	}
	for i := range a.Accounts {
		wa, wb := a.Accounts[i].Webhooks, b.Accounts[i].Webhooks
		if len(wa) != len(wb) {
			return false
		}
		for j := range wa {
			if !sameCondition(wa[j].When, wb[j].When) {
				return false
			}
			wa[j].When, wb[j].When = nil, nil
		}
	}
	return reflect.DeepEqual(a, b)
}

func loadValid(t *testing.T) *Config {
	t.Helper()
	cfg, err := parseFile(t, "testdata/valid.yaml", validEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestValid(t *testing.T) {
	cfg := loadValid(t)
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("Path", cfg.Path, "testdata/valid.yaml")
	check("StateDir", cfg.StateDir, "/var/lib/retailcrm-poller")
	check("Listen", cfg.Listen, "")
	check("AdminSocket", cfg.AdminSocket, "/run/retailcrm-poller/admin.sock")
	check("ShutdownTimeout", cfg.ShutdownTimeout, 5*time.Second)
	check("Log", cfg.Log, Log{Level: slog.LevelDebug, Format: "json"})
	check("Email", *cfg.Alerts.Email, Email{
		SMTP: "smtp.example.com:587", Username: "poller", Password: smtpPass,
		From: "Poller <poller@example.com>", To: []string{"ops@example.com", "dev@example.com"}, StartTLS: true,
	})
	if len(cfg.Accounts) != 2 {
		t.Fatalf("%d accounts, want 2", len(cfg.Accounts))
	}
	accra := loadTZ(t, "Africa/Accra")

	g := cfg.Accounts[0]
	check("ghana.Name", g.Name, "ghana")
	check("ghana.URL (trailing slash stripped)", g.URL, "https://aff-gh.retailcrm.ru")
	check("ghana.APIKey", g.APIKey.Reveal(), ghanaKey)
	check("ghana.Statuses (account wins)", g.Statuses, []string{"complete"})
	check("ghana.Sites (from defaults)", g.Sites, []string{"main"})
	check("ghana.Schedule (from defaults)", g.Schedule, "*/2 * * * *")
	check("ghana.StartFrom", g.StartFrom, "2026-01-02T03:04:05Z")
	check("ghana.StartTime", g.StartTime, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	check("ghana.TimeZone", g.TimeZone.String(), accra.String())
	check("ghana.OnCreate", g.OnCreate, false)
	check("ghana.SkipOwnChanges", g.SkipOwnChanges, true)
	check("ghana.RateLimit (from defaults)", g.RateLimit, 5.0)
	check("ghana.LookBack", g.LookBack, 0)
	check("ghana.LookBackTime (two intervals)", g.LookBackTime, 4*time.Minute)
	check("ghana.PageBudget", g.PageBudget, 3)
	check("ghana.Timeout", g.Timeout, 15*time.Second)
	if len(g.Webhooks) != 2 {
		t.Fatalf("ghana: %d webhooks, want its own 2 (lists replace defaults)", len(g.Webhooks))
	}
	app := g.Webhooks[0]
	check("app.Name", app.Name, "app")
	check("app.URL", app.URL, "https://app.example.com/hook?x=1")
	check("app.Method (upper-cased)", app.Method, "GET")
	check("app.Format", app.Format, "query")
	var names []string
	for _, p := range app.Params {
		names = append(names, p.Name)
	}
	check("app.Params order", names, []string{"z_last", "a_first", "cost"})
	data := map[string]any{"order": map[string]any{"id": float64(42)}, "change": map[string]any{"newValue": "approved"}}
	check("app.Params[0]", app.Params[0].Value.Render(data), "42")
	check("app.Params[1]", app.Params[1].Value.Render(data), "approved")
	check("app.Params[2] ($$ is a literal $)", app.Params[2].Value.Render(data), "$5 0")
	check("app.Headers", app.Headers, Headers{"Authorization": "Bearer " + token})
	check("app.Secrets (from file)", app.Secrets, []Secret{hookSecret})
	check("app.Timeout", app.Timeout, 3*time.Second)
	check("app.SuccessBody", app.SuccessBody, "OK")
	check("app.Concurrency", app.Concurrency, 16)
	check("app.Retry (max_age built in)", app.Retry, Retry{MaxAttempts: 3, MaxAge: 72 * time.Hour})
	check("app.Body", app.Body == nil, true)
	check("app.When", app.When.String(), `changeSet | contains(item => item.fieldName == 'payments.status' and item.newValue.code == "paid")`)
	check("cfg.Warnings", len(cfg.Warnings), 0)

	chat := g.Webhooks[1]
	check("chat.Name", chat.Name, "chat")
	check("chat.Method", chat.Method, "POST")
	check("chat.Body", chat.Body.Render(map[string]any{"order": map[string]any{"number": "7A"}, "change": map[string]any{"newValue": "approved"}}),
		"{\"text\": \"7A approved\"}\n")
	check("chat.Secrets (rotation)", chat.Secrets, []Secret{hookSecret, hookSecret2})
	check("chat.Params", len(chat.Params), 0)
	check("chat.Headers", chat.Headers, Headers(nil))
	check("chat.When", chat.When == nil, true)

	a := cfg.Accounts[1]
	check("accra.URL", a.URL, "http://127.0.0.1:8080/accra")
	check("accra.APIKey (file, trimmed)", a.APIKey.Reveal(), fileKey)
	check("accra.Statuses (from defaults)", a.Statuses, []string{"approved", "assembling"})
	check("accra.Sites (empty list replaces defaults)", a.Sites, []string{})
	check("accra.Schedule", a.Schedule, "*/2 * * * *")
	check("accra.StartFrom (built in)", a.StartFrom, "now")
	check("accra.StartTime", a.StartTime.IsZero(), true)
	check("accra.OnCreate (built in)", a.OnCreate, true)
	check("accra.LookBack (built in)", a.LookBack, 10000)
	if len(a.Webhooks) != 1 {
		t.Fatalf("accra: %d webhooks, want the 1 from defaults", len(a.Webhooks))
	}
	w := a.Webhooks[0]
	check("accra webhook", []any{w.Name, w.URL, w.Method, w.Format, w.Timeout, w.Concurrency, w.Retry, w.Secrets},
		[]any{"1", "https://default.example.com/hook", "POST", "json", 10 * time.Second, 4, Retry{12, 72 * time.Hour}, []Secret{hookSecret}})
}

func loadTZ(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

const minimal = `
accounts:
  - name: ghana
    url: https://aff-gh.retailcrm.ru
    api_key: key
    webhooks:
      - url: https://app.example.com/hook
`

// TestBuiltinDefaults pins every default of the brief.
func TestBuiltinDefaults(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:            "c.yaml",
		StateDir:        "./state",
		Listen:          "127.0.0.1:9464",
		AdminSocket:     "state/admin.sock",
		ShutdownTimeout: 20 * time.Second,
		Log:             Log{Level: slog.LevelInfo, Format: "text"},
		Accounts: []Account{{
			Name:         "ghana",
			URL:          "https://aff-gh.retailcrm.ru",
			URLAsWritten: "https://aff-gh.retailcrm.ru",
			APIKey:       "key",
			Statuses:     []string{"approved"},
			Sites:        []string{},
			Schedule:     "@every 1m",
			StartFrom:    "now",
			OnCreate:     true,
			RateLimit:    8,
			LookBack:     10000,
			LookBackTime: 2 * time.Minute,
			PageBudget:   50,
			Timeout:      30 * time.Second,
			Reconcile:    Reconcile{Every: 10 * time.Minute, Window: 24 * time.Hour},
			Webhooks: []Webhook{{
				Name:         "1",
				URL:          "https://app.example.com/hook",
				URLAsWritten: "https://app.example.com/hook",
				Method:       "POST",
				Format:       "json",
				Timeout:      10 * time.Second,
				Retry:        Retry{MaxAttempts: 12, MaxAge: 72 * time.Hour},
				Concurrency:  4,
			}},
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestDirectoryDefaults(t *testing.T) {
	tests := []struct {
		name, extra   string
		env           map[string]string
		state, socket string
		listen        string
	}{
		{"systemd", "", map[string]string{"STATE_DIRECTORY": "/var/lib/p:/var/lib/q", "RUNTIME_DIRECTORY": "/run/p"},
			"/var/lib/p", "/run/p/admin.sock", "127.0.0.1:9464"},
		{"state only", "", map[string]string{"STATE_DIRECTORY": "/var/lib/p"}, "/var/lib/p", "/var/lib/p/admin.sock", "127.0.0.1:9464"},
		{"explicit", "state_dir: /srv/p\n", map[string]string{"STATE_DIRECTORY": "/var/lib/p"}, "/srv/p", "/srv/p/admin.sock", "127.0.0.1:9464"},
		{"disabled", "listen: \"\"\nadmin_socket: \"\"\n", nil, "./state", "", ""},
		{"null disables too", "listen:\nadmin_socket: ~\n", nil, "./state", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(tt.extra+minimal), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.StateDir != tt.state || cfg.AdminSocket != tt.socket || cfg.Listen != tt.listen {
				t.Errorf("state_dir %q admin_socket %q listen %q, want %q %q %q",
					cfg.StateDir, cfg.AdminSocket, cfg.Listen, tt.state, tt.socket, tt.listen)
			}
		})
	}
}

// TestExample loads config.example.yaml with the variables its header names,
// and checks those are all it needs.
func TestExample(t *testing.T) {
	const path = "../../config.example.yaml"
	t.Setenv("GHANA_API_KEY", ghanaKey)
	t.Setenv("WEBHOOK_SECRET", hookSecret)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := cfg.Account("ghana")
	if !ok || a.APIKey.Reveal() != ghanaKey || len(a.Webhooks) != 4 || a.Webhooks[3].When == nil {
		t.Fatalf("example's ghana account: %+v", a)
	}
	for _, w := range a.Webhooks[:2] {
		if !slices.Equal(w.Secrets, []Secret{hookSecret}) {
			t.Errorf("webhook %s secrets %v", w.Name, w.Secrets)
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(path, data, env(nil))
	var vars []string
	for _, line := range strings.Split(fmt.Sprint(err), "\n") {
		_, v, ok := strings.Cut(line, "environment variable ")
		if ok {
			vars = append(vars, strings.TrimSuffix(v, " is not set"))
		}
	}
	slices.Sort(vars)
	vars = slices.Compact(vars)
	if !slices.Equal(vars, []string{"GHANA_API_KEY", "WEBHOOK_SECRET"}) {
		t.Errorf("example needs %v; error:\n%v", vars, err)
	}
	header, _, _ := strings.Cut(string(data), "\n\n")
	for _, v := range vars {
		if !strings.Contains(header, v) {
			t.Errorf("header comment does not list %s", v)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	want := path + ": cannot read config: no such file or directory"
	var ce *Error
	if err == nil || err.Error() != want || !errors.As(err, &ce) {
		t.Errorf("Load = %v, want %q as *Error", err, want)
	}
}

// TestSecretsNotPrinted: a config printed with fmt or logged with slog never
// shows an API key, a webhook secret or a password.
func TestSecretsNotPrinted(t *testing.T) {
	cfg := loadValid(t)
	secrets := []string{ghanaKey, fileKey, hookSecret, hookSecret2, smtpPass, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", token}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%v %+v %#v %v\n", cfg, cfg, cfg, cfg.Accounts)
	fmt.Fprintf(&out, "%v %+v %v\n", *cfg, *cfg.Alerts.Email, cfg.Accounts[0].Webhooks[0].Headers)
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		l := slog.New(h)
		for _, a := range cfg.Accounts {
			l.Info("account", "account", a, "api_key", a.APIKey, "webhooks", a.Webhooks, "webhook", a.Webhooks[0])
			l.Info("raw", "account", slog.AnyValue(&a))
		}
		l.Info("config", "config", cfg, "email", cfg.Alerts.Email)
	}
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Errorf("secret %q printed:\n%s", s, out.String())
		}
	}
	// The output does hold the nested values, so the check above is real.
	for _, want := range []string{"REDACTED", "ghana", "https://default.example.com/hook", "api_key=REDACTED", `"api_key":"REDACTED"`, "Authorization:REDACTED", "name=chat"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestAccountLookup(t *testing.T) {
	cfg := loadValid(t)
	a, ok := cfg.Account("accra")
	if !ok || a != &cfg.Accounts[1] {
		t.Errorf("Account(accra) = %p, %v; want %p", a, ok, &cfg.Accounts[1])
	}
	if a, ok := cfg.Account("lagos"); ok || a != nil {
		t.Errorf("Account(lagos) = %v, %v", a, ok)
	}
}

func TestExpand(t *testing.T) {
	vars := env(map[string]string{"A": "x", "B_2": "y", "EMPTY": ""})
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "x", ""},
		{"${A}${B_2}-${EMPTY}.", "xy-.", ""},
		{"$$", "$", ""},
		{"$${A}", "${A}", ""},
		{"cost $5, $", "cost $5, $", ""},
		{"$$$$", "$$", ""},
		{"${NOPE}", "", "environment variable NOPE is not set"},
		{"${A", "", "unclosed ${ (write $$ for a literal $)"},
		{"${}", "", `invalid variable name ""`},
		{"${1A}", "", `invalid variable name "1A"`},
		{"${A B}", "", `invalid variable name "A B"`},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, vars)
		if fmt.Sprint(err) != tt.err && (err != nil || tt.err != "") || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestTypedEnv(t *testing.T) {
	src := strings.Replace(minimal, "    webhooks:", "    rate_limit: ${RATE}\n    on_create: ${CREATE}\n    webhooks:", 1)
	cfg, err := Parse("c.yaml", []byte(src), env(map[string]string{"RATE": "2.5", "CREATE": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Accounts[0]; a.RateLimit != 2.5 || a.OnCreate {
		t.Errorf("rate_limit %v on_create %v, want 2.5 false", a.RateLimit, a.OnCreate)
	}
	_, err = Parse("c.yaml", []byte(src), env(map[string]string{"RATE": "fast", "CREATE": "no way"}))
	want := `c.yaml:6: accounts[0].rate_limit: must be a number, got "${RATE}"` + "\n" +
		`c.yaml:7: accounts[0].on_create: must be true or false, got "${CREATE}"`
	if fmt.Sprint(err) != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

// TestAnchors: YAML anchors and merge keys work, with the mapping's own keys
// winning over merged ones.
func TestAnchors(t *testing.T) {
	src := `
hook: &hook {url: "https://a.example.com/h", timeout: 5s, concurrency: 2}
accounts:
  - name: ghana
    url: https://aff-gh.retailcrm.ru
    api_key: key
    webhooks:
      - <<: *hook
        concurrency: 8
`
	_, err := Parse("c.yaml", []byte(src), env(nil))
	if want := "c.yaml:2: hook: unknown key"; fmt.Sprint(err) != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	src = strings.Replace(src, "hook: &hook", "defaults: {webhooks: [&hook", 1)
	src = strings.Replace(src, "concurrency: 2}", "concurrency: 2}]}", 1)
	cfg, err := Parse("c.yaml", []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Accounts[0].Webhooks[0]
	if w.URL != "https://a.example.com/h" || w.Timeout != 5*time.Second || w.Concurrency != 8 {
		t.Errorf("merged webhook %+v", w)
	}
}

// FuzzParse: Parse returns a config or an error, never both; an error is
// one *Error or errors.Join of them, each naming the file and a line inside
// it, sorted by line without repeats; a config that loads has accounts with
// webhooks and loads again identically.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/valid.yaml", "../../config.example.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, p := range files {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("accounts: [{<<: [*x]}]\n"))
	f.Add([]byte("accounts: [&x {<<: *x}]\n"))
	f.Add([]byte("a: &a {x: 1}\nb: &b {<<: [*a, *a, *a, *a]}\naccounts: [{<<: [*b, *b, *b, *b]}]\n"))
	// Aliases: fan-out past the bound, real reuse, cycles through lists,
	// mappings and merge lists.
	f.Add(aliasBomb(f))
	f.Add(anchoredAccounts(30))
	f.Add([]byte("a: &a {b: [1, {c: *a}]}\n"))
	f.Add([]byte("accounts: [&x {name: a, <<: [*x]}]\n"))
	f.Add([]byte("defaults: {webhooks: &w [{url: 'http://h', params: &p {a: b}}]}\naccounts: [{name: a, url: 'http://x', api_key: k, webhooks: *w}, {<<: *p}]\n"))
	f.Add([]byte(strings.Replace(minimal, "api_key: key", "api_key: ${GHANA_API_KEY", 1)))
	f.Add([]byte(strings.Replace(minimal, "api_key: key", "api_key_file: keys/ghana.key\n    api_key: key", 1)))
	f.Add([]byte("accounts:\n\t- name: x\n"))
	f.Add([]byte(minimal + "        when: |\n          changeSet.hasChangedField(\"status\")\n            and bogus\n"))
	f.Add([]byte(minimal + "        when: 'order.phone == ''+7'' and changeSet | contains(i => i.fieldName == \"x\")'\n"))
	f.Add([]byte("\xef\xbb\xbfaccounts: \xff\n"))
	lookup := env(validEnv)
	const path = "testdata/fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(path, data, lookup)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", cfg != nil, err)
		}
		if err == nil {
			if len(cfg.Accounts) == 0 {
				t.Fatal("config without accounts")
			}
			for _, a := range cfg.Accounts {
				if a.Name == "" || a.URL == "" || len(a.Webhooks) == 0 {
					t.Fatalf("account %q: url %q, %d webhooks", a.Name, a.URL, len(a.Webhooks))
				}
			}
			if again, err := Parse(path, data, lookup); err != nil || !sameLoad(again, cfg) {
				t.Fatalf("second load differs: %v", err)
			}
			return
		}
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		lines := yamlLines(data)
		prev := 0
		seen := map[Error]bool{}
		for _, e := range errs {
			ce, ok := e.(*Error)
			if !ok {
				t.Fatalf("error %T is not a *config.Error: %v", e, e)
			}
			// A missing top-level key has no line to point at.
			noLine := ce.Key == "accounts" && ce.Msg == "at least one account is required" ||
				ce.Key == "" && lines > maxProblemScan
			if ce.File != path || ce.Line < 0 || ce.Line > lines || ce.Line == 0 && !noLine || ce.Msg == "" {
				t.Fatalf("error %#v for %d lines", ce, lines)
			}
			if ce.Line < prev || seen[*ce] {
				t.Fatalf("errors out of order or repeated: %v", err)
			}
			prev, seen[*ce] = ce.Line, true
		}
	})
}

// TestPasswordWithoutUsername: found by FuzzParse
// (testdata/fuzz/FuzzParse/0de4275eb214fdc3): a password without a username
// was reported with neither a line nor a key.
func TestPasswordWithoutUsername(t *testing.T) {
	src := minimal + "alerts:\n  email:\n    smtp: mail.example.com:587\n    from: p@example.com\n    to: [ops@example.com]\n    password: x\n"
	_, err := Parse("c.yaml", []byte(src), env(nil))
	if want := "c.yaml:10: alerts.email.username: username and password (or password_file) go together"; fmt.Sprint(err) != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// yamlLines counts lines the way YAML does: \r\n, \r, \n, NEL, LS and PS
// each end one (an old Mac file has no \n at all).
func yamlLines(data []byte) int {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	n := 1
	for _, br := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		n += bytes.Count(data, []byte(br))
	}
	return n
}

// TestHostileYAML: alias cycles and exponential merges end in an error.
func TestHostileYAML(t *testing.T) {
	// Merges 8 wide and 8 deep: 8^8 mappings from a few hundred bytes.
	var fan strings.Builder
	fan.WriteString("a0: &a0 {name: x}\n")
	for i := 1; i < 8; i++ {
		fmt.Fprintf(&fan, "a%d: &a%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 8), ", "))
	}
	fan.WriteString("accounts: [{<<: [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]}]\n")
	tests := []struct{ name, src, want string }{
		{"self merge", "accounts: [&x {<<: *x}]\n", "c.yaml:1: accounts[0]: alias *x is inside its own anchor: it would expand forever"},
		{"fan out", fan.String(), "c.yaml:6: a5: aliases expand to more than 102060 values"},
		{"alias cycle", "accounts: &a [*a]\n", "c.yaml:1: accounts[0]: alias *a is inside its own anchor: it would expand forever"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.src), env(nil))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant prefix %q", err, tt.want)
			}
		})
	}
}

// BenchmarkParse loads the full example config (reload cost).
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	lookup := env(validEnv)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("config.example.yaml", data, lookup); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.key", "\n  the-key \n")
	empty := write("empty.key", " \n")
	big := write("big.key", strings.Repeat("k", maxSecretFile+1))
	tests := []struct {
		name, path, want string
	}{
		{"trimmed", good, ""},
		{"relative to the config", "good.key", ""},
		{"empty", empty, empty + " is empty"},
		{"too large", big, "cannot read " + big + ": larger than 65536 bytes"},
		{"directory", dir, "cannot read " + dir + ": not a regular file"},
		{"device", "/dev/null", "cannot read /dev/null: not a regular file"},
		{"missing", "nope.key", "cannot read " + filepath.Join(dir, "nope.key") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(minimal, "api_key: key", "api_key_file: "+tt.path, 1)
			cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), env(nil))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := cfg.Accounts[0].APIKey.Reveal(); got != "the-key" {
					t.Errorf("key %q, want %q", got, "the-key")
				}
				return
			}
			want := filepath.Join(dir, "c.yaml") + ":5: accounts[0].api_key_file: " + tt.want
			if fmt.Sprint(err) != want {
				t.Errorf("error %v, want %s", err, want)
			}
		})
	}
}

// TestWebhookRules: method/format/body/params/header combinations; want is
// the exact error ("" for valid). The webhook's keys start on line 7.
func TestWebhookRules(t *testing.T) {
	tests := []struct{ name, extra, want string }{
		{"GET query", "method: GET\nformat: query", ""},
		{"POST query", "format: query\nparams: {a: x}", ""},
		{"lower-case method", "method: post", ""},
		{"unprefixed base64 secret", "secret: dGVzdA==", ""},
		{"json params", "params: {id: '{{ order.id }}'}", ""},
		{"GET form", "method: GET\nformat: form", "accounts[0].webhooks[0].method: GET cannot carry a form body; use format: query"},
		{"GET template", "method: GET\nformat: template\nbody: x", "accounts[0].webhooks[0].method: GET cannot carry a template body; use format: query"},
		{"PUT", "method: PUT", `accounts[0].webhooks[0].method: must be POST or GET, got "PUT"`},
		{"body without template", "body: x", "accounts[0].webhooks[0].body: only used with format: template (format is json)"},
		{"template with params", "format: template\nbody: x\nparams: {a: b}", "accounts[0].webhooks[0].params: not used with format: template (render them in body)"},
		{"bad body", "format: template\nbody: '{{ x'", "accounts[0].webhooks[0].body: bad template: unclosed {{ at column 1"},
		{"header name", "headers: {'Bad Header': x}", "accounts[0].webhooks[0].headers.Bad Header: not a valid header name"},
		{"signature header", "headers: {Webhook-Signature: x}", "accounts[0].webhooks[0].headers.Webhook-Signature: set by the poller, cannot be configured"},
		{"one header twice", "headers:\n  Content-Type: application/json\n  content-type: text/plain", "accounts[0].webhooks[0].headers.content-type: the same header as at line 9 (names ignore case)"},
		{"concurrency 65", "concurrency: 65", "accounts[0].webhooks[0].concurrency: must be between 1 and 64, got 65"},
		{"fractional concurrency", "concurrency: 1.5", `accounts[0].webhooks[0].concurrency: must be an integer, got "1.5"`},
		{"secret and file", "secret: dGVzdA==\nsecret_file: x", "accounts[0].webhooks[0].secret_file: set only one of secret and secret_file"},
		{"empty whsec", "secret: whsec_", "accounts[0].webhooks[0].secret: secret 1 is not whsec_ followed by a base64 key"},
		{"bad name", "name: Main", `accounts[0].webhooks[0].name: must match [a-z0-9_-]+, got "Main"`},
		{"zero timeout", "timeout: 0s", "accounts[0].webhooks[0].timeout: must be positive, got 0s"},
		{"params list", "params: [a]", "accounts[0].webhooks[0].params: must be a mapping"},
		{"nested param", "params: {a: {b: c}}", "accounts[0].webhooks[0].params.a: must be a single value, not a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := minimal + "        " + strings.ReplaceAll(tt.extra, "\n", "\n        ") + "\n"
			cfg, err := Parse("c.yaml", []byte(src), env(nil))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m := cfg.Accounts[0].Webhooks[0].Method; m != "GET" && m != "POST" {
					t.Errorf("method %q", m)
				}
				return
			}
			_, msg, _ := strings.Cut(fmt.Sprint(err), ": ")
			if msg != tt.want || cfg != nil {
				t.Errorf("error %v, want c.yaml:N: %s", err, tt.want)
			}
		})
	}
}

// TestExampleDocumentsEveryKey: config.example.yaml mentions every key the
// decoder accepts (commented-out ones count).
// configKeys lists every key the loader accepts, at every level.
func configKeys(t *testing.T) []string {
	t.Helper()
	// unwrap sees through field[T] and lists to the decoded type.
	unwrap := func(t reflect.Type) reflect.Type {
		for {
			switch {
			case t.Kind() == reflect.Slice && t.Name() == "": // not pairs
				t = t.Elem()
			case t.Kind() == reflect.Struct && strings.HasPrefix(t.Name(), "field["):
				t = t.Field(0).Type
			default:
				return t
			}
		}
	}
	var keys []string
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := range rt.NumField() {
			sf := rt.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if opts != "inline" {
				keys = append(keys, name)
			}
			if ft := unwrap(sf.Type); ft.Kind() == reflect.Struct {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[rawConfig]())
	if len(keys) < 40 {
		t.Fatalf("found only %d keys: %v", len(keys), keys)
	}
	return keys
}

func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range configKeys(t) {
		if !regexp.MustCompile(`(^|[\s#{,-])` + regexp.QuoteMeta(k) + `:`).Match(data) {
			t.Errorf("config.example.yaml does not document %q", k)
		}
	}
}

// The reference names every key, as `key` or as a part of a dotted
// `parent.key`.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range configKeys(t) {
		if !regexp.MustCompile("[`.]" + regexp.QuoteMeta(k) + "[`.]").Match(data) {
			t.Errorf("docs/REFERENCE.md does not document the config key %q", k)
		}
	}
}

// TestDefaultsErrorsOnce: a bad webhook in defaults: is reported once, at
// the defaults, not once per account that inherits it.
func TestDefaultsErrorsOnce(t *testing.T) {
	src := `defaults:
  webhooks:
    - method: GET
      secret: whsec_@@
accounts:
  - {name: a, url: "http://x", api_key: k}
  - {name: b, url: "http://y", api_key: k}
`
	_, err := Parse("c.yaml", []byte(src), env(nil))
	want := `c.yaml:3: defaults.webhooks[0].url: required
c.yaml:3: defaults.webhooks[0].method: GET cannot carry a json body; use format: query
c.yaml:4: defaults.webhooks[0].secret: secret 1 is not whsec_ followed by a base64 key`
	if fmt.Sprint(err) != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}
