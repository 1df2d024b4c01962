package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// aliasBomb is issue 10's file (testdata/alias_bomb.yaml); the e2e suite
// runs the real binary on it.
func aliasBomb(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/alias_bomb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// anchoredAccounts is a legitimate big file: n accounts sharing anchored
// settings and webhooks.
func anchoredAccounts(n int) []byte {
	var b strings.Builder
	b.WriteString("defaults:\n  statuses: &st [approved, complete]\naccounts:\n")
	for i := range n {
		if i == 0 {
			b.WriteString("  - &base\n    name: a0\n    url: https://a.retailcrm.ru\n    api_key: key\n    statuses: *st\n" +
				"    webhooks: &hooks\n      - {name: app, url: 'https://app.example.com/hook', format: form, params: {id: '{{ order.id }}', n: '{{ order.number }}'}}\n" +
				"      - {name: chat, url: 'https://chat.example.com/hook'}\n")
			continue
		}
		fmt.Fprintf(&b, "  - {<<: *base, name: a%d, webhooks: *hooks}\n", i)
	}
	return []byte(b.String())
}

// TestAliasFanOut: an alias fan-out is refused before it is decoded, with
// the limit named at the alias that crosses it; real reuse loads.
func TestAliasFanOut(t *testing.T) {
	data := aliasBomb(t)
	if len(data) > 15<<10 {
		t.Fatalf("the bomb is %d bytes, the issue's is 15 KB", len(data))
	}
	_, err := Parse("c.yaml", data, env(nil))
	want := "c.yaml:14: accounts[0].webhooks[204]: aliases expand to more than 124460 values, " +
		"the limit for this file (100000 + 20 × its 1223 YAML nodes): refusing an alias fan-out"
	if fmt.Sprint(err) != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}

	const accounts = 10_000
	cfg, err := Parse("c.yaml", anchoredAccounts(accounts), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	last := cfg.Accounts[accounts-1]
	if len(cfg.Accounts) != accounts || last.Name != fmt.Sprintf("a%d", accounts-1) || len(last.Webhooks) != 2 ||
		last.Webhooks[0].Params[1].Name != "n" || len(last.Statuses) != 2 {
		t.Errorf("%d accounts, the last %v", len(cfg.Accounts), last)
	}
}

func TestHostileAliases(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"nested cycle", "a: &a {b: [1, {c: *a}]}\n", "c.yaml:1: a.b[1].c: alias *a is inside its own anchor: it would expand forever"},
		{"merge cycle", "accounts: [&x {name: a, <<: [*x]}]\n", "c.yaml:1: accounts[0]: alias *x is inside its own anchor: it would expand forever"},
		{"exponential list", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
			"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n" +
			"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
			"c.yaml:5: e[8]: aliases expand to more than 101480 values, the limit for this file (100000 + 20 × its 74 YAML nodes): refusing an alias fan-out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.src), env(nil))
			if fmt.Sprint(err) != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}

// TestFileSize: a file over 32 MiB is refused before it is parsed.
func TestFileSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 32 MiB + 1 of zero bytes without writing them.
	if err := f.Truncate(maxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Load(path)
	if want := path + ": larger than 32 MiB, the limit for a config file"; fmt.Sprint(err) != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// BenchmarkAliasFanOut is the time `poller check` spends refusing the
// 300 × 300 × 300 file (docs/PERFORMANCE.md).
func BenchmarkAliasFanOut(b *testing.B) {
	data := aliasBomb(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("c.yaml", data, env(nil)); err == nil {
			b.Fatal("the fan-out loaded")
		}
	}
}

// BenchmarkLoadAnchored10k loads 10,000 accounts that share anchored
// settings and webhooks.
func BenchmarkLoadAnchored10k(b *testing.B) {
	data := anchoredAccounts(10_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("c.yaml", data, env(nil)); err != nil {
			b.Fatal(err)
		}
	}
}
