package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// bin is the poller binary TestMain built.
var bin string

// secrets are every API key and webhook secret the suite handed to a
// poller; allLogs is everything every poller process printed. TestMain
// fails the run if one appears in the other.
var (
	secretsMu sync.Mutex
	secrets   []string
	allLogs   testkit.SyncBuffer
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "poller-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "poller")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/poller")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the poller binary failed:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s (race %v) in %s\n", bin, raceEnabled, time.Since(start).Round(time.Millisecond))
	code := m.Run()
	if leaked := leakedSecrets(allLogs.String()); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: e2e: %d secrets appeared in poller output\n", len(leaked))
		return 1
	}
	return code
}

// long reports whether the long variants run (E2E_LONG=1).
func long() bool { return os.Getenv("E2E_LONG") == "1" }

// remember registers a secret that must never be printed.
func remember(s ...string) {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	secrets = append(secrets, s...)
}

// leakedSecrets returns the registered secrets that occur in text.
func leakedSecrets(text string) []string {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	var out []string
	for _, s := range secrets {
		if strings.Contains(text, s) {
			out = append(out, s)
		}
	}
	return out
}

// env is one test's world: a simulator, a receiver and a directory.
type env struct {
	t    *testing.T
	dir  string
	sim  *crmsim.Sim
	crm  *httptest.Server
	rec  *faultyReceiver
	hook *httptest.Server
}

func newEnv(t *testing.T, seed int64) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), sim: crmsim.New(crmsim.Options{Seed: seed}), rec: newFaultyReceiver()}
	e.crm = httptest.NewServer(e.sim)
	t.Cleanup(e.crm.Close)
	e.hook = httptest.NewServer(e.rec)
	t.Cleanup(e.hook.Close)
	return e
}

// account adds a simulated account with a fresh API key.
func (e *env) account(name string, opts crmsim.AccountOptions) *crmsim.Account {
	opts.Name = name
	if opts.APIKey == "" {
		opts.APIKey = "key-" + strings.TrimPrefix(receiver.NewSecret(), "whsec_")
	}
	remember(opts.APIKey)
	return e.sim.AddAccount(opts)
}

// secure makes the receiver check signatures on path and returns the secret.
func (e *env) secure(path string) string {
	s := receiver.NewSecret()
	remember(s)
	if err := e.rec.Secure(path, s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// acctConfig is the config of one account: name, url and api_key of the
// simulated account, a fast schedule and the given extra keys.
func (e *env) acctConfig(a *crmsim.Account, extra map[string]any) map[string]any {
	m := map[string]any{
		"name":       a.Name(),
		"url":        a.BaseURL(e.crm.URL),
		"api_key":    a.APIKey(),
		"schedule":   "@every 1s",
		"start_from": "beginning",
		"rate_limit": 10,
		"timeout":    "5s",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// webhook is a webhook config on the receiver at path, signed.
func (e *env) webhook(path string, extra map[string]any) map[string]any {
	m := map[string]any{"url": e.hook.URL + path, "secret": e.secure(path), "timeout": "2s"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// writeConfig writes a config with the env's state dir, an ephemeral
// metrics port, an admin socket and JSON logs, plus top (overrides), and
// returns its path. name tells several configs apart.
func (e *env) writeConfig(name string, top map[string]any, accounts ...map[string]any) string {
	e.t.Helper()
	cfg := map[string]any{
		"state_dir":        filepath.Join(e.dir, "state"),
		"listen":           "127.0.0.1:0",
		"admin_socket":     filepath.Join(e.dir, "admin.sock"),
		"shutdown_timeout": "5s",
		"log":              map[string]any{"level": "info", "format": "json"},
		"accounts":         accounts,
	}
	for k, v := range top {
		cfg[k] = v
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// proc is a running poller.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *testkit.SyncBuffer
	done chan struct{}
	err  error // from Wait, valid after done
}

// start runs `poller run -config path` and waits until it is ready.
func (e *env) start(path string, envv ...string) *proc {
	e.t.Helper()
	p := e.spawn(path, envv...)
	p.waitLog(`"msg":"ready"`, 30*time.Second)
	return p
}

// spawn runs `poller run -config path` without waiting for readiness.
func (e *env) spawn(path string, envv ...string) *proc {
	e.t.Helper()
	p := &proc{t: e.t, logs: &testkit.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "-config", path)
	p.cmd.Env = append(os.Environ(), envv...)
	w := io.MultiWriter(p.logs, &allLogs)
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if strings.Contains(p.logs.String(), "DATA RACE") {
			e.t.Errorf("the poller reported a data race:\n%s", p.logs.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLog waits until the output contains s and returns the output.
func (p *proc) waitLog(s string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := p.logs.String()
		if strings.Contains(out, s) {
			return out
		}
		if p.exited() {
			p.t.Fatalf("poller exited (%v) before logging %q:\n%s", p.err, s, out)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("poller did not log %q within %s:\n%s", s, timeout, tail(out, 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLines returns the JSON log records whose msg is msg.
func (p *proc) logLines(msg string) []map[string]any { return jsonRecords(p.logs.String(), msg) }

// jsonRecords returns the JSON lines of logs whose msg is msg.
func jsonRecords(logs, msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// httpAddr returns the metrics/health address the daemon logged.
func (p *proc) httpAddr() string {
	p.t.Helper()
	p.waitLog(`"msg":"serving metrics and health"`, 10*time.Second)
	for _, r := range p.logLines("serving metrics and health") {
		if a, ok := r["addr"].(string); ok {
			return a
		}
	}
	p.t.Fatalf("no addr in the serving log line:\n%s", p.logs.String())
	return ""
}

// stop sends sig and waits for the exit; it returns the exit code and how
// long the exit took.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) (int, time.Duration) {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("poller did not exit within %s of %v:\n%s", timeout, sig, tail(p.logs.String(), 40))
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// kill SIGKILLs the poller and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// cli runs a poller subcommand to completion.
func cli(t *testing.T, envv []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), envv...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, io.MultiWriter(&e, &allLogs)
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("poller %v: %v", args, err)
	}
	allLogs.Write(o.Bytes())
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// expected returns the event ids the poller must deliver for a: every
// transition into one of statuses (creations only with onCreate).
func expected(a *crmsim.Account, statuses []string, onCreate bool) map[string]bool {
	want := map[string]bool{}
	for _, tr := range a.Transitions() {
		if slices.Contains(statuses, tr.New) && (!tr.Created || onCreate) {
			want[event.ID(a.Name(), tr.HistoryID)] = true
		}
	}
	return want
}

// approveN creates n orders in "new" and approves them: n events for
// statuses [approved], whatever a random walk did.
func approveN(a *crmsim.Account, site string, n int) {
	for range n {
		a.SetStatus(a.CreateOrder(site, "new"), "approved")
	}
}

// waitDelivered waits until the receiver accepted every id of want on
// path, then checks that nothing else arrived there. It returns the
// accept counts.
func (e *env) waitDelivered(p *proc, path string, want map[string]bool, timeout time.Duration) map[string]int {
	e.t.Helper()
	if len(want) == 0 {
		e.t.Fatalf("%s: no events expected: the test made too few changes to prove anything", path)
	}
	deadline := time.Now().Add(timeout)
	for {
		got := e.rec.Counts(path)
		missing := missingIDs(want, got)
		if len(missing) == 0 {
			if extra := extraIDs(want, got); len(extra) > 0 {
				e.t.Errorf("%s: %d unexpected events: %v", path, len(extra), head(extra, 10))
			}
			return got
		}
		if time.Now().After(deadline) {
			logs := ""
			if p != nil {
				logs = tail(p.logs.String(), 40)
			}
			e.t.Fatalf("%s: %d of %d events not delivered within %s: %v\n%s",
				path, len(missing), len(want), timeout, head(missing, 10), logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func missingIDs(want map[string]bool, got map[string]int) []string {
	var out []string
	for id := range want {
		if got[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func extraIDs(want map[string]bool, got map[string]int) []string {
	var out []string
	for id := range got {
		if !want[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func head(s []string, n int) []string { return s[:min(n, len(s))] }

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// get fetches url and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
