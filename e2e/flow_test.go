package e2e

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

var targets = []string{"approved", "complete"}

// walk makes changes in a every `every` until ctx ends, then returns.
func walk(ctx context.Context, a *crmsim.Account, seed uint64, orders int, every time.Duration) {
	a.Drive(ctx, rand.New(rand.NewPCG(seed, 99)), orders, every)
}

// walkFor makes changes for d, in the background; wait() returns when done.
func walkFor(a *crmsim.Account, seed uint64, orders int, every, d time.Duration) (wait func()) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	var wg sync.WaitGroup
	wg.Go(func() { walk(ctx, a, seed, orders, every) })
	return func() { wg.Wait(); cancel() }
}

// transitionsByID indexes a's ground truth by event id.
func transitionsByID(a *crmsim.Account) map[string]crmsim.Transition {
	m := map[string]crmsim.Transition{}
	for _, tr := range a.Transitions() {
		m[event.ID(a.Name(), tr.HistoryID)] = tr
	}
	return m
}

// TestFormats runs one account with a webhook of every format and checks
// each request against the ground truth: body, headers, signature, and
// that the events of one order arrive in history order.
func TestFormats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 11)
	shop := e.account("shop", crmsim.AccountOptions{Sites: []string{"s1", "s2"}})
	shop.RandomWalk(rand.New(rand.NewPCG(1, 2)), 15, 40) // history from before the start
	params := map[string]any{
		"event_id": "{{ event.id }}", "order_id": "{{ order.id }}",
		"new_status": "{{ change.newValue }}", "old_status": "{{ change.oldValue }}",
		"first_name": "{{ order.firstName }}",
	}
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(shop, map[string]any{
		"statuses": targets,
		"webhooks": []any{
			e.webhook("/json", map[string]any{"name": "json"}),
			e.webhook("/form", map[string]any{"name": "form", "format": "form", "params": params}),
			e.webhook("/query", map[string]any{"name": "query", "format": "query", "method": "GET", "params": params}),
			e.webhook("/tpl", map[string]any{"name": "tpl", "format": "template",
				"body": `{"ref": "{{ event.id }}", "status": "{{ change.newValue }}", "order": {{ order|json_encode }}}`}),
		},
	}))
	p := e.start(cfg)
	walkFor(shop, 3, 15, 30*time.Millisecond, 2*time.Second)() // changes while it runs
	want := expected(shop, targets, true)
	if len(want) < 10 {
		t.Fatalf("only %d qualifying transitions; the walk is too short", len(want))
	}
	for _, path := range []string{"/json", "/form", "/query", "/tpl"} {
		e.waitDelivered(p, path, want, 30*time.Second)
	}
	truth := transitionsByID(shop)
	firstAt := map[string]time.Time{}
	for _, d := range e.rec.Deliveries() {
		tr := truth[d.ID]
		if !d.SignatureOK {
			t.Errorf("%s %s: signature: %s", d.Path, d.ID, d.SignatureErr)
		}
		if ua := d.Header.Get("User-Agent"); !strings.HasPrefix(ua, "retailcrm-poller/") {
			t.Errorf("%s %s: User-Agent %q", d.Path, d.ID, ua)
		}
		if ts, err := strconv.ParseInt(d.Header.Get("webhook-timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("%s %s: webhook-timestamp %q", d.Path, d.ID, d.Header.Get("webhook-timestamp"))
		}
		var vals url.Values
		switch d.Path {
		case "/json":
			var ev event.Event
			if d.Method != http.MethodPost || d.ContentType != "application/json" || json.Unmarshal(d.Body, &ev) != nil {
				t.Errorf("/json %s: %s %s %s", d.ID, d.Method, d.ContentType, d.Body)
				continue
			}
			var order struct {
				ID   int64  `json:"id"`
				Site string `json:"site"`
			}
			wantType := event.StatusChanged
			if tr.Created {
				wantType = event.Created
			}
			if err := json.Unmarshal(ev.Order, &order); err != nil || ev.ID != d.ID || ev.Account != "shop" ||
				ev.Type != wantType || ev.Change.NewValue != tr.New || ev.Change.OldValue != tr.Old ||
				ev.Change.HistoryID != tr.HistoryID || order.ID != tr.OrderID || order.Site != tr.Site {
				t.Errorf("/json %s: event %+v order %s, want %+v", d.ID, ev, ev.Order, tr)
			}
			if _, seen := firstAt[d.ID]; !seen {
				firstAt[d.ID] = d.At
			}
			continue
		case "/form":
			if d.Method != http.MethodPost || d.ContentType != "application/x-www-form-urlencoded" {
				t.Errorf("/form %s: %s %s", d.ID, d.Method, d.ContentType)
			}
			vals, _ = url.ParseQuery(string(d.Body))
		case "/query":
			if d.Method != http.MethodGet || len(d.Body) != 0 {
				t.Errorf("/query %s: %s with a %d-byte body", d.ID, d.Method, len(d.Body))
			}
			vals = d.Query
		case "/tpl":
			var body struct {
				Ref, Status string
				Order       struct{ ID int64 }
			}
			if err := json.Unmarshal(d.Body, &body); err != nil || d.ContentType != "application/json" ||
				body.Ref != d.ID || body.Status != tr.New || body.Order.ID != tr.OrderID {
				t.Errorf("/tpl %s: %s %s (%v)", d.ID, d.ContentType, d.Body, err)
			}
			continue
		}
		if vals.Get("event_id") != d.ID || vals.Get("order_id") != strconv.FormatInt(tr.OrderID, 10) ||
			vals.Get("new_status") != tr.New || vals.Get("old_status") != tr.Old || vals.Get("first_name") == "" {
			t.Errorf("%s %s: params %v, want %+v", d.Path, d.ID, vals, tr)
		}
	}
	// Events of one order arrive in the order they happened.
	byOrder := map[int64][]string{}
	for id := range firstAt {
		byOrder[truth[id].OrderID] = append(byOrder[truth[id].OrderID], id)
	}
	for order, ids := range byOrder {
		sort.Slice(ids, func(i, j int) bool { return firstAt[ids[i]].Before(firstAt[ids[j]]) })
		for i := 1; i < len(ids); i++ {
			if truth[ids[i]].HistoryID < truth[ids[i-1]].HistoryID {
				t.Errorf("order %d: %s arrived before %s", order, ids[i-1], ids[i])
			}
		}
	}
}

// TestAccountsIsolated runs healthy accounts beside one with a wrong key
// and one whose API is down: the healthy ones get everything, the broken
// ones are reported, and nothing else is disturbed.
func TestAccountsIsolated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 12)
	good1 := e.account("good1", crmsim.AccountOptions{})
	good2 := e.account("good2", crmsim.AccountOptions{Sites: []string{"a", "b"}})
	bad := e.account("badkey", crmsim.AccountOptions{})
	wrongKey := "key-not-valid-" + strconv.Itoa(rand.IntN(1e6))
	remember(wrongKey)
	downCfg := e.acctConfig(good1, map[string]any{"name": "down", "url": testkit.ClosedURL(t),
		"webhooks": []any{e.webhook("/down", nil)}})
	cfg := e.writeConfig("config.yaml", nil,
		e.acctConfig(good1, map[string]any{"webhooks": []any{e.webhook("/good1", nil)}}),
		e.acctConfig(bad, map[string]any{"api_key": wrongKey, "webhooks": []any{e.webhook("/badkey", nil)}}),
		downCfg,
		e.acctConfig(good2, map[string]any{"webhooks": []any{e.webhook("/good2", nil)}}),
	)
	p := e.start(cfg)
	w1 := walkFor(good1, 1, 10, 40*time.Millisecond, 3*time.Second)
	w2 := walkFor(good2, 2, 10, 40*time.Millisecond, 3*time.Second)
	w3 := walkFor(bad, 3, 10, 40*time.Millisecond, 3*time.Second)
	w1()
	w2()
	w3()
	approveN(good1, "main", 2)
	approveN(good2, "a", 2)
	e.waitDelivered(p, "/good1", expected(good1, []string{"approved"}, true), 20*time.Second)
	e.waitDelivered(p, "/good2", expected(good2, []string{"approved"}, true), 20*time.Second)
	if n := len(e.rec.Counts("/badkey")) + len(e.rec.Counts("/down")); n != 0 {
		t.Errorf("%d deliveries from the broken accounts", n)
	}
	// The down account's poll fails only after the client's retries.
	logs := p.waitLog(`"msg":"poll failed","account":"down"`, 45*time.Second)
	failed := map[string]string{}
	for _, r := range p.logLines("poll failed") {
		acct, _ := r["account"].(string)
		msg, _ := r["error"].(string)
		failed[acct] = msg
	}
	if !strings.Contains(failed["badkey"], "wrong API key") {
		t.Errorf("badkey poll error = %q, want it to say wrong API key", failed["badkey"])
	}
	if failed["down"] == "" {
		t.Errorf("no poll failure logged for the down account")
	}
	if failed["good1"] != "" || failed["good2"] != "" {
		t.Errorf("healthy accounts failed: %v", failed)
	}
	addr := p.httpAddr()
	eventually(t, 15*time.Second, "/readyz naming the broken accounts", func() bool {
		code, body := get(t, "http://"+addr+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "badkey") &&
			strings.Contains(body, "down") && !strings.Contains(body, "good")
	})
	if strings.Contains(logs, wrongKey) {
		t.Errorf("the wrong key appears in the logs")
	}
}

// TestAPIFaults polls through 503 storms, 500s, malformed and truncated
// bodies, slow answers and late-committed history entries: the receiver
// must still get exactly the ground truth.
func TestAPIFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 13)
	a := e.account("flaky", crmsim.AccountOptions{RateLimit: -1})
	// A 503 storm shorter than the client's retries, late commits, and
	// while orders change, one more fault every 300ms of every kind.
	a.SetFaults(crmsim.Faults{
		Fail503:    4,
		LateCommit: crmsim.LateCommit{Probability: 0.3, Delay: 1500 * time.Millisecond},
	})
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{
		"statuses": targets, "timeout": "1s", "webhooks": []any{e.webhook("/flaky", nil)},
	}))
	p := e.start(cfg)
	wait := walkFor(a, 4, 20, 20*time.Millisecond, 5*time.Second)
	inject := []func(f *crmsim.Faults){
		func(f *crmsim.Faults) { f.Fail500++ },
		func(f *crmsim.Faults) { f.Truncated++ },
		func(f *crmsim.Faults) { f.Malformed++ },
		func(f *crmsim.Faults) { f.Fail429++ },
		func(f *crmsim.Faults) { f.HTML++ },
		func(f *crmsim.Faults) { f.Fail503 += 2 },
		func(f *crmsim.Faults) { f.Latency = 1500 * time.Millisecond }, // past the client's timeout
		func(f *crmsim.Faults) { f.Latency = 0 },
	}
	for i := range 16 {
		a.UpdateFaults(inject[i%len(inject)])
		time.Sleep(300 * time.Millisecond)
	}
	wait()
	want := expected(a, targets, true)
	got := e.waitDelivered(p, "/flaky", want, 90*time.Second) // failed polls back off: ~45s here
	if f := a.Faults(); f.Fail503+f.Fail500+f.Fail429+f.Truncated+f.Malformed+f.HTML > 0 {
		t.Errorf("faults were not all consumed: %+v", f)
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("%d events, %d duplicates, %d history requests, %d failed polls", len(want), dups,
		a.Requests("history"), len(p.logLines("poll failed")))
}

// TestReceiverFaults makes the receiver fail first attempts in every way
// (500, 503 with Retry-After, hanging past the timeout, resetting the
// connection, a body slower than the timeout): everything is delivered.
func TestReceiverFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 14)
	a := e.account("shop", crmsim.AccountOptions{})
	faults := []fault{noFault, fail500, fail503, hang, reset, slowBody}
	e.rec.SetFault(func(r *http.Request, attempt int) fault {
		if attempt > 1 || !strings.HasPrefix(r.URL.Path, "/faulty") {
			return noFault
		}
		h := fnv.New32a()
		h.Write([]byte(r.Header.Get("webhook-id")))
		return faults[h.Sum32()%uint32(len(faults))]
	}, 3*time.Second)
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{
		"statuses": targets,
		"webhooks": []any{
			e.webhook("/faulty", map[string]any{"timeout": "1s", "name": "faulty"}),
			e.webhook("/healthy", map[string]any{"name": "healthy"}),
		},
	}))
	p := e.start(cfg)
	walkFor(a, 5, 10, 30*time.Millisecond, 2*time.Second)()
	want := expected(a, targets, true)
	e.waitDelivered(p, "/healthy", want, 20*time.Second)
	got := e.waitDelivered(p, "/faulty", want, 45*time.Second)
	retried := 0
	for id := range want {
		if n := e.rec.Attempts("/faulty", id); n > 1 {
			retried++
		}
		if got[id] > 2 {
			t.Errorf("%s accepted %d times", id, got[id])
		}
	}
	if retried == 0 {
		t.Errorf("no event needed a retry: the faults were not injected")
	}
	t.Logf("%d events, %d needed retries", len(want), retried)
}
