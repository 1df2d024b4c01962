package poll

import (
	"bufio"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// setsAccount adds the crash test's webhooks with conditions: "every"
// (every change set, decided with the order) and "pay" (a payment's
// status changed, decided from the entries), and commits after every page,
// so that kills find sets held across page ends.
func setsAccount(a config.Account) config.Account {
	a.PageBudget = 1
	for _, w := range []struct{ name, src string }{{"every", whenEvery}, {"pay", whenPayment}} {
		c, err := condition.Compile(w.src)
		if err != nil {
			panic(err)
		}
		a.Webhooks = append(a.Webhooks, config.Webhook{Name: w.name, When: c})
	}
	return a
}

// The crash test with conditions: a child polling an account with
// webhooks that have conditions is SIGKILLed at random moments while the
// shop makes multi-field saves. After every kill no change set is
// reported twice or invented and the cursor is never past the first entry
// of a set that is not reported; after a final drain every set is
// reported, whole, once.
func TestCrashConsistencySets(t *testing.T) {
	kills := 30
	if os.Getenv("POLL_LONG") == "1" {
		kills = 300
	}
	sim := crmsim.New(crmsim.Options{Seed: 77})
	crm := sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: "key-acme", RateLimit: -1})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	dbPath := filepath.Join(t.TempDir(), store.FileName)
	cfg := setsAccount(crashAccount(crm.BaseURL(srv.URL), crm.APIKey()))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(77, 1))
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				crm.SaveWalk(rng, 50, 1+rng.IntN(3))
			}
		}
	}()
	stopShop := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopShop)

	rng := rand.New(rand.NewPCG(77, 2))
	for i := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChildURL+"="+cfg.URL, envChildKey+"="+crm.APIKey(),
			envChildStore+"="+dbPath, envChildSets+"=1")
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		if rng.IntN(2) == 0 {
			for n := 1 + rng.IntN(2); n > 0 && lines.Scan(); {
				if lines.Text() == "polled" {
					n--
				}
			}
		} else if !lines.Scan() {
			t.Fatalf("child %d: no ready line: %v", i, lines.Err())
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		_ = cmd.Wait()
		if !checkSetsAfterCrash(t, dbPath, crm) {
			t.Fatalf("inconsistent after kill %d", i)
		}
	}
	stopShop()

	st := drainAfterKills(t, dbPath, cfg, crm)
	truth := crm.ChangeSets()
	for _, w := range []struct {
		name string
		want func(crmsim.SetTruth) bool
	}{
		{"every", func(crmsim.SetTruth) bool { return true }},
		{"pay", func(s crmsim.SetTruth) bool { return slices.Contains(s.Fields, "payments.status") }},
	} {
		items, err := st.Pending("acme", w.name, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkSets(t, items, truth, w.want)
	}
	t.Logf("%d kills, %d history entries in %d change sets", kills, crm.HistoryLen(), len(truth))
}

// checkSetsAfterCrash checks the invariants of webhook "every" at any
// instant: no set twice, none invented or partial, none passed by the
// cursor unreported.
func checkSetsAfterCrash(t *testing.T, dbPath string, crm *crmsim.Account) bool {
	t.Helper()
	st, err := store.Open(dbPath, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Errorf("reopen after kill: %v", err)
		return false
	}
	defer st.Close()
	state, err := st.State("acme")
	if err != nil {
		t.Error(err)
		return false
	}
	items, err := st.Pending("acme", "every", 0, 0)
	if err != nil {
		t.Error(err)
		return false
	}
	truth := make(map[string][]int64)
	for _, s := range crm.ChangeSets() {
		truth[event.ID("acme", s.IDs[0])] = s.IDs
	}
	ok := true
	got := make(map[string]bool, len(items))
	for _, it := range items {
		id := it.Event.ID
		if got[id] {
			t.Errorf("change set %s reported twice", id)
			ok = false
		}
		got[id] = true
		if want, found := truth[id]; !found || !slices.Equal(setIDs(it.Event), want) {
			t.Errorf("change set %s reported with ids %v, the save had %v", id, setIDs(it.Event), want)
			ok = false
		}
	}
	for id, ids := range truth {
		if ids[0] <= state.Cursor && !got[id] {
			t.Errorf("cursor %d is past the first entry of change set %v, which is not reported", state.Cursor, ids)
			ok = false
		}
	}
	return ok
}
