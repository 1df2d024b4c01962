package retailcrm

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestSettings(t *testing.T) {
	f := newFake(t, jsonReply(200, file(t, "settings.json")), jsonReply(403, []byte(`{"success":false,"errorMsg":"Access denied."}`)))
	c, _ := newTestClient(t, f.baseURL(), nil)
	ctx := context.Background()
	s, err := c.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{TimeZone: "Europe/Moscow", TimeZoneUpdatedAt: "2024-03-01 08:00:00", DefaultCurrency: "RUB", SystemLanguage: "RU"}
	if s != want {
		t.Errorf("settings = %+v, want %+v", s, want)
	}
	loc, err := s.Location()
	if err != nil || loc.String() != "Europe/Moscow" {
		t.Errorf("Location() = %v, %v", loc, err)
	}
	checkRequest(t, f.requests()[0], "/acme/api/v5/settings")
	if _, err := c.Settings(ctx); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "/api/v5/settings") {
		t.Errorf("403: %v, want ErrUnauthorized naming the endpoint", err)
	}
}

func TestDecodeSettings(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       Settings
		fail       bool
	}{
		{"no settings", `{"success":true}`, Settings{}, false},
		{"null", `{"settings":null}`, Settings{}, false},
		{"empty list", `{"settings":[]}`, Settings{}, false},
		{"timezone only", `{"settings":{"timezone":{"value":"Europe/Berlin"}}}`, Settings{TimeZone: "Europe/Berlin"}, false},
		{"odd shapes", `{"settings":{"timezone":"Europe/Berlin","default_currency":{"value":7},"system_language":[]}}`,
			Settings{DefaultCurrency: "7"}, false},
		{"not an object", `{"settings":"x"}`, Settings{}, true},
		{"not JSON", `[1]`, Settings{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeSettings([]byte(c.body))
			if (err != nil) != c.fail || got != c.want {
				t.Errorf("decodeSettings(%s) = %+v, %v; want %+v, fail %v", c.body, got, err, c.want, c.fail)
			}
		})
	}
	for _, c := range []struct {
		zone string
		ok   bool
	}{{"Europe/Moscow", true}, {"UTC", true}, {"", false}, {"Mars/Olympus", false}, {"../../etc/passwd", false}} {
		loc, err := Settings{TimeZone: c.zone}.Location()
		if (err == nil) != c.ok || (c.ok && loc.String() != c.zone) {
			t.Errorf("Location(%q) = %v, %v", c.zone, loc, err)
		}
	}
}

func TestHistoryRefusesSinceIDWithPage(t *testing.T) {
	f := newFake(t, jsonReply(200, file(t, "history.json")))
	c, _ := newTestClient(t, f.baseURL(), nil)
	_, err := c.History(context.Background(), HistoryFilter{SinceID: 7, Page: 2})
	if !errors.Is(err, ErrIncompatibleFilter) {
		t.Fatalf("History(sinceId, page) = %v, want ErrIncompatibleFilter", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests made, want none", n)
	}
}

// FuzzDecodeSettings: never panics, and Location returns the zone the
// settings name or an error, never another zone.
func FuzzDecodeSettings(f *testing.F) {
	f.Add(file(f, "settings.json"))
	f.Add([]byte(`{"settings":{"timezone":{"value":"Europe/Berlin","updated_at":null}}}`))
	f.Add([]byte(`{"settings":{"timezone":{"value":["x"]},"default_currency":"RUB"}}`))
	f.Add([]byte(`{"settings":[]}`))
	f.Add([]byte(`{"settings":{"timezone":{"value":"\u0000/../x"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := decodeSettings(body)
		if err != nil {
			return
		}
		if loc, err := s.Location(); err == nil && (loc == nil || loc.String() != s.TimeZone) {
			t.Fatalf("Location() = %v for %q", loc, s.TimeZone)
		}
	})
}
