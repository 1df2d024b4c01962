package poll

import (
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// Every history source counts; skip_own_changes skips only the changes made
// through the poller's own key (apiKey.current), not a rule, combine or
// split, nor another integration's key.
func TestSourcesAndSkipOwnChanges(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 321, sim: crmsim.AccountOptions{ExtraKeys: []string{"other-key"}},
		account: func(a *config.Account) { a.SkipOwnChanges = true }})
	var orders []int64
	for range 6 {
		orders = append(orders, h.crm.CreateOrder("main", "new"))
	}
	want := map[int64]bool{}
	for i, by := range []crmsim.Change{{}, {Source: "code"}, {Source: "rule"}, {Source: "combine"}, {Source: "split"},
		{Source: "api", APIKey: "other-key"}} {
		want[h.crm.SetStatusBy(orders[i], "approved", by)] = true
	}
	own := h.crm.SetStatusVia(h.crm.CreateOrder("main", "new"), "approved", h.cfg.APIKey.Reveal())
	h.poll()
	items := h.outbox()
	for id := range want {
		if !hasOnce(items, id) {
			t.Errorf("transition %d not emitted once: %v", id, ids(items))
		}
	}
	if countID(items, own) != 0 || len(items) != len(want) {
		t.Errorf("events %v: want the %d others, not our own change %d", ids(items), len(want), own)
	}
}
