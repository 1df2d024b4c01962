package testkit

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// UnitRestart reads a systemd unit's restart rule: its Restart= value and
// the exit codes of RestartPreventExitStatus=.
func UnitRestart(tb testing.TB, path string) (restart string, prevent []int) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch key {
		case "Restart":
			restart = val
		case "RestartPreventExitStatus":
			for _, v := range strings.Fields(val) {
				n, err := strconv.Atoi(v)
				if err != nil {
					tb.Fatalf("%s: RestartPreventExitStatus=%s: %v", path, val, err)
				}
				prevent = append(prevent, n)
			}
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return restart, prevent
}
