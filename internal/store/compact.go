package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// compactTxSize bounds each transaction of the copy, so compacting a big
// file needs bounded memory.
const compactTxSize = 64 << 20

// Compact rewrites the state file at path into a new file holding only the
// live data (bbolt's Compact), so space freed by delivered and dropped
// events goes back to the file system, and renames it over path. It holds
// the file's lock from start to end: while another process (the daemon)
// has the file open it fails with ErrTimeout after waiting timeout, and a
// process that was waiting for the lock opens the new file (Open checks).
// The file is migrated first, as by every Open. Returns the file sizes
// before and after.
func Compact(path string, timeout time.Duration) (before, after int64, err error) {
	s, err := Open(path, Options{Timeout: timeout})
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := compactTo(s.db, tmp, timeout); err != nil {
		_ = os.Remove(tmp)
		return 0, 0, wrapErr(err, "compact %s", path)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	nfi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	return fi.Size(), nfi.Size(), nil
}

// compactTo copies src's live data into a new bbolt file at dst. Every
// transaction of the copy is synced to disk before dst is closed.
func compactTo(src *bolt.DB, dst string, timeout time.Duration) error {
	db, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	return errors.Join(bolt.Compact(db, src, compactTxSize), db.Close())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
