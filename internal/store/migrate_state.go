package store

import (
	bolt "go.etcd.io/bbolt"
)

// migrateStartID records start_id = cursor for every initialized account
// that has no start_id, and creates the order marks bucket. It is one small
// write per account and idempotent.
func migrateStartID(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range accountNames(tx) {
			acct := accountBucket(tx, name)
			if _, err := acct.CreateBucketIfNotExists(bucketOrders); err != nil {
				return err
			}
			state := acct.Bucket(bucketState)
			if state == nil || state.Get(keyStartID) != nil {
				continue
			}
			st, err := readState(state)
			if err != nil {
				return err
			}
			if !st.Initialized {
				continue
			}
			st.StartID = st.Cursor
			if err := writeState(state, st); err != nil {
				return err
			}
		}
		return nil
	})
}
