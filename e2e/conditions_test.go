package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

const whenPaid = `changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "paid")`

// A webhook with `when` gets order.changed for each change set its
// condition holds for, signed, with the set and the order; the status
// webhook beside it gets only the status events. `poller when` run beside
// the daemon lists the same sets, and without a daemon writes no state.
func TestConditions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 43)
	shop := e.account("shop", crmsim.AccountOptions{})
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(shop, map[string]any{
		"webhooks": []any{
			e.webhook("/status", map[string]any{"name": "status"}),
			e.webhook("/paid", map[string]any{"name": "paid", "when": whenPaid}),
		},
	}))
	p := e.start(cfg)
	paid := map[string]bool{}
	var paidSets [][]int64
	for range 4 {
		id := shop.CreateOrder("main", "new")
		shop.SetStatus(id, "approved")
		ids := shop.SaveOrder(id, crmsim.Save{PaymentStatus: "paid", DeliveryCity: "Accra"})
		shop.SaveOrder(id, crmsim.Save{ManagerID: 99}) // matches nothing
		paid[event.ID("shop", ids[0])] = true
		paidSets = append(paidSets, ids)
	}
	e.waitDelivered(p, "/paid", paid, 30*time.Second)
	e.waitDelivered(p, "/status", expected(shop, []string{"approved"}, true), 30*time.Second)
	for _, d := range e.rec.Deliveries() {
		if d.Path != "/paid" {
			continue
		}
		var ev event.Event
		if err := json.Unmarshal(d.Body, &ev); err != nil {
			t.Fatalf("order.changed body: %v: %s", err, d.Body)
		}
		var ids []int64
		for _, c := range ev.ChangeSet {
			ids = append(ids, c.HistoryID)
		}
		if !d.SignatureOK || ev.Type != event.Changed || len(ev.Order) == 0 || ev.Source != "user" ||
			!slices.ContainsFunc(paidSets, func(s []int64) bool { return slices.Equal(s, ids) }) {
			t.Errorf("delivery %s: signature %v, %s", d.ID, d.SignatureOK, d.Body)
		}
	}

	// Beside the running daemon: the same sets.
	stdout, stderr, code := cli(t, nil, "when", "-config", cfg, "-account", "shop", "-since", "1h")
	if code != 0 {
		t.Fatalf("when exited %d: %s%s", code, stdout, stderr)
	}
	for id := range paid {
		if !strings.Contains(stdout, id+"  ") {
			t.Errorf("poller when does not list %s:\n%s", id, stdout)
		}
	}
	if !strings.Contains(stdout, "4 change sets matched") {
		t.Errorf("poller when output:\n%s", stdout)
	}
	if code, _ := p.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("daemon exited %d", code)
	}

	// Replay for the condition's webhook alone (into the state file, the
	// daemon stopped): the paid sets, evaluated again, and nothing else.
	from := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	stdout, stderr, code = cli(t, nil, "replay", "-config", cfg, "-account", "shop", "-from", from, "-webhook", "paid")
	if code != 0 || !strings.Contains(stdout, "4 events queued") {
		t.Fatalf("replay exited %d:\n%s%s", code, stdout, stderr)
	}
	for id := range paid {
		if !strings.Contains(stdout, "queued "+id+"  ") {
			t.Errorf("replay does not list %s:\n%s", id, stdout)
		}
	}

	// An expression of its own, with no daemon and a state dir never
	// written: nothing is created there.
	dir := filepath.Join(e.dir, "fresh")
	fresh := e.writeConfig("fresh.yaml", map[string]any{"state_dir": dir, "admin_socket": filepath.Join(e.dir, "fresh.sock")},
		e.acctConfig(shop, map[string]any{"webhooks": []any{e.webhook("/status", nil)}}))
	stdout, stderr, code = cli(t, nil, "when", "-config", fresh, "-account", "shop", `changeSet.hasChangedField("manager")`)
	if code != 0 || !strings.Contains(stdout, "4 change sets matched") || !strings.Contains(stdout, "manager") {
		t.Errorf("when with an expression exited %d:\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("poller when touched the state dir: %v", err)
	}
	_, stderr, code = cli(t, nil, "when", "-config", fresh, "-account", "shop", `changeSet.hasChangedField(`)
	if code == 0 || !strings.Contains(stderr, "bad expression") {
		t.Errorf("a bad expression: exit %d, %s", code, stderr)
	}
}
