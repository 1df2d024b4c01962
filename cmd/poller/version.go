package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected arguments")
	}
	fmt.Fprintf(stdout, "poller %s (%s, %s/%s)\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
