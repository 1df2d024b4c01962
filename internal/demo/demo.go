// Package demo runs the whole pipeline in one process for `poller demo`:
// the RetailCRM simulator (crmsim) with a few accounts, a webhook receiver
// that verifies Standard Webhooks signatures with the official library, and
// the real daemon (daemon.Run) on a temporary state directory. A driver
// moves orders through statuses, the terminal shows every webhook as it
// arrives, and a summary compares what arrived with the simulator's ground
// truth. Nothing beyond Go is needed, and everything is removed at the end.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/daemon"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// Errors, compared with errors.Is.
var (
	// ErrLost: a qualifying transition never reached the receiver.
	ErrLost = errors.New("demo: events were lost")
	// ErrBadSignature: a delivery failed signature verification.
	ErrBadSignature = errors.New("demo: signature verification failed")
)

// Options configure Run.
type Options struct {
	Duration time.Duration // how long orders keep changing (default 30s)
	Drain    time.Duration // how long to wait for the last webhooks afterwards (default 10s)
	Every    time.Duration // pause between order changes (default 300ms)
	Seed     uint64        // seeds the simulator and the driver (default: from the clock)
	Out      io.Writer     // live lines and the summary (default os.Stdout)
	Logger   *slog.Logger  // the daemon's logger (default: warnings to os.Stderr)
}

// Summary compares what the receiver got with the simulator's ground truth.
type Summary struct {
	Changes       int // creations and status changes made in the simulator
	Qualifying    int // of which into a target status: each must arrive
	Received      int // distinct qualifying events received with a valid signature
	Lost          int // qualifying events never received
	Duplicates    int // deliveries beyond the first of an event (at-least-once)
	Unexpected    int // deliveries of events that do not qualify
	BadSignatures int
	P50, P99      time.Duration // status change to receipt
}

// targets are the statuses the demo's accounts watch.
var targets = []string{"approved", "complete"}

// workflow is where the driver moves an order from each status.
var workflow = map[string][]string{
	"new":        {"approved", "approved", "approved", "cancel"},
	"approved":   {"assembling", "assembling", "cancel"},
	"assembling": {"complete"},
}

// demoAccount is one simulated account and how its webhook is configured.
type demoAccount struct {
	name   string
	sites  []string
	format string // json | form | query
	method string
	secret string
	sim    *crmsim.Account
	// payHook: a second webhook, on paidPath, with the condition paidWhen;
	// paid are the saves that marked a payment paid.
	payHook bool
	paidMu  sync.Mutex // the driver appends to paid while deliveries read it
	paid    []paidSet
}

func (a *demoAccount) path() string { return "/hooks/" + a.name }

// Run runs the demo until opts.Duration has passed or ctx ends, then waits
// for the last webhooks, stops the daemon and prints the summary. It
// returns ErrLost or ErrBadSignature (with the summary) when the demo
// failed, other errors when it could not run.
func Run(ctx context.Context, opts Options) (Summary, error) {
	if opts.Duration <= 0 {
		opts.Duration = 30 * time.Second
	}
	if opts.Drain <= 0 {
		opts.Drain = 10 * time.Second
	}
	if opts.Every <= 0 {
		opts.Every = 300 * time.Millisecond
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	dir, err := os.MkdirTemp("", "poller-demo-")
	if err != nil {
		return Summary{}, fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)

	sim := crmsim.New(crmsim.Options{Seed: int64(opts.Seed)})
	crm := httptest.NewServer(sim)
	defer crm.Close()
	accts := []*demoAccount{
		{name: "ghana", sites: []string{"gh-web", "gh-shop"}, format: "json", method: "POST", payHook: true},
		{name: "kenya", sites: []string{"ke-web"}, format: "form", method: "POST"},
		{name: "uganda", sites: []string{"ug-web"}, format: "query", method: "GET"},
	}
	rec := receiver.New()
	for _, a := range accts {
		a.secret = receiver.NewSecret()
		a.sim = sim.AddAccount(crmsim.AccountOptions{Name: a.name, APIKey: randomKey(), Sites: a.sites})
		if err := rec.Secure(a.path(), a.secret); err != nil {
			return Summary{}, fmt.Errorf("demo: %w", err)
		}
		if err := rec.Secure(a.paidPath(), a.secret); a.payHook && err != nil {
			return Summary{}, fmt.Errorf("demo: %w", err)
		}
	}
	hooks := httptest.NewServer(rec)
	defer hooks.Close()

	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(dir, crm.URL, hooks.URL, accts)), 0o600); err != nil {
		return Summary{}, fmt.Errorf("demo: %w", err)
	}

	live := &liveView{out: opts.Out, accts: accts, first: map[string]time.Time{}}
	rec.OnDelivery = live.show

	cfg, err := config.Load(cfgPath)
	if err != nil {
		return Summary{}, fmt.Errorf("demo: %w", err)
	}
	runCtx, stopDaemon := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDaemon()
	readyc := make(chan *daemon.Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(runCtx, cfg, daemon.Options{
			ConfigPath: cfgPath, Logger: opts.Logger,
			OnReady: func(r *daemon.Ready) { readyc <- r },
		})
	}()
	select {
	case r := <-readyc:
		fmt.Fprintf(opts.Out, "simulated RetailCRM  %s (accounts: %s)\n", crm.URL, names(accts))
		fmt.Fprintf(opts.Out, "webhook receiver     %s (Standard Webhooks signatures checked)\n", hooks.URL)
		if r.HTTPAddr != "" {
			fmt.Fprintf(opts.Out, "daemon metrics       http://%s/metrics\n", r.HTTPAddr)
		}
		fmt.Fprintf(opts.Out, "state                %s (removed at the end)\n", dir)
		fmt.Fprintf(opts.Out, "moving orders for %s; webhooks fire on: %s; ghana's second webhook on a condition: %s\n\n",
			opts.Duration, strings.Join(targets, ", "), paidWhen)
	case err := <-done:
		return Summary{}, fmt.Errorf("demo: daemon did not start: %w", err)
	}

	driveCtx, stopDriving := context.WithTimeout(ctx, opts.Duration)
	drive(driveCtx, accts, rand.New(rand.NewPCG(opts.Seed, opts.Seed>>1|1)), opts.Every)
	stopDriving()

	// Wait for the webhooks of the last changes: one poll interval plus
	// delivery, bounded by Drain.
	want := expected(accts)
	deadline := time.Now().Add(opts.Drain)
	for time.Now().Before(deadline) && !allReceived(rec, want) {
		time.Sleep(100 * time.Millisecond)
	}
	stopDaemon()
	if err := <-done; err != nil {
		return Summary{}, fmt.Errorf("demo: daemon: %w", err)
	}
	s := summarize(accts, rec, want)
	printSummary(opts.Out, s)
	switch {
	case s.Lost > 0:
		return s, fmt.Errorf("%w: %d of %d", ErrLost, s.Lost, s.Qualifying)
	case s.BadSignatures > 0:
		return s, fmt.Errorf("%w: %d deliveries", ErrBadSignature, s.BadSignatures)
	}
	return s, nil
}

// configYAML is the daemon's config: a fast schedule, every account on the
// local simulator, one webhook each on the local receiver.
func configYAML(dir, crmURL, hookURL string, accts []*demoAccount) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %q\nlisten: 127.0.0.1:0\nadmin_socket: %q\nshutdown_timeout: 5s\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "admin.sock"))
	fmt.Fprintf(&b, "defaults:\n  schedule: \"@every 1s\"\n  statuses: [%s]\n  start_from: beginning\n", strings.Join(targets, ", "))
	b.WriteString("accounts:\n")
	for _, a := range accts {
		fmt.Fprintf(&b, "  - name: %s\n    url: %q\n    api_key: %q\n    webhooks:\n", a.name, crmsim.URL(crmURL, a.name), a.sim.APIKey())
		fmt.Fprintf(&b, "      - url: %q\n        method: %s\n        format: %s\n        secret: %q\n        timeout: 5s\n",
			hookURL+a.path(), a.method, a.format, a.secret)
		if a.payHook {
			fmt.Fprintf(&b, "        name: orders\n      - name: paid\n        url: %q\n        secret: %q\n        timeout: 5s\n        when: %q\n",
				hookURL+a.paidPath(), a.secret, paidWhen)
		}
		if a.format != "json" {
			b.WriteString("        params:\n")
			for _, p := range [][2]string{
				{"event_id", "{{ event.id }}"}, {"order_id", "{{ order.id }}"},
				{"order_number", "{{ order.number }}"}, {"site", "{{ order.site }}"},
				{"old_status", "{{ change.oldValue }}"}, {"new_status", "{{ change.newValue }}"},
			} {
				fmt.Fprintf(&b, "          %s: %q\n", p[0], p[1])
			}
		}
	}
	return b.String()
}

// drive changes orders until ctx ends: it creates orders (now and then
// directly in "approved"), moves open ones along the workflow and, on an
// account with a payment webhook, now and then marks a payment paid. The
// first change creates an approved order, so that even a demo of a few
// seconds shows a webhook (by chance alone, about one run in a hundred
// of four seconds would have none); the second marks a payment paid.
func drive(ctx context.Context, accts []*demoAccount, rng *rand.Rand, every time.Duration) {
	open := make(map[*demoAccount][]int64)
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 0; ; n++ {
		first := n == 0
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a := accts[rng.IntN(len(accts))]
		if n == 1 || n > 1 && a.payHook && rng.IntN(5) == 0 {
			if i := slices.IndexFunc(accts, func(p *demoAccount) bool { return p.payHook && (n == 1 || p == a) }); i >= 0 {
				pay(accts[i], open, rng)
				continue
			}
		}
		if first || len(open[a]) < 3 || rng.IntN(4) == 0 {
			status := "new"
			if first || rng.IntN(6) == 0 {
				status = "approved"
			}
			open[a] = append(open[a], a.sim.CreateOrder(a.sites[rng.IntN(len(a.sites))], status))
			continue
		}
		i := rng.IntN(len(open[a]))
		id := open[a][i]
		cur, ok := a.sim.OrderStatus(id)
		next := workflow[cur]
		if !ok || len(next) == 0 {
			open[a] = slices.Delete(open[a], i, i+1)
			continue
		}
		a.sim.SetStatus(id, next[rng.IntN(len(next))])
	}
}

// truth is one qualifying transition.
type truth struct {
	account string
	at      time.Time
}

// expected returns the qualifying transitions by event id.
func expected(accts []*demoAccount) map[string]truth {
	want := map[string]truth{}
	for _, a := range accts {
		for _, tr := range a.sim.Transitions() {
			if slices.Contains(targets, tr.New) {
				want[event.ID(a.name, tr.HistoryID)] = truth{a.name, tr.At}
			}
		}
		for _, p := range a.paidSets() {
			want[event.ID(a.name, p.id)] = truth{a.name, p.at}
		}
	}
	return want
}

func allReceived(rec *receiver.Receiver, want map[string]truth) bool {
	got := rec.Counts("")
	for id := range want {
		if got[id] == 0 {
			return false
		}
	}
	return true
}

func summarize(accts []*demoAccount, rec *receiver.Receiver, want map[string]truth) Summary {
	s := Summary{Qualifying: len(want)}
	for _, a := range accts {
		s.Changes += len(a.sim.Transitions()) + len(a.paidSets())
	}
	first := map[string]time.Time{}
	for _, d := range rec.Deliveries() {
		if !d.SignatureOK {
			s.BadSignatures++
			continue
		}
		if _, ok := want[d.ID]; !ok {
			s.Unexpected++
			continue
		}
		if _, seen := first[d.ID]; seen {
			s.Duplicates++
			continue
		}
		first[d.ID] = d.At
	}
	var lat []time.Duration
	for id, tr := range want {
		at, ok := first[id]
		if !ok {
			s.Lost++
			continue
		}
		lat = append(lat, at.Sub(tr.at))
	}
	s.Received = len(first)
	s.P50, s.P99 = percentile(lat, 50), percentile(lat, 99)
	return s
}

// percentile returns the p-th percentile (nearest rank) of d, 0 if empty.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := (len(d)*p + 99) / 100
	return d[max(i, 1)-1]
}

func printSummary(w io.Writer, s Summary) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "summary")
	fmt.Fprintf(w, "  changes made            %d\n", s.Changes)
	fmt.Fprintf(w, "  qualifying events       %d (into %s; payments paid)\n", s.Qualifying, strings.Join(targets, ", "))
	fmt.Fprintf(w, "  received                %d\n", s.Received)
	fmt.Fprintf(w, "  lost                    %d\n", s.Lost)
	fmt.Fprintf(w, "  duplicates              %d\n", s.Duplicates)
	if s.Unexpected > 0 {
		fmt.Fprintf(w, "  unexpected              %d\n", s.Unexpected)
	}
	fmt.Fprintf(w, "  bad signatures          %d\n", s.BadSignatures)
	fmt.Fprintf(w, "  latency p50 / p99       %s / %s (status change to receipt)\n",
		s.P50.Round(time.Millisecond), s.P99.Round(time.Millisecond))
}

// liveView prints one line per delivery as the receiver gets it.
type liveView struct {
	out   io.Writer
	accts []*demoAccount

	mu    sync.Mutex
	first map[string]time.Time
}

func (v *liveView) show(d receiver.Delivery) {
	acct, number, oldS, newS := describe(d)
	sig := "signature ok"
	if !d.SignatureOK {
		sig = "signature FAILED"
	}
	latency := "?"
	if a := v.account(acct); a != nil {
		if hid, ok := historyID(d.ID, acct); ok {
			for _, tr := range a.sim.Transitions() {
				if tr.HistoryID == hid {
					latency = d.At.Sub(tr.At).Round(time.Millisecond).String()
				}
			}
			if at, ok := a.paidAt(hid); ok {
				latency = d.At.Sub(at).Round(time.Millisecond).String()
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	dup := ""
	if _, seen := v.first[d.ID]; seen {
		dup = "  (duplicate)"
	}
	v.first[d.ID] = d.At
	fmt.Fprintf(v.out, "%s  %-7s order %-6s %-10s -> %-10s %-16s latency %s%s\n",
		d.At.Format("15:04:05.000"), acct, number, orDash(oldS), newS, sig, latency, dup)
}

func (v *liveView) account(name string) *demoAccount {
	for _, a := range v.accts {
		if a.name == name {
			return a
		}
	}
	return nil
}

// describe pulls account, order number and the status change out of a
// delivery: a JSON event body, or the trigger-style parameters sent as a
// form or in the query string.
func describe(d receiver.Delivery) (acct, number, oldS, newS string) {
	acct = strings.TrimSuffix(strings.TrimPrefix(d.Path, "/hooks/"), "-paid")
	var params url.Values
	switch {
	case strings.HasPrefix(d.ContentType, "application/json"):
		var ev struct {
			Type   event.Type   `json:"type"`
			Change event.Change `json:"change"`
			Order  struct {
				Number string `json:"number"`
			} `json:"order"`
		}
		switch {
		case json.Unmarshal(d.Body, &ev) != nil:
		case ev.Type == event.Changed: // the payment webhook's condition held
			return acct, ev.Order.Number, "payment", "paid"
		default:
			return acct, ev.Order.Number, ev.Change.OldValue, ev.Change.NewValue
		}
		return acct, "?", "?", "?"
	case strings.HasPrefix(d.ContentType, "application/x-www-form-urlencoded"):
		params, _ = url.ParseQuery(string(d.Body))
	default:
		params = d.Query
	}
	return acct, params.Get("order_number"), params.Get("old_status"), params.Get("new_status")
}

// historyID parses the history id out of an event id "<account>-<id>".
func historyID(id, account string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(id, account+"-"), 10, 64)
	return n, err == nil
}

func names(accts []*demoAccount) string {
	var s []string
	for _, a := range accts {
		s = append(s, a.name+" ("+a.format+")")
	}
	return strings.Join(s, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// randomKey returns an API key for a simulated account.
func randomKey() string {
	return strings.TrimPrefix(receiver.NewSecret(), "whsec_")
}
