package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// DamageHint is what to do about a damaged state file, the end of every
// ErrDamaged message.
const DamageHint = "stop the daemon and restore a backup made by `poller state backup` " +
	"(copy it over the file, then start), or move the file away and start with start_from " +
	"set a margin before the damage; see Disaster recovery in docs/OPERATIONS.md"

// DamageError is a state file that is empty, cut short or damaged. It
// matches ErrDamaged.
type DamageError struct {
	Path    string
	Problem string // what is wrong, in words
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("store: %s is damaged: %s; %s", e.Path, e.Problem, DamageHint)
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// errReplaced: the file was renamed over while this process waited for its
// lock (see openCurrent).
var errReplaced = errors.New("store: file replaced while waiting for its lock")

// lockPoll is how often a locked file is tried again, as bbolt does.
const lockPoll = 50 * time.Millisecond

// openChecked is bbolt's OpenFile: it opens path, takes the lock bbolt
// would take (bbolt's own flock on the same descriptor then succeeds at
// once), makes sure the file locked is still the one at path, and checks
// an existing file before bbolt maps it (see checkFile). Only a file this
// call creates may be empty: an existing empty file lost its state.
func openChecked(path string, flag int, mode os.FileMode, exclusive bool, timeout time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, flag&^os.O_CREATE, mode)
	created := false
	if errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0 {
		f, err = os.OpenFile(path, flag|os.O_EXCL, mode)
		created = err == nil
		if errors.Is(err, fs.ErrExist) {
			return nil, errReplaced // created meanwhile by another process: start over
		}
	}
	if err != nil {
		return nil, err
	}
	if err := lock(f, exclusive, timeout); err != nil {
		f.Close()
		return nil, err
	}
	locked, lerr := f.Stat()
	current, cerr := os.Stat(path)
	switch {
	case lerr != nil:
		f.Close()
		return nil, lerr
	case errors.Is(cerr, fs.ErrNotExist) || cerr == nil && !os.SameFile(locked, current):
		f.Close()
		return nil, errReplaced
	case cerr != nil:
		f.Close()
		return nil, cerr
	}
	if created {
		return f, nil
	}
	if _, err := checkFile(f); err != nil {
		f.Close()
		if p, ok := errors.AsType[problem](err); ok {
			return nil, &DamageError{Path: path, Problem: string(p)}
		}
		return nil, fmt.Errorf("check %s: %w", path, err)
	}
	return f, nil
}

// lock takes f's flock, shared or exclusive, waiting up to timeout; a
// timeout is bbolt's ErrTimeout.
func lock(f *os.File, exclusive bool, timeout time.Duration) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, unix.EWOULDBLOCK):
			return fmt.Errorf("lock: %w", err)
		case time.Now().After(deadline):
			return berrors.ErrTimeout
		}
		time.Sleep(lockPoll)
	}
}
