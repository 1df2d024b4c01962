package poll

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// Environment of child processes: the test binary re-runs itself with
// these set, and TestMain runs the child's part instead of tests.
const (
	envChildURL   = "POLL_CHILD_URL"   // crash test: account base URL
	envChildKey   = "POLL_CHILD_KEY"   // crash test: API key
	envChildStore = "POLL_CHILD_STORE" // crash test: poller.db path
	envChildSets  = "POLL_CHILD_SETS"  // crash test: the account has webhooks with conditions (setsAccount)
	envSimEntries = "POLL_SIM_ENTRIES" // heap benchmark: serve a history of this many entries
	envSimLimited = "POLL_SIM_LIMITED" // catch-up benchmark: the simulator enforces RetailCRM's 10 requests/s
	envSimSaves   = "POLL_SIM_SAVES"   // conditions benchmark: the history is multi-field saves (saveHistory)
)

func TestMain(m *testing.M) {
	if os.Getenv(envChildURL) != "" {
		os.Exit(childMain())
	}
	if v := os.Getenv(envSimEntries); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, envSimEntries+":", err)
			os.Exit(2)
		}
		os.Exit(simMain(n))
	}
	os.Exit(m.Run())
}

// crashAccount is the account the child and the final drain both poll.
func crashAccount(url, key string) config.Account {
	a := testAccount(url)
	a.APIKey = config.Secret(key)
	a.LookBackTime = 5 * time.Second
	// A child is killed every ~150 ms, before most polls end, so marks
	// rarely retire: a small window keeps each run's re-read short enough to
	// make progress.
	a.LookBack = 300
	return a
}

// childMain polls every ~20ms until it is killed.
func childMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	st, err := store.Open(os.Getenv(envChildStore), store.Options{Timeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer st.Close()
	acct := crashAccount(os.Getenv(envChildURL), os.Getenv(envChildKey))
	if os.Getenv(envChildSets) != "" {
		acct = setsAccount(acct)
	}
	m := metrics.New()
	client, err := retailcrm.New(testClientOptions(acct, m, 3))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	p := New(acct, client, st, m, discard(), nil)
	fmt.Println("ready") // the parent times its kill from here
	for ctx.Err() == nil {
		if p.Poll(ctx) == nil { // failures are retried by the next tick, as under cron
			fmt.Println("polled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}

// A child process running the real poll loop is SIGKILLed at random
// moments while the simulator keeps changing orders. After every kill the
// outbox holds no duplicate and nothing invented, and the cursor is never
// past a qualifying entry missing from the outbox; after a final drain the
// outbox equals the ground truth.
func TestCrashConsistency(t *testing.T) {
	kills := 50
	if os.Getenv("POLL_LONG") == "1" {
		kills = 400
	}
	sim := crmsim.New(crmsim.Options{Seed: 99})
	crm := sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: "key-acme", RateLimit: -1})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	dbPath := filepath.Join(t.TempDir(), store.FileName)
	cfg := crashAccount(crm.BaseURL(srv.URL), crm.APIKey())

	// The shop keeps working throughout.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(99, 1))
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond): // about 430 history entries a second
				crm.RandomWalk(rng, 50, 1+rng.IntN(3))
			}
		}
	}()
	stopShop := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopShop)

	rng := rand.New(rand.NewPCG(99, 2))
	var cursor int64
	advanced := 0 // kills after which the child had moved the cursor
	for i := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChildURL+"="+cfg.URL, envChildKey+"="+crm.APIKey(), envChildStore+"="+dbPath)
		cmd.Stderr = os.Stderr // the child writes only on failure
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Mostly kill while polling: at a random moment, or (half the runs,
		// so that progress does not depend on the machine's speed) just
		// after a poll ended; one run in ten while starting up.
		lines := bufio.NewScanner(out)
		switch r := rng.IntN(10); {
		case r == 0:
		case r <= 5:
			for n := 1 + rng.IntN(2); n > 0 && lines.Scan(); {
				if lines.Text() == "polled" {
					n--
				}
			}
		default:
			if !lines.Scan() {
				t.Fatalf("child %d: no ready line: %v", i, lines.Err())
			}
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		_ = cmd.Wait() // "signal: killed"
		c, ok := checkAfterCrash(t, dbPath, cfg, crm)
		if !ok {
			t.Fatalf("inconsistent after kill %d", i)
		}
		if c > cursor {
			advanced++
		}
		cursor = c
	}
	stopShop()
	if advanced < kills/10 {
		t.Fatalf("the child moved the cursor in only %d of %d runs: it was killed before doing anything", advanced, kills)
	}

	st := drainAfterKills(t, dbPath, cfg, crm)
	items, err := st.Pending("acme", "1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	exp := expected(cfg, crm.Transitions())
	t.Logf("%d kills (%d after progress), %d history entries, %d events", kills, advanced, crm.HistoryLen(), len(exp))
	if len(exp) < 50 {
		t.Fatalf("only %d qualifying transitions: the shop was too quiet to test anything", len(exp))
	}
	checkOutbox(t, "acme", items, exp)
}

// checkAfterCrash opens the store the killed child left and checks the
// invariants that must hold at any instant.
// It returns the cursor.
func checkAfterCrash(t *testing.T, dbPath string, cfg config.Account, crm *crmsim.Account) (int64, bool) {
	t.Helper()
	st, err := store.Open(dbPath, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Errorf("reopen after kill: %v", err)
		return 0, false
	}
	defer st.Close()
	state, err := st.State("acme")
	if err != nil {
		t.Error(err)
		return 0, false
	}
	items, err := st.Pending("acme", "1", 0, 0)
	if err != nil {
		t.Error(err)
		return 0, false
	}
	exp := expected(cfg, crm.Transitions())
	ok := true
	got := make(map[int64]bool, len(items))
	for _, it := range items {
		id := it.Event.Change.HistoryID
		if got[id] {
			t.Errorf("duplicate event %s", it.Event.ID)
			ok = false
		}
		got[id] = true
		if _, want := exp[id]; !want {
			t.Errorf("invented event %s", it.Event.ID)
			ok = false
		}
	}
	// No late commits here: every entry up to the cursor was visible when
	// the child read past it, so its event must be in the outbox.
	for id := range exp {
		if id <= state.Cursor && !got[id] {
			t.Errorf("cursor %d is past history id %d, whose event is not in the outbox", state.Cursor, id)
			ok = false
		}
	}
	return state.Cursor, ok
}

// drainAfterKills opens the store the killed children left and polls it
// in-process until the cursor reaches the simulator's last entry, so that
// the outbox can be compared with the whole history.
func drainAfterKills(t *testing.T, dbPath string, cfg config.Account, crm *crmsim.Account) *store.Store {
	t.Helper()
	st, err := store.Open(dbPath, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := metrics.New()
	client, err := retailcrm.New(testClientOptions(cfg, m, 3))
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, client, st, m, discard(), nil)
	for range 1000 {
		if err := p.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s, _ := st.State("acme"); s.Cursor == crm.LastHistoryID() {
			break
		}
	}
	return st
}
