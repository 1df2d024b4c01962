package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

const stateArgs = "verify -config FILE [-json] | verify [-json] STATE_FILE | backup -config FILE DEST"

// cmdState is `poller state verify` and `poller state backup`.
func cmdState(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintf(stdout, "Usage: poller state %s\n", stateArgs)
			return exitOK
		}
		fmt.Fprintf(stderr, "Usage: poller state %s\n", stateArgs)
		return exitUsage
	}
	fs := newFlagSet("state "+args[0], stateArgs, stderr)
	switch args[0] {
	case "verify":
		return stateVerify(fs, args[1:], stdout, stderr)
	case "backup":
		return stateBackup(fs, args[1:], stdout, stderr)
	}
	return usageError(fs, stderr, "unknown state command %q (want verify or backup)", args[0])
}

// stateVerify checks the configured state file (through the running
// daemon when one answers) or a state file named on the command line, such
// as a backup. Exit 1 when anything is wrong.
func stateVerify(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	configFlag(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var (
		rep store.Report
		err error
	)
	switch hasConfig := fs.Lookup("config").Value.String() != ""; {
	case !hasConfig && fs.NArg() != 1:
		return usageError(fs, stderr, "give -config FILE or the state file to verify")
	case hasConfig && fs.NArg() > 0:
		return usageError(fs, stderr, "give -config FILE or a state file, not both")
	case !hasConfig:
		rep, err = store.VerifyFile(fs.Arg(0), compactLockWait)
	default:
		// Parsed again by the common path, so a bad config exits as
		// every command's does.
		cfs := newFlagSet(fs.Name()[len("poller "):], stateArgs, stderr)
		configFlag(cfs)
		cfs.Bool("json", false, "print the report as JSON")
		cfg, code, ok := parseAndLoad(cfs, args, stderr, flagRules{})
		if !ok {
			return code
		}
		ctx, stop := adminContext()
		defer stop()
		rep, err = admin.Verify(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "poller state verify: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		if code := writeJSON(stdout, stderr, rep); code != exitOK {
			return code
		}
	} else if len(rep.Problems) == 0 {
		fmt.Fprintf(stdout, "ok  %s: %d accounts, %d pending, %d dead; schema %d, transaction %d, %d bytes\n",
			rep.Path, rep.Accounts, rep.Pending, rep.Dead, rep.Schema, rep.TxID, rep.Size)
		if rep.Note != "" {
			fmt.Fprintf(stdout, "note: %s\n", rep.Note)
		}
	}
	if len(rep.Problems) == 0 {
		return exitOK
	}
	if len(rep.Problems) == 1 {
		fmt.Fprintf(stderr, "poller state verify: %v\n", &store.DamageError{Path: rep.Path, Problem: rep.Problems[0]})
		return exitFailure
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stderr, "poller state verify: %s is damaged: %s\n", rep.Path, p)
	}
	fmt.Fprintf(stderr, "poller state verify: what to do: %s\n", store.DamageHint)
	return exitFailure
}

// stateBackup writes a consistent copy of the state file to DEST, while
// the daemon runs or not.
func stateBackup(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	configFlag(fs)
	cfg, code, ok := parseAndLoad(fs, args, stderr, flagRules{allowArgs: true, check: func() error {
		if fs.NArg() != 1 {
			return errors.New("give one destination file")
		}
		return nil
	}})
	if !ok {
		return code
	}
	ctx, stop := adminContext()
	defer stop()
	n, err := admin.Backup(ctx, cfg, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "poller state backup: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s: %d bytes\n", fs.Arg(0), n)
	return exitOK
}
