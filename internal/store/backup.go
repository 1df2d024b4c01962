package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Backup writes a copy of the file as of one read transaction to w: a
// consistent state file of its own, taken while the daemon goes on
// writing. start, if not nil, is told the copy's size before the first
// byte. Returns the bytes written.
func (s *Store) Backup(w io.Writer, start func(size int64)) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		if start != nil {
			start(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, wrapErr(err, "backup")
}

// BackupFile writes a backup of the state file at src, which no daemon may
// hold (ErrTimeout after timeout), to dst (see WriteBackup). A damaged
// src is ErrDamaged: a backup of it would restore the damage.
func BackupFile(src, dst string, timeout time.Duration) (int64, error) {
	db, err := openCurrent(src, Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, &lockedError{path: src}
	}
	if err != nil {
		return 0, wrapErr(err, "backup %s", src)
	}
	defer db.Close()
	return WriteBackup(src, dst, func(w io.Writer) (int64, error) {
		var n int64
		err := db.View(func(tx *bolt.Tx) error {
			var err error
			n, err = tx.WriteTo(w)
			return err
		})
		return n, err
	})
}

// WriteBackup writes what fill writes to dst without ever leaving a
// partial file there: into a temporary file beside dst (mode 0600), synced,
// checked as Open checks a state file, then renamed over dst and the
// directory synced. src, the state file the copy is of, is never
// overwritten. Returns the size written.
func WriteBackup(src, dst string, fill func(io.Writer) (int64, error)) (n int64, err error) {
	if same(src, dst) {
		return 0, fmt.Errorf("store: backup: %s is the state file itself", dst)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	if n, err = fill(f); err != nil {
		return 0, fmt.Errorf("store: backup to %s: %w", dst, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	if _, err := checkFile(f); err != nil {
		return 0, fmt.Errorf("store: backup: the copy does not check out: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// same reports whether a and b name one file (or one path).
func same(a, b string) bool {
	fa, erra := os.Stat(a)
	fb, errb := os.Stat(b)
	if erra == nil && errb == nil {
		return os.SameFile(fa, fb)
	}
	aa, erra := filepath.Abs(a)
	ab, errb := filepath.Abs(b)
	return erra == nil && errb == nil && aa == ab
}
