package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostileEnv holds values that must never appear in a message: each is a
// secret, or a value whose variable could be one.
var hostileEnv = map[string]string{
	"API_KEY":   "k3y-9f8e7d6c5b4a",
	"TOKEN":     "t0ken-a1b2c3d4e5",
	"PASS":      "p4ss-0a9b8c7d6e",
	"SCHED":     "every single minute",
	"RATE":      "1234567",
	"CONC":      "987654",
	"FILTERVAR": "upperc4se",
	"HOST":      "exa mple.com",
	"LISTEN":    "no-port-h3re",
	"FROM":      "n0t-an-addr3ss",
	"CODE":      "bad c0de!",
	"ZONE":      "Mars/Olymp0s",
	"START":     "yest3rday",
	"WAIT":      "3 d4ys",
	"LOOKBACK":  "-7654321",
}

// TestValuesAsWritten: every message that quotes a value quotes it as the
// file writes it, ${VAR} unexpanded, so no expanded value (a key, a token)
// is ever printed. want is the exact message after "c.yaml:N: ".
func TestValuesAsWritten(t *testing.T) {
	tests := []struct {
		name, acct, hook, top, want string
	}{
		{"account url with a query", "url: https://aff.retailcrm.ru/?apiKey=${API_KEY}", "", "",
			`accounts[0].url: must not have a query, fragment or user info, got "https://aff.retailcrm.ru/?apiKey=${API_KEY}"`},
		{"account url with user info", "url: https://u:${PASS}@aff.retailcrm.ru", "", "",
			`accounts[0].url: must not have a query, fragment or user info, got "https://u:${PASS}@aff.retailcrm.ru"`},
		{"account url that does not parse", "url: https://${HOST}/crm", "", "",
			`accounts[0].url: not a URL: invalid character " " in host name`},
		{"webhook url scheme, token in the path", "", "url: ftp://hooks.example.com/${TOKEN}/x", "",
			`accounts[0].webhooks[0].url: must be an http or https URL, got "ftp://hooks.example.com/${TOKEN}/x"`},
		{"webhook url without a host, token in the path", "", "url: https:///services/${TOKEN}", "",
			`accounts[0].webhooks[0].url: must have a host, got "https:///services/${TOKEN}"`},
		{"cron spec", "schedule: ${SCHED}", "", "",
			`accounts[0].schedule: bad cron spec "${SCHED}": expected exactly 5 fields, found 3: [${SCHED}]`},
		{"rate", "rate_limit: ${RATE}", "", "",
			"accounts[0].rate_limit: must be between 1 and 10 requests per second, got ${RATE}"},
		{"concurrency", "", "concurrency: ${CONC}", "",
			"accounts[0].webhooks[0].concurrency: must be between 1 and 64, got ${CONC}"},
		{"typed value", "page_budget: ${FROM}", "", "",
			`accounts[0].page_budget: must be an integer, got "${FROM}"`},
		{"look_back", "look_back: ${LOOKBACK}", "", "",
			"accounts[0].look_back: must not be negative, got ${LOOKBACK}"},
		{"template", "", "params: {a: '{{ order.id|${FILTERVAR} }}'}", "",
			`accounts[0].webhooks[0].params.a: bad template: unknown filter "${FILTERVAR}" at column 13`},
		{"listen", "", "", "listen: ${LISTEN}",
			`listen: must be host:port ("" disables), got "${LISTEN}"`},
		{"code", "statuses: ['${CODE}']", "", "",
			`accounts[0].statuses[0]: not a code: "${CODE}"`},
		{"time zone", "time_zone: ${ZONE}", "", "",
			`accounts[0].time_zone: unknown time zone "${ZONE}"`},
		{"start", "start_from: ${START}", "", "",
			`accounts[0].start_from: must be now, beginning or an RFC 3339 time, got "${START}"`},
		{"duration", "", "retry: {max_age: '${WAIT}'}", "",
			`accounts[0].webhooks[0].retry.max_age: bad duration "${WAIT}" (want e.g. 10s, 2m, 72h)`},
		{"e-mail", "", "", "alerts: {email: {smtp: 'm:25', from: '${FROM}', to: [a@example.com]}}",
			`alerts.email.from: not an e-mail address: "${FROM}"`},
		{"account name", "name: X${TOKEN}", "", "",
			`accounts[0].name: must match [a-z0-9_-]+, got "X${TOKEN}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.top + "\n" + minimal
			if tt.acct != "" {
				key, _, _ := strings.Cut(tt.acct, ":")
				src = replaceKey(t, src, "    ", key, tt.acct)
			}
			switch {
			case strings.HasPrefix(tt.hook, "url:"):
				src = strings.Replace(src, "url: https://app.example.com/hook", tt.hook, 1)
			case tt.hook != "":
				src += "        " + tt.hook + "\n"
			}
			_, err := Parse("c.yaml", []byte(src), env(hostileEnv))
			if err == nil {
				t.Fatalf("Parse succeeded:\n%s", src)
			}
			_, msg, _ := strings.Cut(err.Error(), ": ")
			if msg != tt.want {
				t.Errorf("error:\n%v\nwant c.yaml:N: %s", err, tt.want)
			}
			for name, v := range hostileEnv {
				if strings.Contains(err.Error(), v) {
					t.Errorf("the value of %s (%q) is printed: %v", name, v, err)
				}
			}
		})
	}
}

// replaceKey sets key in the account of src (indented by indent), adding it
// when minimal does not have it.
func replaceKey(t *testing.T, src, indent, key, line string) string {
	t.Helper()
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, indent+key+":") || strings.HasPrefix(l, "  - "+key+":") {
			lines[i] = l[:strings.Index(l, key)] + line
			return strings.Join(lines, "\n")
		}
	}
	return strings.Replace(src, indent+"webhooks:", indent+line+"\n"+indent+"webhooks:", 1)
}

// TestSecretFileNeverPrinted: what a *_file holds appears in no message,
// whatever is wrong with it.
func TestSecretFileNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	const content = "whsec_n0t~base64~at~all s3cond-rotat1on-key"
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	src := minimal + "        secret_file: hook.secret\n"
	_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), env(nil))
	want := filepath.Join(dir, "c.yaml") + `:8: accounts[0].webhooks[0].secret_file: secret 1 is not whsec_ followed by a base64 key
` + filepath.Join(dir, "c.yaml") + ":8: accounts[0].webhooks[0].secret_file: secret 2 is not whsec_ followed by a base64 key"
	if fmt.Sprint(err) != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	for _, part := range strings.Fields(content) {
		if strings.Contains(fmt.Sprint(err), part) {
			t.Errorf("the file's content %q is printed", part)
		}
	}
}

// TestLogValueAsWritten: logging an account or a webhook shows URLs as
// written; the expanded ones carry the token.
func TestLogValueAsWritten(t *testing.T) {
	src := strings.Replace(minimal, "url: https://app.example.com/hook", "url: https://app.example.com/hook/${TOKEN}?t=${TOKEN}", 1)
	src = strings.Replace(src, "url: https://aff-gh.retailcrm.ru", "url: https://${API_KEY}.retailcrm.ru/", 1)
	cfg, err := Parse("c.yaml", []byte(src), env(hostileEnv))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Accounts[0]
	if a.URL != "https://"+hostileEnv["API_KEY"]+".retailcrm.ru" || !strings.Contains(a.Webhooks[0].URL, hostileEnv["TOKEN"]) {
		t.Fatalf("expanded URLs %q %q", a.URL, a.Webhooks[0].URL)
	}
	var out bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("x", "account", a, "webhook", a.Webhooks[0], "webhooks", a.Webhooks)
	}
	for _, want := range []string{"url=https://${API_KEY}.retailcrm.ru ", `"url":"https://app.example.com/hook/${TOKEN}?t=${TOKEN}"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, out.String())
		}
	}
	for _, name := range []string{"API_KEY", "TOKEN"} {
		if strings.Contains(out.String(), hostileEnv[name]) {
			t.Errorf("the value of %s is logged:\n%s", name, out.String())
		}
	}
}
