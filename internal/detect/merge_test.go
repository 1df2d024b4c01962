package detect

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// TestMergedOrders runs merges in crmsim through the client and Detect.
// An approval of an order that is later merged away is emitted once, as
// that order's event; a merge emits nothing, except the surviving order's
// status change into a target status, when the merge makes one.
func TestMergedOrders(t *testing.T) {
	sim := crmsim.New(crmsim.Options{Seed: 3})
	acct := sim.AddAccount(crmsim.AccountOptions{Name: "acme", APIKey: "k", RateLimit: -1})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	a, b, c, d := acct.CreateOrder("main", "new"), acct.CreateOrder("main", "new"), acct.CreateOrder("main", "new"), acct.CreateOrder("main", "new")
	approvedA := acct.SetStatus(a, "approved")
	acct.MergeOrder(a, b, "")                         // A, approved, merged away: nothing new
	intoApproved := acct.MergeOrder(c, b, "approved") // B moves into a target status
	acct.SetStatus(d, "approved")
	acct.MergeOrder(d, b, "complete") // not a target: nothing, D's approval stays

	client, err := retailcrm.New(retailcrm.Options{BaseURL: acct.BaseURL(srv.URL), APIKey: "k", RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	page, err := client.History(context.Background(), retailcrm.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRules(config.Account{Name: "acme", Statuses: []string{"approved"}})
	var got []string
	reasons := map[Reason]int{}
	for _, e := range page.History {
		v := Detect(r, e)
		if v.Anomaly != "" {
			t.Errorf("entry %d: anomaly %s", e.ID, v.Anomaly)
		}
		if v.Emit {
			got = append(got, fmt.Sprintf("%d:%d", e.ID, v.Candidate.OrderID))
			continue
		}
		reasons[v.Skip]++
	}
	var want []string
	for _, tr := range acct.Transitions() {
		if tr.New == "approved" && !tr.Created {
			want = append(want, fmt.Sprintf("%d:%d", tr.HistoryID, tr.OrderID))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, ground truth %v", got, want)
	}
	mergeStatus := intoApproved[len(intoApproved)-2]
	if len(got) != 3 || got[0] != fmt.Sprintf("%d:%d", approvedA, a) || got[1] != fmt.Sprintf("%d:%d", mergeStatus, b) {
		t.Errorf("events %v: want A's approval %d, B's status change %d by the merge, D's approval", got, approvedA, mergeStatus)
	}
	if reasons[SkipDeleted] != 3 || reasons[SkipItem] == 0 {
		t.Errorf("skips %v: want the three merged orders' deletions and their items passed over", reasons)
	}
}
