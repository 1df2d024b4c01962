package config

import (
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// field is one config value as written, with the key and line it came from,
// so that validation after merging defaults still names where a bad value was
// written (defaults.schedule, not the account that inherited it).
type field[T any] struct {
	V       T
	Set     bool
	Invalid bool // decoding already reported an error; validation stays quiet
	Key     string
	Line    int
}

func (f *field[T]) decodeYAML(d *decoder, n *yaml.Node, key string) {
	f.Set, f.Key, f.Line = true, key, n.Line
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
			*p = append(*p, kv{Name: e.name, Value: s, Key: k, Line: e.value.Line})
		}
	}
}

// The raw structs mirror the YAML keys one to one; raw.go and the key list
// in config.example.yaml change together.
type rawConfig struct {
	StateDir        field[string]              `yaml:"state_dir"`
	Listen          field[string]              `yaml:"listen"`
	AdminSocket     field[string]              `yaml:"admin_socket"`
	ShutdownTimeout field[string]              `yaml:"shutdown_timeout"`
	Log             rawLog                     `yaml:"log"`
	Alerts          rawAlerts                  `yaml:"alerts"`
	Defaults        rawSettings                `yaml:"defaults"`
	Accounts        field[[]field[rawAccount]] `yaml:"accounts"`
}

type rawLog struct {
	Level  field[string] `yaml:"level"`
	Format field[string] `yaml:"format"`
}

type rawAlerts struct {
	Email field[rawEmail] `yaml:"email"`
}

type rawEmail struct {
	SMTP         field[string]   `yaml:"smtp"`
	Username     field[string]   `yaml:"username"`
	Password     field[string]   `yaml:"password"`
	PasswordFile field[string]   `yaml:"password_file"`
	From         field[string]   `yaml:"from"`
	To           field[[]string] `yaml:"to"`
	StartTLS     field[bool]     `yaml:"starttls"`
}

// rawSettings are the account keys a defaults: block may set.
type rawSettings struct {
	Statuses       field[[]string]            `yaml:"statuses"`
	Sites          field[[]string]            `yaml:"sites"`
	Schedule       field[string]              `yaml:"schedule"`
	StartFrom      field[string]              `yaml:"start_from"`
	OnCreate       field[bool]                `yaml:"on_create"`
	SkipOwnChanges field[bool]                `yaml:"skip_own_changes"`
	RateLimit      field[float64]             `yaml:"rate_limit"`
	LookBack       field[int]                 `yaml:"look_back"`
	LookBackTime   field[string]              `yaml:"look_back_time"`
	PageBudget     field[int]                 `yaml:"page_budget"`
	Timeout        field[string]              `yaml:"timeout"`
	TimeZone       field[string]              `yaml:"time_zone"`
	Reconcile      rawReconcile               `yaml:"reconcile"`
	Webhooks       field[[]field[rawWebhook]] `yaml:"webhooks"`
}

type rawAccount struct {
	Name        field[string] `yaml:"name"`
	URL         field[string] `yaml:"url"`
	APIKey      field[string] `yaml:"api_key"`
	APIKeyFile  field[string] `yaml:"api_key_file"`
	rawSettings `yaml:",inline"`
}

type rawWebhook struct {
	Name        field[string] `yaml:"name"`
	URL         field[string] `yaml:"url"`
	Method      field[string] `yaml:"method"`
	Format      field[string] `yaml:"format"`
	Params      field[pairs]  `yaml:"params"`
	Body        field[string] `yaml:"body"`
	Headers     field[pairs]  `yaml:"headers"`
	Secret      field[string] `yaml:"secret"`
	SecretFile  field[string] `yaml:"secret_file"`
	Timeout     field[string] `yaml:"timeout"`
	SuccessBody field[string] `yaml:"success_body"`
	Retry       rawRetry      `yaml:"retry"`
	Concurrency field[int]    `yaml:"concurrency"`
}

type rawReconcile struct {
	Every  field[string] `yaml:"every"`
	Window field[string] `yaml:"window"`
}

type rawRetry struct {
	MaxAttempts field[int]    `yaml:"max_attempts"`
	MaxAge      field[string] `yaml:"max_age"`
}

// Built-in defaults, written as config so they go through the same decoder
// and validation as what an operator writes. state_dir and admin_socket
// depend on the environment and are set in applyDefaults.
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
look_back_time: 2m
page_budget: 50
timeout: 30s
time_zone: UTC
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
// then per webhook the built-in webhook values and a name ("1", "2", ...).
// An account's own value always wins; lists replace, they do not append.
func applyDefaults(raw *rawConfig, env func(string) (string, bool)) {
	top, settings, webhook := builtins()
	merge(raw, &top)
	if !raw.StateDir.Set {
		raw.StateDir = field[string]{V: "./state", Set: true, Key: "state_dir"}
		if dir, ok := env("STATE_DIRECTORY"); ok && dir != "" {
			// systemd lists several directories separated by colons.
			raw.StateDir.V, _, _ = strings.Cut(dir, ":")
		}
	}
	if !raw.AdminSocket.Set {
		raw.AdminSocket = field[string]{V: filepath.Join(raw.StateDir.V, "admin.sock"), Set: true, Key: "admin_socket"}
		if dir, ok := env("RUNTIME_DIRECTORY"); ok && dir != "" {
			dir, _, _ = strings.Cut(dir, ":")
			raw.AdminSocket.V = filepath.Join(dir, "admin.sock")
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
			if !w.Name.Set {
				w.Name = field[string]{V: strconv.Itoa(j + 1), Set: true, Key: a.Webhooks.V[j].Key + ".name", Line: a.Webhooks.V[j].Line}
			}
		}
	}
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
