package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

// Exit codes, the same for every command. None of them is 2: Go's runtime
// exits 2 on a panic or a fatal error, which systemd must restart, while
// the unit does not restart on 64 or 78 (RestartPreventExitStatus), which
// a restart cannot fix.
const (
	exitOK      = 0
	exitFailure = 1  // runtime failure (restarted under systemd)
	exitUsage   = 64 // bad usage: unknown command or flag, missing or bad flag value (EX_USAGE)
	exitConfig  = 78 // invalid config: the file does not load or validate (EX_CONFIG)
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
		{"events", eventsArgs, "an event's queues and attempt log (time, webhook, status, latency, response or error)", cmdEvents},
		{"replay", replayArgs, "send an account's transitions of a past window again", cmdReplay},
		{"when", whenArgs, "show the change sets of an account's recent history a condition holds for (read-only)", cmdWhen},
		{"compact", "-config FILE", "give the space freed by delivered events back to the file system (daemon stopped)", cmdCompact},
		{"state", stateArgs, "check the state file, or write a consistent copy of it (daemon running or not)", cmdState},
		{"send-test", "-config FILE -account A", "send one synthetic event to the account's webhooks", cmdSendTest},
		{"demo", "[-duration D]", "simulator + daemon + receiver in one process", cmdDemo},
		{"config", configArgs, "print the config file's JSON Schema, or the effective config (defaults in, secrets REDACTED)", cmdConfig},
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
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 runtime failure, 64 bad usage, 78 invalid config; 2 is a crash (Go runtime).")
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
// (exitOK after -h, exitUsage after a usage error, already reported).
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

// configFlag adds the -config flag of every command that reads the config.
func configFlag(fs *flag.FlagSet) {
	fs.String("config", "", "config `file` (YAML)")
}

// flagRules are what a command asks of its flags beyond -config.
type flagRules struct {
	required  []string     // flags that must be given
	allowArgs bool         // arguments may follow the flags
	check     func() error // further checks, made before the config is read
}

// parseAndLoad is how every command that reads the config starts: parse
// args, insist on -config and on the rules' flags, then load the config (a
// broken one exits exitConfig). Usage errors come first, whatever the file
// holds.
// ok is false when the caller must return code, already reported.
func parseAndLoad(fs *flag.FlagSet, args []string, stderr io.Writer, rules flagRules) (*config.Config, int, bool) {
	if code, ok := parseFlags(fs, args); !ok {
		return nil, code, false
	}
	for _, name := range append([]string{"config"}, rules.required...) {
		if fs.Lookup(name).Value.String() == "" {
			return nil, usageError(fs, stderr, "-%s is required", name), false
		}
	}
	if !rules.allowArgs && fs.NArg() > 0 {
		return nil, usageError(fs, stderr, "unexpected arguments: %s", strings.Join(fs.Args(), " ")), false
	}
	if rules.check != nil {
		if err := rules.check(); err != nil {
			return nil, usageError(fs, stderr, "%v", err), false
		}
	}
	cfg, err := config.Load(fs.Lookup("config").Value.String())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, exitConfig, false
	}
	return cfg, exitOK, true
}

// configuredAccount returns the account named by -account; ok is false,
// with the error reported, when the config has no such account.
func configuredAccount(fs *flag.FlagSet, stderr io.Writer, cfg *config.Config, name string) (acct *config.Account, ok bool) {
	if acct, ok = cfg.Account(name); !ok {
		fmt.Fprintf(stderr, "%s: no account %q in %s\n", fs.Name(), name, cfg.Path)
	}
	return acct, ok
}
