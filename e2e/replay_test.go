package e2e

import (
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// poller replay sends a past window again under the same event ids:
// through the running daemon's admin socket, and into the state file when
// the daemon is stopped (delivered when it starts).
func TestReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 41)
	shop := e.account("shop", crmsim.AccountOptions{})
	from := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(shop, map[string]any{
		"webhooks": []any{e.webhook("/hook", nil)},
	}))
	p := e.start(cfg)
	approveN(shop, "main", 7)
	want := expected(shop, []string{"approved"}, true)
	e.waitDelivered(p, "/hook", want, 30*time.Second)
	time.Sleep(1100 * time.Millisecond) // the window's end, to the second, after the last change
	to := time.Now().UTC().Format(time.RFC3339)

	replay := func() {
		t.Helper()
		stdout, stderr, code := cli(t, nil, "replay", "-config", cfg, "-account", "shop", "-from", from, "-to", to)
		if code != 0 {
			t.Fatalf("replay exited %d: %s%s", code, stdout, stderr)
		}
		for id := range want {
			if !strings.Contains(stdout, "queued "+id+" ") {
				t.Errorf("replay output does not list %s:\n%s", id, stdout)
			}
		}
		if !strings.Contains(stdout, "7 events queued") {
			t.Errorf("replay output:\n%s", stdout)
		}
	}
	waitCopies := func(p *proc, n int) {
		t.Helper()
		eventually(t, 30*time.Second, "every event delivered again", func() bool {
			got := e.rec.Counts("/hook")
			for id := range want {
				if got[id] < n {
					return false
				}
			}
			return true
		})
		if got := e.rec.Counts("/hook"); !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
			t.Errorf("delivered %v, want exactly %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
	}
	replay() // through the admin socket
	waitCopies(p, 2)

	if code, _ := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	replay() // into the state file

	// A read that stops early (a page without entries that announces more)
	// is a failure that says how far it got, never a success.
	shop.SetFaults(crmsim.Faults{Endpoint: crmsim.EndpointHistory, EmptyPages: 1})
	stdout, stderr, code := cli(t, nil, "replay", "-config", cfg, "-account", "shop", "-from", from, "-to", to)
	if code != 1 || !strings.Contains(stderr, "history read stopped before its end") ||
		!strings.Contains(stderr, "it stopped before the first entry of the window") || strings.Contains(stdout, "events queued") {
		t.Errorf("replay over an empty page exited %d:\n%s%s", code, stdout, stderr)
	}
	shop.SetFaults(crmsim.Faults{})
	p = e.start(cfg)
	waitCopies(p, 3)
	for _, d := range e.rec.Deliveries() {
		if !d.SignatureOK {
			t.Errorf("%s: signature: %s", d.ID, d.SignatureErr)
		}
	}
}
