// Package admin is the poller's operator interface: a small JSON-over-HTTP
// API on a unix socket (status, dead-letter list/retry/drop) served by the
// running daemon, and the client the status and dlq commands use. bbolt lets
// one process open the file, so the client asks the daemon over the socket
// when one answers and opens the state file itself when none runs; both
// paths run the same queries and give the same answers.
package admin

import (
	"errors"
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
	Webhooks  []string          `json:"webhooks"` // configured webhook names
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
// only have state in the file, in name order. rt may be nil.
func status(st *store.Store, cfg *config.Config, rt func(account string) Runtime) ([]AccountStatus, error) {
	var out []AccountStatus
	configured := make(map[string]bool, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		configured[a.Name] = true
		s := AccountStatus{Account: a.Name, Configured: true, Webhooks: []string{}}
		for _, w := range a.Webhooks {
			s.Webhooks = append(s.Webhooks, w.Name)
		}
		out = append(out, s)
	}
	if st != nil {
		names, err := st.Accounts()
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !configured[n] {
				out = append(out, AccountStatus{Account: n, Webhooks: []string{}})
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
		if st == nil {
			continue
		}
		state, err := st.State(s.Account)
		if err != nil {
			return nil, err
		}
		s.Cursor, s.LastSuccess = state.Cursor, state.LastSuccess
		if r.LastSuccess.After(s.LastSuccess) {
			s.LastSuccess = r.LastSuccess
		}
		if s.Pending, s.Dead, err = st.Counts(s.Account); err != nil {
			return nil, err
		}
	}
	return out, nil
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
