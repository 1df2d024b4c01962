package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// TestActiveActive runs the supported high-availability setup: two
// instances with the same accounts and webhooks (each with its own state
// directory, as on two machines) poll the same account and both send to
// one receiver, which dedupes on webhook-id. One instance is SIGKILLed
// with requests in flight while orders keep being approved; every event
// still arrives, through the other. Restarted, the killed one catches
// up: each event id arrives from both, signed, with the same body byte
// for byte, so nothing of an instance (a time, a host) is in a body.
func TestActiveActive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 31)
	shop := e.account("shop", crmsim.AccountOptions{})
	hook := e.webhook("/orders", nil) // one secret for both instances
	// The two instances share the key's rate limit (10/s in the simulator,
	// as in RetailCRM): each takes less than half.
	acct := e.acctConfig(shop, map[string]any{"statuses": []string{"approved"}, "webhooks": []any{hook}, "rate_limit": 4})
	instance := func(name string) string {
		return e.writeConfig(name+".yaml", map[string]any{
			"state_dir":    filepath.Join(e.dir, name),
			"admin_socket": filepath.Join(e.dir, name+".sock"),
		}, acct)
	}
	cfgA, cfgB := instance("a"), instance("b")
	a, b := e.start(cfgA), e.start(cfgB)

	approveN(shop, "main", 10)
	first := expected(shop, []string{"approved"}, false)
	eventually(t, 30*time.Second, "the first events from both instances", func() bool {
		got := e.rec.Counts("/orders")
		for id := range first {
			if got[id] < 2 {
				return false
			}
		}
		return true
	})

	// The receiver holds the first two requests of each new event for a
	// second: once one event has a request of each instance waiting, b
	// is killed with requests in flight.
	var both atomic.Bool
	e.rec.SetFault(func(r *http.Request, attempt int) fault {
		if first[r.Header.Get("webhook-id")] || attempt > 2 {
			return noFault
		}
		if attempt == 2 {
			both.Store(true)
		}
		return hang
	}, time.Second)
	approveN(shop, "main", 10)
	eventually(t, 30*time.Second, "a request of each instance in flight", both.Load)
	b.kill()
	approveN(shop, "main", 10)
	want := expected(shop, []string{"approved"}, false)
	if len(want) != 30 {
		t.Fatalf("%d qualifying transitions, want the 30 approvals", len(want))
	}
	e.waitDelivered(a, "/orders", want, 60*time.Second)

	e.start(cfgB)
	eventually(t, 60*time.Second, "the restarted instance catching up", func() bool {
		got := e.rec.Counts("/orders")
		for id := range want {
			if got[id] < 2 {
				return false
			}
		}
		return true
	})

	bodies := map[string][]byte{}
	for _, d := range e.rec.Deliveries() {
		if !d.SignatureOK {
			t.Errorf("%s: bad signature: %s", d.ID, d.SignatureErr)
		}
		if !want[d.ID] {
			t.Errorf("unexpected event %s", d.ID)
			continue
		}
		prev, ok := bodies[d.ID]
		if !ok {
			bodies[d.ID] = d.Body
			continue
		}
		if !bytes.Equal(prev, d.Body) {
			t.Errorf("%s: the instances sent different bodies:\n%s\n%s", d.ID, prev, d.Body)
		}
	}
	if len(bodies) != len(want) {
		t.Errorf("%d distinct events arrived, want %d", len(bodies), len(want))
	}
}
