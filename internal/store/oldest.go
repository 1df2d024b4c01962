package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OldestPending returns, for every account in the file, the detection time
// of each webhook queue's oldest pending event; a queue with nothing
// pending is left out. Seq follows detection (a retried dead letter keeps
// its own), so the oldest is the queue's first key: one seek and one
// record per queue however long the queues are, all in one transaction.
func (s *Store) OldestPending() (map[string]map[string]time.Time, error) {
	out := map[string]map[string]time.Time{}
	err := s.view(func(tx *bolt.Tx) error {
		for _, account := range accountNames(tx) {
			parent := sub(accountBucket(tx, account), bucketOutbox)
			for _, webhook := range queueNames(parent) {
				b := parent.Bucket([]byte(webhook))
				k, _ := b.Cursor().First()
				if k == nil {
					continue
				}
				seq, err := keyU64(k)
				if err != nil {
					return fmt.Errorf("%s/%s: %w", account, webhook, err)
				}
				it, _, err := attempt(b, seq)
				if err != nil {
					return fmt.Errorf("%s/%s: %w", account, webhook, err)
				}
				if out[account] == nil {
					out[account] = map[string]time.Time{}
				}
				out[account][webhook] = it.DetectedAt
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "oldest pending")
	}
	return out, nil
}
