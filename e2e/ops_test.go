package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// TestOperations covers what an operator does with a running and a stopped
// daemon: /metrics, /healthz, `poller status`, and the dead-letter queue
// (list, retry, drop) both over the admin socket and on the state file.
func TestOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 31)
	a := e.account("ops", crmsim.AccountOptions{})
	var gone atomic.Bool
	gone.Store(true)
	e.rec.SetFault(func(r *http.Request, _ int) fault {
		if r.URL.Path == "/gone" && gone.Load() {
			return fail410
		}
		return noFault
	}, 0)
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{"webhooks": []any{
		e.webhook("/ok", map[string]any{"name": "ok"}),
		e.webhook("/gone", map[string]any{"name": "gone"}),
	}}))
	p := e.start(cfg)
	walkFor(a, 1, 8, 20*time.Millisecond, time.Second)()
	approveN(a, "main", 3)
	want := expected(a, []string{"approved"}, true)
	if len(want) < 3 {
		t.Fatalf("only %d events", len(want))
	}
	e.waitDelivered(p, "/ok", want, 15*time.Second)

	// Running: dlq list over the admin socket shows every event for "gone".
	var dead []struct {
		Account, Webhook string
		Event            struct{ ID string }
	}
	eventually(t, 15*time.Second, "all events dead-lettered", func() bool {
		out, errOut, code := cli(t, nil, "dlq", "list", "-config", cfg, "-json")
		if code != 0 {
			t.Fatalf("dlq list: exit %d: %s", code, errOut)
		}
		dead = nil
		if err := json.Unmarshal([]byte(out), &dead); err != nil {
			t.Fatalf("dlq list -json: %v: %s", err, out)
		}
		return len(dead) == len(want)
	})
	var deadIDs []string
	for _, d := range dead {
		if d.Account != "ops" || d.Webhook != "gone" || !want[d.Event.ID] {
			t.Errorf("unexpected dead letter %+v", d)
		}
		deadIDs = append(deadIDs, d.Event.ID)
	}
	sort.Strings(deadIDs)
	out, _, code := cli(t, nil, "dlq", "list", "-config", cfg)
	if code != 0 || !strings.Contains(out, deadIDs[0]) || !strings.Contains(out, "LAST STATUS") || !strings.Contains(out, "410") {
		t.Errorf("dlq list table (with the last status): exit %d:\n%s", code, out)
	}
	// Running: the attempt log through the admin socket.
	checkEventLog(t, cfg, deadIDs[0])
	st := status(t, cfg)
	if st.Account != "ops" || st.Dead != len(want) || st.LastPoll == "" || st.Cursor == 0 {
		t.Errorf("status while running = %+v, want %d dead and a last poll", st, len(want))
	}

	// Metrics: every contract metric with its labels.
	addr := p.httpAddr()
	eventually(t, 10*time.Second, "the dead-letter gauge", func() bool {
		_, body := get(t, "http://"+addr+"/metrics")
		f := testkit.Families(t, body)["poller_dead_letters"]
		for _, m := range f.GetMetric() {
			if len(m.Label) == 1 && m.Label[0].GetValue() == "ops" {
				return m.GetGauge().GetValue() > 0
			}
		}
		return false
	})
	_, body := get(t, "http://"+addr+"/metrics")
	testkit.CheckContractMetrics(t, body)
	for _, s := range []string{
		`poller_deliveries_total{account="ops",result="ok",webhook="ok"}`,
		`poller_deliveries_total{account="ops",result="dead",webhook="gone"}`,
		`poller_polls_total{account="ops",result="ok"}`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	if code, body := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}

	// Running: retry one dead letter; it is delivered at once.
	gone.Store(false)
	out, errOut, code := cli(t, nil, "dlq", "retry", "-config", cfg, "-account", "ops", deadIDs[0])
	if code != 0 || !strings.Contains(out, "1 dead letters moved back") {
		t.Fatalf("dlq retry: exit %d: %s %s", code, out, errOut)
	}
	e.waitDelivered(p, "/gone", map[string]bool{deadIDs[0]: true}, 10*time.Second)
	eventually(t, 10*time.Second, "the dead-letter gauge to count the retried event out", func() bool {
		_, body := get(t, "http://"+addr+"/metrics")
		return strings.Contains(body, fmt.Sprintf(`poller_dead_letters{account="ops"} %d`, len(want)-1))
	})
	if _, errOut, code := cli(t, nil, "dlq", "retry", "-config", cfg, "ops-999999999"); code != 1 || errOut == "" {
		t.Errorf("dlq retry of an unknown id: exit %d, stderr %q; want 1 and a message", code, errOut)
	}
	if code, _ := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// Stopped: the same commands work on the state file.
	checkEventLog(t, cfg, deadIDs[len(deadIDs)-1])
	st = status(t, cfg)
	if st.Dead != len(want)-1 || st.LastPoll != "" {
		t.Errorf("status after stop = %+v, want %d dead and no last poll", st, len(want)-1)
	}
	out, errOut, code = cli(t, nil, "dlq", "drop", "-config", cfg, "-account", "ops", deadIDs[1])
	if code != 0 || !strings.Contains(out, "1 dead letters dropped") {
		t.Errorf("dlq drop: exit %d: %s %s", code, out, errOut)
	}
	out, errOut, code = cli(t, nil, "dlq", "retry", "-config", cfg, "-account", "ops")
	if code != 0 || !strings.Contains(out, "dead letters moved back") {
		t.Errorf("dlq retry (all): exit %d: %s %s", code, out, errOut)
	}
	if out, errOut, code := cli(t, nil, "events", "show", "-config", cfg, deadIDs[1]); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("events show of a dropped event: exit %d: %s %s", code, out, errOut)
	}
	if out, _, code := cli(t, nil, "dlq", "list", "-config", cfg); code != 0 || !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq list after retry: exit %d: %s", code, out)
	}
	wantGone := map[string]bool{}
	for _, id := range deadIDs {
		if id != deadIDs[1] {
			wantGone[id] = true
		}
	}
	p2 := e.start(cfg)
	e.waitDelivered(p2, "/gone", wantGone, 15*time.Second)
}

// checkEventLog runs `poller events show` on a dead letter of "gone" whose
// event "ok" delivered: the log holds both attempts, the text and the
// JSON (documented snake_case fields) say so.
func checkEventLog(t *testing.T, cfg, id string) {
	t.Helper()
	out, errOut, code := cli(t, nil, "events", "show", "-config", cfg, id)
	if code != 0 || !strings.Contains(out, "event     "+id) || !strings.Contains(out, "gone: dead since") || !strings.Contains(out, "410") {
		t.Errorf("events show %s: exit %d:\n%s%s", id, code, out, errOut)
	}
	var ev struct {
		Account string `json:"account"`
		Event   struct {
			ID string `json:"id"`
		} `json:"event"`
		Queues []struct {
			Webhook    string `json:"webhook"`
			State      string `json:"state"`
			LastStatus int    `json:"last_status"`
			DeadReason string `json:"dead_reason"`
		} `json:"queues"`
		Attempts []struct {
			At        time.Time `json:"at"`
			Webhook   string    `json:"webhook"`
			Attempt   int       `json:"attempt"`
			Status    int       `json:"status"`
			LatencyMS *float64  `json:"latency_ms"`
			Error     string    `json:"error"`
		} `json:"attempts"`
	}
	// ok's delivered mark commits just after its receiver answered.
	eventually(t, 10*time.Second, "both attempts in the log", func() bool {
		out, errOut, code := cli(t, nil, "events", "show", "-config", cfg, "-json", id)
		if err := json.Unmarshal([]byte(out), &ev); code != 0 || err != nil {
			t.Fatalf("events show -json: exit %d, %v: %s%s", code, err, out, errOut)
		}
		return len(ev.Attempts) == 2
	})
	if ev.Account != "ops" || ev.Event.ID != id || len(ev.Queues) != 1 || ev.Queues[0].Webhook != "gone" ||
		ev.Queues[0].State != "dead" || ev.Queues[0].LastStatus != 410 || ev.Queues[0].DeadReason != "gone" {
		t.Errorf("events show -json: %+v", ev)
	}
	seen := map[string]int{}
	for _, a := range ev.Attempts {
		seen[a.Webhook] = a.Status
		if a.At.IsZero() || a.Attempt != 1 || a.LatencyMS == nil || (a.Status == 410) != (a.Error != "") {
			t.Errorf("attempt %+v", a)
		}
	}
	if len(ev.Attempts) != 2 || seen["gone"] != 410 || seen["ok"] < 200 || seen["ok"] > 299 {
		t.Errorf("attempt log %+v, want ok's success and gone's 410", ev.Attempts)
	}
}

type acctStatus struct {
	Account  string `json:"account"`
	Cursor   int64  `json:"cursor"`
	LastPoll string `json:"last_poll"`
	Pending  int    `json:"pending"`
	Dead     int    `json:"dead"`
}

// status runs `poller status -json` and returns the only account's line.
func status(t *testing.T, cfg string) acctStatus {
	t.Helper()
	out, errOut, code := cli(t, nil, "status", "-config", cfg, "-json")
	var st []acctStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 1 {
		t.Fatalf("status: exit %d: %s %s", code, out, errOut)
	}
	table, _, code := cli(t, nil, "status", "-config", cfg)
	if code != 0 || !strings.Contains(table, "ACCOUNT") || !strings.Contains(table, st[0].Account) {
		t.Errorf("status table: exit %d:\n%s", code, table)
	}
	return st[0]
}

// TestCheck runs `poller check`: the example config with its variables,
// broken configs (exit 78, the file, line and key named), and -online
// against the simulator (exit 1 naming the failing account).
func TestCheck(t *testing.T) {
	t.Parallel()
	envv := []string{"GHANA_API_KEY=k-123", "WEBHOOK_SECRET=whsec_" + "c2VjcmV0c2VjcmV0c2VjcmV0", "SMTP_PASSWORD=pw"}
	if out, errOut, code := cli(t, envv, "check", "-config", "../config.example.yaml"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("check config.example.yaml: exit %d: %s %s", code, out, errOut)
	}
	if _, errOut, code := cli(t, []string{"GHANA_API_KEY=", "WEBHOOK_SECRET="}, "check", "-config", "../config.example.yaml"); code != exitConfig || errOut == "" {
		t.Errorf("check config.example.yaml with empty variables: exit %d, stderr %q; want 78", code, errOut)
	}

	e := newEnv(t, 32)
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	good := e.account("good", crmsim.AccountOptions{Sites: []string{"s1"}, TimeZone: msk})
	broken := []struct{ name, yaml, msg string }{
		{"syntax", "accounts: [\n", "broken.yaml:"},
		{"unknown key", "accounts:\n  - name: a\n    url: http://x\n    api_key: k\n    colour: red\n", "broken.yaml:5: accounts[0].colour"},
		{"bad cron", "accounts:\n  - name: a\n    url: http://x\n    api_key: k\n    schedule: every minute\n", "broken.yaml:5: accounts[0].schedule"},
		{"no accounts", "listen: ''\n", "broken.yaml"},
		{"unset env", "accounts:\n  - name: a\n    url: http://x\n    api_key: ${E2E_SURELY_UNSET_VAR}\n", "broken.yaml:4: accounts[0].api_key"},
		{"duplicate names", "accounts:\n  - {name: a, url: 'http://x', api_key: k}\n  - {name: a, url: 'http://y', api_key: k}\n", "broken.yaml:3"},
	}
	for _, b := range broken {
		path := filepath.Join(e.dir, "broken.yaml")
		if err := os.WriteFile(path, []byte(b.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := cli(t, nil, "check", "-config", path)
		if code != exitConfig || !strings.Contains(errOut, b.msg) {
			t.Errorf("%s: exit %d, stderr %q; want 78 and %q", b.name, code, errOut, b.msg)
		}
		if b.name == "bad cron" { // run refuses it the same way, before starting anything
			if _, errOut, code := cli(t, nil, "run", "-config", path); code != exitConfig || !strings.Contains(errOut, b.msg) {
				t.Errorf("run with %s: exit %d, stderr %q", b.name, code, errOut)
			}
		}
	}

	okCfg := e.writeConfig("ok.yaml", nil, e.acctConfig(good, map[string]any{
		"statuses": []string{"approved", "complete"}, "sites": []string{"s1"},
		"webhooks": []any{e.webhook("/x", nil)}}))
	out, errOut, code := cli(t, nil, "check", "-config", okCfg, "-online")
	if code != 0 || !strings.Contains(out, "ok    good: key accepted") || !strings.Contains(out, "; time zone: Europe/Moscow (the account's)") {
		t.Errorf("check -online: exit %d: %s %s", code, out, errOut)
	}
	bad := e.acctConfig(good, map[string]any{"name": "wrongkey", "api_key": "not-the-key-e2e",
		"webhooks": []any{e.webhook("/x", nil)}})
	missing := e.acctConfig(good, map[string]any{"name": "nostatus", "statuses": []string{"approved", "shipped"},
		"webhooks": []any{e.webhook("/x", nil)}})
	wrongZone := e.acctConfig(good, map[string]any{"name": "wrongzone", "time_zone": "UTC", "webhooks": []any{e.webhook("/x", nil)}})
	mixedCfg := e.writeConfig("mixed.yaml", nil, bad, e.acctConfig(good, map[string]any{"webhooks": []any{e.webhook("/x", nil)}}), missing, wrongZone)
	out, _, code = cli(t, nil, "check", "-config", mixedCfg, "-online")
	for _, s := range []string{"FAIL  wrongkey: credentials: retailcrm: wrong API key", "ok    good:", "FAIL  nostatus: status codes not found in the account: shipped",
		"FAIL  wrongzone: time_zone differs from the account's: time_zone UTC, the account's zone Europe/Moscow"} {
		if !strings.Contains(out, s) {
			t.Errorf("check -online output lacks %q:\n%s", s, out)
		}
	}
	if code != 1 {
		t.Errorf("check -online with failing accounts: exit %d, want 1", code)
	}
}

// TestSendTest sends the synthetic event to a working and a failing webhook.
func TestSendTest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 33)
	a := e.account("shop", crmsim.AccountOptions{})
	e.rec.SetFault(func(r *http.Request, _ int) fault {
		if r.URL.Path == "/fail" {
			return fail500
		}
		return noFault
	}, 0)
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{"webhooks": []any{
		e.webhook("/hook", map[string]any{"name": "main"}),
		e.webhook("/form", map[string]any{"name": "form", "format": "form", "params": map[string]any{"n": "{{ order.number }}", "t": "{{ event.type }}"}}),
	}}), e.acctConfig(a, map[string]any{"name": "broken", "webhooks": []any{e.webhook("/fail", nil)}}))
	out, errOut, code := cli(t, nil, "send-test", "-config", cfg, "-account", "shop")
	if code != 0 || !strings.Contains(out, "ok    webhook main (POST "+e.hook.URL+"/hook): 200") {
		t.Errorf("send-test: exit %d: %s %s", code, out, errOut)
	}
	ds := e.rec.Deliveries()
	if len(ds) != 2 {
		t.Fatalf("%d deliveries, want 2", len(ds))
	}
	for _, d := range ds {
		if !regexp.MustCompile(`^shop-test-\d+$`).MatchString(d.ID) || !d.SignatureOK {
			t.Errorf("%s: id %q, signature ok %v (%s)", d.Path, d.ID, d.SignatureOK, d.SignatureErr)
		}
		// Its type tells it from a real approval, in the envelope and to a template.
		var typ string
		switch d.Path {
		case "/hook":
			var env struct{ Type string }
			_ = json.Unmarshal(d.Body, &env)
			typ = env.Type
		case "/form":
			q, _ := url.ParseQuery(string(d.Body))
			typ = q.Get("t")
		}
		if typ != string(event.Test) {
			t.Errorf("%s: the test event's type is %q, want %s", d.Path, typ, event.Test)
		}
	}
	out, _, code = cli(t, nil, "send-test", "-config", cfg, "-account", "broken")
	if code != 1 || !strings.Contains(out, "FAIL  webhook 1") || !strings.Contains(out, "500") {
		t.Errorf("send-test to a failing webhook: exit %d:\n%s", code, out)
	}
	if _, errOut, code := cli(t, nil, "send-test", "-config", cfg, "-account", "nosuch"); code != exitUsage || !strings.Contains(errOut, `no account "nosuch"`) {
		t.Errorf("send-test to an unknown account: exit %d: %s", code, errOut)
	}
}

// TestSecretsNotLogged runs a debug-level daemon through failures that
// tend to print credentials (a wrong key, 5xx and 410 answers, dead
// letters, a reload) and greps everything it and the CLI printed for the
// API keys and webhook secrets. TestMain repeats the grep over the output
// of the whole suite.
func TestSecretsNotLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 34)
	a := e.account("secretive", crmsim.AccountOptions{})
	wrong := "wrong-key-" + strings.TrimPrefix(receiver.NewSecret(), "whsec_")
	remember(wrong)
	e.rec.SetFault(func(r *http.Request, attempt int) fault {
		switch {
		case r.URL.Path == "/gone":
			return fail410
		case attempt == 1:
			return fail500
		}
		return noFault
	}, 0)
	cfg := e.writeConfig("config.yaml", map[string]any{"log": map[string]any{"level": "debug", "format": "text"}},
		e.acctConfig(a, map[string]any{"statuses": targets, "webhooks": []any{e.webhook("/hook", map[string]any{"name": "hook"}), e.webhook("/gone", map[string]any{"name": "gone"})}}),
		e.acctConfig(a, map[string]any{"name": "wrong", "api_key": wrong, "webhooks": []any{e.webhook("/w", nil)}}),
	)
	p := e.spawn(cfg)
	p.waitLog("msg=ready", 15*time.Second)
	walkFor(a, 9, 5, 10*time.Millisecond, time.Second)()
	p.waitLog("wrong API key", 15*time.Second)
	eventually(t, 15*time.Second, "a dead letter", func() bool {
		out, _, _ := cli(t, nil, "dlq", "list", "-config", cfg)
		return strings.Contains(out, "secretive-")
	})
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog("config reloaded", 10*time.Second)
	cli(t, nil, "status", "-config", cfg)
	cli(t, nil, "send-test", "-config", cfg, "-account", "secretive")
	p.stop(syscall.SIGTERM, 15*time.Second)
	logs := p.logs.String()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Errorf("no debug output: the test does not look where secrets would leak")
	}
	if leaked := leakedSecrets(logs); len(leaked) > 0 {
		t.Errorf("%d secrets in the daemon's output", len(leaked))
	}
	if leaked := leakedSecrets(allLogs.String()); len(leaked) > 0 {
		t.Errorf("%d secrets in the suite's output so far", len(leaked))
	}
}

// TestSystemdNotify runs the daemon as systemd would with Type=notify and
// WatchdogSec: it reports READY=1 once started, pings the watchdog, and
// reports STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 35)
	a := e.account("sd", crmsim.AccountOptions{})
	sock := filepath.Join(e.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var mu sync.Mutex
	var msgs []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, string(buf[:n]))
			mu.Unlock()
		}
	}()
	count := func(s string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, m := range msgs {
			if strings.Contains(m, s) {
				n++
			}
		}
		return n
	}
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{"webhooks": []any{e.webhook("/sd", nil)}}))
	p := e.spawn(cfg, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=600000")
	eventually(t, 15*time.Second, "READY=1", func() bool { return count("READY=1") == 1 })
	eventually(t, 10*time.Second, "two watchdog pings", func() bool { return count("WATCHDOG=1") >= 2 })
	if code, _ := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
	eventually(t, 2*time.Second, "STOPPING=1", func() bool { return count("STOPPING=1") == 1 })
}

// TestSystemdUnit checks the unit file: systemd-analyze verify and an
// exposure of 2.0 or lower in systemd-analyze security (.ci/run installs
// systemd when the tool is missing).
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing on CI: .ci/run should have installed systemd")
		}
		t.Skip("systemd-analyze is not installed (apt-get install systemd); .ci/run checks the unit")
	}
	out, err := exec.Command("bash", "../systemd/verify-unit.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("verify-unit.sh: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`exposure (\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure in:\n%s", out)
	}
	t.Logf("systemd-analyze security exposure %s", m[1])
}

// TestDemo runs `poller demo` as a user would, for a few seconds.
func TestDemo(t *testing.T) {
	t.Parallel()
	out, errOut, code := cli(t, nil, "demo", "-duration", "4s")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, re := range []string{`(?m)^\s+lost\s+0$`, `(?m)^\s+received\s+[1-9]\d*$`, `signature ok`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("demo output does not match %s:\n%s", re, out)
		}
	}
}
