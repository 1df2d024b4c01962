package demo

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// paidWhen is the condition of the demo's second webhook (on the first
// account): a payment of the order became paid. It is the condition an
// account would write on a RetailCRM trigger.
const paidWhen = `changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "paid")`

// paidSet is a save that marked a payment paid: its change set's lowest
// history id and when it was made.
type paidSet struct {
	id int64
	at time.Time
}

func (a *demoAccount) paidPath() string { return a.path() + "-paid" }

// pay marks the payment of one of a's open orders paid (an order without a
// payment gets one in the same save) and records the save when it changed
// anything; with no open order it creates one first.
func pay(a *demoAccount, open map[*demoAccount][]int64, rng *rand.Rand) {
	if len(open[a]) == 0 {
		open[a] = append(open[a], a.sim.CreateOrder(a.sites[rng.IntN(len(a.sites))], "new"))
	}
	id := open[a][rng.IntN(len(open[a]))]
	if _, ok := a.sim.OrderStatus(id); !ok {
		return
	}
	if ids := a.sim.SaveOrder(id, crmsim.Save{PaymentStatus: "paid"}); len(ids) > 0 {
		a.paidMu.Lock()
		defer a.paidMu.Unlock()
		a.paid = append(a.paid, paidSet{id: ids[0], at: time.Now()})
	}
}

// paidSets returns the saves that marked a payment paid so far.
func (a *demoAccount) paidSets() []paidSet {
	a.paidMu.Lock()
	defer a.paidMu.Unlock()
	return slices.Clone(a.paid)
}

// paidAt returns when the save of change set id was made.
func (a *demoAccount) paidAt(id int64) (time.Time, bool) {
	for _, p := range a.paidSets() {
		if p.id == id {
			return p.at, true
		}
	}
	return time.Time{}, false
}
