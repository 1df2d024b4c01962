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
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// check -online prints the account's zone and fails when time_zone
// disagrees with it, or when it cannot be read and time_zone is unset.
func TestOnlineZone(t *testing.T) {
	sim := crmsim.New(crmsim.Options{Seed: 3})
	sim.AddAccount(crmsim.AccountOptions{Name: "msk", APIKey: "msk-key", TimeZone: zone(t, "Europe/Moscow")})
	sim.AddAccount(crmsim.AccountOptions{Name: "kyiv", APIKey: "kyiv-key", TimeZone: zone(t, "Europe/Kyiv")})
	sim.AddAccount(crmsim.AccountOptions{Name: "locked", APIKey: "locked-key", SettingsForbidden: true})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	acct := func(name string, tz *time.Location) config.Account {
		return config.Account{Name: name, URL: crmsim.URL(srv.URL, name), APIKey: config.Secret(name + "-key"),
			Statuses: []string{"approved"}, RateLimit: 10, Timeout: 5 * time.Second, TimeZone: tz}
	}
	for _, c := range []struct {
		name    string
		acct    config.Account
		wantErr error
		wantMsg string
	}{
		{"from the account", acct("msk", nil), nil, "; time zone: Europe/Moscow (the account's)"},
		{"override agrees", acct("msk", zone(t, "Europe/Moscow")), nil, "; time zone: Europe/Moscow (time_zone, the account's too)"},
		{"override is an alias", acct("kyiv", zone(t, "Europe/Kiev")), nil, "time zone: Europe/Kiev (time_zone, the account's too)"},
		{"override disagrees", acct("msk", time.UTC), ErrZoneMismatch,
			"FAIL  msk: time_zone differs from the account's: time_zone UTC, the account's zone Europe/Moscow (GET /api/v5/settings); remove time_zone or set it to Europe/Moscow"},
		{"unreadable, no override", acct("locked", nil), ErrZoneUnknown, "FAIL  locked: the account's time zone cannot be read: "},
		{"unreadable, override", acct("locked", zone(t, "Asia/Tokyo")), nil, "time zone: Asia/Tokyo (time_zone; the account's cannot be read: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Online(context.Background(), &config.Config{Accounts: []config.Account{c.acct}}, &out, Options{})
			if !strings.Contains(out.String(), c.wantMsg) {
				t.Errorf("line %q does not contain %q", out.String(), c.wantMsg)
			}
			if (err != nil) != (c.wantErr != nil) {
				t.Fatalf("err = %v, want failure %v", err, c.wantErr != nil)
			}
			if c.wantErr != nil {
				if _, aerr := Account(context.Background(), c.acct, Options{}); !errors.Is(aerr, c.wantErr) {
					t.Errorf("Account error = %v, want %v", aerr, c.wantErr)
				}
			}
		})
	}
}

func TestSameZone(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"Europe/Moscow", "Europe/Moscow", true},
		{"Europe/Kiev", "Europe/Kyiv", true},
		{"UTC", "Etc/UTC", true},
		{"Europe/Berlin", "Europe/Paris", true}, // the same clock, whatever their names
		{"Europe/Berlin", "Europe/London", false},
		{"Europe/Moscow", "Europe/Istanbul", true}, // both UTC+3 all year
		{"Europe/Berlin", "Africa/Lagos", false},   // UTC+1, but no summer time
	} {
		if got := sameZone(zone(t, c.a), zone(t, c.b), now); got != c.same {
			t.Errorf("sameZone(%s, %s) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}
