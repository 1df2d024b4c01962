package store

import (
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs concurrent small writes (delivered marks, reschedules,
// dead letters) in shared transactions. Unlike bbolt's Batch it has no
// timer: the first caller commits whatever is queued, and calls arriving
// during that commit go together in the next one. A lone call pays one
// transaction and no delay, and throughput grows with the number of
// delivery workers (BenchmarkDelivered: about twice Batch's). A caller
// may wait for its outcome (groupDo) or go on and be told (Delivered).
type groupCommit struct {
	db      *bolt.DB
	mu      sync.Mutex
	queue   []groupCall
	running bool
}

// groupCall is one write. An error fn returns as rejected (found before
// fn wrote anything, e.g. the item is gone) goes to its caller alone and the
// shared transaction goes on; any other error aborts the transaction for
// every call in it.
type groupCall struct {
	fn   func(*bolt.Tx) error
	then func(error) // told the call's outcome once its transaction has ended
}

// rejected wraps an error a groupCall found before writing anything.
type rejected struct{ error }

func (r rejected) Unwrap() error { return r.error }

// start queues fn for the next shared transaction and tells then its
// outcome. With no commit running, the caller commits at once on its own
// goroutine and then is called before start returns; otherwise the
// goroutine that runs the commit calls it, so then must not block.
func (g *groupCommit) start(fn func(*bolt.Tx) error, then func(error)) {
	g.mu.Lock()
	g.queue = append(g.queue, groupCall{fn, then})
	lead := !g.running
	g.running = true
	g.mu.Unlock()
	if lead {
		g.flush()
	}
}

// flush commits the queue once. Calls queued meanwhile go to a new
// goroutine: a caller leading until the queue ran dry would starve under
// steady load.
func (g *groupCommit) flush() {
	g.mu.Lock()
	calls := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.commit(calls)
	g.mu.Lock()
	more := len(g.queue) > 0
	g.running = more
	g.mu.Unlock()
	if more {
		go g.flush()
	}
}

// commit runs calls in one transaction and answers each of them.
func (g *groupCommit) commit(calls []groupCall) {
	own := make([]error, len(calls))
	err := g.db.Update(func(tx *bolt.Tx) error {
		for i, c := range calls {
			err := c.fn(tx)
			if r, ok := errors.AsType[rejected](err); ok {
				own[i] = r.error
				continue
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	for i, c := range calls {
		if err != nil {
			c.then(err)
		} else {
			c.then(own[i])
		}
	}
}
