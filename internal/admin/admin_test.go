package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// fixture is a state file with two accounts: "ghana" (cursor 40, one
// pending and two dead events on webhook "1", one dead event on webhook
// "old", which the config no longer has) and "gone" (state only, not in
// the config).
type fixture struct {
	cfg  *config.Config
	path string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	// Unix socket paths are limited to ~108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := &config.Config{
		StateDir:    dir,
		AdminSocket: filepath.Join(dir, "admin.sock"),
		Accounts: []config.Account{
			{Name: "ghana", Webhooks: []config.Webhook{{Name: "1"}}},
			{Name: "kenya", Webhooks: []config.Webhook{{Name: "1"}, {Name: "crm"}}},
		},
	}
	path := filepath.Join(dir, store.FileName)
	st, err := store.Open(path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Second)
	commit := func(account, webhook string, cursor int64, ids ...int64) {
		c := store.Commit{Webhooks: []string{webhook}, Cursor: cursor, At: now}
		for _, id := range ids {
			c.Events = append(c.Events, store.NewEvent{
				Event: event.Event{ID: event.ID(account, id), Type: event.StatusChanged, Account: account,
					Change: event.Change{HistoryID: id, Field: "status"}, Order: []byte(`{"id":1}`)},
				OrderID:    id,
				DetectedAt: now,
			})
		}
		if err := st.CommitPoll(account, c); err != nil {
			t.Fatal(err)
		}
	}
	commit("ghana", "1", 40, 10, 20, 30)
	commit("ghana", "old", 50, 50)
	commit("gone", "1", 5)
	items, err := st.Pending("ghana", "1", 0, 10)
	if err != nil || len(items) != 3 {
		t.Fatalf("pending = %v, %v", items, err)
	}
	old, err := st.Pending("ghana", "old", 0, 10)
	if err != nil || len(old) != 1 {
		t.Fatalf("pending = %v, %v", old, err)
	}
	if err := st.DeadLetter("410 Gone", now, items[0], items[1]); err != nil {
		t.Fatal(err)
	}
	if err := st.DeadLetter("webhook removed", now, old...); err != nil {
		t.Fatal(err)
	}
	return fixture{cfg: cfg, path: path}
}

// serve runs the admin server on the fixture's socket, as the daemon does,
// and records Notify calls.
func (f fixture) serve(t *testing.T) *notified {
	t.Helper()
	st, err := store.Open(f.path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n := &notified{}
	rt := func(a string) Runtime {
		if a == "ghana" {
			return Runtime{LastPoll: time.Unix(1700000000, 0).UTC(), LastError: "boom"}
		}
		return Runtime{}
	}
	srv := NewServer(st, f.cfg, Hooks{Changed: n.add, Runtime: rt}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := srv.Start(f.cfg.AdminSocket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		st.Close()
		if _, err := os.Stat(f.cfg.AdminSocket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	return n
}

type notified struct {
	mu       sync.Mutex
	accounts []string
}

func (n *notified) add(a string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.accounts = append(n.accounts, a)
}

func (n *notified) get() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.accounts)
}

func ids(items []store.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Event.ID)
	}
	return out
}

// TestOperations runs the same operations over the socket and over the
// file fallback, with the same expected results.
func TestOperations(t *testing.T) {
	bothWays(t, func(t *testing.T, f fixture, n *notified) {
		ctx := context.Background()

		sts, err := Status(ctx, f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := []string{sts[0].Account, sts[1].Account, sts[2].Account}; len(sts) != 3 || !slices.Equal(got, []string{"ghana", "kenya", "gone"}) {
			t.Fatalf("status accounts = %+v", sts)
		}
		g := sts[0]
		if g.Cursor != 50 || g.Pending != 1 || g.Dead != 3 || !g.Configured || g.LastSuccess.IsZero() || !slices.Equal(g.Webhooks, []string{"1"}) {
			t.Errorf("ghana status = %+v", g)
		}
		if want := []QueueStatus{{"1", true, 1, 2}, {"old", false, 0, 1}}; !slices.Equal(g.Queues, want) {
			t.Errorf("ghana queues = %+v, want %+v", g.Queues, want)
		}
		if !slices.Equal(sts[1].Webhooks, []string{"1", "crm"}) || sts[1].Cursor != 0 ||
			!slices.Equal(sts[1].Queues, []QueueStatus{{"1", true, 0, 0}, {"crm", true, 0, 0}}) {
			t.Errorf("kenya status = %+v", sts[1])
		}
		if sts[2].Configured || sts[2].Cursor != 5 {
			t.Errorf("gone status = %+v", sts[2])
		}
		if wantLive := n != nil; (g.LastError == "boom" && g.LastPoll.Equal(time.Unix(1700000000, 0))) != wantLive {
			t.Errorf("runtime fields = %q %v, want from daemon: %v", g.LastError, g.LastPoll, wantLive)
		}

		dead, err := DLQList(ctx, f.cfg, "ghana")
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(dead); !slices.Equal(got, []string{"ghana-10", "ghana-20", "ghana-50"}) || dead[0].DeadReason != "410 Gone" {
			t.Fatalf("dlq list = %v (%+v)", got, dead)
		}
		if all, err := DLQList(ctx, f.cfg, ""); err != nil || len(all) != 3 {
			t.Errorf("dlq list all = %v, %v", ids(all), err)
		}
		if none, err := DLQList(ctx, f.cfg, "kenya"); err != nil || none == nil || len(none) != 0 {
			t.Errorf("dlq list kenya = %#v, %v", none, err)
		}

		if _, err := DLQRetry(ctx, f.cfg, "ghana", []string{"ghana-99"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("retry of unknown id: err = %v, want ErrNotFound", err)
		}
		// A dead letter of a webhook the config does not have is never
		// retried, alone or among others: it would go to another URL.
		for _, retry := range [][]string{{"ghana-50"}, nil} {
			if _, err := DLQRetry(ctx, f.cfg, "ghana", retry); !errors.Is(err, store.ErrNotConfigured) || !strings.Contains(err.Error(), `"old"`) {
				t.Errorf("retry %v: err = %v, want ErrNotConfigured naming the webhook", retry, err)
			}
		}
		moved, err := DLQRetry(ctx, f.cfg, "ghana", []string{"ghana-20"})
		if err != nil || !slices.Equal(ids(moved), []string{"ghana-20"}) {
			t.Fatalf("retry = %v, %v", ids(moved), err)
		}
		if n != nil && !slices.Equal(n.get(), []string{"ghana"}) {
			t.Errorf("notified %v, want [ghana]", n.get())
		}
		dropped, _, err := DLQDrop(ctx, f.cfg, "", nil)
		if err != nil || dropped != 2 {
			t.Fatalf("drop = %d, %v", dropped, err)
		}
		sts, err = Status(ctx, f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sts[0].Pending != 2 || sts[0].Dead != 0 {
			t.Errorf("after retry+drop: %+v", sts[0])
		}
	})
}

func TestFallbackWithoutStateFile(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{StateDir: filepath.Join(dir, "state"), AdminSocket: filepath.Join(dir, "admin.sock"),
		Accounts: []config.Account{{Name: "ghana"}}}
	sts, err := Status(context.Background(), cfg)
	if err != nil || len(sts) != 1 || sts[0].Account != "ghana" || sts[0].Cursor != 0 {
		t.Fatalf("status = %+v, %v", sts, err)
	}
	dead, err := DLQList(context.Background(), cfg, "")
	if err != nil || len(dead) != 0 {
		t.Fatalf("dlq = %v, %v", dead, err)
	}
	if _, err := os.Stat(cfg.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only commands created the state dir: %v", err)
	}
}

// TestLockedWithoutSocket: a daemon holds the file but nothing answers on
// the socket (hung, or the socket was removed).
func TestLockedWithoutSocket(t *testing.T) {
	f := newFixture(t)
	st, err := store.Open(f.path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, err = Status(context.Background(), f.cfg)
	if !errors.Is(err, ErrDaemonUnresponsive) {
		t.Fatalf("err = %v, want ErrDaemonUnresponsive", err)
	}
	want := "daemon seems to be running but its admin socket does not answer: " + f.cfg.AdminSocket
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestListen(t *testing.T) {
	f := newFixture(t)
	sock := f.cfg.AdminSocket

	// A stale socket file (no one listening) is replaced.
	ln, err := listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("stale socket expected to remain after close: %v", err)
	}
	ln, err = listen(sock)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %v, want 0600", perm)
	}
	// A live socket is not stolen.
	if _, err := listen(sock); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("listen on a live socket: %v, want ErrSocketInUse", err)
	}
	// Nor is a regular file deleted.
	plain := filepath.Join(f.cfg.StateDir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listen(plain); err == nil {
		t.Error("listen over a regular file succeeded")
	}
}

// Replay queues events again, even ones already delivered or dead, over
// the socket (waking delivery) and over the file; a webhook the config does
// not have is refused and nothing is queued.
func TestReplay(t *testing.T) {
	bothWays(t, func(t *testing.T, f fixture, n *notified) {
		ctx := context.Background()
		evs := []store.NewEvent{{
			Event: event.Event{ID: "ghana-10", Type: event.StatusChanged, Account: "ghana",
				Change: event.Change{HistoryID: 10, Field: "status"}, Order: []byte(`{"id":10}`)},
			OrderID: 10, DetectedAt: time.Now(),
		}}
		if _, err := Replay(ctx, f.cfg, "ghana", []string{"old"}, evs); !errors.Is(err, store.ErrNotConfigured) {
			t.Errorf("replay to a removed webhook: %v, want ErrNotConfigured", err)
		}
		queued, err := Replay(ctx, f.cfg, "ghana", []string{"1"}, evs)
		if err != nil || queued != 1 {
			t.Fatalf("Replay = %d, %v", queued, err)
		}
		sts, err := Status(ctx, f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if g := sts[0]; g.Queues[0].Pending != 2 || g.Queues[0].Dead != 2 {
			t.Errorf("ghana queue %+v after replaying ghana-10 (dead), want 2 pending", g.Queues[0])
		}
		if n != nil && !slices.Contains(n.get(), "ghana") {
			t.Errorf("notified %v, want ghana", n.get())
		}
	})
}

// bothWays runs test over the admin socket of a serving fixture (n set) and
// over the state file alone (n nil): the two must give the same results.
func bothWays(t *testing.T, test func(t *testing.T, f fixture, n *notified)) {
	for _, mode := range []string{"socket", "file"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			var n *notified
			if mode == "socket" {
				n = f.serve(t)
			}
			test(t, f, n)
		})
	}
}
