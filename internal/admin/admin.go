// Package admin is the poller's operator interface: a small JSON-over-HTTP
// API on a unix socket (status, dead-letter list/retry/drop, an event's
// attempt log, replay, state backup and verify) served by the running
// daemon, and the client the status, dlq, events, replay and state commands
// use. bbolt lets
// one process open the file, so the client asks the daemon over the socket
// when one answers and opens the state file itself when none runs; both
// paths run the same queries and give the same answers.
package admin

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/poll"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// Errors, compared with errors.Is.
var (
	// ErrDaemonUnresponsive: the state file is locked (a daemon holds it)
	// but its admin socket does not answer.
	ErrDaemonUnresponsive = errors.New("daemon seems to be running but its admin socket does not answer")
	// ErrSocketInUse: another process is serving on the admin socket path.
	ErrSocketInUse = errors.New("admin: socket is in use by another process")
)

// AccountStatus is one account's line in `poller status`.
type AccountStatus struct {
	Account     string    `json:"account"`
	Configured  bool      `json:"configured"` // false: state left in the file by an account no longer in the config
	Cursor      int64     `json:"cursor"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastPoll, LastError, Blocked and LastSweep are known only to the
	// running daemon: they are empty when the status was read from the
	// file. LastSuccess read from the file is as of the daemon's last stop
	// (idle polls write nothing).
	LastPoll  time.Time `json:"last_poll,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Blocked: the history holds an entry whose own id cannot be read; the
	// account makes no progress past it.
	Blocked   string            `json:"blocked,omitempty"`
	LastSweep *poll.SweepResult `json:"last_sweep,omitempty"`
	Pending   int               `json:"pending"`
	Dead      int               `json:"dead"`
	// Removed: the account left the config; its pending events are
	// dead-lettered (reason "account removed") from Removed.Deadline on,
	// unless it returns. Only for an account not in the config.
	Removed  *store.Removal `json:"removed,omitempty"`
	Webhooks []string       `json:"webhooks"` // configured webhook names
	Queues   []QueueStatus  `json:"queues"`   // per webhook: the configured ones, then any other holding events
}

// QueueStatus is what one webhook's queue of an account holds.
type QueueStatus struct {
	Webhook    string `json:"webhook"`
	Configured bool   `json:"configured"` // false: a removed or renamed webhook's dead letters
	Pending    int    `json:"pending"`
	Dead       int    `json:"dead"`
}

// Runtime is what the daemon knows about an account's polling beyond the
// file: the last success, the last attempt and its error, and the last
// orders sweep.
type Runtime struct {
	LastSuccess time.Time
	LastPoll    time.Time
	LastError   string
	Blocked     string
	LastSweep   *poll.SweepResult
}

// status lists the configured accounts in config order, then accounts that
// only have state in the file, in name order. rt may be nil. It reads the
// counters, never the queues: its cost does not grow with the backlog.
func status(st *store.Store, cfg *config.Config, rt func(account string) Runtime) ([]AccountStatus, error) {
	var out []AccountStatus
	configured := make(map[string]bool, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		configured[a.Name] = true
		s := AccountStatus{Account: a.Name, Configured: true, Webhooks: []string{}, Queues: []QueueStatus{}}
		for _, w := range a.Webhooks {
			s.Webhooks = append(s.Webhooks, w.Name)
			s.Queues = append(s.Queues, QueueStatus{Webhook: w.Name, Configured: true})
		}
		out = append(out, s)
	}
	var overviews map[string]store.Overview
	if st != nil {
		var err error
		if overviews, err = st.Overviews(true); err != nil {
			return nil, err
		}
		for _, n := range slices.Sorted(maps.Keys(overviews)) {
			if !configured[n] {
				out = append(out, AccountStatus{Account: n, Webhooks: []string{}, Queues: []QueueStatus{}})
			}
		}
	}
	for i := range out {
		s := &out[i]
		var r Runtime
		if rt != nil {
			r = rt(s.Account)
			s.LastPoll, s.LastError, s.Blocked, s.LastSweep = r.LastPoll, r.LastError, r.Blocked, r.LastSweep
		}
		o := overviews[s.Account]
		s.Cursor, s.LastSuccess = o.State.Cursor, o.State.LastSuccess
		if r.LastSuccess.After(s.LastSuccess) {
			s.LastSuccess = r.LastSuccess
		}
		s.Pending, s.Dead = o.Totals()
		if r := o.State.Removed; !s.Configured && !r.IsZero() {
			s.Removed = &r
		}
		for _, c := range o.Queues {
			j := slices.IndexFunc(s.Queues, func(q QueueStatus) bool { return q.Webhook == c.Webhook })
			if j < 0 {
				j = len(s.Queues)
				s.Queues = append(s.Queues, QueueStatus{Webhook: c.Webhook})
			}
			s.Queues[j].Pending, s.Queues[j].Dead = c.Pending, c.Dead
		}
	}
	return out, nil
}

// drop deletes dead letters (store.DropDead). Named with no ids, an
// account that is not in cfg loses its pending events as well: no webhook
// can take them, and the daemon would dead-letter them once the account
// has stayed out for max_age; they are dead-lettered (reason
// store.ReasonAccountRemoved) and dropped with the rest.
func drop(st *store.Store, cfg *config.Config, account string, ids []string) (dropResponse, error) {
	var out dropResponse
	if _, ok := cfg.Account(account); account != "" && !ok && len(ids) == 0 {
		for {
			items, err := st.DeadLetterPending(account, store.ReasonAccountRemoved, time.Now(), dropChunk)
			if err != nil {
				return out, err
			}
			if len(items) == 0 {
				break
			}
			out.Pending += len(items)
		}
	}
	n, err := st.DropDead(account, ids)
	out.Dropped = n
	return out, err
}

// dropChunk bounds the pending items moved in one transaction by drop.
const dropChunk = 500

// configured reports whether cfg has webhook under account: `dlq retry`
// refuses dead letters of any other, so no event goes to another URL.
func configured(cfg *config.Config) func(account, webhook string) bool {
	return func(account, webhook string) bool {
		a, ok := cfg.Account(account)
		return ok && slices.ContainsFunc(a.Webhooks, func(w config.Webhook) bool { return w.Name == webhook })
	}
}

// maxReplayBody bounds a replay request: 100 events with their orders.
const maxReplayBody = 64 << 20

// replayRequest is the body of POST /replay.
type replayRequest struct {
	Account  string           `json:"account"`
	Webhooks []string         `json:"webhooks"`
	Events   []store.NewEvent `json:"events"`
}

// replayResponse is the answer to POST /replay.
type replayResponse struct {
	Queued int `json:"queued"`
}

// replay checks that the account and webhooks are configured and queues
// the events again.
func replay(st *store.Store, cfg *config.Config, req replayRequest) error {
	isConfigured := configured(cfg)
	if len(req.Webhooks) == 0 {
		return fmt.Errorf("%w: replay for account %s names no webhook", store.ErrNotConfigured, req.Account)
	}
	for _, w := range req.Webhooks {
		if !isConfigured(req.Account, w) {
			return fmt.Errorf("%w: webhook %q of account %s", store.ErrNotConfigured, w, req.Account)
		}
	}
	return st.Replay(req.Account, req.Webhooks, req.Events, time.Now())
}

// accountsOf lists the distinct accounts of items, in order of appearance.
func accountsOf(items []store.Item) []string {
	var names []string
	for _, it := range items {
		if !slices.Contains(names, it.Account) {
			names = append(names, it.Account)
		}
	}
	return names
}
