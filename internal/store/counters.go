package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// QueueCount is what one webhook's queue of an account holds.
type QueueCount struct {
	Webhook string `json:"webhook"`
	Pending int    `json:"pending"`
	Dead    int    `json:"dead"`
}

// counts/<webhook> holds two big-endian uint64s, pending and dead. They
// change in the same transaction as the items they count (queue.count), so
// reading them costs one Get per webhook however long the queues are. A
// queue with neither has no key.

// count adds dPending and dDead to the queue's counters. The changes are
// kept in the queue until flush writes them (once per operation, not once
// per item: a poll commits its events with one counter write per webhook).
func (q *queue) count(dPending, dDead int) {
	q.dPending += dPending
	q.dDead += dDead
}

// flush writes the counter changes count kept; every write operation calls
// it before its transaction ends.
func (q *queue) flush() error {
	if q.dPending == 0 && q.dDead == 0 {
		return nil
	}
	b := q.acct.Bucket(bucketCounts)
	c, err := decodeCount(q.name, b.Get(q.name))
	if err != nil {
		return err
	}
	c.Pending += q.dPending
	c.Dead += q.dDead
	q.dPending, q.dDead = 0, 0
	if c.Pending < 0 || c.Dead < 0 {
		return fmt.Errorf("%w: counts of webhook %s would drop below zero", ErrCorrupt, q.name)
	}
	if c.Pending == 0 && c.Dead == 0 {
		return b.Delete(q.name)
	}
	v := binary.BigEndian.AppendUint64(u64(uint64(c.Pending)), uint64(c.Dead))
	return b.Put(q.name, v)
}

func decodeCount(webhook, v []byte) (QueueCount, error) {
	c := QueueCount{Webhook: string(webhook)}
	switch len(v) {
	case 0:
	case 16:
		c.Pending = int(binary.BigEndian.Uint64(v))
		c.Dead = int(binary.BigEndian.Uint64(v[8:]))
	default:
		return c, fmt.Errorf("%w: counts of webhook %s have %d bytes", ErrCorrupt, webhook, len(v))
	}
	return c, nil
}

// queueCounts lists the counters of acct (nil: none), in webhook name order.
func queueCounts(acct *bolt.Bucket) ([]QueueCount, error) {
	b := sub(acct, bucketCounts)
	if b == nil {
		return nil, nil
	}
	var out []QueueCount
	err := b.ForEach(func(k, v []byte) error {
		c, err := decodeCount(k, v)
		out = append(out, c)
		return err
	})
	return out, err
}

// QueueCounts returns what each webhook queue of account holds, pending or
// dead, in webhook name order; queues holding nothing are left out. It
// reads one counter per webhook.
func (s *Store) QueueCounts(account string) ([]QueueCount, error) {
	var out []QueueCount
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = queueCounts(accountBucket(tx, account))
		return err
	})
	if err != nil {
		return nil, wrapErr(err, "counts of %s", account)
	}
	return out, nil
}

// Counts returns an account's outbox and dead-letter sizes over all
// webhooks, from the counters.
func (s *Store) Counts(account string) (pending, dead int, err error) {
	qs, err := s.QueueCounts(account)
	if err != nil {
		return 0, 0, err
	}
	pending, dead = Overview{Queues: qs}.Totals()
	return pending, dead, nil
}

// Overview is an account's state and queue counters, read together.
type Overview struct {
	State  AccountState
	Queues []QueueCount // as QueueCounts
}

// Overviews reads the counters of every account with state in the file,
// and with state its state too, in one read transaction: status and the
// gauges cost one transaction however many accounts there are.
func (s *Store) Overviews(state bool) (map[string]Overview, error) {
	out := map[string]Overview{}
	err := s.view(func(tx *bolt.Tx) error {
		for _, name := range accountNames(tx) {
			acct := accountBucket(tx, name)
			var o Overview
			if b := acct.Bucket(bucketState); b != nil && state {
				var err error
				if o.State, err = readState(b); err != nil {
					return fmt.Errorf("state of %s: %w", name, err)
				}
			}
			qs, err := queueCounts(acct)
			if err != nil {
				return fmt.Errorf("counts of %s: %w", name, err)
			}
			o.Queues = qs
			out[name] = o
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "overviews")
	}
	return out, nil
}

// Totals sums the queues' pending and dead counts.
func (o Overview) Totals() (pending, dead int) {
	for _, q := range o.Queues {
		pending += q.Pending
		dead += q.Dead
	}
	return pending, dead
}
