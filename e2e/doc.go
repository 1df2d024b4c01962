// Package e2e holds the end-to-end suite: tests that build the real poller
// binary, start it as a separate process against the in-process RetailCRM
// simulator (crmsim) and a webhook receiver, and check what arrives against
// the simulator's ground truth, through faults, signals and kills.
//
// Run it alone with `go test -race ./e2e/`. E2E_LONG=1 turns on the long
// variants (100 SIGKILL rounds instead of 20). The binary is built once per
// run, with the race detector when the tests are built with it.
package e2e
