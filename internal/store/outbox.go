package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	bolt "go.etcd.io/bbolt"
)

// Item is one event queued for one webhook, or a dead letter. Its JSON
// (dlq list -json, the admin socket) uses the documented snake_case names.
type Item struct {
	Seq          uint64      `json:"seq"` // the event's key: order of detection within the account, shared by its webhooks
	Account      string      `json:"account"`
	Webhook      string      `json:"webhook"`
	Event        event.Event `json:"event"` // the envelope as the webhook receives it
	OrderID      int64       `json:"order_id"`
	DetectedAt   time.Time   `json:"detected_at"`
	Attempts     int         `json:"attempts"`
	FirstAttempt time.Time   `json:"first_attempt,omitzero"` // zero until the first attempt
	NextAttempt  time.Time   `json:"next_attempt,omitzero"`  // zero: never attempted, due since DetectedAt
	LastStatus   int         `json:"last_status"`            // HTTP status of the last attempt, 0 for none or a transport error
	LastError    string      `json:"last_error,omitempty"`
	DeadAt       time.Time   `json:"dead_at,omitzero"` // set on dead letters
	DeadReason   string      `json:"dead_reason,omitempty"`
	// Log is the attempt whose outcome Reschedule or DeadLetter records:
	// it goes to the event's attempt log in the same transaction. Never
	// stored in the item.
	Log *Attempt `json:"-"`
}

// queue is one webhook's buckets of an account, within one transaction.
// Every change to its pending items goes through put, remove and
// reschedule, which keep the invariant the scheduler relies on: for each
// order with pending items exactly one of them, the lowest Seq (the head),
// has a key in due; an item without an order id is always a head; chain
// holds every pending item with an order id; counts match the keys.
type queue struct {
	acct                     *bolt.Bucket
	name                     []byte
	outbox, due, chain, dead *bolt.Bucket // nil when absent and not created
	events                   *bolt.Bucket // the account's event records
	dPending, dDead          int          // counter changes not yet written (see count)
}

// createQueueBuckets makes the account's delivery buckets: the event
// records, the per-webhook parents and the counters.
func createQueueBuckets(acct *bolt.Bucket) error {
	for _, n := range [][]byte{bucketEvents, bucketOutbox, bucketDue, bucketChain, bucketDead, bucketCounts, bucketAttempts} {
		if _, err := acct.CreateBucketIfNotExists(n); err != nil {
			return err
		}
	}
	return nil
}

// queueOf returns acct's queue of webhook. With create the buckets are
// made (a write transaction); without, missing ones stay nil. acct may be
// nil for reads.
func queueOf(acct *bolt.Bucket, webhook string, create bool) (*queue, error) {
	q := &queue{acct: acct, name: []byte(webhook)}
	if acct == nil {
		return q, nil
	}
	q.events = acct.Bucket(bucketEvents)
	for _, s := range []struct {
		dst  **bolt.Bucket
		kind []byte
	}{{&q.outbox, bucketOutbox}, {&q.due, bucketDue}, {&q.chain, bucketChain}, {&q.dead, bucketDead}} {
		parent := acct.Bucket(s.kind)
		switch {
		case parent == nil && create:
			return nil, fmt.Errorf("account bucket without %s", s.kind)
		case parent == nil:
		case create:
			b, err := parent.CreateBucketIfNotExists(q.name)
			if err != nil {
				return nil, fmt.Errorf("webhook %s: %w", webhook, err)
			}
			*s.dst = b
		default:
			*s.dst = parent.Bucket(q.name)
		}
	}
	return q, nil
}

// attempt decodes the attempt record at seq of b (outbox or dead); ok is
// false when there is none.
func attempt(b *bolt.Bucket, seq uint64) (it Item, ok bool, err error) {
	if b == nil {
		return Item{}, false, nil
	}
	v := b.Get(u64(seq))
	if v == nil {
		return Item{}, false, nil
	}
	it.Seq = seq
	if err := decodeAttempt(v, &it); err != nil {
		return Item{}, false, fmt.Errorf("seq %d: %w", seq, err)
	}
	return it, true, nil
}

// withEvent completes it (an attempt record) with its event record.
func (q *queue) withEvent(it *Item) error {
	var v []byte
	if q.events != nil {
		v = q.events.Get(u64(it.Seq))
	}
	if v == nil {
		return fmt.Errorf("%w: seq %d has no event record", ErrCorrupt, it.Seq)
	}
	order, detected := it.OrderID, it.DetectedAt
	if err := decodeEvent(v, it); err != nil {
		return fmt.Errorf("event seq %d: %w", it.Seq, err)
	}
	it.OrderID, it.DetectedAt = order, detected // the attempt record's, which the index keys use
	return nil
}

// item reads a whole item (attempt and event) from b, outbox or dead.
func (q *queue) item(b *bolt.Bucket, account string, seq uint64) (Item, bool, error) {
	it, ok, err := attempt(b, seq)
	if !ok || err != nil {
		return it, ok, err
	}
	it.Account, it.Webhook = account, string(q.name)
	return it, true, q.withEvent(&it)
}

// head returns the lowest pending Seq of order.
func (q *queue) head(order int64) (uint64, bool) {
	prefix := u64(uint64(order))
	k, _ := q.chain.Cursor().Seek(prefix)
	if len(k) != 16 || !bytes.HasPrefix(k, prefix) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[8:]), true
}

// setDue adds (on) or removes the due key of the pending item at seq.
func (q *queue) setDue(seq uint64, on bool) error {
	it, ok, err := attempt(q.outbox, seq)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: chain names seq %d, which is not pending", ErrCorrupt, seq)
	}
	if on {
		return q.due.Put(dueKey(dueAt(&it), seq), nil)
	}
	return q.due.Delete(dueKey(dueAt(&it), seq))
}

// put adds it (Seq, OrderID, DetectedAt and attempt fields set; its event
// record already stored) to the pending items.
func (q *queue) put(it *Item) error {
	if err := q.outbox.Put(u64(it.Seq), encodeAttempt(it)); err != nil {
		return err
	}
	q.count(1, 0)
	own := dueKey(dueAt(it), it.Seq)
	if it.OrderID == 0 {
		return q.due.Put(own, nil)
	}
	head, found := q.head(it.OrderID)
	if err := q.chain.Put(chainKey(it.OrderID, it.Seq), nil); err != nil {
		return err
	}
	switch {
	case !found:
		return q.due.Put(own, nil)
	case it.Seq < head:
		// A dead letter moved back under its old Seq goes before the
		// order's later events: it becomes the head.
		if err := q.setDue(head, false); err != nil {
			return err
		}
		return q.due.Put(own, nil)
	}
	return nil
}

// remove deletes the pending item stored as it (its attempt record) with
// its keys and puts its order's next item in due.
func (q *queue) remove(it *Item) error {
	if err := q.outbox.Delete(u64(it.Seq)); err != nil {
		return err
	}
	if err := q.due.Delete(dueKey(dueAt(it), it.Seq)); err != nil {
		return err
	}
	q.count(-1, 0)
	if it.OrderID == 0 {
		return nil
	}
	if err := q.chain.Delete(chainKey(it.OrderID, it.Seq)); err != nil {
		return err
	}
	if next, ok := q.head(it.OrderID); ok {
		return q.setDue(next, true)
	}
	return nil
}

// reschedule replaces the attempt bookkeeping of the pending item stored
// as old with upd's and moves its due key when it is its order's head.
func (q *queue) reschedule(old, upd *Item) error {
	if err := q.due.Delete(dueKey(dueAt(old), old.Seq)); err != nil {
		return err
	}
	rec := withAttempt(*old, *upd)
	if err := q.outbox.Put(u64(old.Seq), encodeAttempt(&rec)); err != nil {
		return err
	}
	if rec.OrderID != 0 {
		if head, _ := q.head(rec.OrderID); head != rec.Seq {
			return nil // a retried dead letter took the head meanwhile
		}
	}
	return q.due.Put(dueKey(dueAt(&rec), rec.Seq), nil)
}

// withAttempt copies it's attempt bookkeeping onto the stored item.
func withAttempt(stored, it Item) Item {
	stored.Attempts = it.Attempts
	stored.FirstAttempt = it.FirstAttempt
	stored.NextAttempt = it.NextAttempt
	stored.LastStatus = it.LastStatus
	stored.LastError = it.LastError
	return stored
}

// enqueue adds evs (already checked against the seen set by the caller)
// to the outbox of every webhook in webhooks, inside the caller's
// transaction; acct is accounts/<name> (created by createAccount). Each
// event gets one Seq and one event record, shared by its webhooks' items.
func enqueue(acct *bolt.Bucket, webhooks []string, evs []NewEvent) error {
	if len(evs) == 0 {
		return nil
	}
	queues := make(map[string]*queue, len(webhooks))
	for _, w := range webhooks {
		q, err := queueOf(acct, w, true)
		if err != nil {
			return err
		}
		queues[w] = q
	}
	events := acct.Bucket(bucketEvents)
	for i := range evs {
		ne := &evs[i]
		to := targets(ne, webhooks)
		if len(to) == 0 {
			continue
		}
		seq, err := acct.NextSequence()
		if err != nil {
			return err
		}
		it := Item{Seq: seq, Event: ne.Event, OrderID: ne.OrderID, DetectedAt: ne.DetectedAt}
		if err := events.Put(u64(seq), encodeEvent(&it)); err != nil {
			return err
		}
		for _, w := range to {
			if err := queues[w].put(&it); err != nil {
				return fmt.Errorf("webhook %s: %w", w, err)
			}
		}
	}
	for _, w := range webhooks {
		if err := queues[w].flush(); err != nil {
			return err
		}
	}
	return nil
}

// targets are the webhooks ne goes to: those of webhooks it names, or all
// of them when it names none.
func targets(ne *NewEvent, webhooks []string) []string {
	if ne.Webhooks == nil {
		return webhooks
	}
	var to []string
	for _, w := range webhooks {
		if slices.Contains(ne.Webhooks, w) {
			to = append(to, w)
		}
	}
	return to
}

// releaseEvent deletes the event record at seq, and its attempt log, once
// no outbox or dead item of any webhook refers to it. Webhooks holding
// anything have a counts key, so this is a few Gets.
func releaseEvent(acct *bolt.Bucket, seq uint64) (released bool, err error) {
	k := u64(seq)
	c := acct.Bucket(bucketCounts).Cursor()
	for w, v := c.First(); w != nil; w, v = c.Next() {
		n, err := decodeCount(w, v)
		if err != nil {
			return false, err
		}
		for _, kind := range [][]byte{bucketOutbox, bucketDead} {
			if kind[0] == bucketOutbox[0] && n.Pending == 0 || kind[0] == bucketDead[0] && n.Dead == 0 {
				continue // nothing there to refer to it
			}
			if b := sub(acct, kind, w); b != nil && b.Get(k) != nil {
				return false, nil
			}
		}
	}
	if err := acct.Bucket(bucketEvents).Delete(k); err != nil {
		return false, err
	}
	return true, dropLog(acct, seq)
}

// Pending returns up to limit outbox items of account/webhook with
// Seq > after, in Seq order. A limit <= 0 returns them all. Removing a
// webhook dead-letters its queue in chunks read with it.
func (s *Store) Pending(account, webhook string, after uint64, limit int) ([]Item, error) {
	var items []Item
	err := s.view(func(tx *bolt.Tx) error {
		q, err := queueOf(accountBucket(tx, account), webhook, false)
		if err != nil || q.outbox == nil {
			return err
		}
		c := q.outbox.Cursor()
		for k, _ := c.Seek(u64(after + 1)); k != nil && (limit <= 0 || len(items) < limit); k, _ = c.Next() {
			seq, err := keyU64(k)
			if err != nil {
				return err
			}
			it, _, err := q.item(q.outbox, account, seq)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "pending %s/%s", account, webhook)
	}
	return items, nil
}

// Due returns up to limit items of account/webhook that are due at now,
// earliest due first: the heads of their orders whose next attempt (or,
// never attempted, detection) is not after now. Items for which skip
// returns true (in flight) are passed over; skip is asked with order 0
// first, before the record is read, then again with the order id. next is the due time of the
// first item left behind, due or not (zero when none is left). The cost is
// the keys read, never the length of the queue.
func (s *Store) Due(account, webhook string, now time.Time, limit int, skip func(seq uint64, order int64) bool) (items []Item, next time.Time, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		q, err := queueOf(accountBucket(tx, account), webhook, false)
		if err != nil || q.due == nil {
			return err
		}
		end := dueKey(now, math.MaxUint64)
		c := q.due.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			ns, seq, err := splitKey(k)
			if err != nil {
				return err
			}
			if skip != nil && skip(seq, 0) {
				continue // in flight: known without decoding its record
			}
			it, ok, err := attempt(q.outbox, seq)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: due key of seq %d, which is not pending", ErrCorrupt, seq)
			}
			if skip != nil && it.OrderID != 0 && skip(seq, it.OrderID) {
				continue
			}
			if bytes.Compare(k, end) > 0 || len(items) >= limit {
				next = time.Unix(0, int64(ns)).UTC()
				return nil
			}
			it.Account, it.Webhook = account, webhook
			if err := q.withEvent(&it); err != nil {
				return err
			}
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, wrapErr(err, "due %s/%s", account, webhook)
	}
	return items, next, nil
}

// Delivered removes a delivered item from the outbox, puts its order's
// next item in due, logs the attempt (log; nil logs nothing) and deletes
// the event with its log once nothing refers to it, in one
// transaction shared with concurrent writes (groupCommit), and tells then
// the outcome once that transaction has committed: before Delivered
// returns when no commit was running, else from the goroutine that ran
// the commit, so then must not block. It does not wait, so a delivery
// goroutine goes back to sending while the shared fsync runs. An item
// already gone (delivered before a restart, dead-lettered by an operator)
// is not an error.
func (s *Store) Delivered(account, webhook string, seq uint64, log *Attempt, then func(error)) {
	s.groupStart(func(tx *bolt.Tx) error {
		acct := accountBucket(tx, account)
		q, err := queueOf(acct, webhook, false)
		if err != nil || q.outbox == nil {
			return err
		}
		// Read first: a record that does not decode fails this call
		// alone, not the transaction it shares.
		it, ok, err := attempt(q.outbox, seq)
		if err != nil || !ok {
			return rejected{err}
		}
		if err := q.remove(&it); err != nil {
			return err
		}
		if err := q.flush(); err != nil {
			return err
		}
		released, err := releaseEvent(acct, seq)
		if released || err != nil {
			return err // the log went with the event
		}
		return logAttempt(acct, seq, log)
	}, func(err error) {
		then(wrapErr(err, "delivered %s/%s seq %d", account, webhook, seq))
	})
}

// Reschedule records a failed attempt: it stores it.Attempts,
// FirstAttempt, NextAttempt, LastStatus and LastError for the item it.Seq,
// moves its due key to NextAttempt and logs it.Log. ErrNotFound when the
// item is no longer in the outbox.
func (s *Store) Reschedule(it Item) error {
	err := s.groupDo(func(tx *bolt.Tx) error {
		q, err := queueOf(accountBucket(tx, it.Account), it.Webhook, false)
		if err != nil {
			return err
		}
		stored, ok, err := attempt(q.outbox, it.Seq)
		if err != nil {
			return rejected{err}
		}
		if !ok {
			return rejected{fmt.Errorf("%w: outbox %s/%s seq %d", ErrNotFound, it.Account, it.Webhook, it.Seq)}
		}
		if err := q.reschedule(&stored, &it); err != nil {
			return err
		}
		return logAttempt(q.acct, it.Seq, it.Log)
	})
	if err != nil {
		return wrapErr(err, "reschedule")
	}
	return nil
}
