package check

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
	"github.com/retailcrm-poller/retailcrm-poller/internal/testkit"
)

func TestOnline(t *testing.T) {
	sim := crmsim.New(crmsim.Options{Seed: 1})
	sim.AddAccount(crmsim.AccountOptions{Name: "good", APIKey: "good-key", Sites: []string{"a", "b"}})
	sim.AddAccount(crmsim.AccountOptions{Name: "custom", APIKey: "custom-key", Statuses: []string{"new", "paid", "done"}})
	// /api/credentials without sitesAvailable, as api-client-php's sample:
	// a key with full access, and one limited to some sites.
	sim.AddAccount(crmsim.AccountOptions{Name: "full", APIKey: "full-key", Sites: []string{"a", "b"}, CredentialsWithoutSites: true})
	sim.AddAccount(crmsim.AccountOptions{Name: "sel", APIKey: "sel-key", Sites: []string{"a", "b", "c"}, KeySites: []string{"c", "a"},
		CredentialsWithoutSites: true})
	broken := sim.AddAccount(crmsim.AccountOptions{Name: "broken", APIKey: "broken-key", KeySites: []string{"main"}, CredentialsWithoutSites: true})
	broken.SetFaults(crmsim.Faults{Endpoint: crmsim.EndpointSites, HTML: 1000})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	acct := func(name, key string, statuses, sites []string) config.Account {
		return config.Account{Name: name, URL: crmsim.URL(srv.URL, name), APIKey: config.Secret(key),
			Statuses: statuses, Sites: sites, RateLimit: 10, Timeout: 5 * time.Second}
	}
	down := acct("down", "Zq9-down-key", []string{"approved"}, nil)
	down.URL = testkit.ClosedURL(t)
	tests := []struct {
		name    string
		acct    config.Account
		wantErr error  // nil: ok
		wantMsg string // in the line
	}{
		{"ok all sites", acct("good", "good-key", []string{"approved"}, nil), nil, "sites: a, b (listed in /api/credentials); statuses: approved"},
		{"ok one site", acct("good", "good-key", []string{"approved", "complete"}, []string{"b"}), nil,
			"sites: b (listed in /api/credentials); statuses: approved, complete"},
		{"full access, no list", acct("full", "full-key", []string{"approved"}, nil), nil,
			"ok    full: key accepted; sites: every site (siteAccess access_full, /api/credentials lists no sites); statuses: approved"},
		{"full access, no list: configured sites are taken on trust", acct("full", "full-key", []string{"approved"}, []string{"b", "zz"}), nil,
			"sites: b, zz (siteAccess access_full, /api/credentials lists no sites)"},
		{"selective, no list", acct("sel", "sel-key", []string{"approved"}, nil), nil,
			"sites: a, c (from /api/v5/reference/sites, /api/credentials lists no sites); statuses: approved"},
		{"selective, no list, site configured", acct("sel", "sel-key", []string{"approved"}, []string{"c"}), nil,
			"sites: c (from /api/v5/reference/sites, /api/credentials lists no sites)"},
		{"selective, no list, site not seen", acct("sel", "sel-key", []string{"approved"}, []string{"b", "c"}), ErrMissingSite,
			": b (the key sees: a, c; from /api/v5/reference/sites, /api/credentials lists no sites)"},
		{"sites reference fails", acct("broken", "broken-key", []string{"approved"}, nil), retailcrm.ErrUnavailable, "FAIL  broken: sites: retailcrm: server error"},
		{"wrong key", acct("good", "Zq9-not-the-key", []string{"approved"}, nil), retailcrm.ErrUnauthorized, "credentials:"},
		{"not retailcrm", acct("nosuch", "Zq9-nosuch-key", []string{"approved"}, nil), retailcrm.ErrAccountNotFound, "credentials:"},
		{"missing status", acct("custom", "custom-key", []string{"paid", "approved", "shipped"}, nil), ErrMissingStatus, ": approved, shipped"},
		{"missing site", acct("good", "good-key", []string{"approved"}, []string{"a", "zz"}), ErrMissingSite,
			": zz (the key sees: a, b; listed in /api/credentials)"},
		{"down", down, nil, "credentials:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Path: "test.yaml", Accounts: []config.Account{tt.acct}}
			var out bytes.Buffer
			err := Online(context.Background(), cfg, &out, Options{Timeout: 10 * time.Second})
			line := out.String()
			if !strings.Contains(line, tt.wantMsg) {
				t.Errorf("line %q does not contain %q", line, tt.wantMsg)
			}
			wantFail := tt.wantErr != nil || tt.name == "down"
			if wantFail != (err != nil) || wantFail != strings.HasPrefix(line, "FAIL  "+tt.acct.Name+": ") {
				t.Fatalf("err = %v, line %q; want failure %v", err, line, wantFail)
			}
			if !wantFail {
				return
			}
			if !errors.Is(err, ErrFailed) {
				t.Errorf("err = %v, want ErrFailed", err)
			}
			if tt.wantErr != nil {
				if _, aerr := Account(context.Background(), tt.acct, Options{}); !errors.Is(aerr, tt.wantErr) {
					t.Errorf("Account error = %v, want %v", aerr, tt.wantErr)
				}
			}
			if strings.Contains(line, tt.acct.APIKey.Reveal()) {
				t.Errorf("line %q shows the API key", line)
			}
		})
	}
}

// TestOnlineOrder checks that accounts are reported in config order and
// that one failure fails the whole check.
func TestOnlineOrder(t *testing.T) {
	sim := crmsim.New(crmsim.Options{Seed: 2})
	var accts []config.Account
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	for _, n := range []string{"z1", "a2", "m3"} {
		sim.AddAccount(crmsim.AccountOptions{Name: n, APIKey: n + "-key", RateLimit: -1})
		key := n + "-key"
		if n == "a2" {
			key = "bad"
		}
		accts = append(accts, config.Account{Name: n, URL: crmsim.URL(srv.URL, n), APIKey: config.Secret(key),
			Statuses: []string{"approved"}, RateLimit: 10, Timeout: 5 * time.Second})
	}
	var out bytes.Buffer
	err := Online(context.Background(), &config.Config{Accounts: accts}, &out, Options{Concurrency: 2})
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "1 of 3") {
		t.Errorf("err = %v, want ErrFailed: 1 of 3", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"ok    z1: ", "FAIL  a2: ", "ok    m3: "}
	if len(lines) != len(want) {
		t.Fatalf("lines = %q", lines)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i, l, want[i])
		}
	}
}

func TestSummary(t *testing.T) {
	cfg := &config.Config{Path: "c.yaml", Accounts: []config.Account{
		{Name: "a", Webhooks: []config.Webhook{{}, {}}}, {Name: "b", Webhooks: []config.Webhook{{}}},
	}}
	if got, want := Summary(cfg), "ok  c.yaml: 2 accounts, 3 webhooks"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	one := &config.Config{Path: "d.yaml", Accounts: []config.Account{{Name: "a", Webhooks: []config.Webhook{{}}}}}
	if got, want := Summary(one), "ok  d.yaml: 1 account, 1 webhook"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}
