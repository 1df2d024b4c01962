package daemon

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// TestStartFailures: a start that fails after the state file is open
// returns its cause, naming the address or path, without a panic, and
// releases what it opened: the state file, the metrics port and the admin
// socket are free for the retry that follows.
func TestStartFailures(t *testing.T) {
	var held net.Listener // the other process's socket
	tests := []struct {
		name string
		// setup returns the listen address and admin socket path to
		// configure, holding whatever it occupies until the test ends.
		setup func(t *testing.T, dir string) (listen, sock string)
		// release, when set, frees what setup holds before the retry.
		release bool
		want    []string
	}{
		{"listen port taken", func(t *testing.T, dir string) (string, string) {
			ln := hold(t, "tcp", "127.0.0.1:0")
			return ln.Addr().String(), filepath.Join(dir, "admin.sock")
		}, false, []string{"daemon: listen", "address already in use"}},
		{"admin socket held by a live process", func(t *testing.T, dir string) (string, string) {
			sock := filepath.Join(dir, "admin.sock")
			held = hold(t, "unix", sock)
			return freePort(t), sock
		}, true, []string{"socket is in use by another process", "admin.sock"}},
		{"admin socket in a missing directory", func(t *testing.T, dir string) (string, string) {
			return freePort(t), filepath.Join(dir, "missing", "admin.sock")
		}, false, []string{"cannot create the socket", filepath.Join("missing", "admin.sock"), "no such file or directory"}},
		{"admin socket under a regular file", func(t *testing.T, dir string) (string, string) {
			file := filepath.Join(dir, "file")
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return freePort(t), filepath.Join(file, "admin.sock")
		}, false, []string{filepath.Join("file", "admin.sock"), "not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.account("alpha", "")
			e.write(5*time.Second, a)
			listen, sock := tt.setup(t, e.dir)
			cfg, err := config.Load(e.path)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Listen, cfg.AdminSocket = listen, sock
			logs := &testkit.SyncBuffer{}
			err = Run(context.Background(), cfg, Options{ConfigPath: e.path, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if err == nil {
				t.Fatal("Run started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(logs.String(), `"msg":"ready"`) {
				t.Error("ready logged by a start that failed")
			}

			// Released: the state file opens at once, the port (when the
			// failure came after it) is free, no socket file is left.
			st, err := store.Open(filepath.Join(e.dir, "state", store.FileName), store.Options{Timeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("state file not released: %v", err)
			}
			st.Close()
			if !strings.Contains(tt.name, "listen") {
				hold(t, "tcp", listen).Close()
			}
			if _, err := os.Stat(sock + ".new"); err == nil {
				t.Errorf("%s.new left behind", sock)
			}

			// The retry, with the cause removed, starts and delivers.
			if tt.release {
				held.Close()
			}
			e.write(5*time.Second, a)
			d := e.start()
			id := approve(e.sim1("alpha"))
			waitFor(t, "delivery after the retry", func() bool { return e.rcv.got(id) })
			if _, err := d.stop(t, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// hold listens on addr until the test ends.
func hold(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln := hold(t, "tcp", "127.0.0.1:0")
	ln.Close()
	return ln.Addr().String()
}
