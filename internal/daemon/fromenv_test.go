package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReloadWarnsAboutEnvironment: a reload names each secret the config
// still takes from a ${VAR} (the daemon's environment is the one it started
// with), never its value; a *_file secret is read again and not named.
func TestReloadWarnsAboutEnvironment(t *testing.T) {
	e := newEnv(t)
	a := e.account("alpha", "")
	t.Setenv("DAEMON_TEST_API_KEY", a.key)
	t.Setenv("DAEMON_TEST_HOOK_SECRET", webhookSecret)
	keyFile := filepath.Join(e.dir, "alpha.key")
	if err := os.WriteFile(keyFile, []byte(a.key), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(apiKey string) string {
		return fmt.Sprintf(`state_dir: %s
listen: ""
admin_socket: ""
accounts:
  - name: alpha
    url: %s
    %s
    schedule: "@every 1s"
    webhooks:
      - name: app
        url: %s
        secret: ${DAEMON_TEST_HOOK_SECRET}
`, filepath.Join(e.dir, "state"), a.url, apiKey, e.rcv.URL)
	}
	e.writeRaw(config("api_key: ${DAEMON_TEST_API_KEY}"))
	d := e.start()
	const msg = "reload kept the value this variable had when the daemon started; if it changed, restart to use it"
	if strings.Contains(d.logs.String(), msg) {
		t.Error("warned at start, before any reload")
	}

	reload := func(n float64) []map[string]any {
		t.Helper()
		d.reload <- struct{}{}
		waitFor(t, "the reload", func() bool {
			return testutil.ToFloat64(d.ready.Metrics.ConfigReloadsTotal.WithLabelValues("ok")) == n
		})
		var out []map[string]any
		for line := range strings.Lines(d.logs.String()) {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
				out = append(out, rec)
			}
		}
		return out
	}
	got := reload(1)
	want := []string{"alpha//api_key/DAEMON_TEST_API_KEY", "alpha/app/secret/DAEMON_TEST_HOOK_SECRET"}
	if s := summary(got); s != strings.Join(want, ",") {
		t.Errorf("warnings %s, want %s", s, strings.Join(want, ","))
	}
	for _, r := range got {
		if r["level"] != "WARN" {
			t.Errorf("level %v", r["level"])
		}
	}

	// The key now comes from a file: only the webhook secret is named.
	e.writeRaw(config("api_key_file: " + keyFile))
	got = reload(2)[len(got):]
	if s := summary(got); s != want[1] {
		t.Errorf("after the switch to api_key_file: warnings %s, want %s", s, want[1])
	}
	for _, s := range []string{a.key, webhookSecret} {
		if strings.Contains(d.logs.String(), s) {
			t.Error("a secret's value is in the log")
		}
	}
}

// summary renders warning records as account/webhook/key/variables.
func summary(recs []map[string]any) string {
	var parts []string
	for _, r := range recs {
		w, _ := r["webhook"].(string)
		parts = append(parts, fmt.Sprintf("%v/%s/%v/%v", r["account"], w, r["key"], r["variables"]))
	}
	return strings.Join(parts, ",")
}
