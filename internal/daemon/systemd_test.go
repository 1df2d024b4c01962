package daemon

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// notifySocket is a fake systemd notification socket.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T, path string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// count returns how many messages contain s.
func (n *notifySocket) count(s string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.Contains(m, s) {
			c++
		}
	}
	return c
}

// TestSystemdNotify: READY=1 once up, RELOADING=1 (with MONOTONIC_USEC)
// and READY=1 around a reload, watchdog pings only while the store
// answers, STOPPING=1 on shutdown. Not parallel: it sets the environment.
func TestSystemdNotify(t *testing.T) {
	e := newEnv(t)
	n := listenNotify(t, filepath.Join(e.dir, "notify.sock"))
	t.Setenv("NOTIFY_SOCKET", filepath.Join(e.dir, "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "200000")
	e.write(5*time.Second, e.account("sd", ""))
	d := e.start()

	waitFor(t, "READY=1", func() bool { return n.count("READY=1") == 1 })
	waitFor(t, "watchdog pings", func() bool { return n.count("WATCHDOG=1") >= 3 })

	d.reload <- struct{}{}
	waitFor(t, "READY=1 after the reload", func() bool { return n.count("READY=1") == 2 })
	if n.count("RELOADING=1\nMONOTONIC_USEC=") != 1 {
		t.Errorf("want one RELOADING=1 with MONOTONIC_USEC, got %q", n.all())
	}

	// A store that no longer answers: no more pings, /healthz fails.
	if err := d.ready.Store.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, "http://"+d.ready.HTTPAddr+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with a closed store = %d, want 503", code)
	}
	time.Sleep(150 * time.Millisecond) // a ping already past its check may still arrive
	before := n.count("WATCHDOG=1")
	time.Sleep(time.Second) // ten ping intervals
	if after := n.count("WATCHDOG=1"); after != before {
		t.Errorf("%d watchdog pings while the store was closed", after-before)
	}

	if _, err := d.stop(t, 30*time.Second); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	waitFor(t, "STOPPING=1", func() bool { return n.count("STOPPING=1") == 1 })
}
