package store

import (
	"encoding/binary"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// encodeV1 is the schema-1 item encoder, kept for writing schema-1 files
// in migration tests (the binary only ever decodes them now).
func encodeV1(it *Item) []byte {
	b := appendEventFields([]byte{recordV1}, &it.Event)
	b = binary.AppendVarint(b, it.OrderID)
	b = appendTime(b, it.DetectedAt)
	return appendAttemptFields(b, it)
}

// v1Put is one schema-1 item to write: in dead/ when dead, else in outbox/.
type v1Put struct {
	it   Item // Account, Webhook and Seq name its place
	dead bool
}

// writeV1 writes a schema-1 file at path, the way the schema-1 code laid it
// out: meta/schema_version 1, accounts/<a>/{state,seen,outbox,dead}, items
// under their Seq and the account sequence at the highest Seq; 10,000
// items per transaction.
func writeV1(t testing.TB, path string, puts []v1Put) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for first := true; first || len(puts) > 0; first = false {
		batch := puts[:min(len(puts), 10_000)]
		puts = puts[len(batch):]
		if err := db.Update(func(tx *bolt.Tx) error { return putV1(tx, batch) }); err != nil {
			t.Fatal(err)
		}
	}
}

func putV1(tx *bolt.Tx, puts []v1Put) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(keySchema, u64(1)); err != nil {
		return err
	}
	root, err := tx.CreateBucketIfNotExists(bucketAccounts)
	if err != nil {
		return err
	}
	for _, p := range puts {
		acct, err := root.CreateBucketIfNotExists([]byte(p.it.Account))
		if err != nil {
			return err
		}
		for _, n := range [][]byte{bucketState, bucketSeen, bucketOutbox, bucketDead} {
			if _, err := acct.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		kind := bucketOutbox
		if p.dead {
			kind = bucketDead
		}
		q, err := acct.Bucket(kind).CreateBucketIfNotExists([]byte(p.it.Webhook))
		if err != nil {
			return err
		}
		if err := q.Put(u64(p.it.Seq), encodeV1(&p.it)); err != nil {
			return err
		}
		if p.it.Seq > acct.Sequence() {
			if err := acct.SetSequence(p.it.Seq); err != nil {
				return err
			}
		}
	}
	return nil
}
