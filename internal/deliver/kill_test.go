package deliver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// Environment of the re-executed test binary in TestKillDuringDelivery.
const (
	envChild = "DELIVER_KILL_CHILD" // store path: run a dispatcher instead of the tests
	envURL   = "DELIVER_KILL_URL"
	envGen   = "DELIVER_KILL_GEN"   // sent as X-Gen, so the receiver knows which process sent
	envDrain = "DELIVER_KILL_DRAIN" // "1": exit 0 once the outbox is empty
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envChild); path != "" {
		os.Exit(killChild(path))
	}
	os.Exit(m.Run())
}

// killChild runs a dispatcher over the store file until it is killed, or,
// draining, until the outbox is empty.
func killChild(path string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	st, err := store.Open(path, store.Options{Timeout: 10 * time.Second})
	if err != nil {
		log.Error("open", "error", err)
		return 1
	}
	wh := webhook(os.Getenv(envURL))
	wh.Headers = map[string]string{"X-Gen": os.Getenv(envGen)}
	d := New(st, metrics.New(), log, Options{Backoff: tiny})
	d.Update([]config.Account{account("ghana", wh)})
	d.Start(context.Background())
	if os.Getenv(envDrain) != "1" {
		select {} // until SIGKILL
	}
	for {
		pending, dead, err := st.Counts("ghana")
		if err != nil {
			log.Error("counts", "error", err)
			return 1
		}
		if pending == 0 {
			if err := d.Shutdown(context.Background()); err != nil {
				log.Error("shutdown", "error", err)
				return 1
			}
			if err := st.Close(); err != nil {
				return 1
			}
			if dead != 0 {
				return 3
			}
			return 0
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SIGKILL during delivery, 30 times: no event is lost, an event is never
// sent twice by one process (its response was recorded), and the first
// arrivals of each order's events keep the order.
func TestKillDuringDelivery(t *testing.T) {
	const (
		kills  = 30
		events = 3000
		orders = 50
	)
	type receipt struct {
		gen   int
		order string
	}
	var (
		mu    sync.Mutex
		byID  = make(map[string][]receipt)
		perGn = make(map[int]int)
		first []hit // first arrivals, for the order check
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gen, _ := strconv.Atoi(r.Header.Get("X-Gen"))
		body, _ := io.ReadAll(r.Body)
		order := orderOf(string(body))
		id := r.Header.Get("webhook-id")
		mu.Lock()
		if len(byID[id]) == 0 {
			first = append(first, hit{id: id, order: order})
		}
		byID[id] = append(byID[id], receipt{gen, order})
		perGn[gen]++
		mu.Unlock()
		// A little work, so kills land between sending and recording.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	}))
	defer rcv.Close()

	path := filepath.Join(t.TempDir(), store.FileName)
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := enqueue(t, st, "ghana", []string{"1"}, 1, events, orders)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	run := func(gen int, drain bool) *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), envChild+"="+path, envURL+"="+rcv.URL, envGen+"="+strconv.Itoa(gen))
		if drain {
			cmd.Env = append(cmd.Env, envDrain+"=1")
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	received := func(gen int) int {
		mu.Lock()
		defer mu.Unlock()
		return perGn[gen]
	}
	for gen := 1; gen <= kills; gen++ {
		cmd := run(gen, false)
		target := 1 + rand.IntN(60)
		deadline := time.Now().Add(5 * time.Second)
		for received(gen) < target && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		if received(gen) == 0 {
			t.Fatalf("process %d delivered nothing in 5s", gen)
		}
		_ = cmd.Process.Kill() // SIGKILL
		_ = cmd.Wait()
	}
	final := run(kills+1, true)
	done := make(chan error, 1)
	go func() { done <- final.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("draining process: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = final.Process.Kill()
		t.Fatal("draining process did not empty the outbox")
	}

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, id := range ids {
		rs := byID[id]
		if len(rs) == 0 {
			t.Errorf("%s lost", id)
			continue
		}
		for i := 1; i < len(rs); i++ {
			// Within one process an event is sent once (the receiver never
			// fails): a repeat comes only from a later process, after the
			// earlier one was killed before recording the response.
			if rs[i].gen <= rs[i-1].gen || rs[i-1].gen > kills {
				t.Errorf("%s sent again by process %d after process %d", id, rs[i].gen, rs[i-1].gen)
			}
			dups++
		}
	}
	for _, h := range first {
		if h.order == "" {
			t.Fatalf("%s: no order id in the body", h.id)
		}
	}
	checkOrder(t, first)
	t.Logf("%d events, %d kills, %d duplicates (responses not yet recorded at the kill)", len(ids), kills, dups)
	// Each kill can only repeat what was in flight or awaiting its delivered
	// mark: a handful per kill, never a replay of the queue.
	if dups > kills*64 {
		t.Errorf("%d duplicates for %d kills", dups, kills)
	}
}

// orderOf extracts the order id from an envelope body ("" if none).
func orderOf(body string) string {
	const key = `"order":{"id":`
	i := strings.Index(body, key)
	if i < 0 {
		return ""
	}
	var oid int64
	if _, err := fmt.Sscanf(body[i+len(key):], "%d", &oid); err != nil {
		return ""
	}
	return strconv.FormatInt(oid, 10)
}
