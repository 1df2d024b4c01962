package main

import (
	"fmt"
	"io"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

const configArgs = "schema"

// cmdConfig is `poller config schema`: the config file's JSON Schema, for
// editors (yaml-language-server) and CI. docs/config.schema.json is a copy.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("config", configArgs, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() == 0:
		return usageError(fs, stderr, "missing subcommand (want schema)")
	case fs.Arg(0) != "schema":
		return usageError(fs, stderr, "unknown config command %q (want schema)", fs.Arg(0))
	case fs.NArg() > 1:
		return usageError(fs, stderr, "unexpected arguments after schema")
	}
	b, err := config.Schema()
	if err != nil {
		fmt.Fprintln(stderr, "poller config schema:", err)
		return exitFailure
	}
	if _, err := stdout.Write(b); err != nil {
		fmt.Fprintln(stderr, "poller config schema:", err)
		return exitFailure
	}
	return exitOK
}
