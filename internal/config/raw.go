package config

import (
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// field is one config value as written, with the key and line it came from,
// so that validation after merging defaults still names where a bad value was
// written (defaults.schedule, not the account that inherited it).
type field[T any] struct {
	V       T
	Raw     string // a scalar's text as written, ${VAR} unexpanded: what messages quote
	Set     bool
	Invalid bool // decoding already reported an error; validation stays quiet
	Key     string
	Line    int
	Column  int // where the value starts on Line (1-based, in characters)
}

func (f *field[T]) decodeYAML(d *decoder, n *yaml.Node, key string) {
	f.Set, f.Key, f.Line, f.Column = true, key, n.Line, n.Column
	if n.Kind == yaml.ScalarNode {
		f.Raw = n.Value
	}
	errs := len(d.errs)
	d.value(reflect.ValueOf(&f.V).Elem(), n, key)
	f.Invalid = len(d.errs) > errs
}

func (f *field[T]) isSet() bool { return f.Set }

// setter is what merge needs to know of a field[T].
type setter interface{ isSet() bool }

// pairs is a mapping of strings kept in config order (params, headers).
type pairs []kv

type kv struct {
	Name, Value string
	Raw         string // Value as written
	Key         string
	Line        int
}

func (p *pairs) decodeYAML(d *decoder, n *yaml.Node, key string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, key, "must be a mapping")
		return
	}
	for _, e := range d.pairs(n, key) {
		k := join(key, e.name)
		if s, ok := d.scalar(e.value, k); ok {
			*p = append(*p, kv{Name: e.name, Value: s, Raw: e.value.Value, Key: k, Line: e.value.Line})
		}
	}
}

// The raw structs mirror the YAML keys one to one: the loader decodes into
// them, the JSON Schema (schema.go) is generated from them, and each key's
// doc tag is its description there. A check tag names the key's rule
// (rules.go), which the builder applies and the schema states. config.example.yaml documents the same
// keys (a test checks it); the built-in defaults are below.
type rawConfig struct {
	StateDir        field[string]              `yaml:"state_dir" check:"nonempty" doc:"Directory of the state file poller.db. Default: $STATE_DIRECTORY (set by systemd's StateDirectory=), else ./state."`
	Listen          field[string]              `yaml:"listen" check:"listen" doc:"host:port for /metrics, /healthz and /readyz; \"\" disables the listener. Default 127.0.0.1:9464."`
	AdminSocket     field[string]              `yaml:"admin_socket" check:"socket" doc:"Unix socket that poller status and poller dlq use while the daemon runs; \"\" disables it. Default: $RUNTIME_DIRECTORY/admin.sock, else <state_dir>/admin.sock."`
	ShutdownTimeout field[string]              `yaml:"shutdown_timeout" check:"duration" doc:"How long SIGTERM waits for in-flight polls and deliveries (Go duration). Default 20s."`
	Log             rawLog                     `yaml:"log" doc:"Log level and format."`
	Alerts          rawAlerts                  `yaml:"alerts" doc:"Notifications about dead-lettered events."`
	Defaults        rawSettings                `yaml:"defaults" doc:"Merged into every account; an account's own value wins and its lists replace these."`
	Accounts        field[[]field[rawAccount]] `yaml:"accounts" jsonschema:"required" check:"accounts" doc:"The RetailCRM accounts to poll (at least one)."`
}

type rawLog struct {
	Level  field[string] `yaml:"level" check:"level" doc:"debug | info | warn | error. Default info."`
	Format field[string] `yaml:"format" check:"log_format" doc:"text | json. Default text."`
}

type rawAlerts struct {
	Email field[rawEmail] `yaml:"email" doc:"Mail every dead letter over SMTP. Omit to send no mail."`
}

type rawEmail struct {
	SMTP         field[string]          `yaml:"smtp" jsonschema:"required" check:"hostport" doc:"SMTP server, host:port (required)."`
	Username     field[string]          `yaml:"username" check:"username" doc:"SMTP user; then password or password_file is required."`
	Password     field[string]          `yaml:"password" check:"secret" doc:"SMTP password, e.g. ${SMTP_PASSWORD}."`
	PasswordFile field[string]          `yaml:"password_file" doc:"File holding the SMTP password, e.g. ${CREDENTIALS_DIRECTORY}/smtp.pass; relative paths are read from the config's directory."`
	From         field[string]          `yaml:"from" jsonschema:"required" check:"email" doc:"Sender address (required)."`
	To           field[[]field[string]] `yaml:"to" jsonschema:"required" check:"recipients" doc:"Recipient addresses (at least one)."`
	StartTLS     field[bool]            `yaml:"starttls" doc:"Require STARTTLS. Default false: use it when the server offers it."`
}

// rawSettings are the account keys a defaults: block may set.
type rawSettings struct {
	Statuses       field[[]field[string]]     `yaml:"statuses" check:"statuses" doc:"Status codes whose transitions are reported. Default [approved]."`
	Sites          field[[]field[string]]     `yaml:"sites" check:"sites" doc:"Site codes to watch; empty: every site the API key sees. Default []."`
	Schedule       field[string]              `yaml:"schedule" doc:"When to poll: a cron spec (\"*/2 * * * *\") or @every 30s, @hourly. Default \"@every 1m\"."`
	StartFrom      field[string]              `yaml:"start_from" check:"start_from" doc:"Where a new account starts: now | beginning | an RFC 3339 time. Default now."`
	OnCreate       field[bool]                `yaml:"on_create" doc:"Also report orders created already in a target status. Default true."`
	SkipOwnChanges field[bool]                `yaml:"skip_own_changes" doc:"Skip history entries made with this API key. Default false."`
	RateLimit      field[float64]             `yaml:"rate_limit" check:"range=1,10,requests per second" doc:"API requests per second, 1 to 10 (RetailCRM allows 10 per key). Default 8."`
	CAFile         field[string]              `yaml:"ca_file" doc:"PEM file of CA certificates to trust for the account's API besides the system's (a TLS-inspecting proxy, a private CA); relative paths are read from the config's directory. Default: the system's only."`
	LookBack       field[int]                 `yaml:"look_back" check:"min=0" doc:"Most history entries re-read below the cursor per poll, for entries committed late; at least 0. Default 10000."`
	LookBackTime   field[string]              `yaml:"look_back_time" check:"duration" doc:"How long (of successful polling) a passed history entry stays in the look-back window; at least two schedule intervals. Default: 2m or two intervals, whichever is longer."`
	PageBudget     field[int]                 `yaml:"page_budget" check:"min=1" doc:"History pages (of 100 entries) read between two commits of a long poll's progress, at least 1; a poll itself reads on to the end of the history. Default 50."`
	Timeout        field[string]              `yaml:"timeout" check:"duration" doc:"Per API request (Go duration). Default 30s."`
	TimeZone       field[string]              `yaml:"time_zone" doc:"The account's IANA time zone, in which the API reads date filters and writes dates. Default: unset, the zone set in the account (GET /api/v5/settings); set it only to override that (poller check -online compares the two)."`
	Reconcile      rawReconcile               `yaml:"reconcile" doc:"Orders sweep that catches transitions the history poll missed."`
	Webhooks       field[[]field[rawWebhook]] `yaml:"webhooks" check:"webhooks" doc:"Where events go (at least one); each needs a name when there are several."`
}

type rawAccount struct {
	Name        field[string] `yaml:"name" jsonschema:"required" check:"name" doc:"[a-z0-9_-]+, unique: the account's key in the state file (required)."`
	URL         field[string] `yaml:"url" jsonschema:"required" check:"base_url" doc:"The account's base URL, e.g. https://aff-gh.retailcrm.ru (required; no query)."`
	APIKey      field[string] `yaml:"api_key" check:"api_key" doc:"RetailCRM API key, e.g. ${GHANA_API_KEY}. This or api_key_file is required."`
	APIKeyFile  field[string] `yaml:"api_key_file" doc:"File holding the API key, e.g. ${CREDENTIALS_DIRECTORY}/ghana.key under systemd's LoadCredential=; relative paths are read from the config's directory."`
	rawSettings `yaml:",inline"`
}

type rawWebhook struct {
	Name        field[string] `yaml:"name" check:"name" doc:"[a-z0-9_-]+, unique per account: the webhook's identity (its queue in the state file, the metric label). Required when the account has more than one webhook; a lone webhook is \"1\" by default."`
	URL         field[string] `yaml:"url" jsonschema:"required" check:"url" doc:"http(s) URL the events are sent to (required)."`
	Method      field[string] `yaml:"method" check:"method" doc:"POST | GET (GET only with format: query). Default POST."`
	Format      field[string] `yaml:"format" check:"format" doc:"json | form | query | template. Default json: the event envelope, or params as a JSON object."`
	Params      field[pairs]  `yaml:"params" check:"params" doc:"name: trigger-style template ({{ order.id }}), sent as JSON, form or query parameters."`
	Body        field[string] `yaml:"body" doc:"The request body template, for format: template only."`
	Headers     field[pairs]  `yaml:"headers" check:"headers" doc:"Extra request headers; their values never appear in logs."`
	Secret      field[string] `yaml:"secret" check:"signing_secret" doc:"Standard Webhooks signing secret, whsec_ + base64; several space-separated while rotating."`
	SecretFile  field[string] `yaml:"secret_file" doc:"File holding the signing secret(s), e.g. ${CREDENTIALS_DIRECTORY}/webhook.secret; relative paths are read from the config's directory."`
	Timeout     field[string] `yaml:"timeout" check:"duration" doc:"Per attempt (Go duration). Default 10s."`
	SuccessBody field[string] `yaml:"success_body" doc:"If set, a 2xx answer must also carry this body (e.g. OK). Default \"\"."`
	Retry       rawRetry      `yaml:"retry" doc:"When an event is given up and dead-lettered."`
	Concurrency field[int]    `yaml:"concurrency" check:"range=1,64" doc:"Parallel deliveries, 1 to 64 (one order's events stay in order). Default 4."`
	When        field[string] `yaml:"when" doc:"A RetailCRM trigger condition over each change set of an order, e.g. changeSet.hasChangedField(\"status\") and changeSet.newValue(\"status\").code == \"complete\": the webhook then gets an order.changed event for every change set it holds for, and no status events. Default: none (the account's statuses)."`
}

type rawReconcile struct {
	Every  field[string] `yaml:"every" check:"duration_or_zero" doc:"How often the sweep runs (Go duration); 0 turns it off. Default 10m."`
	Window field[string] `yaml:"window" check:"duration" doc:"Orders whose status changed this recently are checked (Go duration, positive). Default 24h."`
}

type rawRetry struct {
	MaxAttempts field[int]    `yaml:"max_attempts" check:"min=1" doc:"Attempts before the event is dead-lettered, at least 1. Default 12."`
	MaxAge      field[string] `yaml:"max_age" check:"duration" doc:"Or when the event is this old (Go duration). Default 72h."`
}

// Built-in defaults, written as config so they go through the same decoder
// and validation as what an operator writes. state_dir and admin_socket
// depend on the environment and are set in applyDefaults; look_back_time
// depends on the schedule and is set by the builder.
const (
	builtinTop = `
listen: 127.0.0.1:9464
shutdown_timeout: 20s
log: {level: info, format: text}
`
	builtinSettings = `
statuses: [approved]
sites: []
schedule: "@every 1m"
start_from: now
on_create: true
skip_own_changes: false
rate_limit: 8
look_back: 10000
page_budget: 50
timeout: 30s
reconcile: {every: 10m, window: 24h}
`
	builtinWebhook = `
method: POST
format: json
timeout: 10s
success_body: ""
concurrency: 4
retry: {max_attempts: 12, max_age: 72h}
`
	builtinFile = "built-in defaults"
)

// builtins decodes the built-in defaults; they are constants, so an error
// is a bug that the tests catch.
func builtins() (top rawConfig, settings rawSettings, webhook rawWebhook) {
	for _, b := range []struct {
		src string
		out any
	}{{builtinTop, &top}, {builtinSettings, &settings}, {builtinWebhook, &webhook}} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(b.src), &n); err != nil {
			panic("config: built-in defaults: " + err.Error())
		}
		d := decoder{file: builtinFile, env: func(string) (string, bool) { return "", false }}
		d.value(reflect.ValueOf(b.out).Elem(), n.Content[0], "")
		if len(d.errs) > 0 {
			panic("config: built-in defaults: " + d.errs[0].Error())
		}
	}
	return top, settings, webhook
}

// applyDefaults is the one place defaults are applied: built-in top-level
// values, then per account the defaults: block and the built-in settings,
// then per webhook the built-in webhook values. A lone webhook without a
// name is called "1" (state files key its queue so); several need names,
// which the builder checks. An account's own value always wins; lists
// replace, they do not append.
func applyDefaults(raw *rawConfig, env func(string) (string, bool)) {
	top, settings, webhook := builtins()
	merge(raw, &top)
	if !raw.StateDir.Set {
		raw.StateDir = derived("state_dir", "./state")
		if dir, ok := env("STATE_DIRECTORY"); ok && dir != "" {
			// systemd lists several directories separated by colons.
			dir, _, _ = strings.Cut(dir, ":")
			raw.StateDir = derived("state_dir", dir)
		}
	}
	if !raw.AdminSocket.Set {
		raw.AdminSocket = derived("admin_socket", filepath.Join(raw.StateDir.V, "admin.sock"))
		if dir, ok := env("RUNTIME_DIRECTORY"); ok && dir != "" {
			dir, _, _ = strings.Cut(dir, ":")
			raw.AdminSocket = derived("admin_socket", filepath.Join(dir, "admin.sock"))
		}
	}
	for i := range raw.Accounts.V {
		a := &raw.Accounts.V[i].V
		merge(&a.rawSettings, &raw.Defaults)
		merge(&a.rawSettings, &settings)
		// Copy the list: webhooks from defaults are shared by every account.
		a.Webhooks.V = append([]field[rawWebhook](nil), a.Webhooks.V...)
		for j := range a.Webhooks.V {
			w := &a.Webhooks.V[j].V
			merge(w, &webhook)
			if !w.Name.Set && len(a.Webhooks.V) == 1 {
				w.Name = field[string]{V: "1", Raw: "1", Set: true, Key: a.Webhooks.V[j].Key + ".name", Line: a.Webhooks.V[j].Line}
			}
		}
	}
}

// derived is a value the environment or another key supplied.
func derived(key, v string) field[string] {
	return field[string]{V: v, Raw: v, Set: true, Key: key}
}

// merge fills every unset field of *dst from *src, recursing into nested
// structs of fields (retry, log) and inlined ones.
func merge[T any](dst, src *T) {
	mergeValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem())
}

func mergeValue(dst, src reflect.Value) {
	for i := range dst.NumField() {
		df, sf := dst.Field(i), src.Field(i)
		if s, ok := df.Addr().Interface().(setter); ok {
			if !s.isSet() {
				df.Set(sf)
			}
			continue
		}
		if df.Kind() == reflect.Struct {
			mergeValue(df, sf)
		}
	}
}
