package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyRemoved, in an account's state bucket: when the account left the
// config and from when its pending events are dead-lettered, two
// big-endian uint64 unix nanoseconds. Absent while the account is
// configured.
var keyRemoved = []byte("removed")

// ReasonAccountRemoved is the dead-letter reason of the pending events of
// an account that left the config and stayed out for its webhooks' longest
// max_age, or whose pending events an operator dropped (DeadLetterPending's
// callers: the daemon and `poller dlq drop`). The other reasons are
// delivery's (package deliver).
const ReasonAccountRemoved = "account removed"

// Removal records that an account left the config.
type Removal struct {
	At       time.Time `json:"at"`       // when the daemon first ran without it
	Deadline time.Time `json:"deadline"` // its pending events are dead-lettered from then on
}

// IsZero reports that no removal is recorded.
func (r Removal) IsZero() bool { return r.At.IsZero() }

func readRemoval(b *bolt.Bucket) (Removal, error) {
	v := b.Get(keyRemoved)
	switch len(v) {
	case 0:
		return Removal{}, nil
	case 16:
		return Removal{
			At:       time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
			Deadline: time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
		}, nil
	}
	return Removal{}, fmt.Errorf("%w: removal mark of %d bytes", ErrCorrupt, len(v))
}

// MarkRemoved records that account left the config at at, its pending
// events to be dead-lettered from deadline on, and returns the mark in
// force: one already recorded stays, so neither a restart nor another
// reload without the account moves the deadline. An account without state
// in the file gets no mark (zero Removal).
func (s *Store) MarkRemoved(account string, at, deadline time.Time) (Removal, error) {
	var r Removal
	err := s.update(func(tx *bolt.Tx) error {
		acct := accountBucket(tx, account)
		if acct == nil {
			return nil
		}
		b, err := acct.CreateBucketIfNotExists(bucketState)
		if err != nil {
			return err
		}
		if r, err = readRemoval(b); err != nil || !r.IsZero() {
			return err
		}
		r = Removal{At: at.UTC(), Deadline: deadline.UTC()}
		v := binary.BigEndian.AppendUint64(u64(uint64(at.UnixNano())), uint64(deadline.UnixNano()))
		return b.Put(keyRemoved, v)
	})
	if err != nil {
		return Removal{}, wrapErr(err, "mark %s removed", account)
	}
	return r, nil
}

// ClearRemoved forgets account's removal mark: it is in the config again.
func (s *Store) ClearRemoved(account string) error {
	err := s.update(func(tx *bolt.Tx) error {
		if b := sub(accountBucket(tx, account), bucketState); b != nil && b.Get(keyRemoved) != nil {
			return b.Delete(keyRemoved)
		}
		return nil
	})
	return wrapErr(err, "clear the removal of %s", account)
}

// DeadLetterPending dead-letters up to limit of account's pending items,
// of any webhook, with reason, in one transaction, and returns them (none:
// its outbox is empty). For an account that left the config: nothing
// else moves its items, and an item that moved meanwhile (a concurrent
// call) is read again.
func (s *Store) DeadLetterPending(account, reason string, at time.Time, limit int) ([]Item, error) {
	qs, err := s.QueueCounts(account)
	if err != nil {
		return nil, err
	}
	for _, q := range qs {
		if q.Pending == 0 {
			continue
		}
		for try := 1; ; try++ {
			items, err := s.Pending(account, q.Webhook, 0, limit)
			if err != nil {
				return nil, err
			}
			if len(items) == 0 {
				break
			}
			err = s.DeadLetter(reason, at, items...)
			if errors.Is(err, ErrNotFound) && try < 3 {
				continue
			}
			if err != nil {
				return nil, err
			}
			for i := range items {
				items[i].DeadAt, items[i].DeadReason = at, reason
			}
			return items, nil
		}
	}
	return nil, nil
}
