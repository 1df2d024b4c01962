// Package store keeps the poller's durable state in one bbolt file: per
// account a cursor, the history ids already turned into events (seen), the
// events waiting for delivery in one queue per webhook, and dead letters.
// A poll's events and its cursor move are written in one transaction, so a
// crash can never lose a transition.
//
// Layout (schema version 4; every integer key big-endian uint64):
//
//	meta/schema_version
//	accounts/<name>/state/{cursor, initialized, marks, last_success, removed}
//	accounts/<name>/seen/<history id>                 -> empty
//	accounts/<name>/events/<seq>                      -> event record: the event with its order, order id, detected at
//	accounts/<name>/outbox/<webhook>/<seq>            -> attempt record: order id, attempts, first and next attempt, last status and error
//	accounts/<name>/due/<webhook>/<due unix ns><seq>  -> empty: the head of each order with pending items
//	accounts/<name>/chain/<webhook>/<order id><seq>   -> empty: every pending item with an order id
//	accounts/<name>/dead/<webhook>/<seq>              -> attempt record with dead at and reason
//	accounts/<name>/counts/<webhook>                  -> pending and dead counts
//	accounts/<name>/attempts/<seq><n>                 -> one delivery attempt of the event (attempts.go)
//
// Seq comes from the account bucket's sequence, one per event: every
// webhook's item of an event shares it, and it is the detection order. The
// event record (the bulk: the order JSON) is stored once and deleted when no
// outbox or dead item of any webhook refers to it any more.
//
// Delivery reads due/<webhook> from the start. It holds exactly one key per
// order with pending items, its lowest Seq (the head; an item without an
// order id is always a head), sorted by when it is due: its next attempt,
// or its detection time when never attempted, so due retries and fresh
// events interleave by time. An item waiting for a retry is only a key in
// the future, and a failing order holds back only its own later events,
// which wait in chain/<webhook> until their head is delivered or
// dead-lettered. The counts change in the same transaction as the items
// they count, so every count costs one Get per webhook, never a scan.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
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
	// ErrNotConfigured: a dead letter to retry belongs to a webhook the
	// config does not have (removed or renamed).
	ErrNotConfigured = errors.New("store: webhook is not configured")
	// ErrDamaged: the state file is empty, cut short or damaged, found
	// before bbolt maps it (errors carrying it are a *DamageError naming
	// the file, the damage and what to do). Nothing is opened: a fresh
	// start would forget the cursor, pending events and dead letters.
	ErrDamaged = errors.New("store: state file is damaged")
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
	bucketEvents   = []byte("events")
	bucketOutbox   = []byte("outbox")
	bucketDue      = []byte("due")
	bucketChain    = []byte("chain")
	bucketDead     = []byte("dead")
	bucketCounts   = []byte("counts")
	bucketOrders   = []byte("orders")
	bucketAttempts = []byte("attempts")

	keyCursor      = []byte("cursor")
	keyStartID     = []byte("start_id")
	keyInitialized = []byte("initialized")
	keyMarks       = []byte("marks")
	keyLastSuccess = []byte("last_success")
)

// migration upgrades the file from one schema version to the next. A step
// may run several transactions (a long outbox is moved in chunks, so memory
// stays bounded) and must be resumable: if the process dies between two of
// them, running the same step again on what is left finishes the job
// without losing or duplicating anything. migrate records the new version
// only after the step returned.
type migration func(db *bolt.DB) error

// migrations[i] upgrades schema version i to i+1. Append only: never edit
// or reorder a released step, since files in the field already ran it.
var migrations = []migration{
	// 1: the bucket layout.
	func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucketAccounts)
			return err
		})
	},
	// 2: one event record per event, due and chain indexes, counters.
	migrateV2,
	// 3: the start point of accounts initialized before it was recorded is
	// taken to be their cursor, so the orders sweep never re-emits what
	// they delivered before the upgrade; order marks begin.
	migrateStartID,
	// 4: the attempt log (attempts.go).
	migrateAttempts,
}

// latestSchema is the schema version this binary writes.
func latestSchema() uint64 { return uint64(len(migrations)) }

// Options for Open.
type Options struct {
	Timeout  time.Duration // lock wait; default 1s
	ReadOnly bool
}

// Store is an open poller.db. Safe for concurrent use.
type Store struct {
	db     *bolt.DB
	group  groupCommit
	closed atomic.Bool
}

// lockedError wraps both ErrTimeout and bbolt's own timeout error.
type lockedError struct{ path string }

func (e *lockedError) Error() string { return ErrTimeout.Error() + ": " + e.path }

func (e *lockedError) Unwrap() []error { return []error{ErrTimeout, berrors.ErrTimeout} }

// Open opens or creates path, runs pending schema migrations and returns
// the store. A file locked by another process yields ErrTimeout; an
// existing file that is empty, cut short or damaged yields ErrDamaged (a
// *DamageError), checked before bbolt reads it (see checkFile).
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	db, err := openCurrent(path, opts)
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
	return &Store{db: db, group: groupCommit{db: db}}, nil
}

// openCurrent opens path with bbolt and makes sure the file it locked is
// still the one at path: `poller compact` renames a new file over the old
// one before it lets go of the old one's lock, and a process that was
// waiting for that lock must not go on with the unlinked file
// (openChecked tells, and the open starts over).
func openCurrent(path string, opts Options) (*bolt.DB, error) {
	for {
		db, err := openBolt(path, opts)
		if !errors.Is(err, errReplaced) {
			return db, err
		}
	}
}

// openBolt is one bbolt.Open through openChecked. The check leaves bbolt
// nothing to panic on; a panic all the same (a kind of damage the check
// does not know) is still turned into ErrDamaged rather than a crash.
func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &DamageError{Path: path, Problem: fmt.Sprintf("bbolt failed reading it: %v", r)}
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.Timeout,
		ReadOnly:     opts.ReadOnly,
		FreelistType: bolt.FreelistMapType,
		// Not writing the free-page list at every commit keeps a
		// commit's cost independent of how much space a drained
		// backlog left free (megabytes per commit at a million
		// events); Open rebuilds the list by a scan instead.
		NoFreelistSync: true,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			return openChecked(name, flag, mode, !opts.ReadOnly, opts.Timeout)
		},
	})
}

// migrate brings the file to SchemaVersion, one step after the other.
func migrate(db *bolt.DB, readOnly bool) error {
	var have uint64
	if err := db.View(func(tx *bolt.Tx) error {
		var err error
		have, err = schemaVersion(tx)
		return err
	}); err != nil {
		return wrapErr(err, "%s", db.Path())
	}
	switch want := latestSchema(); {
	case have > want:
		return fmt.Errorf("%w: %s has version %d, this binary knows %d", ErrSchemaTooNew, db.Path(), have, want)
	case have == want:
		return nil
	case readOnly:
		return fmt.Errorf("store: %s: schema version %d needs migrating to %d: open it read-write once", db.Path(), have, want)
	}
	for v := have; v < latestSchema(); v++ {
		if err := migrations[v](db); err != nil {
			return wrapErr(fmt.Errorf("migrate to version %d: %w", v+1, err), "%s", db.Path())
		}
		err := db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			return meta.Put(keySchema, u64(v+1))
		})
		if err != nil {
			return wrapErr(err, "%s", db.Path())
		}
	}
	return nil
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
// (see groupCommit) and returns its outcome.
func (s *Store) groupDo(fn func(*bolt.Tx) error) error {
	done := make(chan error, 1)
	s.groupStart(fn, func(err error) { done <- err })
	return <-done
}

// groupStart queues a small write for a transaction shared with concurrent
// ones and tells then its outcome (see groupCommit.start: then must not
// block).
func (s *Store) groupStart(fn func(*bolt.Tx) error, then func(error)) {
	if s.closed.Load() {
		then(ErrClosed)
		return
	}
	s.group.start(fn, func(err error) { then(closedErr(err)) })
}

// wrapErr adds context to err. Errors carrying one of the package's
// sentinels pass unchanged: they got their context where they were made.
func wrapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	for _, sentinel := range []error{ErrTimeout, ErrSchemaTooNew, ErrNotFound, ErrClosed, ErrCorrupt, ErrNotConfigured, ErrDamaged} {
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
	if err := createQueueBuckets(acct); err != nil {
		return nil, err
	}
	for _, n := range [][]byte{bucketState, bucketSeen, bucketOrders} {
		if _, err := acct.CreateBucketIfNotExists(n); err != nil {
			return nil, err
		}
	}
	return acct, nil
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
