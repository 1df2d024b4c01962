package store

import bolt "go.etcd.io/bbolt"

// Counts returns an account's outbox and dead-letter sizes over all webhooks.
func (s *Store) Counts(account string) (pending, dead int, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		acct := accountBucket(tx, account)
		pending = countQueues(sub(acct, bucketOutbox))
		dead = countQueues(sub(acct, bucketDead))
		return nil
	})
	if err != nil {
		return 0, 0, wrapErr(err, "counts of %s", account)
	}
	return pending, dead, nil
}

// countQueues sums the keys of b's sub-buckets. Stats walks pages, not
// keys, so this stays cheap for a long outbox.
func countQueues(b *bolt.Bucket) int {
	n := 0
	for _, w := range queueNames(b) {
		n += b.Bucket([]byte(w)).Stats().KeyN
	}
	return n
}
