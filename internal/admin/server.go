package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// Hooks connect the server to the running daemon.
type Hooks struct {
	// Changed tells the daemon that an account's queues changed: its
	// outbox gained events (a dead-letter retry, a replay) or dead letters
	// went ("" when they may be any account's). May be nil.
	Changed func(account string)
	// Runtime reports an account's last poll attempt. May be nil.
	Runtime func(account string) Runtime
}

// Server serves the admin API for a running daemon.
type Server struct {
	st    *store.Store
	cfg   atomic.Pointer[config.Config]
	hooks Hooks
	log   *slog.Logger
	srv   *http.Server
	path  string
}

// NewServer returns a server answering from st and cfg.
func NewServer(st *store.Store, cfg *config.Config, hooks Hooks, log *slog.Logger) *Server {
	s := &Server{st: st, hooks: hooks, log: log}
	s.cfg.Store(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.HandleFunc("GET /dlq", s.handleDLQList)
	mux.HandleFunc("POST /dlq/retry", s.handleDLQRetry)
	mux.HandleFunc("POST /dlq/drop", s.handleDLQDrop)
	mux.HandleFunc("POST /replay", s.handleReplay)
	mux.HandleFunc("GET /events", s.handleEvent)
	mux.HandleFunc("GET /state/backup", s.handleBackup)
	mux.HandleFunc("GET /state/verify", s.handleVerify)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// SetConfig swaps the configuration after a reload.
func (s *Server) SetConfig(cfg *config.Config) { s.cfg.Store(cfg) }

// Handler returns the API's handler (tests, or mounting elsewhere).
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Start listens on the unix socket at path (see listen) and serves in the
// background until Shutdown.
func (s *Server) Start(path string) error {
	ln, err := listen(path)
	if err != nil {
		return err
	}
	s.path = path
	go func() {
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin socket stopped", "error", err)
		}
	}()
	return nil
}

// Shutdown stops the server, waiting for requests in flight until ctx
// ends, and removes the socket file. Call it only after Start succeeded.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.path != "" {
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// listen creates the unix socket at path, readable and writable by the
// owner only. A stale socket file left by a crashed daemon is removed; a
// socket another process still answers on is ErrSocketInUse.
//
// The socket is bound under a temporary name, restricted, then renamed into
// place, so it is never reachable with looser permissions (chmod after
// bind leaves a window; changing the umask would affect the whole process).
func listen(path string) (net.Listener, error) {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("admin: %s exists and is not a socket", path)
	case err == nil:
		if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s", ErrSocketInUse, path)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("admin: %w", err)
	}
	tmp := path + ".new"
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		// Named by the configured path, not the temporary one.
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return nil, fmt.Errorf("admin: cannot create the socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("admin: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// dlqRequest is the body of POST /dlq/retry and /dlq/drop.
type dlqRequest struct {
	Account string   `json:"account"`
	IDs     []string `json:"ids"`
}

// dropResponse is the answer to POST /dlq/drop.
type dropResponse struct {
	Dropped int `json:"dropped"`
	// Pending: of those, the pending events of an account that is not in
	// the config (see drop).
	Pending int `json:"pending,omitempty"`
}

// errorResponse is the body of every non-2xx answer.
type errorResponse struct {
	Error         string `json:"error"`
	NotFound      bool   `json:"not_found,omitempty"`
	NotConfigured bool   `json:"not_configured,omitempty"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	out, err := status(s.st, s.cfg.Load(), s.hooks.Runtime)
	s.reply(w, out, err)
}

func (s *Server) handleDLQList(w http.ResponseWriter, r *http.Request) {
	items, err := s.st.Dead(r.URL.Query().Get("account"))
	s.reply(w, nonNil(items), err)
}

func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ev, err := s.st.Event(q.Get("account"), q.Get("id"))
	s.reply(w, ev, err)
}

func (s *Server) handleDLQRetry(w http.ResponseWriter, r *http.Request) {
	var req dlqRequest
	if !s.decode(w, r, &req) {
		return
	}
	moved, err := s.st.RetryDead(req.Account, req.IDs, configured(s.cfg.Load()))
	if err == nil {
		s.log.Info("dead letters retried", "account", req.Account, "count", len(moved))
		if s.hooks.Changed != nil {
			for _, a := range accountsOf(moved) {
				s.hooks.Changed(a)
			}
		}
	}
	s.reply(w, nonNil(moved), err)
}

func (s *Server) handleDLQDrop(w http.ResponseWriter, r *http.Request) {
	var req dlqRequest
	if !s.decode(w, r, &req) {
		return
	}
	out, err := drop(s.st, s.cfg.Load(), req.Account, req.IDs)
	if err == nil {
		s.log.Info("dead letters dropped", "account", req.Account, "count", out.Dropped, "pending", out.Pending)
		if s.hooks.Changed != nil {
			s.hooks.Changed(req.Account)
		}
	}
	s.reply(w, out, err)
}

func (s *Server) handleReplay(w http.ResponseWriter, r *http.Request) {
	var req replayRequest
	if !s.decodeUpTo(w, r, &req, maxReplayBody) {
		return
	}
	err := replay(s.st, s.cfg.Load(), req)
	if err == nil {
		s.log.Info("events replayed", "account", req.Account, "webhooks", req.Webhooks, "count", len(req.Events))
		if s.hooks.Changed != nil {
			s.hooks.Changed(req.Account)
		}
	}
	s.reply(w, replayResponse{Queued: len(req.Events)}, err)
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return s.decodeUpTo(w, r, v, 1<<20)
}

func (s *Server) decodeUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit)).Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "admin: bad request: " + err.Error()})
		return false
	}
	return true
}

// reply writes v, or err as an errorResponse (404 for store.ErrNotFound,
// 409 for store.ErrNotConfigured).
func (s *Server) reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorResponse{Error: err.Error(), NotFound: true})
	case errors.Is(err, store.ErrNotConfigured):
		writeJSON(w, http.StatusConflict, errorResponse{Error: err.Error(), NotConfigured: true})
	case err != nil:
		s.log.Error("admin request failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, errorResponse{Error: err.Error()})
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil(items []store.Item) []store.Item {
	if items == nil {
		return []store.Item{}
	}
	return items
}
