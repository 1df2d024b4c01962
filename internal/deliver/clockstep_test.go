package deliver

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// failFirst answers each event's first attempt 500 and later ones 200.
func failFirst(_ string, attempt int) (int, string, http.Header) {
	if attempt == 1 {
		return http.StatusInternalServerError, "", nil
	}
	return http.StatusOK, "", nil
}

// attempted waits until every pending item of account has been attempted.
func attempted(t *testing.T, st *store.Store, account string, n int) {
	t.Helper()
	eventually(t, "the first attempts recorded", func() bool {
		items, err := st.Pending(account, "1", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Attempts == 0 {
				return false
			}
		}
		return len(items) == n
	})
}

// Stepping the wall clock back three hours after a failed attempt does
// not hold its retry back: it is sent when its backoff ends, not three
// hours later.
func TestRetryAfterClockStepsBack(t *testing.T) {
	rcv := newReceiver(t, failFirst)
	st := openStore(t, "")
	clk := &testkit.StepClock{}
	second := func(int) time.Duration { return time.Second }
	d, _ := startDispatcher(t, st, Options{Clock: clk, Backoff: second}, account("ghana", webhook(rcv.srv.URL)))
	enqueue(t, st, "ghana", []string{"1"}, 1, 1, 1)
	d.Notify("ghana")
	attempted(t, st, "ghana", 1)
	clk.Step(-3 * time.Hour)
	eventually(t, "the retry after the step", func() bool { return len(rcv.delivered()) == 1 })
}

// An event detected just before the wall clock is stepped back three hours
// (its detection time is then three hours ahead) is sent at once.
func TestNewEventAfterClockStepsBack(t *testing.T) {
	rcv := newReceiver(t, nil)
	st := openStore(t, "")
	clk := &testkit.StepClock{}
	d, _ := startDispatcher(t, st, Options{Clock: clk}, account("ghana", webhook(rcv.srv.URL)))
	enqueue(t, st, "ghana", []string{"1"}, 1, 1, 1)
	d.Notify("ghana")
	eventually(t, "the first event", func() bool { return len(rcv.delivered()) == 1 })

	detected := clk.Wall()
	clk.Step(-3 * time.Hour)
	ev := store.NewEvent{Event: testEvent("ghana", 2, 7), OrderID: 7, DetectedAt: detected}
	if err := st.CommitPoll("ghana", store.Commit{Events: []store.NewEvent{ev}, Webhooks: []string{"1"}, Cursor: 2, At: detected}); err != nil {
		t.Fatal(err)
	}
	d.Notify("ghana")
	eventually(t, "the event detected before the step", func() bool { return len(rcv.delivered()) == 2 })
}

// A forward step makes retries due early, as if the time had passed:
// they are all sent, each once, never more at a time than the webhook's
// concurrency allows.
func TestRetriesAfterClockStepsForward(t *testing.T) {
	var inflight, most atomic.Int32
	var mu sync.Mutex
	rcv := newReceiver(t, func(id string, attempt int) (int, string, http.Header) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		mu.Lock()
		most.Store(max(most.Load(), n))
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return failFirst(id, attempt)
	})
	st := openStore(t, "")
	clk := &testkit.StepClock{}
	hour := func(int) time.Duration { return time.Hour }
	wh := webhook(rcv.srv.URL)
	wh.Concurrency = 2
	d, _ := startDispatcher(t, st, Options{Clock: clk, Backoff: hour}, account("ghana", wh))
	const n = 20
	enqueue(t, st, "ghana", []string{"1"}, 1, n, n)
	d.Notify("ghana")
	attempted(t, st, "ghana", n)
	time.Sleep(3 * gaugeEvery) // the loop settles into its wait for the earliest retry
	most.Store(0)
	clk.Step(3 * time.Hour)
	eventually(t, "every retry after the step", func() bool { return pendingCount(t, st, "ghana") == 0 })
	per := map[string]int{}
	for _, h := range rcv.hits() {
		per[h.id]++
	}
	for id, c := range per {
		if c != 2 {
			t.Errorf("%s: %d attempts, want the failed one and one retry", id, c)
		}
	}
	if len(per) != n {
		t.Errorf("%d events attempted, want %d", len(per), n)
	}
	if m := most.Load(); m > int32(wh.Concurrency) {
		t.Errorf("%d attempts at once after the step, over the concurrency of %d", m, wh.Concurrency)
	}
}

// The clock went back three hours while the daemon was stopped: a retry
// stored before the stop is due at most max_age (the longest wait the
// config allows) after the restart, not three hours later.
func TestRestartAfterClockWentBack(t *testing.T) {
	rcv := newReceiver(t, failFirst)
	st := openStore(t, "")
	wh := webhook(rcv.srv.URL)
	wh.Retry.MaxAge = 2 * time.Second
	hour := func(int) time.Duration { return time.Hour }
	d1, _ := startDispatcher(t, st, Options{Backoff: hour}, account("ghana", wh))
	enqueue(t, st, "ghana", []string{"1"}, 1, 1, 1)
	d1.Notify("ghana")
	attempted(t, st, "ghana", 1)
	if err := d1.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	clk := &testkit.StepClock{}
	clk.Step(-3 * time.Hour)
	d2, _ := startDispatcher(t, st, Options{Clock: clk, Backoff: hour}, account("ghana", wh))
	d2.Notify("ghana")
	eventually(t, "the retry within max_age of the restart", func() bool { return len(rcv.delivered()) == 1 })
	if dead, _ := st.Dead("ghana"); len(dead) != 0 {
		t.Errorf("dead letters: %+v", dead)
	}
}

// Stored retries due further ahead than any wait the config allows (they
// were scheduled before the clock went back while the daemon was stopped)
// are sent as soon as they are the queue's earliest, never later than
// max_age; a retry due within max_age keeps its time: the stale ones do
// not pull the others forward.
func TestSchedulerStaleDueKey(t *testing.T) {
	tests := []struct {
		name string
		due  []time.Duration // each order's stored next attempt after t0; max_age is 72h
		want []time.Duration // when each is sent, at the latest; never before, unless stale
	}{
		{"a stale retry alone", []time.Duration{100 * time.Hour}, []time.Duration{0}},
		{"stale retries", []time.Duration{100 * time.Hour, 200 * time.Hour}, []time.Duration{0, 0}},
		{"a stale retry behind one due in an hour", []time.Duration{100 * time.Hour, time.Hour}, []time.Duration{time.Hour, time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, "")
			commitOrders(t, st, "ghana", []string{"1"}, t0, 1, orderIDs(len(tt.due))...)
			items, err := st.Pending("ghana", "1", 0, 0)
			if err != nil || len(items) != len(tt.due) {
				t.Fatalf("%d items, %v", len(items), err)
			}
			for i, it := range items {
				it.Attempts, it.FirstAttempt, it.NextAttempt, it.LastError = 1, t0.Add(-time.Minute), t0.Add(tt.due[i]), "500"
				if err := st.Reschedule(it); err != nil {
					t.Fatal(err)
				}
			}
			ok := func(store.Item) (Result, error) { return Result{Status: 200}, nil }
			f := newFakeRun(t, st, Options{}, ok, account("ghana", webhook("http://unused")))
			f.run(t, t0.Add(300*time.Hour), func() bool { return len(f.sent) == len(tt.due) })
			if len(f.sent) != len(tt.due) {
				t.Fatalf("%d attempts, want %d", len(f.sent), len(tt.due))
			}
			for _, s := range f.sent {
				i := s.it.OrderID - 1
				at := s.at.Sub(t0)
				if at > tt.want[i]+time.Second {
					t.Errorf("order %d, due t0+%v: sent at t0+%v, want by t0+%v", s.it.OrderID, tt.due[i], at, tt.want[i])
				}
				if stale := tt.due[i] > 72*time.Hour; !stale && at < tt.due[i] {
					t.Errorf("order %d, due t0+%v: sent early, at t0+%v", s.it.OrderID, tt.due[i], at)
				}
			}
		})
	}
}
