package crmsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// bigAccount builds an account with about n history entries over 1,000
// orders; report (after the timed loop: ResetTimer drops metrics) records
// the entries and the heap the simulator holds.
func bigAccount(b *testing.B, n int) (sim *Sim, acct *Account, report func()) {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sim = New(Options{Seed: 1})
	acct = sim.AddAccount(AccountOptions{Name: "big", APIKey: "k", RateLimit: -1})
	// RandomWalk adds other entries before its status changes (about 2.15
	// entries a change): walk in steps until the history is long enough.
	rng := rand.New(rand.NewPCG(1, 1))
	for acct.HistoryLen() < n {
		acct.RandomWalk(rng, 1000, max(1, (n-acct.HistoryLen())/3))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	return sim, acct, func() {
		b.ReportMetric(heap, "sim-heap-MB")
		b.ReportMetric(float64(acct.HistoryLen()), "entries")
	}
}

func serveDirect(b *testing.B, h http.Handler, url, key string) []byte {
	req := httptest.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-API-KEY", key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("%s: %d %s", url, rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

// BenchmarkHistoryDrain pages through 100,000 history entries with sinceId
// and limit 100 over real HTTP, the way the poller's first run does.
func BenchmarkHistoryDrain(b *testing.B) {
	sim, acct, report := bigAccount(b, 100_000)
	defer report()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	client := srv.Client()
	b.ResetTimer()
	for b.Loop() {
		since, n := int64(0), 0
		for {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/big/api/v5/orders/history?filter[sinceId]=%d&limit=100", srv.URL, since), nil)
			req.Header.Set("X-API-KEY", "k")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var page struct {
				History []struct {
					ID int64 `json:"id"`
				} `json:"history"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil {
				b.Fatal(err)
			}
			if len(page.History) == 0 {
				break
			}
			n += len(page.History)
			since = page.History[len(page.History)-1].ID
		}
		if n != acct.HistoryLen() {
			b.Fatalf("drained %d of %d", n, acct.HistoryLen())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(acct.HistoryLen()), "ns/entry")
}

// BenchmarkHistoryPage is the handler cost of one full page of 100 entries
// deep in a 100,000-entry history (no network).
func BenchmarkHistoryPage(b *testing.B) {
	sim, acct, report := bigAccount(b, 100_000)
	defer report()
	since := acct.Transitions()[len(acct.Transitions())/2].HistoryID
	url := fmt.Sprintf("/big/api/v5/orders/history?filter[sinceId]=%d&limit=100", since)
	b.ResetTimer()
	for b.Loop() {
		serveDirect(b, sim, url, "k")
	}
}

// BenchmarkIdlePoll1000Accounts: one idle poll (sinceId = newest id) of
// each of 1,000 accounts, i.e. one minute of a 1,000-account deployment.
func BenchmarkIdlePoll1000Accounts(b *testing.B) {
	sim := New(Options{Seed: 1})
	urls, keys := make([]string, 1000), make([]string, 1000)
	for i := range urls {
		name := fmt.Sprintf("acct%04d", i)
		keys[i] = "k-" + name
		// Unlimited: the benchmark loop polls far faster than once a minute.
		a := sim.AddAccount(AccountOptions{Name: name, APIKey: keys[i], RateLimit: -1})
		a.RandomWalk(rand.New(rand.NewPCG(uint64(i), 0)), 20, 100)
		urls[i] = fmt.Sprintf("/%s/api/v5/orders/history?filter[sinceId]=%d&limit=100", name, a.LastHistoryID())
	}
	b.ResetTimer()
	for b.Loop() {
		for i, u := range urls {
			serveDirect(b, sim, u, keys[i])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/poll")
}
