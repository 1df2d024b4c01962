package e2e

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// TestSIGTERMWithPending stops the daemon while 1,000 events wait for a
// slow receiver: it exits 0 within the shutdown bound, and after a restart
// every event arrives, none more than once more.
func TestSIGTERMWithPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 21)
	a := e.account("bulk", crmsim.AccountOptions{RateLimit: -1})
	for i := range 1000 {
		a.CreateOrder("main", []string{"approved", "new"}[min(i%7, 1)])
	}
	for _, id := range a.Orders() {
		if st, _ := a.OrderStatus(id); st == "new" {
			a.SetStatus(id, "approved")
		}
	}
	want := expected(a, []string{"approved"}, true)
	if len(want) != 1000 {
		t.Fatalf("%d events, want 1000", len(want))
	}
	var slow atomic.Bool
	slow.Store(true)
	e.rec.SetFault(func(*http.Request, int) fault {
		if slow.Load() {
			return hang
		}
		return noFault
	}, 300*time.Millisecond)
	const bound = 5 * time.Second
	cfg := e.writeConfig("config.yaml", map[string]any{"shutdown_timeout": bound.String()},
		e.acctConfig(a, map[string]any{"webhooks": []any{e.webhook("/bulk", nil)}}))
	p := e.start(cfg)
	eventually(t, 30*time.Second, "the first deliveries", func() bool { return len(e.rec.Counts("/bulk")) >= 8 })
	code, took := p.stop(syscall.SIGTERM, bound+5*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, tail(p.logs.String(), 20))
	}
	if took > bound+2*time.Second {
		t.Errorf("SIGTERM took %s, bound %s", took, bound)
	}
	p.waitLog(`"msg":"stopped"`, time.Second)
	before := len(e.rec.Counts("/bulk"))
	t.Logf("SIGTERM: exit 0 after %s with %d of 1000 delivered", took.Round(time.Millisecond), before)
	if before >= 1000 {
		t.Fatalf("everything was delivered before SIGTERM; nothing was pending")
	}

	// The state file says what is left, without a daemon.
	out, errOut, c := cli(t, nil, "status", "-config", cfg, "-json")
	var st []struct {
		Account string `json:"account"`
		Pending int    `json:"pending"`
	}
	if c != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 1 || st[0].Pending != 1000-before {
		t.Errorf("status after stop: code %d, %s %s; want pending %d", c, out, errOut, 1000-before)
	}

	slow.Store(false)
	p2 := e.start(cfg)
	got := e.waitDelivered(p2, "/bulk", want, 60*time.Second)
	dups := 0
	for id, n := range got {
		if n > 2 {
			t.Errorf("%s delivered %d times", id, n)
		}
		dups += n - 1
	}
	if dups > 4 { // at most the in-flight requests of one webhook (concurrency 4)
		t.Errorf("%d duplicates after a graceful stop", dups)
	}
	if code, _ := p2.stop(syscall.SIGTERM, bound+5*time.Second); code != 0 {
		t.Errorf("second run: exit code %d", code)
	}
}

// TestReload adds an account with SIGHUP, then sends a broken config: the
// daemon keeps running the old one and says why.
func TestReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 22)
	a1 := e.account("first", crmsim.AccountOptions{})
	a2 := e.account("second", crmsim.AccountOptions{})
	acct1 := e.acctConfig(a1, map[string]any{"webhooks": []any{e.webhook("/first", nil)}})
	cfg := e.writeConfig("config.yaml", nil, acct1)
	p := e.start(cfg)
	addr := p.httpAddr()

	a2.RandomWalk(rand.New(rand.NewPCG(1, 1)), 5, 20)
	approveN(a2, "main", 3)
	e.writeConfig("config.yaml", nil, acct1, e.acctConfig(a2, map[string]any{"webhooks": []any{e.webhook("/second", nil)}}))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(`"msg":"config reloaded"`, 10*time.Second)
	start := time.Now()
	e.waitDelivered(p, "/second", expected(a2, []string{"approved"}, true), 10*time.Second)
	t.Logf("added account delivered %s after the reload", time.Since(start).Round(time.Millisecond))

	broken := strings.Replace(readFile(t, cfg), "schedule: '@every 1s'", "schedule: '@every never'", 1)
	broken = strings.Replace(broken, "schedule: \"@every 1s\"", "schedule: \"@every never\"", 1)
	if !strings.Contains(broken, "never") {
		t.Fatalf("could not break the config:\n%s", broken)
	}
	if err := os.WriteFile(cfg, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logs := p.waitLog(`"msg":"config reload failed; keeping the running config"`, 10*time.Second)
	var why string
	for _, r := range p.logLines("config reload failed; keeping the running config") {
		why, _ = r["error"].(string)
	}
	if !strings.Contains(why, "schedule") || !strings.Contains(why, "config.yaml:") {
		t.Errorf("reload error %q does not name the file, line and key", why)
	}
	// Still running the old config: both accounts keep working.
	walkFor(a1, 2, 5, 20*time.Millisecond, 500*time.Millisecond)()
	walkFor(a2, 3, 5, 20*time.Millisecond, 500*time.Millisecond)()
	approveN(a1, "main", 2)
	approveN(a2, "main", 2)
	e.waitDelivered(p, "/first", expected(a1, []string{"approved"}, true), 15*time.Second)
	e.waitDelivered(p, "/second", expected(a2, []string{"approved"}, true), 15*time.Second)
	_, metrics := get(t, "http://"+addr+"/metrics")
	if !strings.Contains(metrics, "poller_config_last_reload_successful 0") {
		t.Errorf("poller_config_last_reload_successful is not 0 after a failed reload")
	}
	if p.exited() {
		t.Fatalf("the daemon exited after a broken reload:\n%s", logs)
	}
}

// TestSIGKILL kills the daemon at random points while orders keep
// changing, restarts it each time, and finally compares what the receiver
// got with the ground truth: nothing lost, and every duplicate accounted
// for by a kill that came right after its first delivery (the 2xx arrived
// but the kill beat the record of it).
func TestSIGKILL(t *testing.T) {
	t.Parallel()
	rounds := 20
	if long() {
		rounds = 100
	}
	e := newEnv(t, 23)
	a := e.account("crash", crmsim.AccountOptions{RateLimit: -1})
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{
		"statuses": targets,
		"webhooks": []any{e.webhook("/crash", map[string]any{"name": "crash"}), e.webhook("/crash2", map[string]any{"name": "crash2", "concurrency": 1})},
	}))
	ctx, stopWalk := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { walk(ctx, a, 7, 30, 10*time.Millisecond) })
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	var kills []time.Time
	for i := range rounds {
		p := e.spawn(cfg)
		time.Sleep(time.Duration(50+rng.IntN(1500)) * time.Millisecond)
		if p.exited() {
			t.Fatalf("round %d: the daemon exited by itself (%v):\n%s", i, p.err, tail(p.logs.String(), 20))
		}
		kills = append(kills, time.Now())
		p.kill()
	}
	stopWalk()
	wg.Wait()
	// After a kill the admin socket file is stale: status reads the state file.
	out, errOut, code := cli(t, nil, "status", "-config", cfg, "-json")
	if code != 0 || !strings.Contains(out, `"account": "crash"`) {
		t.Errorf("status after SIGKILL: exit %d: %s %s", code, out, errOut)
	}
	p := e.start(cfg)
	want := expected(a, targets, true)
	for _, path := range []string{"/crash", "/crash2"} {
		got := e.waitDelivered(p, path, want, 60*time.Second)
		first := map[string]time.Time{}
		for _, d := range e.rec.Deliveries() {
			if _, ok := first[d.ID]; !ok && d.Path == path {
				first[d.ID] = d.At
			}
		}
		dups := 0
		for id, n := range got {
			if n == 1 {
				continue
			}
			dups += n - 1
			if !killedSoonAfter(kills, first[id], 3*time.Second) {
				t.Errorf("%s: %s arrived %d times, first at %s, with no kill within 3s after it",
					path, id, n, first[id].Format("15:04:05.000"))
			}
		}
		t.Logf("%s: %d rounds, %d events, %d duplicates", path, rounds, len(want), dups)
	}
	if code, _ := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("final run: exit code %d", code)
	}
}

// killedSoonAfter reports whether a kill came within w after at.
func killedSoonAfter(kills []time.Time, at time.Time, w time.Duration) bool {
	for _, k := range kills {
		if !k.Before(at) && k.Sub(at) <= w {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSecondInstance starts a second daemon on the same state: it must
// refuse with exit 1 and leave the first one running.
func TestSecondInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 24)
	a := e.account("solo", crmsim.AccountOptions{})
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{"webhooks": []any{e.webhook("/solo", nil)}}))
	p := e.start(cfg)
	_, errOut, code := cli(t, nil, "run", "-config", cfg)
	if code != 1 || !strings.Contains(errOut, "another poller is running") {
		t.Errorf("second instance: exit %d, stderr %q; want 1 and the reason", code, errOut)
	}
	approveN(a, "main", 2)
	e.waitDelivered(p, "/solo", expected(a, []string{"approved"}, true), 10*time.Second)
}
