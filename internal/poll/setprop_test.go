package poll

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// whenPayment holds for a change set with a payments.status entry: decided
// from the entries alone.
const whenPayment = `changeSet.hasChangedField("payments.status")`

// Property: whatever the page sizes, failed ticks (a page or an orders
// request failing after commits of earlier pages), page budgets and
// late-committed saves, every change set is reported exactly once to a
// webhook whose condition holds for it (one over the order, one over the
// entries), whole, under <account>-<lowest id>; and the status webhook
// still gets exactly its transitions.
func TestChangeSetsProperty(t *testing.T) {
	runs := 6
	if testing.Short() {
		runs = 2
	}
	for run := range runs {
		t.Run(strconv.Itoa(run), func(t *testing.T) {
			seed := int64(100 + run)
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			hooks := withHooks(t, "every", whenEvery, "pay", whenPayment)
			h := newHarness(t, harnessOptions{seed: seed, retries: -1, account: func(a *config.Account) {
				hooks(a)
				a.PageBudget = 1 + rng.IntN(3)
			}})
			walk := rand.New(rand.NewPCG(uint64(seed), 9))
			failed, late := 0, 0
			for range 60 {
				if rng.IntN(4) == 0 {
					h.crm.SetFaults(crmsim.Faults{LateCommit: crmsim.LateCommit{Probability: 0.3, Delay: time.Duration(1+rng.IntN(60)) * time.Second}})
					late++
				}
				h.crm.SaveWalk(walk, 15, 1+rng.IntN(30))
				h.crm.SetFaults(crmsim.Faults{})
				h.clock.Advance(time.Duration(rng.IntN(15000)) * time.Millisecond)
				if rng.IntN(3) == 0 {
					// Old history (a catch-up): no look-back marks re-read
					// it, so only the held set keeps a set whole.
					h.clock.Advance(5 * time.Minute)
				}
				switch rng.IntN(5) {
				case 0:
					h.failHistoryAfter(int64(rng.IntN(4)))
				case 1:
					h.crm.SetFaults(crmsim.Faults{Endpoint: crmsim.EndpointOrders, Fail500: 1})
				}
				h.p.pageSize = []int{20, 50, 100}[rng.IntN(3)] // the sizes the API accepts
				if h.p.Poll(context.Background()) != nil {
					failed++
				}
				h.failHistoryAfter(-1)
				h.crm.SetFaults(crmsim.Faults{})
			}
			// Every late save shows; poll until the window has re-read it.
			h.clock.Advance(time.Minute)
			h.p.pageSize = pageLimit
			for range 400 {
				h.clock.Advance(10 * time.Second)
				h.poll()
				if h.state().Cursor == h.crm.LastHistoryID() && len(h.state().Marks) == 0 {
					break
				}
			}
			if failed == 0 || late == 0 {
				t.Fatalf("failed polls %d, rounds with late commits %d: the run exercised too little", failed, late)
			}
			truth := h.crm.ChangeSets()
			checkSets(t, h.outboxOf("every"), truth, func(crmsim.SetTruth) bool { return true })
			checkSets(t, h.outboxOf("pay"), truth, func(s crmsim.SetTruth) bool { return slices.Contains(s.Fields, "payments.status") })
			checkOutbox(t, "acme", h.outbox(), expected(h.cfg, h.crm.Transitions()))
			t.Logf("%d entries in %d change sets, %d failed polls", h.crm.HistoryLen(), len(truth), failed)
		})
	}
}

// checkSets compares a webhook's order.changed events with the ground
// truth's change sets that want selects: one event each, whole, nothing
// else.
func checkSets(t *testing.T, items []store.Item, truth []crmsim.SetTruth, want func(crmsim.SetTruth) bool) {
	t.Helper()
	got := make(map[string][]int64, len(items))
	for _, it := range items {
		ev := it.Event
		if _, dup := got[ev.ID]; dup {
			t.Errorf("change set %s reported twice", ev.ID)
		}
		if ev.Type != event.Changed {
			t.Errorf("event %s of type %s on a webhook with a condition", ev.ID, ev.Type)
		}
		got[ev.ID] = setIDs(ev)
	}
	missing, wanted := 0, 0
	for _, s := range truth {
		if !want(s) {
			continue
		}
		wanted++
		id := event.ID("acme", s.IDs[0])
		ids, ok := got[id]
		switch {
		case !ok:
			if missing++; missing <= 5 {
				t.Errorf("change set %v (%v) not reported", s.IDs, s.Fields)
			}
		case !slices.Equal(ids, s.IDs):
			t.Errorf("change set %s reported with ids %v, want %v", id, ids, s.IDs)
		}
		delete(got, id)
	}
	for id, ids := range got {
		t.Errorf("reported %s (%v), which no wanted change set is", id, ids)
	}
	if missing > 0 || wanted < 50 {
		t.Errorf("%d of %d wanted change sets missing", missing, wanted)
	}
}
