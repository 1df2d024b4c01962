package e2e

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// The exit codes README.md and docs/REFERENCE.md promise.
const (
	exitUsage  = 64 // bad usage (EX_USAGE)
	exitConfig = 78 // invalid config (EX_CONFIG)
	exitCrash  = 2  // Go's runtime after a panic or fatal error
)

// TestStartFailures: a start that fails once the state file is open
// (metrics port taken, admin socket held by another process or in a
// directory that does not exist) exits 1 with one line naming the cause,
// never a panic, and releases the state file: the retry starts.
func TestStartFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 61)
	a := e.account("ghana", crmsim.AccountOptions{})
	acct := e.acctConfig(a, map[string]any{"webhooks": []any{e.webhook("/h", nil)}})

	port, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	heldSock := filepath.Join(e.dir, "held.sock")
	held, err := net.Listen("unix", heldSock)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	tests := []struct {
		name string
		top  map[string]any
		want []string
	}{
		{"listen port taken", map[string]any{"listen": port.Addr().String()},
			[]string{"listen tcp " + port.Addr().String(), "address already in use"}},
		{"admin socket held", map[string]any{"admin_socket": heldSock},
			[]string{"socket is in use by another process: " + heldSock}},
		{"admin socket directory missing", map[string]any{"admin_socket": filepath.Join(e.dir, "nodir", "admin.sock")},
			[]string{"cannot create the socket " + filepath.Join(e.dir, "nodir", "admin.sock"), "no such file or directory"}},
	}
	for _, tt := range tests {
		p := e.spawn(e.writeConfig("fail.yaml", tt.top, acct))
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the poller did not exit:\n%s", tt.name, p.logs.String())
		}
		out := p.logs.String()
		if code := p.cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("%s: exit %d, want 1", tt.name, code)
		}
		failed := jsonRecords(out, "poller failed")
		if len(failed) != 1 {
			t.Fatalf("%s: %d 'poller failed' lines:\n%s", tt.name, len(failed), out)
		}
		msg, _ := failed[0]["error"].(string)
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q does not say %q", tt.name, msg, w)
			}
		}
		if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
			t.Errorf("%s: the poller panicked:\n%s", tt.name, out)
		}
	}

	// Each failure released the state file: a start with the causes gone
	// is ready (it would wait for the file's lock and fail otherwise).
	p := e.start(e.writeConfig("ok.yaml", nil, acct))
	if code, _ := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("the retry exited %d", code)
	}
}

// TestUnitRestartsACrash applies the unit's restart rules (Restart=,
// RestartPreventExitStatus=) to the real binary's exit codes: a crash
// (here SIGQUIT, which makes Go's runtime dump its goroutines and exit as
// after an unrecovered panic) and a failed start are restarted; an invalid
// config and a bad command line are not.
func TestUnitRestartsACrash(t *testing.T) {
	t.Parallel()
	restarts := unitRestartRule(t)
	e := newEnv(t, 62)
	a := e.account("ghana", crmsim.AccountOptions{})
	acct := e.acctConfig(a, map[string]any{"webhooks": []any{e.webhook("/h", nil)}})

	p := e.start(e.writeConfig("ok.yaml", nil, acct))
	code, _ := p.stop(syscall.SIGQUIT, 30*time.Second)
	if !strings.Contains(p.logs.String(), "SIGQUIT") || !strings.Contains(p.logs.String(), "goroutine ") {
		t.Errorf("no goroutine dump after SIGQUIT:\n%s", tail(p.logs.String(), 20))
	}
	if code != exitCrash || !restarts(code) {
		t.Errorf("crash: exit %d, restarted %v; want %d and restarted", code, restarts(code), exitCrash)
	}

	port, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	busy := e.writeConfig("busy.yaml", map[string]any{"listen": port.Addr().String()}, acct)
	if _, _, code := cli(t, nil, "run", "-config", busy); code != 1 || !restarts(code) {
		t.Errorf("failed start: exit %d, restarted %v; want 1 and restarted", code, restarts(code))
	}

	broken := filepath.Join(e.dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("accounts: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"run", "-config", broken}, exitConfig},
		{[]string{"run", "-config", filepath.Join(e.dir, "missing.yaml")}, exitConfig},
		{[]string{"run", "-nope"}, exitUsage},
		{[]string{"run"}, exitUsage},
	} {
		if _, _, code := cli(t, nil, tt.args...); code != tt.code || restarts(code) {
			t.Errorf("poller %v: exit %d, restarted %v; want %d and not restarted", tt.args, code, restarts(code), tt.code)
		}
	}
}

// unitRestartRule reads systemd/retailcrm-poller.service and returns
// whether systemd restarts the service after an exit with code, as
// Restart=on-failure with RestartPreventExitStatus= decides.
func unitRestartRule(t *testing.T) func(code int) bool {
	t.Helper()
	restart, prevent := testkit.UnitRestart(t, "../systemd/retailcrm-poller.service")
	if restart != "on-failure" {
		t.Fatalf("Restart=%q, want on-failure", restart)
	}
	return func(code int) bool { return code != 0 && !slices.Contains(prevent, code) }
}

// TestReloadNamesEnvSecrets: a SIGHUP re-reads the config but not the
// environment, so the reload names each secret taken from a ${VAR} (account,
// key, variables), never its value; a secret from a *_file is not named.
func TestReloadNamesEnvSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 65)
	a := e.account("ghana", crmsim.AccountOptions{})
	secretFile := filepath.Join(e.dir, "hook.secret")
	if err := os.WriteFile(secretFile, []byte(e.secure("/h")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("env.yaml", nil, e.acctConfig(a, map[string]any{
		"api_key":  "${E2E_GHANA_KEY}",
		"webhooks": []any{map[string]any{"url": e.hook.URL + "/h", "secret_file": secretFile}}}))
	p := e.start(cfg, "E2E_GHANA_KEY="+a.APIKey())
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const msg = "reload kept the value this variable had when the daemon started; if it changed, restart to use it"
	p.waitLog(`"msg":"`+msg+`"`, 20*time.Second)
	p.waitLog(`"msg":"config reloaded"`, 20*time.Second)
	recs := p.logLines(msg)
	if len(recs) != 1 || recs[0]["account"] != "ghana" || recs[0]["key"] != "api_key" ||
		recs[0]["variables"] != "E2E_GHANA_KEY" || recs[0]["level"] != "WARN" {
		t.Errorf("warnings %v, want one naming ghana's api_key and E2E_GHANA_KEY", recs)
	}
}
