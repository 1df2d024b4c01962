// Command poller polls RetailCRM order history and delivers
// trigger-compatible, signed webhooks for status transitions. See README.md
// and docs/REFERENCE.md for the subcommands; this package only parses
// flags and wires the internal packages together.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
