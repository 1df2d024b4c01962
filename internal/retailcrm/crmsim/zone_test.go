package crmsim

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestSettingsZone(t *testing.T) {
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock() // 09:00 UTC
	sim := New(Options{Seed: 1, Now: clk.Now})
	a := sim.AddAccount(AccountOptions{Name: "msk", APIKey: "k", TimeZone: msk, RateLimit: -1})
	sim.AddAccount(AccountOptions{Name: "plain", APIKey: "p", RateLimit: -1})
	sim.AddAccount(AccountOptions{Name: "locked", APIKey: "l", RateLimit: -1, SettingsForbidden: true})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	zone := func(account, key string) (int, string) {
		r := get(t, srv, "/"+account+"/api/v5/settings", key)
		m := decode(t, r)
		if r.code != 200 {
			return r.code, ""
		}
		tz := m["settings"].(map[string]any)["timezone"].(map[string]any)
		hasKeys(t, "timezone", tz, "value", "updated_at")
		return r.code, tz["value"].(string)
	}
	for _, c := range []struct {
		account, key, zone string
		code               int
	}{{"msk", "k", "Europe/Moscow", 200}, {"plain", "p", "UTC", 200}, {"locked", "l", "", 403}, {"msk", "wrong", "", 403}} {
		if code, z := zone(c.account, c.key); code != c.code || z != c.zone {
			t.Errorf("%s: %d %q, want %d %q", c.account, code, z, c.code, c.zone)
		}
	}
	if n := a.Requests(EndpointSettings); n != 2 {
		t.Errorf("settings requests %d, want 2", n)
	}

	// Dates written and read in the zone: generatedAt, createdAt,
	// statusUpdatedAt, and the orders filter.
	id := a.CreateOrder("main", "new")
	clk.Advance(time.Hour)
	a.SetStatus(id, "approved") // 10:00 UTC = 13:00 Moscow
	m := decode(t, get(t, srv, "/msk/api/v5/orders/history?filter[startDate]="+url.QueryEscape("2026-11-23 13:00:00"), "k"))
	if got := m["generatedAt"]; got != "2026-11-23 13:00:00" {
		t.Errorf("generatedAt %v, want Moscow time", got)
	}
	if h := m["history"].([]any); len(h) != 1 || h[0].(map[string]any)["createdAt"] != "2026-11-23 13:00:00" {
		t.Errorf("history from 13:00 Moscow: %v", h)
	}
	for _, c := range []struct {
		from string
		n    int
	}{{"2026-11-23 13:00:00", 1}, {"2026-11-23 13:00:01", 0}, {"2026-11-23 10:00:01", 1}} {
		m := decode(t, get(t, srv, "/msk/api/v5/orders?filter[statusUpdatedAtFrom]="+url.QueryEscape(c.from), "k"))
		if o := m["orders"].([]any); len(o) != c.n || c.n == 1 && o[0].(map[string]any)["statusUpdatedAt"] != "2026-11-23 13:00:00" {
			t.Errorf("statusUpdatedAtFrom %s: %v, want %d order(s) at 13:00:00", c.from, o, c.n)
		}
	}
}

func TestHistorySinceIDWithPage(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	acct.CreateOrder("shop-a", "new")
	for _, c := range []struct {
		query string
		code  int
	}{
		{"filter[sinceId]=1&page=1", 400},
		{"filter[sinceId]=1&page=2&limit=100", 400},
		{"filter[sinceId]=1", 200},
		{"page=2", 200},
		{"filter[sinceId]=0&page=1", 200}, // sinceId 0 is no filter
	} {
		r := get(t, srv, "/ghana/api/v5/orders/history?"+c.query, testKey)
		if r.code != c.code {
			t.Errorf("%s: %d, want %d", c.query, r.code, c.code)
			continue
		}
		if m := decode(t, r); c.code == 400 && (m["success"] != false || m["errorMsg"] != sinceIDWithPage) {
			t.Errorf("%s: %s", c.query, r.body)
		}
	}
}

func TestHistorySources(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	id := acct.CreateOrder("shop-a", "new")
	want := map[int64]string{}
	for i, src := range []string{"rule", "combine", "split", "code"} {
		h := acct.SetStatusBy(id, []string{"approved", "assembling", "complete", "cancel"}[i], Change{Source: src})
		want[h] = src
	}
	api := acct.SetStatusVia(id, "new", testKey)
	m := decode(t, get(t, srv, "/ghana/api/v5/orders/history?limit=100", testKey))
	for _, e := range m["history"].([]any) {
		e := e.(map[string]any)
		id := int64(e["id"].(float64))
		if src, ok := want[id]; ok {
			_, user := e["user"]
			_, key := e["apiKey"]
			if e["source"] != src || user || key {
				t.Errorf("entry %d: source %v, user %v, apiKey %v; want %s without either", id, e["source"], user, key, src)
			}
		}
		if id == api && (e["source"] != "api" || e["apiKey"].(map[string]any)["current"] != true) {
			t.Errorf("api entry %v", e)
		}
	}
	for _, tr := range acct.Transitions()[1:] {
		if want[tr.HistoryID] != "" && tr.Source != want[tr.HistoryID] {
			t.Errorf("transition %d source %s, want %s", tr.HistoryID, tr.Source, want[tr.HistoryID])
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown source was accepted")
		}
	}()
	acct.SetStatusBy(id, "approved", Change{Source: "robot"})
}
