package main

import (
	"slices"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

// TestUnitRestartPrevention: the systemd unit does not restart on exactly
// the codes meaning "a restart will not fix it" (bad usage, invalid
// config), and never on 2, which is how Go's runtime exits after a panic
// or fatal error: a crash is restarted.
func TestUnitRestartPrevention(t *testing.T) {
	restart, prevent := testkit.UnitRestart(t, "../../systemd/retailcrm-poller.service")
	if restart != "on-failure" {
		t.Errorf("Restart=%s, want on-failure", restart)
	}
	slices.Sort(prevent)
	if want := []int{exitUsage, exitConfig}; !slices.Equal(prevent, want) {
		t.Errorf("RestartPreventExitStatus %v, want %v", prevent, want)
	}
	for _, code := range []int{exitOK, exitFailure, exitUsage, exitConfig} {
		if code == 2 {
			t.Errorf("exit code 2 is used by a command: a crash would look the same")
		}
	}
	if slices.Contains(prevent, 2) || slices.Contains(prevent, exitFailure) {
		t.Errorf("RestartPreventExitStatus %v keeps a crash or a runtime failure down", prevent)
	}
}
