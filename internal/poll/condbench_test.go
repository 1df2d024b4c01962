package poll

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// saveHistory builds an account with about n history entries the way a
// shop's history reads: mostly single entries that no condition here
// matches (comments), and one save in ten a multi-field save of status,
// payment, manager, delivery or a custom field (crmsim.SaveWalk) over 500
// orders.
func saveHistory(n int) (*crmsim.Sim, *crmsim.Account) {
	sim := crmsim.New(crmsim.Options{Seed: 101})
	crm := sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: "key-acme", RateLimit: -1})
	rng := rand.New(rand.NewPCG(101, 1))
	crm.SaveWalk(rng, 500, 0)
	orders := crm.Orders()
	for crm.HistoryLen() < n {
		if rng.IntN(10) == 0 {
			crm.SaveWalk(rng, 500, 1)
			continue
		}
		crm.SetField(orders[rng.IntN(len(orders))], "manager_comment", nil, "called back")
	}
	return sim, crm
}

// benchConditions are the five conditions of BenchmarkConditions: the
// issue's most asked-for triggers, in the form RetailCRM's documentation
// writes them (hasChangedField before newValue(...).code, which fails on a
// set that does not change the field).
var benchConditions = []struct{ name, src string }{
	{"paid", `changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "paid")`},
	{"complete-group", `changeSet.hasChangedField("status") and changeSet.newValue("status").group.code == "complete"`},
	{"slot-filled", `changeSet.hasChangedField("custom_delivery_slot") and changeSet.newValue("custom_delivery_slot") != null`},
	{"manager", `changeSet.hasChangedField("manager")`},
	{"approved-legal", `changeSet.hasChangedField("status") and changeSet.newValue("status").code == "approved" and order.orderType.code == "eshop-legal"`},
}

// benchMisses are the first four with values no change set of the
// history has: the cost of evaluating, without events to fetch and write.
var benchMisses = []struct{ name, src string }{
	{"refunded", `changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "refunded")`},
	{"no-group", `changeSet.hasChangedField("status") and changeSet.newValue("status").group.code == "no-such-group"`},
	{"slot-night", `changeSet.hasChangedField("custom_delivery_slot") and changeSet.newValue("custom_delivery_slot") == "night"`},
	{"manager-0", `changeSet.hasChangedField("manager") and changeSet.newValue("manager").id == 0`},
}

// BenchmarkConditions is one tick over 10,000 history entries of
// multi-field saves (the simulator in a child process, unlimited rate):
// "statuses" with the status webhook alone; "misses4" adding four
// conditions over the entries that hold for no set (the cost of
// evaluating); "when4" adding the four conditions over the
// entries, "when5" the fifth too, which reads the order for the sets whose
// status became approved. It reports the events, the orders requests and
// the condition_error anomalies of a tick; PERFORMANCE.md compares the
// times.
//
//	go test -run='^$' -bench='Conditions$' -benchtime=5x -count=5 ./internal/poll/
func BenchmarkConditions(b *testing.B) {
	benchConditionsOn(b, startSimServer(b, 10_000, false, envSimSaves+"=true"), -1)
}

// BenchmarkConditionsLimited is BenchmarkConditions the way a tick runs
// against RetailCRM: the simulator enforces its 10 requests/s and the
// account keeps its default rate_limit (8), so the wall time is mostly
// the requests'.
//
//	go test -run='^$' -bench=ConditionsLimited -benchtime=1x -count=3 ./internal/poll/
func BenchmarkConditionsLimited(b *testing.B) {
	benchConditionsOn(b, startSimServer(b, 10_000, true, envSimSaves+"=true"), 8)
}

// benchConditionsOn runs the variants against sim with the account's
// rate_limit (-1: unlimited).
func benchConditionsOn(b *testing.B, sim simServer, rateLimit float64) {
	for _, variant := range []struct {
		name  string
		hooks []struct{ name, src string }
	}{{"statuses", nil}, {"misses4", benchMisses}, {"when4", benchConditions[:4]}, {"when5", benchConditions}} {
		b.Run(variant.name, func(b *testing.B) {
			acct := testAccount(sim.url)
			acct.PageBudget, acct.RateLimit = 1<<20, rateLimit
			for _, c := range variant.hooks {
				acct.Webhooks = append(acct.Webhooks, config.Webhook{Name: c.name, When: mustWhen(b, c.src)})
			}
			var changed, orders, failed float64
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				st, err := store.Open(filepath.Join(b.TempDir(), store.FileName), store.Options{Timeout: time.Second})
				if err != nil {
					b.Fatal(err)
				}
				m := metrics.New()
				client, err := retailcrm.New(testClientOptions(acct, m, 2))
				if err != nil {
					b.Fatal(err)
				}
				p := New(acct, client, st, m, discard(), nil)
				before := cpuTime(b)
				b.StartTimer()
				if err := p.Poll(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime(b) - before
				sim.readAll(b, st)
				changed = testutil.ToFloat64(m.EventsDetected.WithLabelValues("acme", string(event.Changed)))
				orders = testutil.ToFloat64(m.APIRequestsTotal.WithLabelValues("acme", "orders", "200"))
				failed = testutil.ToFloat64(m.HistoryAnomalies.WithLabelValues("acme", anomalyCondition))
				st.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(changed, "changed-events")
			b.ReportMetric(orders, "orders-requests")
			b.ReportMetric(failed, "condition-errors")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
