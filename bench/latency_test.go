package bench

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// latencySpec is one latency run: changes status changes per account at
// uniformly random times over spread, all accounts in one daemon.
type latencySpec struct {
	schedule string
	accounts int
	changes  int // per account
	spread   time.Duration
	seed     uint64
}

// latencyResult holds the change-to-arrival latencies of one run, sorted,
// per account and pooled, and the API cost over the run.
type latencyResult struct {
	perAccount [][]time.Duration
	all        []time.Duration
	polls      float64 // successful polls during the run
	requests   int     // API requests during the run
	dups       int     // events that arrived more than once
}

// runLatency starts a daemon on spec.accounts simulated accounts, waits
// for every account's first poll (start_from: now sets its cursor), then
// approves one fresh order per change at random times and measures, per
// event, the time from SetStatus to the webhook reaching the receiver.
func runLatency(tb testing.TB, spec latencySpec) latencyResult {
	tb.Helper()
	sched, err := cron.ParseStandard(spec.schedule)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	every := sched.Next(sched.Next(now)).Sub(sched.Next(now))

	e := newEnv(tb)
	accts := e.addAccounts(spec.accounts)
	orders := make([][]int64, len(accts))
	for i, a := range accts {
		for range spec.changes {
			orders[i] = append(orders[i], a.CreateOrder("main", "new"))
		}
	}
	ready := e.startDaemon(e.config(spec.schedule, accts))
	// The first tick of each account comes after its start offset (at most
	// 30 s, less than the interval).
	waitFor(tb, "the first poll of every account", every+time.Minute, func() bool {
		for _, a := range accts {
			if polls(ready, []*crmsim.Account{a}) < 1 {
				return false
			}
		}
		return true
	})

	polls0, req0 := polls(ready, accts), requests(accts)
	changed := make([]map[string]time.Time, len(accts)) // event id -> SetStatus time
	var wg sync.WaitGroup
	for i, a := range accts {
		changed[i] = make(map[string]time.Time, spec.changes)
		rng := rand.New(rand.NewPCG(spec.seed, uint64(i)))
		offsets := make([]time.Duration, spec.changes)
		for k := range offsets {
			offsets[k] = time.Duration(rng.Int64N(int64(spec.spread)))
		}
		slices.Sort(offsets)
		wg.Go(func() {
			start := time.Now()
			for k, off := range offsets {
				time.Sleep(time.Until(start.Add(off)))
				at := time.Now()
				id := a.SetStatus(orders[i][k], "approved")
				changed[i][event.ID(a.Name(), id)] = at
			}
		})
	}
	wg.Wait()
	want := spec.accounts * spec.changes
	waitFor(tb, "every event at the receiver", every+time.Minute, func() bool {
		n, _ := e.rcv.count()
		return n >= want
	})

	res := latencyResult{polls: polls(ready, accts) - polls0, requests: requests(accts) - req0}
	for i := range accts {
		var lat []time.Duration
		for id, at := range changed[i] {
			got, ok := e.rcv.at(id)
			if !ok {
				tb.Fatalf("event %s never arrived", id)
			}
			lat = append(lat, got.Sub(at))
		}
		slices.Sort(lat)
		res.perAccount = append(res.perAccount, lat)
		res.all = append(res.all, lat...)
	}
	slices.Sort(res.all)
	_, res.dups = e.rcv.count()
	return res
}

// log writes the run's figures.
func (r latencyResult) log(tb testing.TB, spec latencySpec) {
	tb.Helper()
	for i, lat := range r.perAccount {
		tb.Logf("acct-%d: n=%d p50=%v p99=%v max=%v", i, len(lat),
			percentile(lat, 50).Round(time.Millisecond), percentile(lat, 99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
	tb.Logf("%s, %d account(s) x %d changes over %v (seed %d): pooled n=%d p50=%v p99=%v max=%v; %.0f polls, %.2f API requests/poll, %d duplicate deliveries",
		spec.schedule, spec.accounts, spec.changes, spec.spread, spec.seed, len(r.all),
		percentile(r.all, 50).Round(time.Millisecond), percentile(r.all, 99).Round(time.Millisecond),
		r.all[len(r.all)-1].Round(time.Millisecond), r.polls, float64(r.requests)/r.polls, r.dups)
}

// TestLatencySmoke is a short run at @every 1s: every change arrives once.
// The timing goal is measured by BenchmarkLatency, not asserted here.
func TestLatencySmoke(t *testing.T) {
	spec := latencySpec{schedule: "@every 1s", accounts: 2, changes: 10, spread: 3 * time.Second, seed: 1}
	res := runLatency(t, spec)
	res.log(t, spec)
	if len(res.all) != spec.accounts*spec.changes {
		t.Errorf("%d latencies, want %d", len(res.all), spec.accounts*spec.changes)
	}
	if res.all[0] <= 0 {
		t.Errorf("smallest latency %v: arrivals before their change", res.all[0])
	}
}

// BenchmarkLatency measures change-to-delivery latency (goal: p99 at most
// the poll interval + 1 s). One iteration is one run with a fresh daemon,
// simulator and receiver; run it with -benchtime=1x and take the median
// over -count runs. Reported in milliseconds: pooled p50, p99 and max, and
// for several accounts the median of the per-account p99s (each account
// has its own start offset, so it is an independent sample of the phase
// between changes and ticks).
//
//	BENCH_LONG=1 go test -run '^$' -bench 'Latency/every=1s' -benchtime=1x -count=5 -timeout 30m ./bench/
//	BENCH_LONG=1 go test -run '^$' -bench 'Latency/every=1m' -benchtime=1x -count=1 -timeout 30m ./bench/
func BenchmarkLatency(b *testing.B) {
	skipUnlessLong(b)
	for _, c := range []struct {
		name string
		spec latencySpec
	}{
		{"every=1s", latencySpec{schedule: "@every 1s", accounts: 1, changes: 300, spread: time.Minute}},
		{"every=1m", latencySpec{schedule: "@every 1m", accounts: 5, changes: 80, spread: 210 * time.Second}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var res latencyResult
			for range b.N {
				spec := c.spec
				spec.seed = uint64(time.Now().UnixNano())
				res = runLatency(b, spec)
				res.log(b, spec)
			}
			var p99s []float64
			for _, lat := range res.perAccount {
				p99s = append(p99s, ms(percentile(lat, 99)))
			}
			b.ReportMetric(ms(percentile(res.all, 50)), "p50-ms")
			b.ReportMetric(ms(percentile(res.all, 99)), "p99-ms")
			b.ReportMetric(ms(res.all[len(res.all)-1]), "max-ms")
			b.ReportMetric(median(p99s), "acct-median-p99-ms")
			b.ReportMetric(float64(res.requests)/res.polls, "req/poll")
		})
	}
}
