package main

import (
	"fmt"
	"io"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

const configArgs = "schema | print -config FILE"

// cmdConfig is `poller config schema`, the config file's JSON Schema for
// editors (yaml-language-server) and CI (docs/config.schema.json is a
// copy), and `poller config print`, the effective config: what the daemon
// runs after a (re)load, defaults filled in and secrets REDACTED.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("config", configArgs, stderr)
	if len(args) > 0 && args[0] == "print" {
		fs = newFlagSet("config print", "-config FILE", stderr)
		configFlag(fs)
		cfg, code, ok := parseAndLoad(fs, args[1:], stderr, flagRules{})
		if !ok {
			return code
		}
		return write(stderr, "poller config print", stdout, cfg.Effective)
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() == 0:
		return usageError(fs, stderr, "missing subcommand (want schema or print)")
	case fs.Arg(0) != "schema":
		return usageError(fs, stderr, "unknown config command %q (want schema or print)", fs.Arg(0))
	case fs.NArg() > 1:
		return usageError(fs, stderr, "unexpected arguments after schema")
	}
	return write(stderr, "poller config schema", stdout, config.Schema)
}

// write prints what produce makes, or reports its error under cmd.
func write(stderr io.Writer, cmd string, stdout io.Writer, produce func() ([]byte, error)) int {
	b, err := produce()
	if err == nil {
		_, err = stdout.Write(b)
	}
	if err != nil {
		fmt.Fprintln(stderr, cmd+":", err)
		return exitFailure
	}
	return exitOK
}
