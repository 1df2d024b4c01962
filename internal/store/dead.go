package store

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeadLetter moves items from the outbox to the dead letters with reason
// and time at, in one transaction. Each keeps its Seq and takes the
// attempt bookkeeping (Attempts, FirstAttempt, NextAttempt, LastStatus,
// LastError) of its argument; its order's next item becomes the head.
// An item's Log goes to its event's attempt log. ErrNotFound, and nothing
// moves, when one of them is no longer in the outbox.
func (s *Store) DeadLetter(reason string, at time.Time, items ...Item) error {
	err := s.groupDo(func(tx *bolt.Tx) error {
		// Read them all first: a missing or damaged one fails this call
		// alone, before anything is written.
		type key struct {
			account, webhook string
			seq              uint64
		}
		type move struct{ stored, upd Item }
		moves := make([]move, 0, len(items))
		seen := make(map[key]bool, len(items))
		for _, it := range items {
			k := key{it.Account, it.Webhook, it.Seq}
			if seen[k] {
				continue // listed twice
			}
			seen[k] = true
			q, err := queueOf(accountBucket(tx, it.Account), it.Webhook, false)
			if err != nil {
				return err
			}
			stored, ok, err := attempt(q.outbox, it.Seq)
			if err == nil && !ok {
				err = fmt.Errorf("%w: outbox %s/%s seq %d", ErrNotFound, it.Account, it.Webhook, it.Seq)
			}
			if err != nil {
				return rejected{err}
			}
			moves = append(moves, move{stored, it})
		}
		for _, m := range moves {
			q, err := queueOf(accountBucket(tx, m.upd.Account), m.upd.Webhook, true)
			if err != nil {
				return err
			}
			if err := q.remove(&m.stored); err != nil {
				return err
			}
			rec := withAttempt(m.stored, m.upd)
			rec.DeadAt, rec.DeadReason = at, reason
			if err := q.dead.Put(u64(rec.Seq), encodeAttempt(&rec)); err != nil {
				return err
			}
			q.count(0, 1)
			if err := q.flush(); err != nil {
				return err
			}
			if err := logAttempt(q.acct, rec.Seq, m.upd.Log); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapErr(err, "dead letter")
	}
	return nil
}

// deadOf lists one account's dead letters over all webhooks in Seq order.
func deadOf(tx *bolt.Tx, account string) ([]Item, error) {
	acct := accountBucket(tx, account)
	var items []Item
	for _, w := range queueNames(sub(acct, bucketDead)) {
		q, err := queueOf(acct, w, false)
		if err != nil {
			return nil, err
		}
		c := q.dead.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			seq, err := keyU64(k)
			if err != nil {
				return nil, fmt.Errorf("dead %s/%s: %w", account, w, err)
			}
			it, _, err := q.item(q.dead, account, seq)
			if err != nil {
				return nil, fmt.Errorf("dead %s/%s: %w", account, w, err)
			}
			items = append(items, it)
		}
	}
	slices.SortFunc(items, func(a, b Item) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Webhook, b.Webhook))
	})
	return items, nil
}

// selectDead returns the dead letters of account ("" every account,
// grouped by account in name order) whose event id is in ids (none: all),
// in Seq order. An id matching nothing is ErrNotFound, so an operator's
// typo changes nothing. Listing, retrying and dropping all select here.
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

// Dead lists the dead letters of account ("" every account, grouped by
// account in name order), in Seq order.
func (s *Store) Dead(account string) ([]Item, error) {
	var items []Item
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		items, err = selectDead(tx, account, nil)
		return err
	})
	if err != nil {
		return nil, wrapErr(err, "dead letters")
	}
	return items, nil
}

// RetryDead moves dead letters back to the outbox with attempts reset,
// due at once, under their original Seq so an order's events keep their
// order. ids are event ids; none means all of the account ("" every
// account). configured reports whether a webhook is in the config: a dead
// letter of any other webhook is ErrNotConfigured, since its events must
// never go to another URL. On any error nothing moves. Returns the items
// moved.
func (s *Store) RetryDead(account string, ids []string, configured func(account, webhook string) bool) ([]Item, error) {
	var moved []Item
	err := s.update(func(tx *bolt.Tx) error {
		items, err := selectDead(tx, account, ids)
		if err != nil {
			return err
		}
		for _, it := range items {
			if !configured(it.Account, it.Webhook) {
				return fmt.Errorf("%w: dead letter %s is for webhook %q of account %s", ErrNotConfigured, it.Event.ID, it.Webhook, it.Account)
			}
		}
		moved = moved[:0]
		for _, it := range items {
			q, err := queueOf(accountBucket(tx, it.Account), it.Webhook, true)
			if err != nil {
				return err
			}
			if err := q.dead.Delete(u64(it.Seq)); err != nil {
				return err
			}
			q.count(0, -1)
			it.Attempts, it.LastStatus = 0, 0
			it.FirstAttempt, it.NextAttempt, it.DeadAt = time.Time{}, time.Time{}, time.Time{}
			it.LastError, it.DeadReason = "", ""
			if err := q.put(&it); err != nil {
				return err
			}
			if err := q.flush(); err != nil {
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
// "" every account), and their events once nothing refers to them. An id
// matching no dead letter is ErrNotFound and nothing is deleted.
func (s *Store) DropDead(account string, ids []string) (int, error) {
	var n int
	err := s.update(func(tx *bolt.Tx) error {
		items, err := selectDead(tx, account, ids)
		if err != nil {
			return err
		}
		for _, it := range items {
			acct := accountBucket(tx, it.Account)
			q, err := queueOf(acct, it.Webhook, false)
			if err != nil {
				return err
			}
			if err := q.dead.Delete(u64(it.Seq)); err != nil {
				return err
			}
			q.count(0, -1)
			if err := q.flush(); err != nil {
				return err
			}
			if _, err := releaseEvent(acct, it.Seq); err != nil {
				return err
			}
		}
		n = len(items)
		return nil
	})
	if err != nil {
		return 0, wrapErr(err, "drop dead letters")
	}
	return n, nil
}
