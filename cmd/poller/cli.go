package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes, the same for every command.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // bad usage or invalid config
)

// command is one subcommand. run gets the arguments after the subcommand
// name and returns the process exit code.
type command struct {
	name    string
	args    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "-config FILE", "run the daemon", cmdRun},
		{"check", "-config FILE [-online]", "validate the config; -online also checks keys, statuses and sites", cmdCheck},
		{"status", "-config FILE", "per account: cursor, last poll, pending, dead", cmdStatus},
		{"dlq", "list|retry|drop -config FILE [-account A] [EVENT_ID...]", "inspect, retry or drop dead letters", cmdDLQ},
		{"replay", replayArgs, "send an account's transitions of a past window again", cmdReplay},
		{"compact", "-config FILE", "give the space freed by delivered events back to the file system (daemon stopped)", cmdCompact},
		{"send-test", "-config FILE -account A", "send one synthetic event to the account's webhooks", cmdSendTest},
		{"demo", "[-duration D]", "simulator + daemon + receiver in one process", cmdDemo},
		{"config", configArgs, "print the config file's JSON Schema", cmdConfig},
		{"version", "", "print the version", cmdVersion},
	}
}

// run dispatches to a subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "poller: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: poller COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\n        %s\n", strings.TrimSpace("poller "+c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid config.")
}

// newFlagSet returns a flag set that reports errors to stderr and never
// exits the process itself.
func newFlagSet(c, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("poller "+c, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: poller %s %s\n", c, args)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; ok is false when the caller must return code
// (0 after -h, 2 after a usage error, already reported).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return exitOK, true
}

// usageError reports a usage problem and returns exitUsage.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return exitUsage
}

// requireConfig checks that -config was given and no stray arguments remain.
func requireConfig(fs *flag.FlagSet, stderr io.Writer, path string, allowArgs bool) (int, bool) {
	if path == "" {
		return usageError(fs, stderr, "-config is required"), false
	}
	if !allowArgs && fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected arguments: %s", strings.Join(fs.Args(), " ")), false
	}
	return exitOK, true
}
