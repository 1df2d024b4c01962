package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// logKeys counts the attempt log records of account in the file.
func logKeys(t testing.TB, s *Store, account string) int {
	t.Helper()
	n := 0
	if err := s.view(func(tx *bolt.Tx) error {
		if b := sub(accountBucket(tx, account), bucketAttempts); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func failedAttempt(it Item, n int, at time.Time) Item {
	it.Attempts, it.FirstAttempt, it.NextAttempt, it.LastStatus = n, t0, at.Add(time.Minute), 503
	it.LastError = "deliver: receiver did not answer 2xx: 503"
	it.Log = &Attempt{At: at, Webhook: it.Webhook, Number: n, Status: 503, Latency: 1500 * time.Microsecond,
		Response: strings.Repeat("busy ", 100), Error: it.LastError}
	return it
}

// TestAttemptLog: every outcome write logs its attempt in the same
// transaction; the log keeps the last MaxAttemptLog attempts per webhook,
// clips its texts, and goes when the event goes (delivered to every
// webhook, or its dead letters dropped).
func TestAttemptLog(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 1, 2), Webhooks: []string{"x", "y"}, Cursor: 2})
	x, y := pending(t, s, "a", "x")[0], pending(t, s, "a", "y")[0]
	id := x.Event.ID

	const failures = MaxAttemptLog + 5
	for n := 1; n <= failures; n++ {
		if err := s.Reschedule(failedAttempt(x, n, t0.Add(time.Duration(n)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Reschedule(failedAttempt(y, 1, t0)); err != nil {
		t.Fatal(err)
	}
	log, err := s.Event("", id)
	if err != nil {
		t.Fatal(err)
	}
	if log.Account != "a" || log.Seq != x.Seq || log.Event.ID != id || log.OrderID != x.OrderID || len(log.Queues) != 2 {
		t.Fatalf("event %+v", log)
	}
	var xs []int
	for _, a := range log.Attempts {
		if a.Webhook == "x" {
			xs = append(xs, a.Number)
		}
		if len(a.Response) != MaxAttemptText || a.Status != 503 || a.Latency != 1500*time.Microsecond {
			t.Errorf("attempt %+v: response of %d bytes", a, len(a.Response))
		}
	}
	if len(xs) != MaxAttemptLog || xs[0] != failures-MaxAttemptLog+1 || xs[len(xs)-1] != failures {
		t.Errorf("x's attempts %v, want the last %d of %d", xs, MaxAttemptLog, failures)
	}
	if len(log.Attempts) != MaxAttemptLog+1 {
		t.Errorf("%d attempts logged, want %d (y's one kept)", len(log.Attempts), MaxAttemptLog+1)
	}

	// x delivered: its success is logged, y still holds the event.
	done := make(chan error, 1)
	s.Delivered("a", "x", x.Seq, &Attempt{At: t0.Add(time.Hour), Webhook: "x", Number: failures + 1, Status: 200}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log, err = s.Event("a", id)
	if err != nil {
		t.Fatal(err)
	}
	if last := log.Attempts[len(log.Attempts)-1]; last.Webhook != "x" || last.Status != 200 || last.Error != "" {
		t.Errorf("last attempt %+v, want x's success", last)
	}
	if len(log.Queues) != 1 || log.Queues[0].Webhook != "y" || log.Queues[0].State != "pending" || log.Queues[0].LastStatus != 503 {
		t.Errorf("queues %+v", log.Queues)
	}

	// y dead-lettered with its attempt, then dropped: the event and its
	// log go.
	if err := s.DeadLetter("max_attempts", t0, failedAttempt(y, 2, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	log, _ = s.Event("a", id)
	if len(log.Queues) != 1 || log.Queues[0].State != "dead" || log.Attempts[len(log.Attempts)-1].Number != 2 {
		t.Errorf("after dead-lettering: %+v", log)
	}
	if _, err := s.DropDead("a", []string{id}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Event("", id); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped event: %v, want ErrNotFound", err)
	}

	// The second event, delivered to both at the first attempt: nothing
	// of it stays.
	for _, w := range []string{"x", "y"} {
		it := pending(t, s, "a", w)[0]
		s.Delivered("a", w, it.Seq, &Attempt{At: t0, Webhook: w, Number: 1, Status: 204}, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := logKeys(t, s, "a"); n != 0 {
		t.Errorf("%d attempt records left after every event went", n)
	}
	if _, err := s.Event("", "a-404"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown event: %v", err)
	}
}

// TestAttemptJSON: the documented fields, latency in milliseconds, and
// back (the admin socket).
func TestAttemptJSON(t *testing.T) {
	a := Attempt{At: t0, Webhook: "app", Number: 2, Status: 503, Latency: 1500 * time.Microsecond, Response: "busy", Error: "503"}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"at":"2026-11-23T10:00:00.123456789Z","webhook":"app","attempt":2,"status":503,"response":"busy","error":"503","latency_ms":1.5}`
	if string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
	var back Attempt
	if err := json.Unmarshal(b, &back); err != nil || back != a {
		t.Errorf("round trip %+v, %v", back, err)
	}
}

// TestMigrateAttempts: a version 3 file gains the attempt log bucket in
// every account.
func TestMigrateAttempts(t *testing.T) {
	s := openTest(t)
	commit(t, s, "a", Commit{Events: newEvents("a", 1), Webhooks: []string{"x"}, Cursor: 1})
	path := s.db.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, path, func(tx *bolt.Tx) error {
		if err := accountBucket(tx, "a").DeleteBucket(bucketAttempts); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(3))
	})
	s = mustOpen(t, path, Options{})
	if got := s.schema(t); got != 4 {
		t.Errorf("schema version %d after Open", got)
	}
	it := pending(t, s, "a", "x")[0]
	if err := s.Reschedule(failedAttempt(it, 1, t0)); err != nil {
		t.Fatal(err)
	}
	if n := logKeys(t, s, "a"); n != 1 {
		t.Errorf("%d attempt records", n)
	}
}
