package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// TestNoHeadOfLineBlocking runs the real binary against a receiver that
// rejects every event of 1,100 orders (a downstream bug for one product
// line): an order created after them is delivered within seconds, while
// the failing ones wait for their retries. Beside it, a receiver that
// answers 503 with Retry-After: 31536000 to a webhook with max_age 2s gets
// its event dead-lettered within seconds, reason max_age, not parked for a
// year.
func TestNoHeadOfLineBlocking(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 41)
	hol := e.account("hol", crmsim.AccountOptions{})
	ra := e.account("ra", crmsim.AccountOptions{})
	failing := map[string]bool{} // order ids; read-only once the poller runs
	for range 1100 {
		id := hol.CreateOrder("main", "new")
		hol.SetStatus(id, "approved")
		failing[strconv.FormatInt(id, 10)] = true
	}
	ra.SetStatus(ra.CreateOrder("main", "new"), "approved")
	raWant := expected(ra, []string{"approved"}, false)
	var holRequests atomic.Int64
	e.rec.SetFault(func(r *http.Request, _ int) fault {
		switch r.URL.Path {
		case "/hol":
			holRequests.Add(1)
			if failing[r.URL.Query().Get("order")] {
				return fail500
			}
		case "/ra":
			return fail503Year
		}
		return noFault
	}, 0)
	cfg := e.writeConfig("config.yaml", nil,
		e.acctConfig(hol, map[string]any{"statuses": []string{"approved"}, "webhooks": []any{
			e.webhook("/hol", map[string]any{"format": "query", "params": map[string]any{"order": "{{ order.id }}"}}),
		}}),
		e.acctConfig(ra, map[string]any{"statuses": []string{"approved"}, "webhooks": []any{
			e.webhook("/ra", map[string]any{"retry": map[string]any{"max_age": "2s"}}),
		}}),
	)
	p := e.start(cfg)

	// All 1,100 failing events are in the outbox and were attempted.
	eventually(t, 90*time.Second, "1,100 failing events pending and attempted", func() bool {
		return statusOf(t, cfg, "hol").Pending == 1100 && holRequests.Load() >= 1100
	})
	created := time.Now()
	healthy := event.ID("hol", hol.SetStatus(hol.CreateOrder("main", "new"), "approved"))
	e.waitDelivered(p, "/hol", map[string]bool{healthy: true}, 30*time.Second)
	t.Logf("healthy order delivered %v after its change, behind 1,100 failing orders (%d requests to /hol so far)",
		time.Since(created).Round(time.Millisecond), holRequests.Load())
	if st := statusOf(t, cfg, "hol"); st.Pending != 1100 || st.Dead != 0 {
		t.Errorf("hol status %+v, want the 1,100 failing events pending", st)
	}

	// Retry-After past max_age: dead-lettered at the first attempt.
	var dead []struct {
		Webhook    string              `json:"webhook"`
		Event      struct{ ID string } `json:"event"`
		Attempts   int                 `json:"attempts"`
		LastStatus int                 `json:"last_status"`
		LastError  string              `json:"last_error"`
		DeadReason string              `json:"dead_reason"`
	}
	eventually(t, 30*time.Second, "the Retry-After event dead-lettered", func() bool {
		out, errOut, code := cli(t, nil, "dlq", "list", "-config", cfg, "-account", "ra", "-json")
		if code != 0 {
			t.Fatalf("dlq list: exit %d: %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &dead); err != nil {
			t.Fatalf("dlq list -json: %v: %s", err, out)
		}
		return len(dead) == len(raWant)
	})
	for _, d := range dead {
		if !raWant[d.Event.ID] || d.DeadReason != "max_age" || d.LastStatus != 503 || d.Attempts != 1 || !strings.Contains(d.LastError, "Retry-After") {
			t.Errorf("dead letter %+v, want reason max_age after one attempt answered 503", d)
		}
	}
}

// statusOf runs `poller status -json` and returns account's line.
func statusOf(t *testing.T, cfg, account string) acctStatus {
	t.Helper()
	out, errOut, code := cli(t, nil, "status", "-config", cfg, "-json")
	var sts []acctStatus
	if code != 0 || json.Unmarshal([]byte(out), &sts) != nil {
		t.Fatalf("status: exit %d: %s %s", code, out, errOut)
	}
	for _, s := range sts {
		if s.Account == account {
			return s
		}
	}
	t.Fatalf("status has no account %s: %s", account, out)
	return acctStatus{}
}
