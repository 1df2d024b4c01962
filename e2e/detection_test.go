package e2e

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// lateChange makes change's history entry a late commit: its id now, its
// visibility after delay.
func lateChange(a *crmsim.Account, delay time.Duration, change func() int64) int64 {
	a.SetFaults(crmsim.Faults{LateCommit: crmsim.LateCommit{Probability: 1, Delay: delay}})
	defer a.SetFaults(crmsim.Faults{})
	return change()
}

// metric reads one sample of the daemon's /metrics ("" when absent).
func metric(t *testing.T, p *proc, series string) string {
	t.Helper()
	_, body := get(t, "http://"+p.httpAddr()+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// cursorPast waits until the daemon's cursor of account is above id.
func cursorPast(t *testing.T, p *proc, account string, id int64) {
	t.Helper()
	eventually(t, 30*time.Second, "the cursor to pass "+strconv.FormatInt(id, 10), func() bool {
		v, err := strconv.ParseFloat(metric(t, p, `poller_cursor_history_id{account="`+account+`"}`), 64)
		return err == nil && int64(v) > id
	})
}

// A late entry that becomes visible during a CRM outage three times longer
// than look_back_time is delivered after the outage, by the history poll
// (the sweep is off).
func TestLateEntryAcrossOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 31)
	shop := e.account("shop", crmsim.AccountOptions{})
	o1, o2 := shop.CreateOrder("main", "new"), shop.CreateOrder("main", "new")
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(shop, map[string]any{
		"look_back_time": "5s",
		"reconcile":      map[string]any{"every": "0"},
		"webhooks":       []any{e.webhook("/hook", nil)},
	}))
	p := e.start(cfg)
	late := lateChange(shop, 10*time.Second, func() int64 { return shop.SetStatus(o1, "approved") })
	shop.SetStatus(o2, "cancel")
	cursorPast(t, p, "shop", late)
	shop.SetFaults(crmsim.Faults{Fail503: 1 << 30}) // 15 s of outage
	time.Sleep(15 * time.Second)
	shop.SetFaults(crmsim.Faults{})
	got := e.waitDelivered(p, "/hook", map[string]bool{event.ID("shop", late): true}, 60*time.Second)
	if got[event.ID("shop", late)] != 1 {
		t.Errorf("late event delivered %d times, want once", got[event.ID("shop", late)])
	}
}

// A transition that becomes visible 20 s late, beyond look_back_time, is
// delivered once, under its history id, by the orders sweep; orders whose
// transitions the history poll emitted are never sent again by it.
func TestSweepDeliversMissedTransition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 32)
	shop := e.account("shop", crmsim.AccountOptions{})
	orders := make([]int64, 6)
	for i := range orders {
		orders[i] = shop.CreateOrder("main", "new")
	}
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(shop, map[string]any{
		"look_back_time": "5s",
		"reconcile":      map[string]any{"every": "10s", "window": "1h"},
		"webhooks":       []any{e.webhook("/hook", nil)},
	}))
	p := e.start(cfg)
	for _, o := range orders[1:] { // the poll emits these
		shop.SetStatus(o, "approved")
	}
	late := lateChange(shop, 20*time.Second, func() int64 { return shop.SetStatus(orders[0], "approved") })
	shop.SetStatus(orders[1], "complete")
	want := expected(shop, []string{"approved"}, true)
	got := e.waitDelivered(p, "/hook", want, 90*time.Second)
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times, want once", id, n)
		}
	}
	eventually(t, 30*time.Second, "poller_reconciled_events_total to count the recovered event", func() bool {
		return metric(t, p, `poller_reconciled_events_total{account="shop"}`) == "1"
	})
	// The recovered event came from the sweep: the poll's look-back had
	// retired long before the entry showed.
	found := false
	for _, r := range p.logLines("the orders sweep found a transition the history poll missed; emitted") {
		if r["event_id"] == event.ID("shop", late) {
			found = true
		}
	}
	if !found {
		t.Errorf("no sweep log line for %s", event.ID("shop", late))
	}
	// Further sweeps send nothing again.
	time.Sleep(12 * time.Second)
	for id, n := range e.rec.Counts("/hook") {
		if n != 1 {
			t.Errorf("%s delivered %d times after more sweeps, want once", id, n)
		}
	}
}

// An account catching up on a long history, at the slowest rate_limit, does
// not delay another account's ticks: the other's event is delivered within
// seconds while the catch-up is still under way, and the catch-up logs its
// progress.
func TestCatchUpDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 33)
	big := e.account("big", crmsim.AccountOptions{})
	o := big.CreateOrder("main", "new")
	for big.HistoryLen() < 2000 { // 20 pages: about 20 s at rate_limit 1
		big.SetField(o, "manager_comment", nil, "called back")
	}
	last := big.LastHistoryID()
	small := e.account("small", crmsim.AccountOptions{})
	cfg := e.writeConfig("config.yaml", nil,
		e.acctConfig(big, map[string]any{"rate_limit": 1, "page_budget": 2, "webhooks": []any{e.webhook("/big", nil)}}),
		e.acctConfig(small, map[string]any{"webhooks": []any{e.webhook("/small", nil)}}),
	)
	p := e.start(cfg)
	cursor := func() int64 {
		v, _ := strconv.ParseFloat(metric(t, p, `poller_cursor_history_id{account="big"}`), 64)
		return int64(v)
	}
	eventually(t, 30*time.Second, "big's catch-up to commit its first pages", func() bool { return cursor() > 0 })
	approveN(small, "main", 1)
	e.waitDelivered(p, "/small", expected(small, []string{"approved"}, true), 8*time.Second)
	if c := cursor(); c >= last {
		t.Fatalf("big's cursor is at %d of %d: the catch-up ended before the check, so it proves nothing", c, last)
	}
	p.waitLog(`"msg":"catching up on the order history","account":"big"`, 30*time.Second)
	cursorPast(t, p, "big", last-1)
}
