package crmsim_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

func Example() {
	sim := crmsim.New(crmsim.Options{Seed: 1})
	acct := sim.AddAccount(crmsim.AccountOptions{Name: "ghana", APIKey: "secret", Sites: []string{"shop"}})
	srv := httptest.NewServer(sim)
	defer srv.Close()

	id := acct.CreateOrder("shop", "new")
	acct.SetStatus(id, "approved")
	acct.SetFaults(crmsim.Faults{Fail503: 1, LateCommit: crmsim.LateCommit{Probability: 0.5, Delay: time.Second}})

	// A client configured with url = acct.BaseURL(srv.URL) and the key:
	req, _ := http.NewRequest(http.MethodGet, acct.BaseURL(srv.URL)+"/api/v5/orders/history?limit=100", nil)
	req.Header.Set("X-API-KEY", "secret")
	for range 2 {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	for _, t := range acct.Transitions() {
		fmt.Printf("order %d: %q -> %q created=%v\n", t.OrderID-id, t.Old, t.New, t.Created)
	}
	fmt.Println(acct.Requests(crmsim.EndpointHistory), "history requests")
	// Output:
	// 503
	// 200
	// order 0: "" -> "new" created=true
	// order 0: "new" -> "approved" created=false
	// 2 history requests
}
