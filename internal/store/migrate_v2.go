package store

import (
	"bytes"
	"cmp"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// migrateChunk is how many schema-1 items one migration transaction moves:
// memory and transaction size stay bounded however long the outbox is.
const migrateChunk = 1000

// bucketMigrateIDs (accounts/<name>/migrate_v2) maps an event id to the
// Seq of its event record while the account's schema-1 items are moved, so
// the items of one event share one record even when they fall in different
// chunks. It is deleted when the account is done.
var bucketMigrateIDs = []byte("migrate_v2")

// migrateV2 is migrations[1]: schema 1 kept each item with its whole event
// at outbox/<webhook>/<seq> or dead/<webhook>/<seq>, one seq per item.
// Items move in the order of their old seq (the detection order),
// migrateChunk per transaction. Each event gets one new Seq from the
// account sequence, above every old one, so in each bucket the items left
// to move are the prefix whose records are still of schema 1: a run killed
// between two transactions resumes there and moves nothing twice.
func migrateV2(db *bolt.DB) error {
	var accounts []string
	if err := db.View(func(tx *bolt.Tx) error {
		accounts = accountNames(tx)
		return nil
	}); err != nil {
		return err
	}
	for _, a := range accounts {
		for done := false; !done; {
			err := db.Update(func(tx *bolt.Tx) error {
				var err error
				done, err = migrateChunkV2(accountBucket(tx, a), migrateChunk)
				return err
			})
			if err != nil {
				return fmt.Errorf("account %s: %w", a, err)
			}
		}
	}
	return nil
}

// v1Item is a schema-1 item waiting to move.
type v1Item struct {
	kind    []byte // bucketOutbox or bucketDead
	webhook string
	oldSeq  uint64
	it      Item
}

// migrateChunkV2 moves up to n of acct's schema-1 items; done when none is
// left.
func migrateChunkV2(acct *bolt.Bucket, n int) (done bool, err error) {
	if err := createQueueBuckets(acct); err != nil {
		return false, err
	}
	ids, err := acct.CreateBucketIfNotExists(bucketMigrateIDs)
	if err != nil {
		return false, err
	}
	batch, err := oldItems(acct, n)
	if err != nil {
		return false, err
	}
	for i := range batch {
		o := &batch[i]
		q, err := queueOf(acct, o.webhook, true)
		if err != nil {
			return false, err
		}
		dead := bytes.Equal(o.kind, bucketDead)
		from := q.outbox
		if dead {
			from = q.dead
		}
		if err := from.Delete(u64(o.oldSeq)); err != nil {
			return false, err
		}
		if o.it.Seq, err = eventSeq(acct, ids, q, &o.it); err != nil {
			return false, err
		}
		if !dead {
			err = q.put(&o.it)
		} else if err = q.dead.Put(u64(o.it.Seq), encodeAttempt(&o.it)); err == nil {
			q.count(0, 1)
		}
		if err == nil {
			err = q.flush()
		}
		if err != nil {
			return false, fmt.Errorf("%s %s/%d: %w", o.kind, o.webhook, o.oldSeq, err)
		}
	}
	if len(batch) < n {
		return true, acct.DeleteBucket(bucketMigrateIDs)
	}
	return false, nil
}

// eventSeq returns the Seq of it's event record, storing the record the
// first time the event is met. An event id met again for a webhook that
// already holds it, pending or dead (an event detected twice under schema
// 1), gets a record of its own: one webhook has one item per Seq.
func eventSeq(acct, ids *bolt.Bucket, q *queue, it *Item) (uint64, error) {
	key := []byte(it.Event.ID)
	if v := ids.Get(key); len(key) > 0 && v != nil {
		seq, err := keyU64(v)
		if err != nil {
			return 0, err
		}
		if q.outbox.Get(v) == nil && q.dead.Get(v) == nil {
			return seq, nil
		}
	}
	seq, err := acct.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := acct.Bucket(bucketEvents).Put(u64(seq), encodeEvent(it)); err != nil {
		return 0, err
	}
	if len(key) == 0 {
		return seq, nil
	}
	return seq, ids.Put(key, u64(seq))
}

// oldItems reads up to n schema-1 items of acct, outbox and dead letters of
// every webhook merged in old seq order. Reading ends before anything is
// written: deleting under a live bbolt cursor can skip entries.
func oldItems(acct *bolt.Bucket, n int) ([]v1Item, error) {
	type source struct {
		kind    []byte
		webhook string
		c       *bolt.Cursor
		k, v    []byte
	}
	isV1 := func(v []byte) bool { return len(v) > 0 && v[0] == recordV1 }
	var srcs []*source
	for _, kind := range [][]byte{bucketOutbox, bucketDead} {
		parent := acct.Bucket(kind)
		for _, w := range queueNames(parent) {
			s := &source{kind: kind, webhook: w, c: parent.Bucket([]byte(w)).Cursor()}
			if s.k, s.v = s.c.First(); s.k != nil && isV1(s.v) {
				srcs = append(srcs, s)
			}
		}
	}
	var out []v1Item
	for len(out) < n {
		var next *source
		for _, s := range srcs {
			if s.k != nil && (next == nil || cmp.Or(bytes.Compare(s.k, next.k), cmp.Compare(string(s.kind), string(next.kind))) < 0) {
				next = s
			}
		}
		if next == nil {
			break
		}
		seq, err := keyU64(next.k)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", next.kind, next.webhook, err)
		}
		o := v1Item{kind: next.kind, webhook: next.webhook, oldSeq: seq}
		if err := decodeV1(next.v, &o.it); err != nil {
			return nil, fmt.Errorf("%s/%s seq %d: %w", next.kind, next.webhook, seq, err)
		}
		out = append(out, o)
		if next.k, next.v = next.c.Next(); next.k != nil && !isV1(next.v) {
			next.k = nil // the rest of this bucket is schema 2
		}
	}
	return out, nil
}
