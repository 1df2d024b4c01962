package daemon

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// webhookKey is the raw key of the test webhook secret.
const webhookKey = "daemon-test-webhook-key-0123456789"

var webhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte(webhookKey))

// receiver records the webhook-id of every request it accepts.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	ids map[string]int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{ids: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.ids[req.Header.Get("webhook-id")]++
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[id] > 0
}

// acct is one account as the test configures it.
type acct struct {
	name, url, key, schedule string
}

// env is a crmsim server, a receiver and a state directory.
type env struct {
	t    *testing.T
	sim  *crmsim.Sim
	crm  *httptest.Server
	rcv  *receiver
	dir  string
	path string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	// Unix socket paths are limited to ~108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "daemon")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sim := crmsim.New(crmsim.Options{Seed: 7})
	crm := httptest.NewServer(sim)
	t.Cleanup(crm.Close)
	return &env{t: t, sim: sim, crm: crm, rcv: newReceiver(t), dir: dir, path: filepath.Join(dir, "poller.yaml")}
}

// account adds a simulated account; configKey is the key written to the
// config ("" for the right one).
func (e *env) account(name, configKey string) acct {
	key := name + "-api-key-0123456789"
	e.sim.AddAccount(crmsim.AccountOptions{Name: name, APIKey: key, RateLimit: -1})
	if configKey == "" {
		configKey = key
	}
	return acct{name: name, url: crmsim.URL(e.crm.URL, name), key: configKey, schedule: "@every 1s"}
}

func (e *env) sim1(name string) *crmsim.Account {
	a, ok := e.sim.Account(name)
	if !ok {
		e.t.Fatalf("no simulated account %s", name)
	}
	return a
}

// write writes the config file with the given accounts.
func (e *env) write(shutdown time.Duration, accts ...acct) {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\nlisten: 127.0.0.1:0\nadmin_socket: %s\nshutdown_timeout: %s\nlog: {level: debug, format: json}\n",
		filepath.Join(e.dir, "state"), filepath.Join(e.dir, "admin.sock"), shutdown)
	b.WriteString("accounts:\n")
	for _, a := range accts {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    api_key: %s\n    schedule: %q\n    start_from: beginning\n    webhooks:\n      - url: %s\n        secret: %s\n",
			a.name, a.url, a.key, a.schedule, e.rcv.URL, webhookSecret)
	}
	e.writeRaw(b.String())
}

func (e *env) writeRaw(s string) {
	e.t.Helper()
	if err := os.WriteFile(e.path, []byte(s), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// running is a daemon started by start.
type running struct {
	ready  *Ready
	logs   *testkit.SyncBuffer
	reload chan struct{}
	cancel context.CancelFunc
	done   chan error
}

func (e *env) start() *running {
	e.t.Helper()
	r := &running{logs: &testkit.SyncBuffer{}, reload: make(chan struct{}), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	readyCh := make(chan *Ready, 1)
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg, err := config.Load(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		r.done <- Run(ctx, cfg, Options{ConfigPath: e.path, Logger: log, Reload: r.reload, OnReady: func(rd *Ready) { readyCh <- rd }})
	}()
	select {
	case r.ready = <-readyCh:
	case err := <-r.done:
		e.t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		e.t.Fatal("daemon not ready within 30s")
	}
	e.t.Cleanup(func() {
		if os.Getenv("DAEMON_TEST_LOGS") != "" {
			os.WriteFile(os.Getenv("DAEMON_TEST_LOGS"), []byte(r.logs.String()), 0o600)
		}
		if e.t.Failed() {
			e.t.Logf("daemon log:\n%s", r.logs.String())
		}
		cancel()
		select {
		case <-r.done:
		case <-time.After(time.Minute):
			e.t.Error("daemon did not stop")
		}
	})
	return r
}

// stop cancels the daemon and returns Run's result and how long it took.
func (r *running) stop(t *testing.T, bound time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return time.Since(start), err
	case <-time.After(bound):
		t.Fatalf("Run did not return within %v of cancellation", bound)
		return 0, nil
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// approve moves a new order of the simulated account into "approved" and
// returns the event id the transition must produce.
func approve(a *crmsim.Account) string {
	id := a.CreateOrder("main", "new")
	return event.ID(a.Name(), a.SetStatus(id, "approved"))
}

func TestRun(t *testing.T) {
	e := newEnv(t)
	alpha, bad, beta := e.account("alpha", ""), e.account("bad", "wrong-key-0123456789"), e.account("beta", "")
	e.write(5*time.Second, alpha, bad)
	d := e.start()
	base := "http://" + d.ready.HTTPAddr

	t.Run("approval delivered", func(t *testing.T) {
		id := approve(e.sim1("alpha"))
		waitFor(t, "delivery of "+id, func() bool { return e.rcv.got(id) })
	})

	t.Run("health and readiness", func(t *testing.T) {
		if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("/healthz = %d %q", code, body)
		}
		var body string
		waitFor(t, "/readyz naming only the bad account", func() bool {
			var code int
			code, body = get(t, base+"/readyz")
			return code == http.StatusServiceUnavailable && strings.Contains(body, "bad") && !strings.Contains(body, "alpha")
		})
	})

	t.Run("second instance refused", func(t *testing.T) {
		cfg, err := config.Load(e.path)
		if err != nil {
			t.Fatal(err)
		}
		err = Run(context.Background(), cfg, Options{ConfigPath: e.path, Logger: slog.New(slog.DiscardHandler)})
		if !errors.Is(err, store.ErrTimeout) || !strings.Contains(err.Error(), "another poller is running") {
			t.Errorf("second Run: %v", err)
		}
	})

	t.Run("broken reload keeps the old config", func(t *testing.T) {
		e.writeRaw("accounts: [\n")
		d.reload <- struct{}{}
		waitFor(t, "the reload error in the log", func() bool { return strings.Contains(d.logs.String(), "config reload failed") })
		if got := testutil.ToFloat64(d.ready.Metrics.ConfigReloadsTotal.WithLabelValues("error")); got != 1 {
			t.Errorf("reloads{error} = %v, want 1", got)
		}
		if got := testutil.ToFloat64(d.ready.Metrics.ConfigLastReloadOK); got != 0 {
			t.Errorf("last reload ok = %v, want 0", got)
		}
		id := approve(e.sim1("alpha"))
		waitFor(t, "delivery after the failed reload", func() bool { return e.rcv.got(id) })
	})

	t.Run("reload adds an account", func(t *testing.T) {
		e.write(5*time.Second, alpha, bad, beta)
		d.reload <- struct{}{}
		waitFor(t, "reload ok", func() bool {
			return testutil.ToFloat64(d.ready.Metrics.ConfigReloadsTotal.WithLabelValues("ok")) == 1
		})
		id := approve(e.sim1("beta"))
		waitFor(t, "delivery for the added account", func() bool { return e.rcv.got(id) })
		waitFor(t, "/readyz naming only bad", func() bool {
			_, body := get(t, base+"/readyz")
			return strings.Contains(body, "stale accounts") && strings.Contains(body, "bad") && !strings.Contains(body, "beta")
		})
	})

	t.Run("a reload reads the time zone again", func(t *testing.T) {
		reads := func() int { return e.sim1("alpha").Requests(crmsim.EndpointSettings) }
		before := reads()
		if before == 0 {
			t.Fatal("alpha never read its time zone")
		}
		d.reload <- struct{}{} // the same file: alpha is unchanged
		waitFor(t, "alpha's time zone read again", func() bool { return reads() > before })
	})

	t.Run("failing account backs off alone", func(t *testing.T) {
		m := d.ready.Metrics
		okBefore := testutil.ToFloat64(m.PollsTotal.WithLabelValues("alpha", "ok"))
		badBefore := testutil.ToFloat64(m.PollsTotal.WithLabelValues("bad", "error"))
		waitFor(t, "8 more alpha polls", func() bool {
			return testutil.ToFloat64(m.PollsTotal.WithLabelValues("alpha", "ok")) >= okBefore+8
		})
		// 8 ticks: without backoff the bad account would fail 8 times;
		// with it (skipping 1, 2, 4, 8 ... ticks) at most a few.
		if n := testutil.ToFloat64(m.PollsTotal.WithLabelValues("bad", "error")) - badBefore; n > 4 {
			t.Errorf("bad account polled %v times during 8 ticks; backoff not applied", n)
		}
	})

	t.Run("account state gauges", func(t *testing.T) {
		fams := testkit.Families(t, metricsBody(t, base))
		up := seriesByAccount(fams["poller_account_up"])
		if up["alpha"] != 1 || up["bad"] != 0 || len(up) != 3 {
			t.Errorf("poller_account_up = %v, want alpha 1, bad 0 (and beta)", up)
		}
		last := seriesByAccount(fams["poller_account_last_success_timestamp_seconds"])
		if _, ok := last["bad"]; ok || time.Since(time.Unix(int64(last["alpha"]), 0)) > time.Minute {
			t.Errorf("poller_account_last_success_timestamp_seconds = %v: want alpha's recent, none for bad", last)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		_, body := get(t, base+"/metrics")
		testkit.CheckContractMetrics(t, body)
	})

	t.Run("admin status over the socket", func(t *testing.T) {
		cfg, err := config.Load(e.path)
		if err != nil {
			t.Fatal(err)
		}
		sts, err := admin.Status(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]admin.AccountStatus{}
		for _, s := range sts {
			byName[s.Account] = s
		}
		if a := byName["alpha"]; a.Cursor == 0 || a.LastPoll.IsZero() || a.LastSuccess.IsZero() {
			t.Errorf("alpha status %+v", a)
		}
		if b := byName["bad"]; b.LastError == "" || !b.LastSuccess.IsZero() {
			t.Errorf("bad status %+v", b)
		}
	})

	t.Run("reload removes an account", func(t *testing.T) {
		e.write(5*time.Second, alpha, bad)
		d.reload <- struct{}{}
		waitFor(t, "beta's series gone", func() bool {
			_, body := get(t, base+"/metrics")
			return !strings.Contains(body, `account="beta"`)
		})
	})

	t.Run("reload fixing a key", func(t *testing.T) {
		good := bad
		good.key = "bad-api-key-0123456789" // the simulator's key
		e.write(5*time.Second, alpha, good)
		d.reload <- struct{}{}
		waitFor(t, "/readyz ok once the key is fixed", func() bool {
			code, body := get(t, base+"/readyz")
			return code == http.StatusOK && body == "ok\n"
		})
		if up := testutil.ToFloat64(d.ready.Metrics.AccountUp.WithLabelValues("bad")); up != 1 {
			t.Errorf("poller_account_up{bad} = %v after the fixed key's poll, want 1", up)
		}
	})

	t.Run("graceful stop", func(t *testing.T) {
		took, err := d.stop(t, 30*time.Second)
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
		if took > 5*time.Second+stopGrace {
			t.Errorf("shutdown took %v, over the 5s bound", took)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "admin.sock")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("admin socket left behind: %v", err)
		}
		st, err := store.Open(filepath.Join(e.dir, "state", store.FileName), store.Options{Timeout: time.Second})
		if err != nil {
			t.Fatalf("store still locked after Run returned: %v", err)
		}
		st.Close()
	})

	t.Run("no secrets in the logs", func(t *testing.T) {
		logs := d.logs.String()
		if !strings.Contains(logs, `"account":"alpha"`) {
			t.Fatal("log capture looks empty")
		}
		for _, s := range []string{alpha.key, bad.key, beta.key, webhookSecret, webhookKey,
			base64.StdEncoding.EncodeToString([]byte(webhookKey))} {
			if strings.Contains(logs, s) {
				t.Errorf("log output contains secret %q", s)
			}
		}
	})
}

// TestShutdownBound: a poll stuck on a slow API is cancelled once the
// shutdown timeout has passed, and Run still returns nil.
func TestShutdownBound(t *testing.T) {
	e := newEnv(t)
	slow := e.account("slow", "")
	e.sim1("slow").SetFaults(crmsim.Faults{Latency: time.Hour})
	e.write(time.Second, slow)
	d := e.start()
	waitFor(t, "a poll in flight", func() bool { return e.sim1("slow").Requests("") > 0 })
	took, err := d.stop(t, 30*time.Second)
	if err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if took > time.Second+stopGrace+2*time.Second {
		t.Errorf("shutdown took %v with a 1s bound", took)
	}
	if !strings.Contains(d.logs.String(), "polls still running at the shutdown timeout") {
		t.Error("no log line about cancelling the stuck poll")
	}
}

func metricsBody(t *testing.T, base string) string {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	return body
}

// seriesByAccount maps each series of a per-account family (nil: none) to
// its value.
func seriesByAccount(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "account" {
				out[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
