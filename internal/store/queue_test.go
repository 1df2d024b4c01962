package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// checkQueues checks the layout's invariants (checkAccount) over every
// account.
func checkQueues(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, account := range accountNames(tx) {
			if _, _, err := checkAccount(accountBucket(tx, account)); err != nil {
				return fmt.Errorf("account %s: %w", account, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestQueueInvariants runs random sequences of every operation that
// changes a queue (commits to random webhooks, deliveries, failed attempts,
// dead letters, retries and drops of dead letters) and checks the layout's
// invariants after each one.
func TestQueueInvariants(t *testing.T) {
	const seeds, steps = 40, 120
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := openTest(t)
			r := rand.New(rand.NewPCG(seed, 7))
			hooks := []string{"x", "y", "z"}
			var hid int64
			now := t0
			randomItem := func() (Item, bool) {
				w := hooks[r.IntN(len(hooks))]
				items := pending(t, s, "a", w)
				if len(items) == 0 {
					return Item{}, false
				}
				return items[r.IntN(len(items))], true
			}
			for step := range steps {
				now = now.Add(time.Duration(r.IntN(5000)) * time.Millisecond)
				op := r.IntN(7)
				switch op {
				case 0, 1: // a poll commits 1..4 events to some webhooks
					var evs []NewEvent
					for range 1 + r.IntN(4) {
						hid++
						ne := newEvents("a", hid)[0]
						ne.OrderID = int64(r.IntN(5)) // 0: no order id
						ne.DetectedAt = now
						evs = append(evs, ne)
					}
					ws := slices.Clone(hooks)
					r.Shuffle(len(ws), func(i, j int) { ws[i], ws[j] = ws[j], ws[i] })
					commit(t, s, "a", Commit{Events: evs, Webhooks: ws[:1+r.IntN(len(ws))], Cursor: hid, At: now})
				case 2:
					if it, ok := randomItem(); ok {
						if err := delivered(s, "a", it.Webhook, it.Seq); err != nil {
							t.Fatal(err)
						}
					}
				case 3:
					if it, ok := randomItem(); ok {
						it.Attempts++
						it.FirstAttempt = cmpOrTime(it.FirstAttempt, now)
						it.NextAttempt = now.Add(time.Duration(r.IntN(20)-5) * time.Second)
						it.LastStatus, it.LastError = 503, "busy"
						if err := s.Reschedule(it); err != nil {
							t.Fatal(err)
						}
					}
				case 4:
					if it, ok := randomItem(); ok {
						if err := s.DeadLetter("test", now, it); err != nil {
							t.Fatal(err)
						}
					}
				case 5, 6:
					dead, err := s.Dead("a")
					if err != nil {
						t.Fatal(err)
					}
					if len(dead) == 0 {
						continue
					}
					id := dead[r.IntN(len(dead))].Event.ID
					if op == 5 {
						_, err = s.RetryDead("a", []string{id}, anyWebhook)
					} else {
						_, err = s.DropDead("a", []string{id})
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if err := s.db.View(func(tx *bolt.Tx) error {
					if acct := accountBucket(tx, "a"); acct != nil {
						_, _, err := checkAccount(acct)
						return err
					}
					return nil
				}); err != nil {
					t.Fatalf("step %d (op %d): %v", step, op, err)
				}
			}
		})
	}
}

func cmpOrTime(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return a
}

// TestDue: Due gives the heads that are due, earliest first, up to the
// limit, passes over skipped items and reports when the next one is due.
func TestDue(t *testing.T) {
	s := openTest(t)
	ev := func(hid, order int64, at time.Duration) NewEvent {
		ne := newEvents("a", hid)[0]
		ne.OrderID, ne.DetectedAt = order, t0.Add(at)
		return ne
	}
	// Order 7: events 1 and 4; order 8: event 2; no order: event 3.
	commit(t, s, "a", Commit{Events: []NewEvent{ev(1, 7, 0), ev(2, 8, time.Second), ev(3, 0, 2*time.Second), ev(4, 7, 3*time.Second)},
		Webhooks: []string{"x"}, Cursor: 4})
	hids := func(items []Item) []int64 { return historyIDs(items) }
	tests := []struct {
		name     string
		now      time.Duration
		limit    int
		skip     func(uint64, int64) bool
		want     []int64
		wantNext time.Duration // -1: none left
	}{
		{"all due heads in due order", time.Hour, 10, nil, []int64{1, 2, 3}, -1},
		{"limit", time.Hour, 2, nil, []int64{1, 2}, 2 * time.Second},
		{"not yet due", 1500 * time.Millisecond, 10, nil, []int64{1, 2}, 2 * time.Second},
		{"nothing due", -time.Second, 10, nil, nil, 0},
		{"in flight skipped", time.Hour, 10, func(seq uint64, _ int64) bool { return seq == 1 }, []int64{2, 3}, -1},
		{"order in flight skipped", time.Hour, 1, func(_ uint64, order int64) bool { return order == 7 }, []int64{2}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, next, err := s.Due("a", "x", t0.Add(tt.now), tt.limit, tt.skip)
			if err != nil {
				t.Fatal(err)
			}
			if got := hids(items); !slices.Equal(got, tt.want) {
				t.Errorf("Due = %v, want %v", got, tt.want)
			}
			switch {
			case tt.wantNext < 0 && !next.IsZero():
				t.Errorf("next = %v, want none", next)
			case tt.wantNext >= 0 && !next.Equal(t0.Add(tt.wantNext)):
				t.Errorf("next = %v, want %v", next, t0.Add(tt.wantNext))
			}
		})
	}
	// Order 7's second event is due once its head is done; a failed head
	// moves to its next attempt and keeps the order's later event back.
	first, _, _ := s.Due("a", "x", t0.Add(time.Hour), 1, nil)
	failed := first[0]
	failed.Attempts, failed.FirstAttempt, failed.NextAttempt = 1, t0, t0.Add(time.Minute)
	if err := s.Reschedule(failed); err != nil {
		t.Fatal(err)
	}
	if items, _, _ := s.Due("a", "x", t0.Add(10*time.Second), 10, nil); !slices.Equal(hids(items), []int64{2, 3}) {
		t.Errorf("after a failed head: Due = %v, want [2 3]", hids(items))
	}
	if items, _, _ := s.Due("a", "x", t0.Add(2*time.Minute), 10, nil); !slices.Equal(hids(items), []int64{2, 3, 1}) {
		t.Errorf("when the retry is due: Due = %v, want [2 3 1]", hids(items))
	}
	if err := delivered(s, "a", "x", failed.Seq); err != nil {
		t.Fatal(err)
	}
	if items, _, _ := s.Due("a", "x", t0.Add(time.Hour), 10, nil); !slices.Equal(hids(items), []int64{2, 3, 4}) {
		t.Errorf("after the head was delivered: Due = %v, want [2 3 4]", hids(items))
	}
	if items, next, err := s.Due("nope", "x", t0, 10, nil); err != nil || len(items) != 0 || !next.IsZero() {
		t.Errorf("Due of an unknown account = %v, %v, %v", items, next, err)
	}
	checkQueues(t, s)
}

// TestEventStoredOnce: an event queued for three webhooks is one event
// record with three small attempt records, deleted with the last of them.
func TestEventStoredOnce(t *testing.T) {
	s := openTest(t)
	big := newEvents("a", 1)
	big[0].Event.Order = []byte(`{"id":2,"items":"` + string(bytes.Repeat([]byte("x"), 4000)) + `"}`)
	commit(t, s, "a", Commit{Events: big, Webhooks: []string{"x", "y", "z"}, Cursor: 1})
	var eventBytes, attemptBytes int
	_ = s.db.View(func(tx *bolt.Tx) error {
		acct := accountBucket(tx, "a")
		eventBytes = len(acct.Bucket(bucketEvents).Get(u64(1)))
		for _, w := range []string{"x", "y", "z"} {
			attemptBytes += len(sub(acct, bucketOutbox, []byte(w)).Get(u64(1)))
		}
		return nil
	})
	if eventBytes < 4000 || attemptBytes > 3*32 {
		t.Errorf("event record %d bytes, attempt records %d bytes in all", eventBytes, attemptBytes)
	}
	for i, w := range []string{"x", "y", "z"} {
		if n := countKeys(t, s, "a", bucketEvents); n != 1 {
			t.Fatalf("%d event records before webhook %s was done, want 1", n, w)
		}
		it := pending(t, s, "a", w)[0]
		var err error
		if i == 1 {
			err = s.DeadLetter("gone", t0, it)
		} else {
			err = delivered(s, "a", w, it.Seq)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The dead letter of y still refers to the event.
	if n := countKeys(t, s, "a", bucketEvents); n != 1 {
		t.Fatalf("%d event records while a dead letter refers to it, want 1", n)
	}
	dead, _ := s.Dead("a")
	if len(dead) != 1 || !bytes.Equal(dead[0].Event.Order, big[0].Event.Order) {
		t.Fatalf("dead letter %+v", dead)
	}
	if _, err := s.DropDead("a", nil); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, s, "a", bucketEvents); n != 0 {
		t.Errorf("%d event records after everything was done, want 0", n)
	}
	checkQueues(t, s)
}

// TestRetryDeadTakesTheHead: a dead letter moved back under its old Seq
// goes before its order's later events, even when one of them is the
// head already (and possibly in flight): the later one gives up its due key.
func TestRetryDeadTakesTheHead(t *testing.T) {
	s := openTest(t)
	evs := newEvents("a", 1, 2)
	evs[0].OrderID, evs[1].OrderID = 5, 5
	commit(t, s, "a", Commit{Events: evs, Webhooks: []string{"x"}, Cursor: 2})
	items := pending(t, s, "a", "x")
	if err := s.DeadLetter("gone", t0, items[0]); err != nil {
		t.Fatal(err)
	}
	if due, _, _ := s.Due("a", "x", t0.Add(time.Hour), 10, nil); !slices.Equal(historyIDs(due), []int64{2}) {
		t.Fatalf("after the head died: Due = %v, want [2]", historyIDs(due))
	}
	// Event 2 fails meanwhile (it is in flight while the retry happens).
	failing := items[1]
	if _, err := s.RetryDead("a", nil, anyWebhook); err != nil {
		t.Fatal(err)
	}
	failing.Attempts, failing.NextAttempt = 1, t0.Add(time.Second)
	if err := s.Reschedule(failing); err != nil {
		t.Fatal(err)
	}
	if due, _, _ := s.Due("a", "x", t0.Add(time.Hour), 10, nil); !slices.Equal(historyIDs(due), []int64{1}) {
		t.Errorf("after the retry: Due = %v, want only the retried head [1]", historyIDs(due))
	}
	checkQueues(t, s)
}

func TestRetryDeadNotConfigured(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 1, 2), Webhooks: []string{"old", "new"}, Cursor: 2})
	for _, w := range []string{"old", "new"} {
		if err := s.DeadLetter("test", t0, pending(t, s, "a", w)...); err != nil {
			t.Fatal(err)
		}
	}
	onlyNew := func(_, w string) bool { return w == "new" }
	for _, ids := range [][]string{nil, {"a-1"}} {
		if _, err := s.RetryDead("a", ids, onlyNew); !errors.Is(err, ErrNotConfigured) || !strings.Contains(err.Error(), `webhook "old"`) {
			t.Errorf("RetryDead(%v) = %v, want ErrNotConfigured naming the webhook", ids, err)
		}
	}
	if _, d, _ := s.Counts("a"); d != 4 {
		t.Fatalf("a refused retry moved something: %d dead", d)
	}
	if _, err := s.DropDead("a", nil); err != nil {
		t.Fatal(err)
	}
	checkQueues(t, s)
}
