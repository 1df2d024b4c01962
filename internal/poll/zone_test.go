package poll

import (
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

func loadZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// An account in Europe/Moscow: an approval delivered, the order still
// approved 25 h later, after the seen set was pruned. The sweep must not
// send it again, whether the zone comes from the account (time_zone unset)
// or a wrong override makes the sweep's window too wide.
func TestSweepDoesNotResendInAnotherZone(t *testing.T) {
	for _, c := range []struct {
		name     string
		override *time.Location
	}{{"zone from the account", nil}, {"wrong override", time.UTC}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{seed: 301,
				sim:     crmsim.AccountOptions{TimeZone: loadZone(t, "Europe/Moscow")},
				account: func(a *config.Account) { a.TimeZone = c.override }})
			o, other := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
			h.poll()
			approved := h.crm.SetStatus(o, "approved")
			h.poll()
			if !hasOnce(h.outbox(), approved) {
				t.Fatalf("approval %d not emitted", approved)
			}
			h.clock.Advance(5 * time.Minute)
			h.poll() // retires the look-back mark
			h.clock.Advance(25 * time.Hour)
			h.crm.SetStatus(other, "complete")
			h.poll()
			h.clock.Advance(5 * time.Minute)
			h.poll() // retires the mark, so the commit prunes the seen set below the cursor
			if seen, _ := h.st.Seen("acme", approved-1, approved); seen[approved] {
				t.Fatal("the approval is still in the seen set: the test needs it pruned")
			}
			if res := h.sweep(); res.Recovered != 0 {
				t.Errorf("sweep %+v re-sent a delivered approval", res)
			}
			if n := countID(h.outbox(), approved); n != 1 {
				t.Errorf("approval %d queued %d times, want once", approved, n)
			}
		})
	}
}

// start_from: a time, for an account in Europe/Moscow: approvals before it
// are never emitted, approvals after it are.
func TestStartFromTimeInAccountZone(t *testing.T) {
	start := newClock().Now().Add(2 * time.Hour)
	h := newHarness(t, harnessOptions{seed: 302,
		sim: crmsim.AccountOptions{TimeZone: loadZone(t, "Europe/Moscow")},
		account: func(a *config.Account) {
			a.TimeZone, a.StartFrom, a.StartTime = nil, start.Format(time.RFC3339), start
		}})
	o1, o2 := h.crm.CreateOrder("main", "new"), h.crm.CreateOrder("main", "new")
	h.clock.Advance(time.Hour)
	before := h.crm.SetStatus(o1, "approved") // an hour before start_from
	h.clock.Advance(2 * time.Hour)
	after := h.crm.SetStatus(o2, "approved") // an hour after
	h.poll()
	items := h.outbox()
	if countID(items, before) != 0 {
		t.Errorf("approval %d made before start_from emitted", before)
	}
	if !hasOnce(items, after) {
		t.Errorf("approval %d made after start_from not emitted: %v", after, ids(items))
	}
	if res := h.sweep(); res.Recovered != 0 {
		t.Errorf("sweep %+v emitted something", res)
	}
}
