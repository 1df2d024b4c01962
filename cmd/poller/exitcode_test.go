package main

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestUnitRestartPrevention: the systemd unit does not restart on exactly
// the codes meaning "a restart will not fix it" (bad usage, invalid
// config), and never on 2, which is how Go's runtime exits after a panic
// or fatal error: a crash is restarted.
func TestUnitRestartPrevention(t *testing.T) {
	f, err := os.Open("../../systemd/retailcrm-poller.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var prevent []int
	restart := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch {
		case !ok:
		case key == "Restart":
			restart = val
		case key == "RestartPreventExitStatus":
			for _, v := range strings.Fields(val) {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("RestartPreventExitStatus=%s: %v", val, err)
				}
				prevent = append(prevent, n)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
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
