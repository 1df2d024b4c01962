package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeStatePaths: the state_dir and admin_socket lines the README
// tells systemd users to write are the example config's values and the
// unit's StateDirectory and RuntimeDirectory, and the README says the
// example holds them.
func TestReadmeStatePaths(t *testing.T) {
	readme := readText(t, "../../README.md")
	unit := readText(t, "../../systemd/retailcrm-poller.service")
	example, err := Parse("../../config.example.yaml", []byte(readText(t, "../../config.example.yaml")), func(k string) (string, bool) {
		return map[string]string{"GHANA_API_KEY": "k", "WEBHOOK_SECRET": "whsec_" + "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}[k], true
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := func(key string) string {
		m := regexp.MustCompile(`(?m)^` + key + `=(\S+)$`).FindStringSubmatch(unit)
		if m == nil {
			t.Fatalf("the unit has no %s=", key)
		}
		return m[1]
	}
	wantState := filepath.Join("/var/lib", dir("StateDirectory"))
	wantSocket := filepath.Join("/run", dir("RuntimeDirectory"), "admin.sock")
	if example.StateDir != wantState || example.AdminSocket != wantSocket {
		t.Errorf("config.example.yaml: state_dir %s, admin_socket %s; the unit's are %s, %s", example.StateDir, example.AdminSocket, wantState, wantSocket)
	}
	for key, want := range map[string]string{"state_dir": wantState, "admin_socket": wantSocket} {
		m := regexp.MustCompile(`(?m)^`+key+`: (\S+)`).FindAllStringSubmatch(readme, -1)
		if len(m) != 1 || m[0][1] != want {
			t.Errorf("README.md's %s lines %v, want one with %s", key, m, want)
		}
	}
	if !strings.Contains(readme, "The example config\nsets both") {
		t.Error("README.md does not say that the example config sets state_dir and admin_socket")
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
