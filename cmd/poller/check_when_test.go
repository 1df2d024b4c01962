package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckWhen: a bad condition fails check with its position; a field
// the order history does not have is a warning, and check still passes.
func TestCheckWhen(t *testing.T) {
	dir := t.TempDir()
	const head = `accounts:
  - name: ghana
    url: https://aff-gh.retailcrm.ru
    api_key: k
    webhooks:
      - url: https://app.example.com/hook
`
	for _, tc := range []struct {
		name, when string
		code       int
		stdout     string
		stderr     string
	}{
		{"typo in a field", `when: changeSet.hasChangedField("stauts")`, exitOK, "ok  ",
			`warning: ` + "%s" + `:7: accounts[0].webhooks[0].when: "stauts" is not a field of the order history`},
		{"bad expression", `when: changeSet.hasChangedField("status") and`, exitConfig, "",
			"%s" + `:7: accounts[0].webhooks[0].when: bad expression at column 40 of the expression, column 54 of line 7: the expression ends too early`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(head+"        "+tc.when+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			if code := run([]string{"check", "-config", path}, &out, &errb); code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errb.String())
			}
			if !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", out.String(), tc.stdout)
			}
			if want := strings.ReplaceAll(tc.stderr, "%s", path); !strings.Contains(errb.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, errb.String())
			}
		})
	}
}
