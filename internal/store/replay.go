package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Replay puts events in the outbox of webhooks again, whether or not they
// were emitted before (an operator's `poller replay`): each gets a new Seq
// and keeps its event id, so a receiver that still holds it can drop it.
// Their history ids are recorded as seen at (an order.changed event's
// set, as a SetMark), so the poll never emits them on its own as well. An
// event that names webhooks (NewEvent.Webhooks) goes to those of webhooks
// only, and nowhere when there are none.
func (s *Store) Replay(account string, webhooks []string, evs []NewEvent, at time.Time) error {
	if err := checkEvents(evs, webhooks); err != nil {
		return fmt.Errorf("store: replay for %s: %w", account, err)
	}
	err := s.update(func(tx *bolt.Tx) error {
		acct, err := createAccount(tx, account)
		if err != nil {
			return err
		}
		seen := acct.Bucket(bucketSeen)
		stamp := u64(uint64(at.Unix()))
		for i := range evs {
			switch ne := &evs[i]; {
			case len(targets(ne, webhooks)) == 0:
			case changed(ne):
				if _, err := setSeen(acct, ne, at); err != nil {
					return err
				}
			default:
				if err := seen.Put(u64(uint64(ne.Event.Change.HistoryID)), stamp); err != nil {
					return err
				}
			}
		}
		return enqueue(acct, webhooks, evs)
	})
	return wrapErr(err, "replay for %s", account)
}
