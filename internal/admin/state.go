package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// Backup writes a consistent copy of the state file to dst (see
// store.WriteBackup: never a partial file, mode 0600): streamed by the
// running daemon from one read transaction, or, with no daemon, read from
// the file itself. Returns the copy's size.
func Backup(ctx context.Context, cfg *config.Config, dst string) (int64, error) {
	var n int64
	err := remoteOr(cfg, func(sock string) error {
		var err error
		n, err = remoteBackup(ctx, sock, dst, cfg)
		return err
	}, func(file string) error {
		var err error
		n, err = store.BackupFile(file, dst, fileLockWait)
		return err
	})
	return n, err
}

// remoteBackup asks the daemon for the copy and writes it to dst; a copy
// shorter than announced (the daemon stopped meanwhile) is an error and
// leaves nothing at dst.
func remoteBackup(ctx context.Context, sock, dst string, cfg *config.Config) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin/state/backup", nil)
	if err != nil {
		return 0, fmt.Errorf("admin: %w", err)
	}
	resp, err := client(sock).Do(req)
	if err != nil {
		return 0, fmt.Errorf("admin: %s: %w", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, answerError(sock, resp)
	}
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("admin: %s sent a backup of unknown size", sock)
	}
	src := filepath.Join(cfg.StateDir, store.FileName)
	return store.WriteBackup(src, dst, func(w io.Writer) (int64, error) {
		n, err := io.Copy(w, resp.Body)
		if err == nil && n != resp.ContentLength {
			err = fmt.Errorf("the daemon sent %d of %d bytes", n, resp.ContentLength)
		}
		return n, err
	})
}

// Verify checks the state file (see store.Report): in the running
// daemon, or, with no daemon, the file itself, with bbolt's consistency
// check too.
func Verify(ctx context.Context, cfg *config.Config) (store.Report, error) {
	var r store.Report
	err := remoteOr(cfg, func(sock string) error {
		return request(ctx, sock, http.MethodGet, "/state/verify", nil, &r)
	}, func(file string) error {
		var err error
		r, err = store.VerifyFile(file, fileLockWait)
		return err
	})
	return r, err
}

func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	started := false
	n, err := s.st.Backup(w, func(size int64) {
		started = true
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
	})
	switch {
	case err != nil && started:
		// The client sees a short copy and keeps nothing.
		s.log.Error("state backup failed", "error", err, "bytes", n)
	case err != nil:
		s.reply(w, nil, err)
	default:
		s.log.Info("state backup sent", "bytes", n)
	}
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	rep, err := s.st.Verify()
	if err == nil && len(rep.Problems) > 0 {
		s.log.Error("state verify found problems", "problems", rep.Problems)
	}
	s.reply(w, rep, err)
}
