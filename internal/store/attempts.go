package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	bolt "go.etcd.io/bbolt"
)

// The attempt log: what each delivery attempt of an event saw, like the
// message-attempts view of webhook services. It lives in
// accounts/<name>/attempts/<seq><n> (n from the bucket's sequence, so the
// keys of an event sort by time), is written in the transaction that
// records the attempt's outcome (no fsync of its own), keeps the last
// MaxAttemptLog attempts per event and webhook, and is deleted with the
// event record: when the event was delivered to every webhook, or its dead
// letters were dropped.

// MaxAttemptLog is how many attempts per event and webhook the log keeps:
// the oldest go first. With the default retry.max_attempts (12) the log
// holds every attempt.
const MaxAttemptLog = 20

// MaxAttemptText bounds the response body and error text an attempt keeps.
const MaxAttemptText = 256

// Attempt is one delivery attempt in the log. Its texts come from the
// deliverer, which keeps URLs and secrets out of its errors.
type Attempt struct {
	At       time.Time     `json:"at"`
	Webhook  string        `json:"webhook"`
	Number   int           `json:"attempt"` // 1-based, since the event was queued (or moved back from the dead letters)
	Status   int           `json:"status"`  // HTTP status; 0 when no response came
	Latency  time.Duration `json:"-"`       // request sent to response read; latency_ms in JSON
	Response string        `json:"response,omitempty"`
	Error    string        `json:"error,omitempty"` // "" for a success
}

// attemptJSON is Attempt as JSON: the latency in milliseconds.
type attemptJSON struct {
	attemptFields
	LatencyMS float64 `json:"latency_ms"`
}

type attemptFields Attempt // Attempt without its methods

// MarshalJSON writes latency_ms.
func (a Attempt) MarshalJSON() ([]byte, error) {
	return json.Marshal(attemptJSON{attemptFields(a), float64(a.Latency) / float64(time.Millisecond)})
}

// UnmarshalJSON reads what MarshalJSON writes (the admin socket's answers).
func (a *Attempt) UnmarshalJSON(b []byte) error {
	var j attemptJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*a = Attempt(j.attemptFields)
	a.Latency = time.Duration(j.LatencyMS * float64(time.Millisecond))
	return nil
}

// Clip cuts s to MaxAttemptText bytes, on a UTF-8 boundary.
func Clip(s string) string {
	if len(s) <= MaxAttemptText {
		return s
	}
	return strings.ToValidUTF8(s[:MaxAttemptText], "")
}

const recordLog = 4 // attempts/<seq><n>: one attempt

func encodeLog(a *Attempt) []byte {
	b := make([]byte, 0, 32+len(a.Webhook)+len(a.Response)+len(a.Error))
	b = append(b, recordLog)
	b = appendString(b, a.Webhook)
	b = appendTime(b, a.At)
	b = binary.AppendVarint(b, int64(a.Number))
	b = binary.AppendVarint(b, int64(a.Status))
	b = binary.AppendVarint(b, int64(a.Latency))
	b = appendString(b, a.Response)
	return appendString(b, a.Error)
}

// logWebhook reads only the webhook of an attempt record (pruning needs
// no more).
func logWebhook(data []byte) (string, error) {
	r, err := open(data, recordLog)
	if err != nil {
		return "", err
	}
	w := r.str()
	return w, r.err
}

func decodeLog(data []byte) (Attempt, error) {
	r, err := open(data, recordLog)
	if err != nil {
		return Attempt{}, err
	}
	var a Attempt
	a.Webhook = r.str()
	a.At = r.time()
	a.Number = int(r.varint())
	a.Status = int(r.varint())
	a.Latency = time.Duration(r.varint())
	a.Response = r.str()
	a.Error = r.str()
	return a, r.end()
}

// logAttempt appends a to the log of the event at seq and drops its
// webhook's attempts beyond MaxAttemptLog, oldest first. A nil a logs
// nothing.
func logAttempt(acct *bolt.Bucket, seq uint64, a *Attempt) error {
	if a == nil {
		return nil
	}
	b, err := acct.CreateBucketIfNotExists(bucketAttempts)
	if err != nil {
		return err
	}
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec := *a
	rec.Response, rec.Error = Clip(rec.Response), Clip(rec.Error)
	if err := b.Put(binary.BigEndian.AppendUint64(u64(seq), n), encodeLog(&rec)); err != nil {
		return err
	}
	var own [][]byte
	prefix := u64(seq)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		w, err := logWebhook(v)
		if err != nil {
			return fmt.Errorf("attempt log of seq %d: %w", seq, err)
		}
		if w == a.Webhook {
			own = append(own, k)
		}
	}
	for _, k := range own[:max(len(own)-MaxAttemptLog, 0)] {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// dropLog deletes the attempt log of the event at seq.
func dropLog(acct *bolt.Bucket, seq uint64) error {
	b := acct.Bucket(bucketAttempts)
	if b == nil {
		return nil
	}
	var keys [][]byte
	prefix := u64(seq)
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// readLog returns the attempt log of the event at seq, oldest first.
func readLog(acct *bolt.Bucket, seq uint64) ([]Attempt, error) {
	out := []Attempt{}
	b := acct.Bucket(bucketAttempts)
	if b == nil {
		return out, nil
	}
	prefix := u64(seq)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		a, err := decodeLog(v)
		if err != nil {
			return nil, fmt.Errorf("attempt log of seq %d: %w", seq, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// migrateAttempts creates every account's attempt log bucket. Idempotent.
func migrateAttempts(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range accountNames(tx) {
			if _, err := accountBucket(tx, name).CreateBucketIfNotExists(bucketAttempts); err != nil {
				return err
			}
		}
		return nil
	})
}

// EventLog is what `poller events show` prints of one event: the event,
// where it waits for each webhook that still holds it, and its attempt
// log.
type EventLog struct {
	Account    string       `json:"account"`
	Seq        uint64       `json:"seq"`
	OrderID    int64        `json:"order_id"`
	DetectedAt time.Time    `json:"detected_at"`
	Event      event.Event  `json:"event"` // the envelope as the webhooks receive it
	Queues     []EventQueue `json:"queues"`
	Attempts   []Attempt    `json:"attempts"` // oldest first
}

// EventQueue is the event's item in one webhook's queue.
type EventQueue struct {
	Webhook     string    `json:"webhook"`
	State       string    `json:"state"` // pending or dead
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastStatus  int       `json:"last_status"`
	LastError   string    `json:"last_error,omitempty"`
	DeadAt      time.Time `json:"dead_at,omitzero"`
	DeadReason  string    `json:"dead_reason,omitempty"`
}

// Event finds the event with id in account ("" every account; the account
// the id starts with is looked at first) and returns it with its queues and
// attempt log. ErrNotFound when no account holds it: it was never
// detected, or it was delivered to every webhook, or dropped, and pruned
// with its log.
func (s *Store) Event(account, id string) (EventLog, error) {
	var out EventLog
	err := s.view(func(tx *bolt.Tx) error {
		accounts := []string{account}
		if account == "" {
			accounts = accountNames(tx)
			// Ids start with "<account>-": look there first.
			for i, a := range accounts {
				if strings.HasPrefix(id, a+"-") {
					accounts[0], accounts[i] = accounts[i], accounts[0]
				}
			}
		}
		for _, a := range accounts {
			found, err := eventIn(tx, a, id, &out)
			if found || err != nil {
				return err
			}
		}
		return fmt.Errorf("%w: event %q (delivered and dropped events are pruned with their attempt log)", ErrNotFound, id)
	})
	if err != nil {
		return EventLog{}, wrapErr(err, "event %s", id)
	}
	return out, nil
}

// eventIn looks for the event with id among account's event records,
// reading each record's id only.
func eventIn(tx *bolt.Tx, account, id string, out *EventLog) (bool, error) {
	acct := accountBucket(tx, account)
	events := sub(acct, bucketEvents)
	if events == nil {
		return false, nil
	}
	c := events.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		got, err := eventID(v)
		if err != nil {
			return false, fmt.Errorf("event seq %x: %w", k, err)
		}
		if got != id {
			continue
		}
		seq, err := keyU64(k)
		if err != nil {
			return false, err
		}
		var it Item
		if err := decodeEvent(v, &it); err != nil {
			return false, fmt.Errorf("event seq %d: %w", seq, err)
		}
		*out = EventLog{Account: account, Seq: seq, OrderID: it.OrderID, DetectedAt: it.DetectedAt, Event: it.Event, Queues: []EventQueue{}}
		for _, kind := range [][]byte{bucketOutbox, bucketDead} {
			for _, w := range queueNames(sub(acct, kind)) {
				q, ok, err := attempt(sub(acct, kind, []byte(w)), seq)
				if err != nil {
					return false, fmt.Errorf("%s/%s: %w", kind, w, err)
				}
				if ok {
					state := "pending"
					if kind[0] == bucketDead[0] {
						state = "dead"
					}
					out.Queues = append(out.Queues, EventQueue{Webhook: w, State: state, Attempts: q.Attempts,
						NextAttempt: q.NextAttempt, LastStatus: q.LastStatus, LastError: q.LastError, DeadAt: q.DeadAt, DeadReason: q.DeadReason})
				}
			}
		}
		out.Attempts, err = readLog(acct, seq)
		return true, err
	}
	return false, nil
}

// eventID reads the id of an event record without decoding the rest.
func eventID(data []byte) (string, error) {
	r, err := open(data, recordEvent)
	if err != nil {
		return "", err
	}
	r.varint()
	r.time()
	id := r.str()
	return id, r.err
}
