package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// TestBackupAndVerify: a backup, through the daemon or from the file, is
// a state file of its own (mode 0600) holding what the original holds,
// and replaces an older backup; verify finds the fixture sound.
func TestBackupAndVerify(t *testing.T) {
	bothWays(t, func(t *testing.T, f fixture, _ *notified) {
		ctx := context.Background()
		dst := filepath.Join(t.TempDir(), "poller.db.backup")
		if err := os.WriteFile(dst, []byte("an older backup"), 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := Backup(ctx, f.cfg, dst)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dst)
		if err != nil || fi.Size() != n || fi.Mode().Perm() != 0o600 {
			t.Fatalf("backup %v: size %d, want %d, mode 0600 (%v)", fi.Mode(), fi.Size(), n, err)
		}
		entries, _ := os.ReadDir(filepath.Dir(dst))
		if len(entries) != 1 {
			t.Errorf("backup directory holds %d files, want the backup alone", len(entries))
		}
		rep, err := store.VerifyFile(dst, time.Second)
		if err != nil || len(rep.Problems) != 0 || rep.Accounts != 2 || rep.Pending != 1 || rep.Dead != 3 {
			t.Fatalf("backup verifies as %+v, %v", rep, err)
		}
		b, err := store.Open(dst, store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		dead, err := b.Dead("ghana")
		b.Close()
		if err != nil || len(dead) != 3 {
			t.Errorf("backup's dead letters = %v, %v", ids(dead), err)
		}

		rep, err = Verify(ctx, f.cfg)
		if err != nil || len(rep.Problems) != 0 || rep.Pending != 1 || rep.Dead != 3 || rep.Path != f.path {
			t.Errorf("verify = %+v, %v", rep, err)
		}
		if _, err := Backup(ctx, f.cfg, f.path); err == nil || !strings.Contains(err.Error(), "is the state file itself") {
			t.Errorf("backup over the state file: %v", err)
		}
	})
}

// TestBackupCutShort: a copy the daemon stops sending halfway leaves
// nothing at the destination, not even an older backup's replacement.
func TestBackupCutShort(t *testing.T) {
	dir, err := os.MkdirTemp("", "admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "65536")
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 4096))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cfg := &config.Config{StateDir: dir, AdminSocket: sock}
	dst := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(dst, []byte("older"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(context.Background(), cfg, dst); err == nil {
		t.Fatal("a cut copy was accepted")
	}
	if got, err := os.ReadFile(dst); err != nil || string(got) != "older" {
		t.Errorf("destination = %q, %v; want the older backup untouched", got, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestStateOfDamagedFile: with no daemon, every command that reads the
// file refuses a damaged one with store.ErrDamaged; verify reports it.
func TestStateOfDamagedFile(t *testing.T) {
	f := newFixture(t)
	if err := os.Truncate(f.path, 8<<10); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err := Status(ctx, f.cfg)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), f.path) {
			t.Errorf("%s: %v, want ErrDamaged naming the file", what, err)
		}
	}
	check("status", err)
	_, err = DLQList(ctx, f.cfg, "")
	check("dlq list", err)
	_, err = DLQRetry(ctx, f.cfg, "", nil)
	check("dlq retry", err)
	_, err = Backup(ctx, f.cfg, filepath.Join(t.TempDir(), "b.db"))
	check("backup", err)
	rep, err := Verify(ctx, f.cfg)
	if err != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "cut short") {
		t.Errorf("verify = %+v, %v", rep, err)
	}
}
