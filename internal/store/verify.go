package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Report is what Verify and VerifyFile found.
type Report struct {
	Path     string   `json:"path"`
	Size     int64    `json:"size"`     // bytes
	TxID     int      `json:"txid"`     // the transaction checked
	Schema   uint64   `json:"schema"`   // schema version of the file
	Accounts int      `json:"accounts"` // accounts with state
	Pending  int      `json:"pending"`  // outbox items, all webhooks
	Dead     int      `json:"dead"`     // dead letters, all webhooks
	Problems []string `json:"problems"` // what is wrong; none: the file is sound
	// Note says what was not checked (an older schema's queues).
	Note string `json:"note,omitempty"`
}

// maxCheckErrors bounds how many of bbolt's consistency errors a report
// lists: one damaged page can cause thousands.
const maxCheckErrors = 20

// VerifyFile checks the state file at path, which no daemon may hold
// (ErrTimeout after timeout): its structure as Open checks it, bbolt's
// consistency check (every page reachable or free, once), and the
// poller's own invariants (see verifyTx). A damaged file is a report
// with problems, not an error; errors are what kept the check from
// running. The file is only read.
func VerifyFile(path string, timeout time.Duration) (Report, error) {
	r := Report{Path: path, Problems: []string{}}
	fi, err := os.Stat(path)
	if err != nil {
		return r, fmt.Errorf("store: verify: %w", err)
	}
	r.Size = fi.Size()
	db, err := openCurrent(path, Options{ReadOnly: true, Timeout: timeout})
	if de, ok := errors.AsType[*DamageError](err); ok {
		r.Problems = append(r.Problems, de.Problem)
		return r, nil
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return r, &lockedError{path: path}
	}
	if err != nil {
		return r, wrapErr(err, "verify %s", path)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		// Safe only now: the file's pages passed checkFile, and with a
		// shared lock no writer runs beside the check.
		for err := range tx.Check() {
			if len(r.Problems) == maxCheckErrors {
				r.Problems = append(r.Problems, "more bbolt consistency errors left out")
				return nil
			}
			r.Problems = append(r.Problems, "bbolt: "+err.Error())
		}
		return verifyTx(tx, &r)
	})
	return r, wrapErr(err, "verify %s", path)
}

// Verify checks the open store (the running daemon's) in one read
// transaction: the pages of that transaction's snapshot as Open checks a
// file (read through a descriptor of their own; writers never touch the
// pages of a transaction still open) and the poller's invariants.
// bbolt's own consistency check is left out: it reads the free-page list
// that concurrent writes change; VerifyFile runs it.
func (s *Store) Verify() (Report, error) {
	r := Report{Path: s.db.Path(), Problems: []string{}}
	err := s.view(func(tx *bolt.Tx) error {
		r.Size = tx.Size()
		f, err := os.Open(s.db.Path())
		if err != nil {
			return err
		}
		defer f.Close()
		pageSize := uint64(s.db.Info().PageSize)
		w := walker{f: f, meta: &fileMeta{
			pageSize: pageSize,
			root:     uint64(tx.Cursor().Bucket().RootPage()),
			freelist: noFreelist, // the daemon keeps it in memory
			pgid:     uint64(tx.Size()) / pageSize,
		}}
		w.reached = make([]uint64, (w.meta.pgid+63)/64)
		if err := w.walk(); err != nil {
			if p, ok := errors.AsType[problem](err); ok {
				r.Problems = append(r.Problems, string(p))
				return nil
			}
			return err
		}
		return verifyTx(tx, &r)
	})
	return r, wrapErr(err, "verify")
}

// verifyTx checks the poller's invariants in tx and counts what the file
// holds: a known schema version; per account a state record that decodes,
// 8-byte seen ids, order marks that decode, a sequence above every Seq in
// use (a new event must never take an existing one's key), and the queue
// invariants of checkAccount.
func verifyTx(tx *bolt.Tx, r *Report) error {
	r.TxID = tx.ID()
	v, err := schemaVersion(tx)
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
		return nil
	}
	r.Schema = v
	switch {
	case v > latestSchema():
		r.Problems = append(r.Problems, fmt.Sprintf("schema version %d is newer than this binary's %d: verify it with the newer poller", v, latestSchema()))
		return nil
	case v < latestSchema():
		r.Note = fmt.Sprintf("schema version %d is older than this binary's %d: the accounts were not checked; the daemon upgrades the file at its next start, verify it then", v, latestSchema())
		return nil
	}
	if tx.Bucket(bucketAccounts) == nil {
		r.Problems = append(r.Problems, "the accounts bucket is missing")
		return nil
	}
	for _, name := range accountNames(tx) {
		r.Accounts++
		pending, dead, err := checkAccount(accountBucket(tx, name))
		r.Pending += pending
		r.Dead += dead
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("account %s: %v", name, err))
		}
	}
	return nil
}

// checkAccount checks one account (see verifyTx) and the layout's queue
// invariants: for every webhook and order with pending items exactly one
// of them (the lowest Seq) is in due, under its due time; an item without
// an order id is always in due; chain holds exactly the pending items with
// an order id; every record decodes; counts equal the real number of keys;
// the event records are exactly the Seqs some outbox or dead item refers
// to. It returns the pending and dead items it found and the first problem.
func checkAccount(acct *bolt.Bucket) (pending, dead int, err error) {
	for _, n := range [][]byte{bucketState, bucketSeen, bucketOrders, bucketEvents, bucketOutbox, bucketDue, bucketChain, bucketDead, bucketCounts} {
		if acct.Bucket(n) == nil {
			return 0, 0, fmt.Errorf("bucket %s is missing", n)
		}
	}
	if _, err := readState(acct.Bucket(bucketState)); err != nil {
		return 0, 0, fmt.Errorf("state: %w", err)
	}
	if err := acct.Bucket(bucketSeen).ForEach(func(k, _ []byte) error {
		_, err := keyU64(k)
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("seen: %w", err)
	}
	if err := acct.Bucket(bucketOrders).ForEach(func(k, v []byte) error {
		id, err := keyU64(k)
		if err == nil {
			_, err = decodeOrderMark(int64(id), v)
		}
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("order marks: %w", err)
	}
	webhooks := map[string]bool{}
	for _, kind := range [][]byte{bucketOutbox, bucketDue, bucketChain, bucketDead} {
		for _, w := range queueNames(sub(acct, kind)) {
			webhooks[w] = true
		}
	}
	counts, err := queueCounts(acct)
	if err != nil {
		return 0, 0, err
	}
	gotCounts := map[string]QueueCount{}
	for _, c := range counts {
		webhooks[c.Webhook] = true
		gotCounts[c.Webhook] = c
	}
	referenced := map[uint64]bool{}
	for _, w := range slices.Sorted(maps.Keys(webhooks)) {
		p, d, err := checkQueue(acct, w, referenced)
		pending += p
		dead += d
		if err != nil {
			return pending, dead, fmt.Errorf("webhook %s: %w", w, err)
		}
		if c := gotCounts[w]; c.Pending != p || c.Dead != d {
			return pending, dead, fmt.Errorf("webhook %s: counts say %d pending, %d dead; the queues hold %d, %d", w, c.Pending, c.Dead, p, d)
		}
	}
	events := map[uint64]bool{}
	if err := acct.Bucket(bucketEvents).ForEach(func(k, _ []byte) error {
		seq, err := keyU64(k)
		events[seq] = true
		return err
	}); err != nil {
		return pending, dead, err
	}
	for seq := range referenced {
		if !events[seq] {
			return pending, dead, fmt.Errorf("seq %d is queued but has no event record", seq)
		}
	}
	for seq := range events {
		if !referenced[seq] {
			return pending, dead, fmt.Errorf("event record seq %d is referred to by no queue", seq)
		}
		if seq > acct.Sequence() {
			return pending, dead, fmt.Errorf("event record seq %d is above the account's sequence %d", seq, acct.Sequence())
		}
	}
	return pending, dead, checkLog(acct, events)
}

// checkLog checks that every attempt-log record decodes and belongs to an
// event still held: a log is deleted with its event.
func checkLog(acct *bolt.Bucket, events map[uint64]bool) error {
	b := acct.Bucket(bucketAttempts)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		if len(k) < 8 {
			return fmt.Errorf("attempt log key %x is too short", k)
		}
		seq := binary.BigEndian.Uint64(k[:8])
		if !events[seq] {
			return fmt.Errorf("attempt log of seq %d outlives its event", seq)
		}
		if _, err := decodeLog(v); err != nil {
			return fmt.Errorf("attempt log of seq %d: %w", seq, err)
		}
		return nil
	})
}

// checkQueue checks one webhook's queue of acct (see checkAccount), adding
// the Seqs it refers to to referenced.
func checkQueue(acct *bolt.Bucket, w string, referenced map[uint64]bool) (pending, dead int, err error) {
	q, err := queueOf(acct, w, false)
	if err != nil {
		return 0, 0, err
	}
	wantDue, wantChain := map[string]bool{}, map[string]bool{}
	heads := map[int64]uint64{} // order -> lowest pending Seq
	var items []Item
	if q.outbox != nil {
		if err := q.outbox.ForEach(func(k, _ []byte) error {
			seq, err := keyU64(k)
			if err != nil {
				return err
			}
			it, _, err := q.item(q.outbox, "", seq)
			if err != nil {
				return err
			}
			items = append(items, it)
			referenced[seq] = true
			if it.OrderID == 0 {
				wantDue[string(dueKey(dueAt(&it), seq))] = true
				return nil
			}
			wantChain[string(chainKey(it.OrderID, seq))] = true
			if h, ok := heads[it.OrderID]; !ok || seq < h {
				heads[it.OrderID] = seq
			}
			return nil
		}); err != nil {
			return len(items), 0, fmt.Errorf("outbox: %w", err)
		}
	}
	for _, it := range items {
		if it.OrderID != 0 && heads[it.OrderID] == it.Seq {
			wantDue[string(dueKey(dueAt(&it), it.Seq))] = true
		}
	}
	if err := sameKeys("due", q.due, wantDue); err != nil {
		return len(items), 0, err
	}
	if err := sameKeys("chain", q.chain, wantChain); err != nil {
		return len(items), 0, err
	}
	if q.dead != nil {
		if err := q.dead.ForEach(func(k, _ []byte) error {
			seq, err := keyU64(k)
			if err != nil {
				return err
			}
			if _, _, err := q.item(q.dead, "", seq); err != nil {
				return err
			}
			referenced[seq] = true
			dead++
			return nil
		}); err != nil {
			return len(items), dead, fmt.Errorf("dead: %w", err)
		}
	}
	return len(items), dead, nil
}

// sameKeys compares b's keys (nil b: none) with want and names the first
// difference.
func sameKeys(what string, b *bolt.Bucket, want map[string]bool) error {
	got := 0
	if b != nil {
		err := b.ForEach(func(k, _ []byte) error {
			got++
			if !want[string(k)] {
				return fmt.Errorf("%s holds key %x that no pending item has", what, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if got != len(want) {
		return fmt.Errorf("%s holds %d keys, the pending items need %d", what, got, len(want))
	}
	return nil
}
