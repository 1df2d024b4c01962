package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/receiver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// secretEnv hands the account's API key and a webhook token to the poller
// as variables, remembered so that the suite fails wherever one is printed.
func secretEnv(a *crmsim.Account) (envv []string, token string) {
	token = "tok-" + strings.TrimPrefix(receiver.NewSecret(), "whsec_")
	remember(token)
	return []string{"GHANA_KEY=" + a.APIKey(), "HOOK_TOKEN=" + token}, token
}

// badURLConfig has ${VAR} inside a bad account URL (a query carrying the
// key) and a bad webhook URL (the token in its path).
func (e *env) badURLConfig(name string, a *crmsim.Account) string {
	return e.writeConfig(name, nil, e.acctConfig(a, map[string]any{
		"url":     a.BaseURL(e.crm.URL) + "/?apiKey=${GHANA_KEY}",
		"api_key": "${GHANA_KEY}",
		"webhooks": []any{e.webhook("/hook", map[string]any{
			"url": strings.Replace(e.hook.URL, "http://", "ftp://", 1) + "/hooks/${HOOK_TOKEN}",
		})},
	}))
}

// badURLMessages are what check, run and a reload must say about it.
var badURLMessages = []string{
	`accounts[0].url: must not have a query, fragment or user info, got "`,
	`/?apiKey=${GHANA_KEY}"`,
	`accounts[0].webhooks[0].url: must be an http or https URL, got "ftp://`,
	`/hooks/${HOOK_TOKEN}"`,
}

// TestConfigErrorsWithoutSecrets: `poller check` and `poller run` refuse a
// config whose bad URLs hold ${VAR}s, exit 78, and print the values as
// written, never the key or token.
func TestConfigErrorsWithoutSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 41)
	a := e.account("ghana", crmsim.AccountOptions{})
	envv, token := secretEnv(a)
	cfg := e.badURLConfig("bad.yaml", a)
	for _, cmd := range []string{"check", "run"} {
		out, errOut, code := cli(t, envv, cmd, "-config", cfg)
		if code != exitConfig {
			t.Errorf("poller %s: exit %d, want %d\n%s%s", cmd, code, exitConfig, out, errOut)
		}
		for _, want := range badURLMessages {
			if !strings.Contains(errOut, want) {
				t.Errorf("poller %s: stderr lacks %s:\n%s", cmd, want, errOut)
			}
		}
		if all := out + errOut; strings.Contains(all, a.APIKey()) || strings.Contains(all, token) {
			t.Errorf("poller %s printed a secret:\n%s", cmd, all)
		}
	}
}

// TestReloadErrorsWithoutSecrets: a running daemon with ${VAR}s in its
// key and webhook URL delivers with the expanded values, logs them as
// written (at debug level), and a SIGHUP with the bad config above is
// refused with the values as written; the running config stays.
func TestReloadErrorsWithoutSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 42)
	a := e.account("ghana", crmsim.AccountOptions{})
	envv, token := secretEnv(a)
	good := e.writeConfig("config.yaml", map[string]any{"log": map[string]any{"level": "debug", "format": "json"}},
		e.acctConfig(a, map[string]any{
			"api_key":  "${GHANA_KEY}",
			"webhooks": []any{e.webhook("/hook", map[string]any{"url": e.hook.URL + "/hook?token=${HOOK_TOKEN}"})},
		}))
	p := e.start(good, envv...)
	approveN(a, "main", 3)
	e.waitDelivered(p, "/hook", expected(a, []string{"approved"}, true), 30*time.Second)

	bad, err := os.ReadFile(e.badURLConfig("bad.yaml", a))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(`"msg":"config reload failed; keeping the running config"`, 15*time.Second)
	lines := p.logLines("config reload failed; keeping the running config")
	if len(lines) != 1 {
		t.Fatalf("%d reload failures logged", len(lines))
	}
	msg, _ := lines[0]["error"].(string)
	for _, want := range badURLMessages {
		if !strings.Contains(msg, want) {
			t.Errorf("the reload error lacks %s: %s", want, msg)
		}
	}

	// The running config (the expanded key and token) still works.
	approveN(a, "main", 2)
	e.waitDelivered(p, "/hook", expected(a, []string{"approved"}, true), 30*time.Second)
	if code, _ := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	logs := p.logs.String()
	if strings.Contains(logs, a.APIKey()) || strings.Contains(logs, token) {
		t.Errorf("the daemon logged a secret")
	}
	if !strings.Contains(logs, `"level":"DEBUG"`) {
		t.Errorf("no debug output: the test does not look where a URL would be logged")
	}
}

// TestAliasFanOutRefused: issue 10's 13 KB file whose aliases expand to
// 27 million values: check and run exit 78 naming the limit, in bounded
// memory. (The time is a benchmark in internal/config, figure in
// docs/PERFORMANCE.md.)
func TestAliasFanOutRefused(t *testing.T) {
	t.Parallel()
	path, err := filepath.Abs("../internal/config/testdata/alias_bomb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const maxRSS = 100 << 20
	for _, cmd := range []string{"check", "run"} {
		code, errOut, rss := runForRSS(t, bin, cmd, "-config", path)
		if code != exitConfig {
			t.Errorf("poller %s: exit %d, want %d\n%s", cmd, code, exitConfig, errOut)
		}
		want := "aliases expand to more than 124460 values, the limit for this file (100000 + 20 × its 1223 YAML nodes)"
		if !strings.Contains(errOut, want) {
			t.Errorf("poller %s: stderr lacks %q:\n%s", cmd, want, errOut)
		}
		t.Logf("poller %s: max RSS %.1f MB (race detector %v)", cmd, float64(rss)/1e6, raceEnabled)
		if rss <= 0 || rss > maxRSS {
			t.Errorf("poller %s: max RSS %d bytes, want under %d", cmd, rss, maxRSS)
		}
	}
}

// Linux charges a child's max RSS with its parent's at exec (until then
// the child runs in the parent's memory), and this test process grows with
// every poller's output. So the measured command is started by a fresh
// copy of this binary, which is small, waits for it, and prints its
// ProcessState.SysUsage Maxrss.
const rssLauncherEnv = "E2E_RSS_LAUNCHER"

func init() {
	if os.Getenv(rssLauncherEnv) == "" {
		return
	}
	// os.Args: this binary, the command, its arguments.
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		fmt.Fprintln(os.Stderr, "rss launcher:", err)
		os.Exit(125)
	}
	// Maxrss is in KiB on Linux.
	fmt.Println(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10)
	os.Exit(cmd.ProcessState.ExitCode())
}

// runForRSS runs a command through the launcher and returns its exit code,
// output and max RSS in bytes.
func runForRSS(t *testing.T, name string, args ...string) (code int, output string, rss int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, os.Args[0], append([]string{name}, args...)...)
	c.Env = append(os.Environ(), rssLauncherEnv+"=1")
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, io.MultiWriter(&errOut, &allLogs)
	err := c.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	if c.ProcessState.ExitCode() == 125 {
		t.Fatalf("%s %v: the launcher failed:\n%s", name, args, errOut.String())
	}
	rss, err = strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		t.Fatalf("%s %v: the launcher printed %q: %v", name, args, out.String(), err)
	}
	return c.ProcessState.ExitCode(), errOut.String(), rss
}
