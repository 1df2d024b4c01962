package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/deliver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// receiverNotes are the custom field values the form, template and query
// orders carry: each one breaks a naive encoder of its format.
var receiverNotes = []string{
	`x", "admin": true, "y": "`,
	`back\slash`,
	"two\nlines\ttab",
	"a&b=c+d%20e?f#g",
	"</script><script>alert(1)</script>",
	"smile \U0001F600 line\u2028sep",
	"{{ order.id }}",
	"",
}

// The params the form and query webhooks send, and the template body:
// the same five values in three encodings (event_type tells a receiver a
// send-test event from a real one).
var (
	receiverParams = map[string]any{
		"event_id": "{{ event.id }}", "order_id": "{{ order.id }}", "event_type": "{{ event.type }}",
		"status": "{{ change.newValue }}", "note": "{{ order.customFields.note }}",
	}
	receiverBody = `{"event_id": "{{ event.id }}", "order_id": {{ order.id }}, "event_type": "{{ event.type }}", ` +
		`"status": "{{ change.newValue }}", "note": "{{ order.customFields.note }}"}`
)

// TestExampleReceivers runs each example receiver in examples/receivers
// against the real poller fed by crmsim, with one account per format
// (json, form, template, query), and checks from the receiver's own log
// that every event was processed exactly once, that no genuine delivery
// failed verification, that a replay is dropped as a duplicate, that
// forged bodies are rejected, that format: query parameters are not
// covered by the signature, and that `poller send-test` is logged as a
// test event, not processed.
func TestExampleReceivers(t *testing.T) {
	t.Parallel()
	for _, rc := range []struct {
		name  string
		start func(t *testing.T, secret string) *receiverProc
	}{
		{"go", startGoReceiver},
		{"node", startNodeReceiver},
	} {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			secret := receiver.NewSecret()
			remember(secret)
			receiverScenario(t, rc.start(t, secret), secret)
		})
	}
}

func receiverScenario(t *testing.T, rp *receiverProc, secret string) {
	e := newEnv(t, 41)
	const perAccount = 8
	accts := map[string]*crmsim.Account{}
	notes := map[string]string{} // "<account>/<order id>" -> note
	for _, name := range []string{"rjson", "rform", "rtpl", "rquery"} {
		a := e.account(name, crmsim.AccountOptions{})
		accts[name] = a
		for i := range perAccount {
			id := a.CreateOrder("main", "new")
			if name != "rjson" {
				note := receiverNotes[i%len(receiverNotes)]
				a.SetCustomField(id, "note", note)
				notes[name+"/"+strconv.FormatInt(id, 10)] = note
			}
			a.SetStatus(id, "approved")
		}
	}
	hook := func(extra map[string]any) []any {
		m := map[string]any{"name": "app", "url": rp.addr + "/webhook", "secret": secret, "timeout": "5s"}
		for k, v := range extra {
			m[k] = v
		}
		return []any{m}
	}
	statuses := map[string]any{"statuses": []string{"approved"}}
	with := func(m map[string]any) map[string]any {
		m["statuses"] = statuses["statuses"]
		return m
	}
	cfg := e.writeConfig("config.yaml", nil,
		e.acctConfig(accts["rjson"], with(map[string]any{"webhooks": hook(nil)})),
		e.acctConfig(accts["rform"], with(map[string]any{"webhooks": hook(map[string]any{"format": "form", "params": receiverParams})})),
		e.acctConfig(accts["rtpl"], with(map[string]any{"webhooks": hook(map[string]any{"format": "template", "body": receiverBody})})),
		e.acctConfig(accts["rquery"], with(map[string]any{"webhooks": hook(map[string]any{"format": "query", "method": "GET", "params": receiverParams})})),
	)
	want := map[string]bool{}
	truth := map[string]crmsim.Transition{}
	for _, a := range accts {
		for id := range expected(a, []string{"approved"}, true) {
			want[id] = true
		}
		for id, tr := range transitionsByID(a) {
			truth[id] = tr
		}
	}
	if len(want) != 4*perAccount {
		t.Fatalf("%d events expected, want %d", len(want), 4*perAccount)
	}

	p := e.start(cfg)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		missing := missingIDs(want, rp.ids("processed"))
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events not processed by the receiver within 60s: %v\nreceiver:\n%s\npoller:\n%s",
				len(missing), len(want), head(missing, 10), tail(rp.logs.String(), 20), tail(p.logs.String(), 20))
		}
	}
	p.stop(syscall.SIGTERM, 15*time.Second)

	// What an attacker, or a retry after a lost answer, can do.
	var replayed string
	for id := range want {
		if strings.HasPrefix(id, "rjson-") {
			replayed = id
			break
		}
	}
	other := receiver.NewSecret()
	attacks := []struct {
		name   string
		id     string
		secret string
		signed []byte // what the signature covers
		method string
		body   []byte
		query  string
		code   int
	}{
		{"replay of a delivered event", replayed, secret, []byte(`{"again":true}`), "POST", []byte(`{"again":true}`), "", 200},
		{"body changed after signing", "forged-body", secret, []byte(`{"amount":1}`), "POST", []byte(`{"amount":1000}`), "", 401},
		{"signed with another secret", "forged-secret", other, []byte(`{"amount":1}`), "POST", []byte(`{"amount":1}`), "", 401},
		// format: query sends no body: the signature covers id and
		// timestamp only, so changed parameters still verify.
		{"query parameters changed", "forged-query", secret, nil, "GET", nil,
			"event_id=forged-query&order_id=999999&status=approved&note=changed", 200},
	}
	for _, a := range attacks {
		if code := sendSigned(t, rp.addr+"/webhook", a.method, a.query, a.id, a.secret, a.signed, a.body); code != a.code {
			t.Errorf("%s: receiver answered %d, want %d", a.name, code, a.code)
		}
	}
	eventually(t, 10*time.Second, "the receiver to log the replay and the forged query", func() bool {
		return rp.ids("duplicate")[replayed] > 0 && rp.ids("processed")["forged-query"] == 1
	})

	// Exactly once, every one verified: the only rejections are the forgeries.
	processed := rp.ids("processed")
	for id, n := range processed {
		switch {
		case id == "forged-query":
		case !want[id]:
			t.Errorf("processed an unexpected event %s", id)
		case n != 1:
			t.Errorf("event %s processed %d times, want once", id, n)
		}
	}
	if len(processed) != len(want)+1 {
		t.Errorf("%d events processed, want %d and the forged query", len(processed), len(want))
	}
	if rej := rp.ids("rejected"); len(rej) != 2 || rej["forged-body"] != 1 || rej["forged-secret"] != 1 {
		t.Errorf("rejected %v, want only forged-body and forged-secret: a genuine delivery failed verification", rej)
	}
	if bad := rp.records("cannot parse"); len(bad) > 0 {
		t.Errorf("the receiver could not parse %d deliveries: %v", len(bad), bad)
	}

	// Each body kind parsed into what the order holds.
	for _, r := range rp.records("processed") {
		id, _ := r["id"].(string)
		if id == "forged-query" {
			checkParams(t, r, "query", false, map[string]string{"event_id": "forged-query", "order_id": "999999", "status": "approved", "note": "changed"})
			continue
		}
		tr := truth[id]
		account, _, _ := strings.Cut(id, "-")
		wantParams := map[string]string{"event_id": id, "order_id": strconv.FormatInt(tr.OrderID, 10), "status": tr.New,
			"note": notes[account+"/"+strconv.FormatInt(tr.OrderID, 10)], "event_type": "order.status_changed"}
		switch account {
		case "rjson":
			checkEnvelope(t, r, tr)
		case "rform":
			checkParams(t, r, "form", true, wantParams)
		case "rtpl":
			checkParams(t, r, "json", true, wantParams)
		case "rquery":
			checkParams(t, r, "query", false, wantParams)
		}
	}

	// send-test's event is told from a real one in every format.
	for name := range accts {
		if out, errOut, code := cli(t, nil, "send-test", "-config", cfg, "-account", name); code != 0 {
			t.Errorf("send-test -account %s: exit %d: %s %s", name, code, out, errOut)
		}
	}
	eventually(t, 10*time.Second, "a test event logged for each account", func() bool {
		return len(rp.records("test event")) == len(accts)
	})
	for _, r := range rp.records("test event") {
		id, _ := r["id"].(string)
		if account, _, _ := strings.Cut(id, "-"); accts[account] == nil || !strings.HasPrefix(id, account+"-test-") {
			t.Errorf("test event %v: not a send-test id", r)
		}
	}
	if n := len(rp.records("processed")); n != len(processed) {
		t.Errorf("%d deliveries processed after send-test, want %d: a test event was processed as real", n, len(processed))
	}
	if t.Failed() {
		t.Logf("receiver output:\n%s", tail(rp.logs.String(), 40))
	}
}

// checkEnvelope: a default json delivery parsed into the event envelope.
func checkEnvelope(t *testing.T, r map[string]any, tr crmsim.Transition) {
	t.Helper()
	raw, _ := json.Marshal(r["data"])
	var env struct {
		ID     string
		Change struct{ NewValue string }
		Order  struct{ ID int64 }
	}
	if r["kind"] != "json" || r["signed"] != true || json.Unmarshal(raw, &env) != nil ||
		env.ID != r["id"] || env.Order.ID != tr.OrderID || env.Change.NewValue != tr.New {
		t.Errorf("envelope %v, want order %d status %s", r, tr.OrderID, tr.New)
	}
}

// checkParams: a form, template or query delivery parsed into want. The
// template's order_id is a JSON number; the others send strings.
func checkParams(t *testing.T, r map[string]any, kind string, signed bool, want map[string]string) {
	t.Helper()
	data, _ := r["data"].(map[string]any)
	got := map[string]string{}
	for k, v := range data {
		switch v := v.(type) {
		case string:
			got[k] = v
		case float64:
			got[k] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			got[k] = fmt.Sprint(v)
		}
	}
	if r["kind"] != kind || r["signed"] != signed || len(got) != len(want) {
		t.Errorf("%v: want kind %s, signed %v, %d params", r, kind, signed, len(want))
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s (%s): %s = %q, want %q", r["id"], kind, k, got[k], v)
		}
	}
}

// sendSigned sends one request signed like the poller signs, with the
// signature computed over signed and the body set to body.
func sendSigned(t *testing.T, url, method, query, id, secret string, signed, body []byte) int {
	t.Helper()
	key, err := deliver.Key(config.Secret(secret))
	if err != nil {
		t.Fatal(err)
	}
	if query != "" {
		url += "?" + query
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Unix()
	req.Header.Set(deliver.HeaderID, id)
	req.Header.Set(deliver.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(deliver.HeaderSignature, deliver.Sign([][]byte{key}, id, ts, signed))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// receiverProc is a running example receiver; every line it prints is a
// JSON object with a "msg".
type receiverProc struct {
	addr string
	logs *testkit.SyncBuffer
}

// records returns the printed objects whose msg is msg.
func (rp *receiverProc) records(msg string) []map[string]any {
	return jsonRecords(rp.logs.String(), msg)
}

// ids counts the records with msg by their id.
func (rp *receiverProc) ids(msg string) map[string]int {
	out := map[string]int{}
	for _, r := range rp.records(msg) {
		id, _ := r["id"].(string)
		out[id]++
	}
	return out
}

// startReceiver runs cmd (in dir) with the secret, on a free loopback
// port, and waits for its "listening" line.
func startReceiver(t *testing.T, dir, secret string, name string, args ...string) *receiverProc {
	t.Helper()
	rp := &receiverProc{logs: &testkit.SyncBuffer{}}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret, "HOST=127.0.0.1", "PORT=0")
	w := io.MultiWriter(rp.logs, &allLogs) // the suite checks that no secret is printed
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l := rp.records("listening"); len(l) > 0 {
			rp.addr, _ = l[0]["addr"].(string)
			return rp
		}
		select {
		case <-done:
			t.Fatalf("%s exited before listening:\n%s", name, rp.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen within 30s:\n%s", name, rp.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startGoReceiver(t *testing.T, secret string) *receiverProc {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "receiver")
	if out, err := exec.Command("go", "build", "-o", exe, "../examples/receivers/go").CombinedOutput(); err != nil {
		t.Fatalf("building the Go receiver: %v\n%s", err, out)
	}
	return startReceiver(t, ".", secret, exe)
}

// startNodeReceiver installs the Node example's locked dependencies with
// `npm ci` in a copy of it and starts it.
func startNodeReceiver(t *testing.T, secret string) *receiverProc {
	t.Helper()
	return startReceiver(t, nodeDir(t), secret, "node", "server.js")
}

// nodeDir is a copy of the Node example with its locked dependencies
// installed by `npm ci`.
func nodeDir(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: the Node receiver example needs Node.js 18+ and npm "+
				"(Debian: apt-get install nodejs npm; .ci/run installs them when missing)", tool)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "server.js"} {
		b, err := os.ReadFile(filepath.Join("../examples/receivers/node", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	npm.Dir = dir
	if out, err := npm.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in a copy of examples/receivers/node: %v\n%s", err, out)
	}
	return dir
}
