package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// compactLockWait is how long compact waits for the state file's lock: a
// daemon holds it for its whole life, so waiting longer is pointless.
const compactLockWait = time.Second

func cmdCompact(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("compact", "-config FILE", stderr)
	configFlag(fset)
	cfg, code, ok := parseAndLoad(fset, args, stderr, flagRules{})
	if !ok {
		return code
	}
	file := filepath.Join(cfg.StateDir, store.FileName)
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "poller compact: %s does not exist: nothing to compact\n", file)
		return exitFailure
	}
	before, after, err := store.Compact(file, compactLockWait)
	switch {
	case errors.Is(err, store.ErrTimeout):
		fmt.Fprintf(stderr, "poller compact: %s is in use, most likely by the running daemon: stop it first, then compact\n", file)
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "poller compact: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s: %d bytes before, %d bytes after (%d freed)\n", file, before, after, before-after)
	return exitOK
}
