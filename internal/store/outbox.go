package store

import (
	"fmt"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	bolt "go.etcd.io/bbolt"
)

// Item is one event queued for one webhook.
type Item struct {
	Seq          uint64 // outbox key: order of detection within the account
	Account      string
	Webhook      string
	Event        event.Event
	OrderID      int64
	DetectedAt   time.Time
	Attempts     int
	FirstAttempt time.Time // zero until the first attempt
	NextAttempt  time.Time // zero: due now
	LastStatus   int       // HTTP status of the last attempt, 0 for none or a transport error
	LastError    string
	DeadAt       time.Time // set on dead letters
	DeadReason   string
}

// Pending returns up to limit outbox items of account/webhook with
// Seq > after, in Seq order. A limit <= 0 returns them all.
func (s *Store) Pending(account, webhook string, after uint64, limit int) ([]Item, error) {
	var items []Item
	err := s.view(func(tx *bolt.Tx) error {
		q := sub(accountBucket(tx, account), bucketOutbox, []byte(webhook))
		if q == nil {
			return nil
		}
		var err error
		items, err = scan(q, account, webhook, after, limit)
		return err
	})
	if err != nil {
		return nil, wrapErr(err, "pending %s/%s", account, webhook)
	}
	return items, nil
}

// scan decodes up to limit (<= 0: all) records of q with Seq > after.
func scan(q *bolt.Bucket, account, webhook string, after uint64, limit int) ([]Item, error) {
	var items []Item
	c := q.Cursor()
	var k, v []byte
	if after == 0 {
		k, v = c.First()
	} else {
		k, v = c.Seek(u64(after + 1))
	}
	for ; k != nil && (limit <= 0 || len(items) < limit); k, v = c.Next() {
		seq, err := keyU64(k)
		if err != nil {
			return nil, err
		}
		it := Item{Seq: seq, Account: account, Webhook: webhook}
		if err := decodeItem(v, &it); err != nil {
			return nil, fmt.Errorf("seq %d: %w", it.Seq, err)
		}
		items = append(items, it)
	}
	return items, nil
}

// Delivered removes an item from the outbox. Concurrent calls are batched
// into shared transactions (groupCommit) for throughput. An item already
// gone (delivered before a restart, dropped) is not an error.
func (s *Store) Delivered(account, webhook string, seq uint64) error {
	err := s.groupDo(func(tx *bolt.Tx) error {
		q := sub(accountBucket(tx, account), bucketOutbox, []byte(webhook))
		if q == nil {
			return nil
		}
		return q.Delete(u64(seq))
	})
	if err != nil {
		return wrapErr(err, "delivered %s/%s seq %d", account, webhook, seq)
	}
	return nil
}

// DeliveredMany removes several items of one queue in one transaction, for
// a worker that acknowledges a run of deliveries at once.
func (s *Store) DeliveredMany(account, webhook string, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	err := s.groupDo(func(tx *bolt.Tx) error {
		q := sub(accountBucket(tx, account), bucketOutbox, []byte(webhook))
		if q == nil {
			return nil
		}
		for _, seq := range seqs {
			if err := q.Delete(u64(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapErr(err, "delivered %s/%s", account, webhook)
	}
	return nil
}

// getItem reads it.Account/it.Webhook/it.Seq from the named sub-bucket kind
// (outbox or dead); ErrNotFound when absent.
func getItem(tx *bolt.Tx, kind []byte, account, webhook string, seq uint64) (*bolt.Bucket, Item, error) {
	q := sub(accountBucket(tx, account), kind, []byte(webhook))
	var v []byte
	if q != nil {
		v = q.Get(u64(seq))
	}
	if v == nil {
		return nil, Item{}, fmt.Errorf("%w: %s %s/%s seq %d", ErrNotFound, kind, account, webhook, seq)
	}
	it := Item{Seq: seq, Account: account, Webhook: webhook}
	if err := decodeItem(v, &it); err != nil {
		return nil, Item{}, fmt.Errorf("%s %s/%s seq %d: %w", kind, account, webhook, seq, err)
	}
	return q, it, nil
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

// Reschedule records a failed attempt: it stores it.Attempts, FirstAttempt,
// NextAttempt, LastStatus and LastError for the item it.Seq. ErrNotFound
// when the item is no longer in the outbox.
func (s *Store) Reschedule(it Item) error {
	err := s.groupDo(func(tx *bolt.Tx) error {
		q, stored, err := getItem(tx, bucketOutbox, it.Account, it.Webhook, it.Seq)
		if err != nil {
			return rejected{err}
		}
		stored = withAttempt(stored, it)
		return q.Put(u64(it.Seq), encodeItem(&stored))
	})
	if err != nil {
		return wrapErr(err, "reschedule")
	}
	return nil
}

// Webhooks lists the account's webhooks that have items in the outbox, in
// name order; delivery uses it to find items of webhooks no longer configured.
func (s *Store) Webhooks(account string) ([]string, error) {
	var names []string
	err := s.view(func(tx *bolt.Tx) error {
		outbox := sub(accountBucket(tx, account), bucketOutbox)
		for _, w := range queueNames(outbox) {
			if k, _ := outbox.Bucket([]byte(w)).Cursor().First(); k != nil {
				names = append(names, w)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "webhooks of %s", account)
	}
	return names, nil
}
