// Package store keeps the poller's durable state in one bbolt file: per
// account a cursor, the history ids already turned into events (seen), an
// outbox per webhook and dead letters. A poll's events and its cursor move
// are written in one transaction, so a crash can never lose a transition.
package store

import (
	"errors"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
)

// Errors, compared with errors.Is.
var (
	// ErrTimeout: the file is locked by another process (usually the running daemon).
	ErrTimeout = errors.New("store: database is locked by another process")
	// ErrSchemaTooNew: the file was written by a newer poller.
	ErrSchemaTooNew = errors.New("store: schema version is newer than this binary")
	// ErrNotFound: no such account, item or dead letter.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// FileName is the database file inside state_dir.
const FileName = "poller.db"

// Options for Open.
type Options struct {
	Timeout  time.Duration // lock wait; default 1s
	ReadOnly bool
}

// Store is an open poller.db. Safe for concurrent use.
type Store struct{}

// Open opens or creates path, runs pending schema migrations and returns
// the store. A file locked by another process yields ErrTimeout.
func Open(path string, opts Options) (*Store, error) { panic("to be implemented") }

// Close closes the file.
func (s *Store) Close() error { panic("to be implemented") }

// Ping runs a read transaction; health checks and the watchdog use it.
func (s *Store) Ping() error { panic("to be implemented") }

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
	Seq          uint64      // outbox key: order of detection within the account
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

// State returns an account's state; a new account has the zero state.
func (s *Store) State(account string) (AccountState, error) { panic("to be implemented") }

// Seen reports which of the history ids in (from, to] are recorded as seen.
func (s *Store) Seen(account string, from, to int64) (map[int64]bool, error) {
	panic("to be implemented")
}

// CommitPoll writes a poll step in one transaction: outbox items for each
// event and webhook, the seen ids, the cursor, marks and last success; prunes
// seen ids below c.PruneSeenBelow. Events whose history id is already seen
// are skipped, so a retried commit never duplicates.
func (s *Store) CommitPoll(account string, c Commit) error { panic("to be implemented") }

// Pending returns up to limit outbox items of account/webhook with
// Seq > after, in Seq order.
func (s *Store) Pending(account, webhook string, after uint64, limit int) ([]Item, error) {
	panic("to be implemented")
}

// Delivered removes an item from the outbox. Concurrent calls are batched
// into shared transactions (bbolt Batch) for throughput.
func (s *Store) Delivered(account, webhook string, seq uint64) error { panic("to be implemented") }

// Reschedule records a failed attempt: it stores it.Attempts, FirstAttempt,
// NextAttempt, LastStatus and LastError for the item it.Seq.
func (s *Store) Reschedule(it Item) error { panic("to be implemented") }

// DeadLetter moves an item from the outbox to the account's dead letters.
func (s *Store) DeadLetter(it Item, reason string, at time.Time) error { panic("to be implemented") }

// Dead lists an account's dead letters in Seq order ("" lists every account).
func (s *Store) Dead(account string) ([]Item, error) { panic("to be implemented") }

// RetryDead moves dead letters back to the outbox with attempts reset, due
// now. ids are event ids; none means all of the account. Returns the items moved.
func (s *Store) RetryDead(account string, ids []string) ([]Item, error) { panic("to be implemented") }

// DropDead deletes dead letters (event ids; none means all of the account).
func (s *Store) DropDead(account string, ids []string) (int, error) { panic("to be implemented") }

// Counts returns an account's outbox and dead-letter sizes over all webhooks.
func (s *Store) Counts(account string) (pending, dead int, err error) { panic("to be implemented") }

// Accounts lists the accounts that have state in the file.
func (s *Store) Accounts() ([]string, error) { panic("to be implemented") }
