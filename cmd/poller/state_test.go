package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// TestStateBackupAndVerify: with no daemon, backup writes a copy that
// verifies with the same counts, from -config or as a file argument.
func TestStateBackupAndVerify(t *testing.T) {
	dir := t.TempDir()
	cfg := compactConfig(t, dir)
	state := filepath.Join(dir, "state", store.FileName)
	backlog(t, state, 600, 100)
	dst := filepath.Join(dir, "backup.db")

	var out, errb bytes.Buffer
	if code := run([]string{"state", "backup", "-config", cfg, dst}, &out, &errb); code != exitOK {
		t.Fatalf("backup: exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), dst+": ") {
		t.Errorf("backup printed %q", out.String())
	}
	for _, args := range [][]string{{"-config", cfg}, {dst}} {
		out.Reset()
		errb.Reset()
		if code := run(append([]string{"state", "verify", "-json"}, args...), &out, &errb); code != exitOK {
			t.Fatalf("verify %v: exit %d: %s", args, code, errb.String())
		}
		var rep store.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Pending != 100 || rep.Accounts != 1 || len(rep.Problems) != 0 {
			t.Errorf("verify %v: %+v, %v", args, rep, err)
		}
	}
}

// TestCommandsRefuseDamagedFile: every command that opens the state file
// exits 1 with one line naming the file, the damage and what to do.
func TestCommandsRefuseDamagedFile(t *testing.T) {
	dir := t.TempDir()
	cfg := compactConfig(t, dir)
	state := filepath.Join(dir, "state", store.FileName)
	backlog(t, state, 600, 100)
	for _, size := range []int64{0, 8 << 10, 1 << 20} {
		if err := os.Truncate(state, size); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"status", "-config", cfg},
			{"dlq", "list", "-config", cfg},
			{"dlq", "retry", "-config", cfg},
			{"compact", "-config", cfg},
			{"state", "verify", "-config", cfg},
			{"state", "backup", "-config", cfg, filepath.Join(dir, "b.db")},
		} {
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if code != exitFailure || !strings.Contains(lines[0], state) || !strings.Contains(errb.String(), store.DamageHint) {
				t.Errorf("%d bytes, %v: exit %d, stderr %q", size, args, code, errb.String())
			}
			if args[0] != "state" && len(lines) != 1 {
				t.Errorf("%d bytes, %v: %d lines, want one: %q", size, args, len(lines), errb.String())
			}
		}
		if fi, err := os.Stat(state); err != nil || fi.Size() != size {
			t.Fatalf("the damaged file was changed: %v", err)
		}
	}
}
