// Package store keeps the poller's durable state in one bbolt file: per
// account a cursor, the history ids already turned into events (seen), an
// outbox per webhook and dead letters. A poll's events and its cursor move
// are written in one transaction, so a crash can never lose a transition.
//
// Layout (every integer key big-endian uint64):
//
//	meta/schema_version
//	accounts/<name>/state/{cursor, initialized, marks, last_success}
//	accounts/<name>/seen/<history id>          -> empty
//	accounts/<name>/outbox/<webhook>/<seq>     -> item record
//	accounts/<name>/dead/<webhook>/<seq>       -> item record with DeadAt, DeadReason
//
// Seq comes from the account bucket's sequence, so it is the detection
// order across all of the account's webhooks.
package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// Errors, compared with errors.Is.
var (
	// ErrTimeout: the file is locked by another process (usually the running daemon).
	// Errors carrying it also match bbolt's errors.ErrTimeout.
	ErrTimeout = errors.New("store: database is locked by another process")
	// ErrSchemaTooNew: the file was written by a newer poller.
	ErrSchemaTooNew = errors.New("store: schema version is newer than this binary")
	// ErrNotFound: no such account, item or dead letter.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt: a record in the file cannot be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
)

// FileName is the database file inside state_dir.
const FileName = "poller.db"

// Bucket and key names.
var (
	bucketMeta     = []byte("meta")
	keySchema      = []byte("schema_version")
	bucketAccounts = []byte("accounts")
	bucketState    = []byte("state")
	bucketSeen     = []byte("seen")
	bucketOutbox   = []byte("outbox")
	bucketDead     = []byte("dead")

	keyCursor      = []byte("cursor")
	keyInitialized = []byte("initialized")
	keyMarks       = []byte("marks")
	keyLastSuccess = []byte("last_success")
)

// migrations[i] upgrades schema version i to i+1. Append only: never edit
// or reorder a released step, since files in the field already ran it.
var migrations = []func(*bolt.Tx) error{
	// 1: the bucket layout.
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketAccounts)
		return err
	},
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() uint64 { return uint64(len(migrations)) }

// Options for Open.
type Options struct {
	Timeout  time.Duration // lock wait; default 1s
	ReadOnly bool
}

// Store is an open poller.db. Safe for concurrent use.
type Store struct {
	db     *bolt.DB
	group  groupCommit
	path   string
	closed atomic.Bool
}

// lockedError wraps both ErrTimeout and bbolt's own timeout error.
type lockedError struct{ path string }

func (e *lockedError) Error() string { return ErrTimeout.Error() + ": " + e.path }

func (e *lockedError) Unwrap() []error { return []error{ErrTimeout, berrors.ErrTimeout} }

// Open opens or creates path, runs pending schema migrations and returns
// the store. A file locked by another process yields ErrTimeout.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.Timeout,
		ReadOnly:     opts.ReadOnly,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &lockedError{path: path}
	}
	if err != nil {
		return nil, wrapErr(err, "open %s", path)
	}
	if err := migrate(db, opts.ReadOnly); err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{db: db, group: groupCommit{db: db}, path: path}, nil
}

// migrate brings the file to SchemaVersion in one transaction.
func migrate(db *bolt.DB, readOnly bool) error {
	var have uint64
	if err := db.View(func(tx *bolt.Tx) error {
		var err error
		have, err = schemaVersion(tx)
		return err
	}); err != nil {
		return wrapErr(err, "%s", db.Path())
	}
	switch want := SchemaVersion(); {
	case have > want:
		return fmt.Errorf("%w: %s has version %d, this binary knows %d", ErrSchemaTooNew, db.Path(), have, want)
	case have == want:
		return nil
	case readOnly:
		return fmt.Errorf("store: %s: schema version %d needs migrating to %d: open it read-write once", db.Path(), have, want)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for v := have; v < SchemaVersion(); v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate to version %d: %w", v+1, err)
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keySchema, u64(SchemaVersion()))
	})
	return wrapErr(err, "%s", db.Path())
}

func schemaVersion(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keySchema)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: schema_version has %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Close closes the file. Closing again is a no-op; every other call after
// Close returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return wrapErr(err, "close")
	}
	return nil
}

// Ping runs a read transaction; health checks and the watchdog use it.
func (s *Store) Ping() error {
	return s.view(func(*bolt.Tx) error { return nil })
}

// view, update and groupDo run fn and turn a closed database into ErrClosed.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return closedErr(s.db.View(fn))
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return closedErr(s.db.Update(fn))
}

// groupDo runs a small write in a transaction shared with concurrent ones
// (see groupCommit).
func (s *Store) groupDo(fn func(*bolt.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return closedErr(s.group.do(fn))
}

// wrapErr adds context to err. Errors carrying one of the package's
// sentinels pass unchanged: they got their context where they were made.
func wrapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	for _, sentinel := range []error{ErrTimeout, ErrSchemaTooNew, ErrNotFound, ErrClosed, ErrCorrupt} {
		if errors.Is(err, sentinel) {
			return err
		}
	}
	return fmt.Errorf("store: "+format+": %w", append(args, err)...)
}

func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Mark records where the cursor stood at a time; the look-back window keeps
// re-reading from the oldest mark younger than the look-back time.
type Mark struct {
	At     time.Time `json:"at"`
	Cursor int64     `json:"cursor"`
}

// AccountState is an account's polling state.
type AccountState struct {
	Initialized bool      // false until the first commit (start_from applies)
	Cursor      int64     // highest history id handled
	Marks       []Mark    // recent cursor positions, oldest first
	LastSuccess time.Time // last successful poll
}

// Item is one event queued for one webhook.
type Item struct {
	Seq          uint64 // outbox key: order of detection within the account
	Account      string
	Webhook      string
	Event        event.Event
	OrderID      int64
	DetectedAt   time.Time
	Attempts     int
	FirstAttempt time.Time // zero until the first attempt
	NextAttempt  time.Time // zero: due now
	LastStatus   int       // HTTP status of the last attempt, 0 for none or a transport error
	LastError    string
	DeadAt       time.Time // set on dead letters
	DeadReason   string
}

// NewEvent is an event to enqueue, with what delivery needs beside it.
type NewEvent struct {
	Event      event.Event
	OrderID    int64
	DetectedAt time.Time
}

// Commit is everything one poll step writes, atomically.
type Commit struct {
	Events         []NewEvent // enqueued for every webhook in Webhooks; history ids recorded as seen
	Webhooks       []string
	Cursor         int64  // new cursor (never lowered)
	Marks          []Mark // replaces the stored marks
	PruneSeenBelow int64  // seen ids below this are deleted
	At             time.Time
}

// accountBucket returns accounts/<name>, or nil when the account has no state.
func accountBucket(tx *bolt.Tx, account string) *bolt.Bucket {
	root := tx.Bucket(bucketAccounts)
	if root == nil || account == "" {
		return nil
	}
	return root.Bucket([]byte(account))
}

// sub returns b/name..., nil if any level is missing.
func sub(b *bolt.Bucket, names ...[]byte) *bolt.Bucket {
	for _, n := range names {
		if b == nil || len(n) == 0 {
			return nil
		}
		b = b.Bucket(n)
	}
	return b
}

// createAccount returns accounts/<name> with its fixed sub-buckets.
func createAccount(tx *bolt.Tx, account string) (*bolt.Bucket, error) {
	if account == "" {
		return nil, errors.New("empty account name")
	}
	root, err := tx.CreateBucketIfNotExists(bucketAccounts)
	if err != nil {
		return nil, err
	}
	acct, err := root.CreateBucketIfNotExists([]byte(account))
	if err != nil {
		return nil, err
	}
	for _, n := range [][]byte{bucketState, bucketSeen, bucketOutbox, bucketDead} {
		if _, err := acct.CreateBucketIfNotExists(n); err != nil {
			return nil, err
		}
	}
	return acct, nil
}

// State returns an account's state; a new account has the zero state.
func (s *Store) State(account string) (AccountState, error) {
	var st AccountState
	err := s.view(func(tx *bolt.Tx) error {
		b := sub(accountBucket(tx, account), bucketState)
		if b == nil {
			return nil
		}
		var err error
		st, err = readState(b)
		return err
	})
	if err != nil {
		return AccountState{}, wrapErr(err, "state of %s", account)
	}
	return st, nil
}

func readState(b *bolt.Bucket) (AccountState, error) {
	var st AccountState
	if v := b.Get(keyCursor); len(v) == 8 {
		st.Cursor = int64(binary.BigEndian.Uint64(v))
	}
	st.Initialized = bytes.Equal(b.Get(keyInitialized), []byte{1})
	if v := b.Get(keyLastSuccess); len(v) == 12 {
		st.LastSuccess = time.Unix(int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint32(v[8:]))).UTC()
	}
	if v := b.Get(keyMarks); len(v) > 0 {
		if err := json.Unmarshal(v, &st.Marks); err != nil {
			return AccountState{}, fmt.Errorf("%w: marks: %v", ErrCorrupt, err)
		}
	}
	return st, nil
}

func writeState(b *bolt.Bucket, st AccountState) error {
	marks, err := json.Marshal(st.Marks)
	if err != nil {
		return err
	}
	initialized := []byte{0}
	if st.Initialized {
		initialized[0] = 1
	}
	var last []byte
	if !st.LastSuccess.IsZero() {
		last = binary.BigEndian.AppendUint64(nil, uint64(st.LastSuccess.Unix()))
		last = binary.BigEndian.AppendUint32(last, uint32(st.LastSuccess.Nanosecond()))
	}
	for _, kv := range []struct{ k, v []byte }{
		{keyCursor, u64(uint64(st.Cursor))},
		{keyInitialized, initialized},
		{keyMarks, marks},
	} {
		if err := b.Put(kv.k, kv.v); err != nil {
			return err
		}
	}
	if last == nil {
		return b.Delete(keyLastSuccess)
	}
	return b.Put(keyLastSuccess, last)
}

// Seen reports which of the history ids in (from, to] are recorded as seen.
func (s *Store) Seen(account string, from, to int64) (map[int64]bool, error) {
	seen := make(map[int64]bool)
	if to <= from || to <= 0 {
		return seen, nil
	}
	err := s.view(func(tx *bolt.Tx) error {
		b := sub(accountBucket(tx, account), bucketSeen)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek(u64(uint64(max(from+1, 0)))); k != nil; k, _ = c.Next() {
			v, err := keyU64(k)
			if err != nil {
				return err
			}
			id := int64(v)
			if id > to {
				break
			}
			seen[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "seen of %s", account)
	}
	return seen, nil
}

// CommitPoll writes a poll step in one transaction: outbox items for each
// event and webhook, the seen ids, the cursor, marks and last success; prunes
// seen ids below c.PruneSeenBelow. Events whose history id is already seen
// are skipped, so a retried commit never duplicates.
func (s *Store) CommitPoll(account string, c Commit) error {
	if len(c.Events) > 0 && len(c.Webhooks) == 0 {
		return fmt.Errorf("store: commit for %s: %d events but no webhooks", account, len(c.Events))
	}
	for _, w := range c.Webhooks {
		if w == "" {
			return fmt.Errorf("store: commit for %s: empty webhook name", account)
		}
	}
	for i := range c.Events {
		if id := c.Events[i].Event.Change.HistoryID; id <= 0 {
			return fmt.Errorf("store: commit for %s: event %q has history id %d", account, c.Events[i].Event.ID, id)
		}
	}
	err := s.update(func(tx *bolt.Tx) error {
		acct, err := createAccount(tx, account)
		if err != nil {
			return err
		}
		seen := acct.Bucket(bucketSeen)
		outbox := acct.Bucket(bucketOutbox)
		queues := make([]*bolt.Bucket, len(c.Webhooks))
		for i, w := range c.Webhooks {
			if queues[i], err = outbox.CreateBucketIfNotExists([]byte(w)); err != nil {
				return err
			}
		}
		for i := range c.Events {
			ne := &c.Events[i]
			hid := u64(uint64(ne.Event.Change.HistoryID))
			if has(seen, hid) {
				continue
			}
			if err := seen.Put(hid, nil); err != nil {
				return err
			}
			rec := encodeItem(&Item{Event: ne.Event, OrderID: ne.OrderID, DetectedAt: ne.DetectedAt})
			for j, q := range queues {
				seq, err := acct.NextSequence()
				if err != nil {
					return err
				}
				if err := q.Put(u64(seq), rec); err != nil {
					return fmt.Errorf("webhook %s: %w", c.Webhooks[j], err)
				}
			}
		}
		if c.PruneSeenBelow > 0 {
			if err := pruneBelow(seen, uint64(c.PruneSeenBelow)); err != nil {
				return err
			}
		}
		state := acct.Bucket(bucketState)
		st, err := readState(state)
		if err != nil {
			return err
		}
		st.Cursor = max(st.Cursor, c.Cursor)
		st.Marks = c.Marks
		st.LastSuccess = c.At
		st.Initialized = true
		return writeState(state, st)
	})
	if err != nil {
		return wrapErr(err, "commit for %s", account)
	}
	return nil
}

// pruneBelow deletes the keys of b below bound. Keys are collected first:
// deleting under a live bbolt cursor can skip entries.
func pruneBelow(b *bolt.Bucket, bound uint64) error {
	end := u64(bound)
	var ids []uint64
	c := b.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
		id, err := keyU64(k)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if err := b.Delete(u64(id)); err != nil {
			return err
		}
	}
	return nil
}

// Pending returns up to limit outbox items of account/webhook with
// Seq > after, in Seq order. A limit <= 0 returns them all.
func (s *Store) Pending(account, webhook string, after uint64, limit int) ([]Item, error) {
	var items []Item
	err := s.view(func(tx *bolt.Tx) error {
		q := sub(accountBucket(tx, account), bucketOutbox, []byte(webhook))
		if q == nil {
			return nil
		}
		var err error
		items, err = scan(q, account, webhook, after, limit)
		return err
	})
	if err != nil {
		return nil, wrapErr(err, "pending %s/%s", account, webhook)
	}
	return items, nil
}

// scan decodes up to limit (<= 0: all) records of q with Seq > after.
func scan(q *bolt.Bucket, account, webhook string, after uint64, limit int) ([]Item, error) {
	var items []Item
	c := q.Cursor()
	var k, v []byte
	if after == 0 {
		k, v = c.First()
	} else {
		k, v = c.Seek(u64(after + 1))
	}
	for ; k != nil && (limit <= 0 || len(items) < limit); k, v = c.Next() {
		seq, err := keyU64(k)
		if err != nil {
			return nil, err
		}
		it := Item{Seq: seq, Account: account, Webhook: webhook}
		if err := decodeItem(v, &it); err != nil {
			return nil, fmt.Errorf("seq %d: %w", it.Seq, err)
		}
		items = append(items, it)
	}
	return items, nil
}

// Delivered removes an item from the outbox. Concurrent calls are batched
// into shared transactions (groupCommit) for throughput. An item already
// gone (delivered before a restart, dropped) is not an error.
func (s *Store) Delivered(account, webhook string, seq uint64) error {
	err := s.groupDo(func(tx *bolt.Tx) error {
		q := sub(accountBucket(tx, account), bucketOutbox, []byte(webhook))
		if q == nil {
			return nil
		}
		return q.Delete(u64(seq))
	})
	if err != nil {
		return wrapErr(err, "delivered %s/%s seq %d", account, webhook, seq)
	}
	return nil
}

// DeliveredMany removes several items of one queue in one transaction, for
// a worker that acknowledges a run of deliveries at once.
func (s *Store) DeliveredMany(account, webhook string, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	err := s.groupDo(func(tx *bolt.Tx) error {
		q := sub(accountBucket(tx, account), bucketOutbox, []byte(webhook))
		if q == nil {
			return nil
		}
		for _, seq := range seqs {
			if err := q.Delete(u64(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapErr(err, "delivered %s/%s", account, webhook)
	}
	return nil
}

// getItem reads it.Account/it.Webhook/it.Seq from the named sub-bucket kind
// (outbox or dead); ErrNotFound when absent.
func getItem(tx *bolt.Tx, kind []byte, account, webhook string, seq uint64) (*bolt.Bucket, Item, error) {
	q := sub(accountBucket(tx, account), kind, []byte(webhook))
	var v []byte
	if q != nil {
		v = q.Get(u64(seq))
	}
	if v == nil {
		return nil, Item{}, fmt.Errorf("%w: %s %s/%s seq %d", ErrNotFound, kind, account, webhook, seq)
	}
	it := Item{Seq: seq, Account: account, Webhook: webhook}
	if err := decodeItem(v, &it); err != nil {
		return nil, Item{}, fmt.Errorf("%s %s/%s seq %d: %w", kind, account, webhook, seq, err)
	}
	return q, it, nil
}

// withAttempt copies it's attempt bookkeeping onto the stored item.
func withAttempt(stored, it Item) Item {
	stored.Attempts = it.Attempts
	stored.FirstAttempt = it.FirstAttempt
	stored.NextAttempt = it.NextAttempt
	stored.LastStatus = it.LastStatus
	stored.LastError = it.LastError
	return stored
}

// Reschedule records a failed attempt: it stores it.Attempts, FirstAttempt,
// NextAttempt, LastStatus and LastError for the item it.Seq. ErrNotFound
// when the item is no longer in the outbox.
func (s *Store) Reschedule(it Item) error {
	err := s.groupDo(func(tx *bolt.Tx) error {
		q, stored, err := getItem(tx, bucketOutbox, it.Account, it.Webhook, it.Seq)
		if err != nil {
			return rejected{err}
		}
		stored = withAttempt(stored, it)
		return q.Put(u64(it.Seq), encodeItem(&stored))
	})
	if err != nil {
		return wrapErr(err, "reschedule")
	}
	return nil
}

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
func accountNames(tx *bolt.Tx) []string {
	var names []string
	if root := tx.Bucket(bucketAccounts); root != nil {
		_ = root.ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	}
	return names
}

// queueNames lists the sub-buckets of b (webhook queues).
func queueNames(b *bolt.Bucket) []string {
	var names []string
	if b != nil {
		_ = b.ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	}
	return names
}

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

// Accounts lists the accounts that have state in the file, in name order.
func (s *Store) Accounts() ([]string, error) {
	var names []string
	err := s.view(func(tx *bolt.Tx) error {
		names = accountNames(tx)
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "accounts")
	}
	return names, nil
}

// Webhooks lists the account's webhooks that have items in the outbox, in
// name order; delivery uses it to find items of webhooks no longer configured.
func (s *Store) Webhooks(account string) ([]string, error) {
	var names []string
	err := s.view(func(tx *bolt.Tx) error {
		outbox := sub(accountBucket(tx, account), bucketOutbox)
		for _, w := range queueNames(outbox) {
			if k, _ := outbox.Bucket([]byte(w)).Cursor().First(); k != nil {
				names = append(names, w)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err, "webhooks of %s", account)
	}
	return names, nil
}

// has reports whether b holds key k. Get cannot tell: it returns nil for
// an empty value written earlier in the same transaction.
func has(b *bolt.Bucket, k []byte) bool {
	got, _ := b.Cursor().Seek(k)
	return bytes.Equal(got, k)
}

// keyU64 decodes a big-endian uint64 key.
func keyU64(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("%w: key %x is not 8 bytes", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k), nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }
