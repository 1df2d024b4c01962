package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// readmeNodeBlock finds the README's Node.js sample for bodies other than
// JSON: its lines marked 1. and 2. set up the app, the others run per
// request.
var readmeNodeBlock = regexp.MustCompile("(?s)```js\n([^`]*jsonParse: false[^`]*)```")

// TestReadmeNodeSample runs the README's Node.js lines for non-JSON bodies
// in an Express app against the real poller, for format: query (a GET
// without a body) and form: every delivery verifies, as it does with the
// example receiver.
func TestReadmeNodeSample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := readmeNodeBlock.FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```js block with jsonParse: false")
	}
	var setup, handler []string
	for _, l := range strings.Split(strings.TrimSpace(string(m[1])), "\n") {
		if strings.HasPrefix(l, "app.use(") || strings.HasPrefix(l, "const wh ") {
			setup = append(setup, l)
		} else {
			handler = append(handler, "    "+l)
		}
	}
	if len(setup) != 2 || len(handler) == 0 {
		t.Fatalf("the README sample's lines are not app.use, const wh, then the request's: %q", m[1])
	}
	app := `"use strict";
const express = require("express");
const { Webhook } = require("standardwebhooks");
const app = express();
` + strings.Join(setup, "\n") + `
app.all("/webhook", (req, res) => {
  try {
` + strings.Join(handler, "\n") + `
    console.log(JSON.stringify({ msg: "verified", id: req.get("webhook-id") }));
    res.send("OK");
  } catch (err) {
    console.log(JSON.stringify({ msg: "rejected", id: req.get("webhook-id") || "", error: String(err) }));
    res.status(401).send("bad signature");
  }
});
const server = app.listen(Number(process.env.PORT), process.env.HOST, () => {
  const { address, port } = server.address();
  console.log(JSON.stringify({ msg: "listening", addr: "http://" + address + ":" + port }));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`
	dir := nodeDir(t)
	if err := os.WriteFile(filepath.Join(dir, "readme.js"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := receiver.NewSecret()
	remember(secret)
	rp := startReceiver(t, dir, secret, "node", "readme.js")

	e := newEnv(t, 43)
	hook := func(extra map[string]any) []any {
		m := map[string]any{"name": "app", "url": rp.addr + "/webhook", "secret": secret, "timeout": "5s",
			"params": map[string]any{"order_id": "{{ order.id }}", "note": "{{ order.customFields.note }}"}}
		for k, v := range extra {
			m[k] = v
		}
		return []any{m}
	}
	want := map[string]bool{}
	var accts []map[string]any
	for name, extra := range map[string]map[string]any{
		"nquery": {"format": "query", "method": "GET"},
		"nform":  {"format": "form"},
	} {
		a := e.account(name, crmsim.AccountOptions{})
		for i := range 4 {
			id := a.CreateOrder("main", "new")
			a.SetCustomField(id, "note", receiverNotes[i])
			a.SetStatus(id, "approved")
		}
		for id := range expected(a, []string{"approved"}, true) {
			want[id] = true
		}
		accts = append(accts, e.acctConfig(a, map[string]any{"statuses": []string{"approved"}, "webhooks": hook(extra)}))
	}
	p := e.start(e.writeConfig("config.yaml", nil, accts...))
	eventually(t, 60*time.Second, "every event verified by the README's sample", func() bool {
		return len(missingIDs(want, rp.ids("verified"))) == 0 || len(rp.records("rejected")) > 0
	})
	p.stop(syscall.SIGTERM, 15*time.Second)
	if rej := rp.records("rejected"); len(rej) > 0 || len(missingIDs(want, rp.ids("verified"))) > 0 {
		t.Errorf("the README's Node sample rejected %d deliveries; missing %v\n%s", len(rej), missingIDs(want, rp.ids("verified")), tail(rp.logs.String(), 20))
	}
}
