package bench

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/poll"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

// ceilDiv is ceil(a/b) for positive b.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// accountConfig loads a one-account config through the config loader, so
// every key the poller reads has its production default.
func accountConfig(tb testing.TB, e *env, a *crmsim.Account) config.Account {
	tb.Helper()
	src := fmt.Sprintf("state_dir: %s\naccounts:\n  - {name: %s, url: %s, api_key: %s, webhooks: [{url: %s}]}\n",
		e.dir, a.Name(), a.BaseURL(e.crm.URL), a.APIKey(), e.rcv.srv.URL)
	cfg, err := config.Parse(filepath.Join(e.dir, "poller.yaml"), []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		tb.Fatal(err)
	}
	acct, ok := cfg.Account(a.Name())
	if !ok {
		tb.Fatalf("account %s not in the parsed config", a.Name())
	}
	return *acct
}

// openStore opens a fresh store in e's state directory.
func openStore(tb testing.TB, e *env) *store.Store {
	tb.Helper()
	st, err := store.Open(filepath.Join(e.dir, store.FileName), store.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// newPoller is the daemon's poller for acct over st. The client's pacing
// is switched off: it changes when requests are sent, not how many.
func newPoller(tb testing.TB, st *store.Store, acct config.Account) *poll.Poller {
	tb.Helper()
	m := metrics.New()
	log := slog.New(slog.DiscardHandler)
	opts := retailcrm.AccountOptions(acct)
	opts.Logger, opts.UserAgent, opts.Observe = log, version.UserAgent(), m.APIObserver(acct.Name)
	opts.RateLimit = -1
	client, err := retailcrm.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return poll.New(acct, client, st, m, log, nil)
}

// cost is the API requests one poll made.
type cost struct{ history, orders int }

func (c cost) total() int { return c.history + c.orders }

// measurePoll runs one poll and counts its requests.
func measurePoll(tb testing.TB, p *poll.Poller, a *crmsim.Account) cost {
	tb.Helper()
	h0, o0, all0 := a.Requests(crmsim.EndpointHistory), a.Requests(crmsim.EndpointOrders), a.Requests("")
	z0 := a.Requests(crmsim.EndpointSettings)
	if err := p.Poll(context.Background()); err != nil {
		tb.Fatal(err)
	}
	c := cost{history: a.Requests(crmsim.EndpointHistory) - h0, orders: a.Requests(crmsim.EndpointOrders) - o0}
	// The account's time zone is read at the first poll and then daily:
	// not a cost of polls.
	zone := a.Requests(crmsim.EndpointSettings) - z0
	if other := a.Requests("") - all0 - c.total() - zone; other != 0 || zone > 1 {
		tb.Errorf("%d requests to endpoints other than history and orders, %d settings reads", other, zone)
	}
	return c
}

// TestRequestsPerPoll counts the API requests of the daemon's poller
// (issue 6 goals): an idle poll makes 1 request, and a burst of N approvals
// over H history entries at most ceil(H/100) + ceil(N/100) + 1. Counts, not
// times, so the goals are asserted; -v prints the figures for
// docs/PERFORMANCE.md.
//
//	go test -run RequestsPerPoll -v ./bench/
func TestRequestsPerPoll(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		noise bool // each approval comes with a comment and a status move (H = 3N)
	}{
		{"N=1", 1, false},
		{"N=100", 100, false},
		{"N=1000", 1000, false},
		{"N=1/H=3N", 1, true},
		{"N=100/H=3N", 100, true},
		{"N=1000/H=3N", 1000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: "acme-key-0123456789", RateLimit: -1})
			orders := make([]int64, tt.n)
			for i := range orders {
				orders[i] = a.CreateOrder("main", "new")
			}
			acct := accountConfig(t, e, a)
			st := openStore(t, e)
			p := newPoller(t, st, acct)

			start := measurePoll(t, p, a) // start_from: now finds the newest id
			idle := measurePoll(t, p, a)
			if idle.total() != 1 {
				t.Errorf("idle poll: %d requests, want 1", idle.total())
			}

			h0 := a.HistoryLen()
			for _, o := range orders {
				if tt.noise {
					a.SetField(o, "manager_comment", nil, "called the customer")
					a.SetStatus(o, "assembling")
				}
				a.SetStatus(o, "approved")
			}
			h := a.HistoryLen() - h0
			burst := measurePoll(t, p, a)
			bound := ceilDiv(h, 100) + ceilDiv(tt.n, 100) + 1
			if burst.total() > bound {
				t.Errorf("burst: %d requests (%d history, %d orders), goal at most %d", burst.total(), burst.history, burst.orders, bound)
			}
			if pending, _, err := st.Counts(acct.Name); err != nil || pending != tt.n {
				t.Errorf("outbox holds %d events (%v), want %d", pending, err, tt.n)
			}

			// Right after activity the look-back window is re-read, by every
			// successful poll until one that started look_back_time after
			// the burst; that one retires it, and the next poll is idle. A
			// poller with a 1 ms look_back_time on the same store stands in
			// for waiting 2m.
			again := measurePoll(t, p, a)
			quiet := acct
			quiet.LookBackTime = time.Millisecond
			time.Sleep(2 * time.Millisecond)
			qp := newPoller(t, st, quiet)
			retiring := measurePoll(t, qp, a)
			settled := measurePoll(t, qp, a)
			if settled.total() != 1 {
				t.Errorf("idle poll after look_back_time: %d requests, want 1", settled.total())
			}
			lookBack := ceilDiv(min(h, acct.LookBack), 100) + 1
			if again.total() > lookBack || retiring.total() > lookBack {
				t.Errorf("idle polls inside look_back_time: %d and %d requests, want at most %d", again.total(), retiring.total(), lookBack)
			}

			t.Logf("N=%d H=%d: burst %d requests (%d history + %d orders), goal <= %d, %.3f requests/event; "+
				"first poll %d, idle %d, idle within look_back_time %d, the poll that retires the window %d, idle after it %d",
				tt.n, h, burst.total(), burst.history, burst.orders, bound, float64(burst.total())/float64(tt.n),
				start.total(), idle.total(), again.total(), retiring.total(), settled.total())
		})
	}
}
