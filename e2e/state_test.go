package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// waitIdle waits until `poller status` shows nothing pending, so a backup
// taken next holds every delivered mark.
func waitIdle(t *testing.T, cfg string) {
	t.Helper()
	eventually(t, 15*time.Second, "nothing pending", func() bool {
		out, errOut, code := cli(t, nil, "status", "-config", cfg, "-json")
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, errOut)
		}
		var sts []struct{ Pending int }
		if err := json.Unmarshal([]byte(out), &sts); err != nil {
			t.Fatalf("status -json: %v", err)
		}
		return len(sts) > 0 && sts[0].Pending == 0
	})
}

// TestDamagedStateFile: every command that opens the state file, on the
// real binary, refuses an empty, cut or damaged one: exit 1, one line
// naming the file, the damage and what to do, no panic, no stack.
func TestDamagedStateFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 71)
	a := e.account("dmg", crmsim.AccountOptions{})
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{"webhooks": []any{e.webhook("/hook", nil)}}))
	p := e.start(cfg)
	approveN(a, "main", 3)
	e.waitDelivered(p, "/hook", expected(a, []string{"approved"}, true), 15*time.Second)
	if code, _ := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	state := filepath.Join(e.dir, "state", store.FileName)
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.NativeEndian.Uint32(good[16+8:]))
	cur := 0 // the meta page with the higher transaction id
	if binary.NativeEndian.Uint64(good[pageSize+16+48:]) > binary.NativeEndian.Uint64(good[16+48:]) {
		cur = pageSize
	}
	root := int(binary.NativeEndian.Uint64(good[cur+16+16:]))
	// The high-water mark, the higher of the two meta pages': the file
	// may be longer (bbolt grows it ahead), cutting there is harmless.
	used := max(binary.NativeEndian.Uint64(good[16+40:]), binary.NativeEndian.Uint64(good[pageSize+16+40:]))
	damages := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty (0 bytes)"},
		{"cut to 8 KiB", good[:8<<10], "cut short"},
		{"cut by a page", good[:(int(used)-1)*pageSize], "cut short"},
		{"meta page flipped", flip(good, cur+16+40), "is damaged (checksum mismatch"},
		{"root page zeroed", zero(good, root*pageSize, pageSize), "page"},
	}
	for _, d := range damages {
		if err := os.WriteFile(state, d.data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"run", "-config", cfg},
			{"status", "-config", cfg},
			{"dlq", "list", "-config", cfg},
			{"dlq", "retry", "-config", cfg},
			{"replay", "-config", cfg, "-account", "dmg", "-from", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
			{"compact", "-config", cfg},
			{"state", "verify", "-config", cfg},
			{"state", "backup", "-config", cfg, filepath.Join(e.dir, "backup.db")},
		} {
			_, stderr, code := cli(t, nil, args...)
			var cause []string
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if strings.Contains(l, state) {
					cause = append(cause, l)
				}
			}
			switch {
			case code != 1:
				t.Errorf("%s: %v: exit %d, want 1:\n%s", d.name, args[:2], code, stderr)
			case strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine "):
				t.Errorf("%s: %v: a crash:\n%s", d.name, args[:2], stderr)
			case len(cause) != 1 || !strings.Contains(cause[0], d.want) || !strings.Contains(cause[0], "poller state backup"):
				t.Errorf("%s: %v: want one line naming %s, %q and what to do:\n%s", d.name, args[:2], state, d.want, stderr)
			}
		}
		if got, _ := os.ReadFile(state); !bytes.Equal(got, d.data) {
			t.Errorf("%s: the commands changed the damaged file", d.name)
		}
	}
}

func flip(b []byte, at int) []byte {
	b = bytes.Clone(b)
	b[at] ^= 0xFF
	return b
}

func zero(b []byte, at, n int) []byte {
	b = bytes.Clone(b)
	clear(b[at : at+n])
	return b
}

// TestBackupRestore is the disaster-recovery drill of OPERATIONS.md on the
// real binary: a backup taken while the daemon runs verifies; restored
// ("stop, copy back, start") it re-sends only what was delivered after it,
// under the same ids, and loses nothing. Losing the file entirely, a fresh
// state with start_from a margin before the loss sends every later event
// again under its id.
func TestBackupRestore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 72)
	a := e.account("dr", crmsim.AccountOptions{})
	cfg := e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{"webhooks": []any{e.webhook("/hook", nil)}}))
	state := filepath.Join(e.dir, "state", store.FileName)
	backup := filepath.Join(e.dir, "backups", "poller.db")
	if err := os.MkdirAll(filepath.Dir(backup), 0o700); err != nil {
		t.Fatal(err)
	}

	p := e.start(cfg)
	approveN(a, "main", 3)
	before := expected(a, []string{"approved"}, true)
	e.waitDelivered(p, "/hook", before, 15*time.Second)
	waitIdle(t, cfg)
	if out, errOut, code := cli(t, nil, "state", "backup", "-config", cfg, backup); code != 0 || !strings.HasPrefix(out, backup+": ") {
		t.Fatalf("backup while running: exit %d: %s%s", code, out, errOut)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v", err)
	}
	if out, errOut, code := cli(t, nil, "state", "verify", backup); code != 0 || !strings.HasPrefix(out, "ok  "+backup) {
		t.Fatalf("verify backup: exit %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := cli(t, nil, "state", "verify", "-config", cfg); code != 0 || !strings.HasPrefix(out, "ok  "+state) {
		t.Fatalf("verify through the daemon: exit %d: %s%s", code, out, errOut)
	}

	// After the backup: more events, delivered; then the restore.
	lossAt := time.Now().Add(-2 * time.Second).UTC().Truncate(time.Second)
	approveN(a, "main", 3)
	all := expected(a, []string{"approved"}, true)
	after := map[string]bool{}
	for id := range all {
		if !before[id] {
			after[id] = true
		}
	}
	first := maps.Clone(e.waitDelivered(p, "/hook", all, 15*time.Second))
	if code, _ := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	copyFile(t, backup, state)
	p = e.start(cfg)
	eventually(t, 20*time.Second, "events after the backup sent again", func() bool {
		got := e.rec.Counts("/hook")
		for id := range after {
			if got[id] < first[id]+1 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // a few more polls: nothing else may come
	got := e.rec.Counts("/hook")
	for id, n := range got {
		switch {
		case !all[id]:
			t.Errorf("restore: unknown id %s", id)
		case before[id] && n != first[id]:
			t.Errorf("restore: %s, delivered before the backup, sent again (%d times)", id, n)
		case after[id] && n != first[id]+1:
			t.Errorf("restore: %s sent %d times, want once more than the %d before", id, n, first[id])
		}
	}

	// The disk is lost: a fresh state starting a margin before the loss.
	if code, _ := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	if err := os.RemoveAll(filepath.Dir(state)); err != nil {
		t.Fatal(err)
	}
	restored := maps.Clone(e.rec.Counts("/hook"))
	cfg = e.writeConfig("config.yaml", nil, e.acctConfig(a, map[string]any{
		"start_from": lossAt.Format(time.RFC3339),
		"webhooks":   []any{e.webhook("/hook", nil)},
	}))
	e.start(cfg)
	eventually(t, 20*time.Second, "events after start_from sent again", func() bool {
		got := e.rec.Counts("/hook")
		for id := range after {
			if got[id] < restored[id]+1 {
				return false
			}
		}
		return true
	})
	for id := range e.rec.Counts("/hook") {
		if !all[id] {
			t.Errorf("fresh start: unknown id %s", id)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
