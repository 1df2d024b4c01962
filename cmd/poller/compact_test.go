package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// compactConfig writes a config whose state_dir is dir/state.
func compactConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %s
listen: ""
admin_socket: ""
accounts:
  - name: ghana
    url: https://aff-gh.retailcrm.ru
    api_key: key-0123456789
    webhooks:
      - url: https://app.example.com/hook
`, filepath.Join(dir, "state"))
	path := filepath.Join(dir, "poller.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// backlog fills the state file with n events and delivers all but keep.
func backlog(t *testing.T, path string, n, keep int) {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	order := json.RawMessage(`{"id":1,"items":"` + strings.Repeat("x", 4000) + `"}`)
	for first := 1; first <= n; first += 500 {
		var evs []store.NewEvent
		for hid := first; hid < first+500 && hid <= n; hid++ {
			evs = append(evs, store.NewEvent{Event: event.Event{ID: event.ID("ghana", int64(hid)), Type: event.StatusChanged,
				Account: "ghana", Change: event.Change{HistoryID: int64(hid)}, Order: order}, OrderID: int64(hid), DetectedAt: time.Now()})
		}
		if err := st.CommitPoll("ghana", store.Commit{Events: evs, Webhooks: []string{"1"}, Cursor: int64(first + len(evs)), At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	items, err := st.Pending("ghana", "1", 0, n-keep)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, it := range items { // marks that do not wait share transactions
		wg.Add(1)
		st.Delivered("ghana", "1", it.Seq, nil, func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
}

func TestCompactCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := compactConfig(t, dir)
	file := filepath.Join(dir, "state", store.FileName)

	var out, errb bytes.Buffer
	if code := run([]string{"compact", "-config", cfg}, &out, &errb); code != exitFailure || !strings.Contains(errb.String(), "does not exist") {
		t.Errorf("compact without a state file: exit %d, stderr %q", code, errb.String())
	}

	backlog(t, file, 1500, 10)
	fi, _ := os.Stat(file)
	out.Reset()
	errb.Reset()
	if code := run([]string{"compact", "-config", cfg}, &out, &errb); code != exitOK {
		t.Fatalf("compact: exit %d: %s", code, errb.String())
	}
	after, _ := os.Stat(file)
	want := fmt.Sprintf("%s: %d bytes before, %d bytes after", file, fi.Size(), after.Size())
	if !strings.Contains(out.String(), want) {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if after.Size() >= fi.Size()/2 {
		t.Errorf("file %d bytes after compaction, %d before", after.Size(), fi.Size())
	}
	st, err := store.Open(file, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, _, err := st.Counts("ghana"); err != nil || p != 10 {
		t.Errorf("after compaction: %d pending, %v; want 10", p, err)
	}

	// While the daemon (here: an open store) holds the file: refused, exit 1.
	out.Reset()
	errb.Reset()
	code := run([]string{"compact", "-config", cfg}, &out, &errb)
	st.Close()
	if code != exitFailure || !strings.Contains(errb.String(), "stop it first") || out.Len() != 0 {
		t.Errorf("compact of a file in use: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if now, _ := os.Stat(file); now.Size() != after.Size() {
		t.Error("a refused compact changed the file")
	}
	if code := run([]string{"compact"}, &out, &errb); code != exitUsage {
		t.Errorf("compact without -config: exit %d", code)
	}
}
