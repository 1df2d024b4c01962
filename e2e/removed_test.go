package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// TestRemovedAccountPending: events pending for an account a reload took
// out of the config stay in the file, `poller status` shows them with the
// time they will be dead-lettered, and `poller dlq drop -account NAME`
// removes them.
func TestRemovedAccountPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 64)
	alpha := e.account("alpha", crmsim.AccountOptions{})
	beta := e.account("beta", crmsim.AccountOptions{})
	e.rec.SetFault(func(r *http.Request, _ int) fault {
		if r.URL.Path == "/beta" {
			return fail500
		}
		return noFault
	}, 0)
	alphaCfg := e.acctConfig(alpha, map[string]any{"webhooks": []any{e.webhook("/alpha", nil)}})
	betaCfg := e.acctConfig(beta, map[string]any{"webhooks": []any{e.webhook("/beta", map[string]any{"retry": map[string]any{"max_age": "5h"}})}})
	cfg := e.writeConfig("poller.yaml", nil, alphaCfg, betaCfg)
	approveN(beta, "main", 3)
	p := e.start(cfg)

	type line struct {
		Account    string `json:"account"`
		Configured bool   `json:"configured"`
		Pending    int    `json:"pending"`
		Removed    *struct {
			At       time.Time `json:"at"`
			Deadline time.Time `json:"deadline"`
		} `json:"removed"`
	}
	statusOf := func(name string) line {
		t.Helper()
		out, errOut, code := cli(t, nil, "status", "-config", cfg, "-json")
		var st []line
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("status: exit %d: %s %s", code, out, errOut)
		}
		for _, s := range st {
			if s.Account == name {
				return s
			}
		}
		t.Fatalf("status lists no %s:\n%s", name, out)
		return line{}
	}
	deadline := time.Now().Add(20 * time.Second)
	for statusOf("beta").Pending < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("beta's events not pending:\n%s", tail(p.logs.String(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}

	e.writeConfig("poller.yaml", nil, alphaCfg) // beta removed
	removedAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(`"msg":"account not in the config; its pending events are kept until the deadline, then dead-lettered, unless it returns"`, 20*time.Second)
	s := statusOf("beta")
	if s.Configured || s.Pending < 3 || s.Removed == nil {
		t.Fatalf("beta after the reload: %+v", s)
	}
	if d := s.Removed.Deadline.Sub(removedAt); d < 5*time.Hour-time.Minute || d > 5*time.Hour+time.Minute {
		t.Errorf("deadline %v after the removal, want its webhook's max_age 5h", d)
	}
	table, _, _ := cli(t, nil, "status", "-config", cfg)
	if !strings.Contains(table, "beta (not in config; pending dead-lettered from ") {
		t.Errorf("status table:\n%s", table)
	}

	out, errOut, code := cli(t, nil, "dlq", "drop", "-config", cfg, "-account", "beta")
	if code != 0 || !strings.Contains(out, "were pending events of account beta, which is not in the config") {
		t.Fatalf("dlq drop: exit %d: %s %s", code, out, errOut)
	}
	if s := statusOf("beta"); s.Pending != 0 {
		t.Errorf("beta after the drop: %+v", s)
	}
}
