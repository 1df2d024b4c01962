package store

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeadLetter moves an item from the outbox to the account's dead letters,
// keeping its Seq and the attempt bookkeeping of it. ErrNotFound when the
// item is no longer in the outbox.
func (s *Store) DeadLetter(it Item, reason string, at time.Time) error {
	err := s.groupDo(func(tx *bolt.Tx) error {
		q, stored, err := getItem(tx, bucketOutbox, it.Account, it.Webhook, it.Seq)
		if err != nil {
			return rejected{err}
		}
		stored = withAttempt(stored, it)
		stored.DeadAt = at
		stored.DeadReason = reason
		dead, err := accountBucket(tx, it.Account).Bucket(bucketDead).CreateBucketIfNotExists([]byte(it.Webhook))
		if err != nil {
			return err
		}
		if err := dead.Put(u64(it.Seq), encodeItem(&stored)); err != nil {
			return err
		}
		return q.Delete(u64(it.Seq))
	})
	if err != nil {
		return wrapErr(err, "dead letter")
	}
	return nil
}

// accountNames lists accounts/ in key order.
// deadOf lists one account's dead letters over all webhooks in Seq order.
func deadOf(tx *bolt.Tx, account string) ([]Item, error) {
	dead := sub(accountBucket(tx, account), bucketDead)
	var items []Item
	for _, w := range queueNames(dead) {
		got, err := scan(dead.Bucket([]byte(w)), account, w, 0, 0)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", account, w, err)
		}
		items = append(items, got...)
	}
	slices.SortFunc(items, func(a, b Item) int {
		if a.Seq != b.Seq {
			return cmp.Compare(a.Seq, b.Seq)
		}
		return cmp.Compare(a.Webhook, b.Webhook)
	})
	return items, nil
}

// Dead lists an account's dead letters in Seq order ("" lists every
// account, grouped by account in name order).
func (s *Store) Dead(account string) ([]Item, error) {
	var items []Item
	err := s.view(func(tx *bolt.Tx) error {
		accounts := []string{account}
		if account == "" {
			accounts = accountNames(tx)
		}
		for _, a := range accounts {
			got, err := deadOf(tx, a)
			if err != nil {
				return err
			}
			items = append(items, got...)
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "dead letters")
	}
	return items, nil
}

// selectDead returns the dead letters of account ("" every account) whose
// event id is in ids (none: all). An id matching nothing is ErrNotFound, so
// an operator's typo changes nothing.
func selectDead(tx *bolt.Tx, account string, ids []string) ([]Item, error) {
	accounts := []string{account}
	if account == "" {
		accounts = accountNames(tx)
	}
	var all []Item
	for _, a := range accounts {
		got, err := deadOf(tx, a)
		if err != nil {
			return nil, err
		}
		all = append(all, got...)
	}
	if len(ids) == 0 {
		return all, nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = false
	}
	var picked []Item
	for _, it := range all {
		if _, ok := want[it.Event.ID]; ok {
			want[it.Event.ID] = true
			picked = append(picked, it)
		}
	}
	for _, id := range ids {
		if !want[id] {
			return nil, fmt.Errorf("%w: dead letter %q", ErrNotFound, id)
		}
	}
	return picked, nil
}

// RetryDead moves dead letters back to the outbox with attempts reset, due
// now, under their original Seq so an order's events keep their order. ids
// are event ids; none means all of the account ("" every account). An id
// matching no dead letter is ErrNotFound and nothing moves. Returns the
// items moved.
func (s *Store) RetryDead(account string, ids []string) ([]Item, error) {
	var moved []Item
	err := s.update(func(tx *bolt.Tx) error {
		items, err := selectDead(tx, account, ids)
		if err != nil {
			return err
		}
		moved = moved[:0]
		for _, it := range items {
			acct := accountBucket(tx, it.Account)
			q, err := acct.Bucket(bucketOutbox).CreateBucketIfNotExists([]byte(it.Webhook))
			if err != nil {
				return err
			}
			it.Attempts, it.LastStatus = 0, 0
			it.FirstAttempt, it.NextAttempt, it.DeadAt = time.Time{}, time.Time{}, time.Time{}
			it.LastError, it.DeadReason = "", ""
			if err := q.Put(u64(it.Seq), encodeItem(&it)); err != nil {
				return err
			}
			if err := sub(acct, bucketDead, []byte(it.Webhook)).Delete(u64(it.Seq)); err != nil {
				return err
			}
			moved = append(moved, it)
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "retry dead letters")
	}
	return moved, nil
}

// DropDead deletes dead letters (event ids; none means all of the account,
// "" every account). An id matching no dead letter is ErrNotFound and
// nothing is deleted.
func (s *Store) DropDead(account string, ids []string) (int, error) {
	var n int
	err := s.update(func(tx *bolt.Tx) error {
		items, err := selectDead(tx, account, ids)
		if err != nil {
			return err
		}
		n = 0
		for _, it := range items {
			if err := sub(accountBucket(tx, it.Account), bucketDead, []byte(it.Webhook)).Delete(u64(it.Seq)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, wrapErr(err, "drop dead letters")
	}
	return n, nil
}
