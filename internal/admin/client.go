package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// fileLockWait bounds how long the fallback waits for the state file: a
// daemon holds its lock for its whole life, so waiting longer is pointless.
const fileLockWait = 500 * time.Millisecond

// Status returns every account's status, from the running daemon or, when
// none answers, from the state file.
func Status(ctx context.Context, cfg *config.Config) ([]AccountStatus, error) {
	var out []AccountStatus
	err := do(ctx, cfg, http.MethodGet, "/status", nil, &out, true, func(st *store.Store) error {
		var err error
		out, err = status(st, cfg, nil)
		return err
	})
	return out, err
}

// DLQList returns the dead letters of account ("" every account).
func DLQList(ctx context.Context, cfg *config.Config, account string) ([]store.Item, error) {
	var out []store.Item
	err := do(ctx, cfg, http.MethodGet, "/dlq?account="+url.QueryEscape(account), nil, &out, true, func(st *store.Store) error {
		if st == nil {
			out = nonNil(nil)
			return nil
		}
		var err error
		out, err = st.Dead(account)
		out = nonNil(out)
		return err
	})
	return out, err
}

// Event returns the event with id, where it waits and its attempt log
// (see store.Event), from the running daemon or the state file. account
// "" looks in every account. store.ErrNotFound when no account holds it.
func Event(ctx context.Context, cfg *config.Config, account, id string) (store.EventLog, error) {
	var out store.EventLog
	path := "/events?account=" + url.QueryEscape(account) + "&id=" + url.QueryEscape(id)
	err := do(ctx, cfg, http.MethodGet, path, nil, &out, true, func(st *store.Store) error {
		if st == nil {
			return fmt.Errorf("%w: event %q: no state file yet", store.ErrNotFound, id)
		}
		var err error
		out, err = st.Event(account, id)
		return err
	})
	return out, err
}

// DLQRetry moves dead letters back to the outbox, due now: the event ids
// in ids, or all of account ("" every account) when ids is empty. An id
// matching no dead letter is store.ErrNotFound, a dead letter of a webhook
// the config does not have (removed or renamed) store.ErrNotConfigured;
// either way nothing moves. Returns the items moved; a running daemon
// starts delivering them at once, a stopped one when it starts.
func DLQRetry(ctx context.Context, cfg *config.Config, account string, ids []string) ([]store.Item, error) {
	var out []store.Item
	err := do(ctx, cfg, http.MethodPost, "/dlq/retry", dlqRequest{Account: account, IDs: ids}, &out, false, func(st *store.Store) error {
		var err error
		out, err = st.RetryDead(account, ids, configured(cfg))
		out = nonNil(out)
		return err
	})
	return out, err
}

// DLQDrop deletes dead letters, selected as in DLQRetry, and, given an
// account that is not in the config and no ids, that account's pending
// events too. Returns how many items went and how many of them were
// pending.
func DLQDrop(ctx context.Context, cfg *config.Config, account string, ids []string) (dropped, pending int, err error) {
	var out dropResponse
	err = do(ctx, cfg, http.MethodPost, "/dlq/drop", dlqRequest{Account: account, IDs: ids}, &out, false, func(st *store.Store) error {
		var err error
		out, err = drop(st, cfg, account, ids)
		return err
	})
	return out.Dropped, out.Pending, err
}

// Replay puts events in the outbox of the account's webhooks again (see
// store.Replay): through the running daemon, which starts delivering them
// at once, or into the state file. Every webhook must be configured
// (store.ErrNotConfigured otherwise). Returns how many events were queued.
func Replay(ctx context.Context, cfg *config.Config, account string, webhooks []string, events []store.NewEvent) (int, error) {
	req := replayRequest{Account: account, Webhooks: webhooks, Events: events}
	var out replayResponse
	err := do(ctx, cfg, http.MethodPost, "/replay", req, &out, false, func(st *store.Store) error {
		out.Queued = len(events)
		return replay(st, cfg, req)
	})
	return out.Queued, err
}

// do asks the daemon over its socket; when nothing listens there it runs
// local against the state file instead. A read-only local call gets a nil
// store when the file does not exist yet (nothing polled, nothing dead).
func do(ctx context.Context, cfg *config.Config, method, path string, body, out any, readOnly bool, local func(*store.Store) error) error {
	return remoteOr(cfg, func(sock string) error {
		return request(ctx, sock, method, path, body, out)
	}, func(file string) error {
		if readOnly {
			if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
				return local(nil)
			}
		}
		st, err := store.Open(file, store.Options{Timeout: fileLockWait, ReadOnly: readOnly})
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		return errors.Join(local(st), st.Close())
	})
}

// remoteOr runs ask against the daemon's socket, or local against the
// state file when no daemon listens there. A file locked all the same (a
// daemon that does not answer, or one without a socket) is
// ErrDaemonUnresponsive.
func remoteOr(cfg *config.Config, ask func(sock string) error, local func(file string) error) error {
	if cfg.AdminSocket != "" {
		err := ask(cfg.AdminSocket)
		var de *dialError
		if !errors.As(err, &de) {
			return err
		}
	}
	file := filepath.Join(cfg.StateDir, store.FileName)
	err := local(file)
	switch {
	case errors.Is(err, store.ErrTimeout) && cfg.AdminSocket == "":
		return fmt.Errorf("%w: no admin_socket is configured and %s is locked", ErrDaemonUnresponsive, file)
	case errors.Is(err, store.ErrTimeout):
		return fmt.Errorf("%w: %s", ErrDaemonUnresponsive, cfg.AdminSocket)
	}
	return err
}

// dialError marks a failure to reach the socket at all: no daemon runs.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// remoteError is an error the daemon answered with: the same text the
// local call would give, and store.ErrNotFound or store.ErrNotConfigured
// for errors.Is when it was one.
type remoteError struct {
	msg           string
	notFound      bool
	notConfigured bool
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	return e.notFound && target == store.ErrNotFound || e.notConfigured && target == store.ErrNotConfigured
}

// request sends one API call over the unix socket at sock and decodes a
// 200 answer into out.
func request(ctx context.Context, sock, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://admin"+path, rd)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client(sock).Do(req)
	if err != nil {
		return fmt.Errorf("admin: %s: %w", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return answerError(sock, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin: decode answer: %w", err)
	}
	return nil
}

// client is an HTTP client of the unix socket at sock; failing to reach
// it at all is a *dialError.
func client(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", sock)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		DisableKeepAlives: true,
	}}
}

// answerError is the error of a non-200 answer.
func answerError(sock string, resp *http.Response) error {
	var e errorResponse
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return fmt.Errorf("admin: %s answered %s", sock, resp.Status)
	}
	return &remoteError{msg: e.Error, notFound: e.NotFound, notConfigured: e.NotConfigured}
}
