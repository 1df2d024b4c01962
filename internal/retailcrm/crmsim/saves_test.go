package crmsim

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// A save writes one entry per field, as RetailCRM does: consecutive ids,
// one createdAt, source and user; payment entries carry "payment"; the
// order GET /api/v5/orders returns shows the new values.
func TestSaveOrderIsOneChangeSet(t *testing.T) {
	_, acct, srv, _ := setup(t, -1)
	id := acct.CreateOrder("shop-a", "new")
	ids := acct.SaveOrder(id, Save{
		Status: "approved", ManagerID: 99, DeliveryCost: 350, DeliveryCity: "Kumasi",
		CustomFields: map[string]any{"gift_wrap": true}, PaymentStatus: "paid", PaymentAmount: 1234.5,
	})
	entries := allHistory(t, srv, testKey)
	entries = entries[len(entries)-len(ids):]
	wantFields := []string{"status", "manager", "delivery_cost", "delivery_address.city", "custom_gift_wrap", "payments.status", "payments.amount"}
	if hasPayment := len(ids) == len(wantFields)+1; hasPayment {
		wantFields = append([]string{"payments"}, wantFields...) // the order had no payment: created in the save
	}
	var fields []string
	for i, e := range entries {
		fields = append(fields, e["field"].(string))
		if got := int64(e["id"].(float64)); got != ids[i] || i > 0 && got != ids[i-1]+1 {
			t.Errorf("entry %d: id %d, want %d, consecutive", i, got, ids[i])
		}
		if e["createdAt"] != entries[0]["createdAt"] || e["source"] != "user" || e["user"].(map[string]any)["id"] != entries[0]["user"].(map[string]any)["id"] {
			t.Errorf("entry %d differs in createdAt, source or user: %v", i, e)
		}
		if f := e["field"].(string); len(f) > 9 && f[:9] == "payments." && e["payment"] == nil {
			t.Errorf("%s entry without payment: %v", f, e)
		}
	}
	if !slices.Equal(fields, wantFields) {
		t.Fatalf("fields %v, want %v", fields, wantFields)
	}
	byField := map[string]map[string]any{}
	for _, e := range entries {
		byField[e["field"].(string)] = e
	}
	if nv := byField["payments.status"]["newValue"].(map[string]any); nv["code"] != "paid" {
		t.Errorf("payments.status newValue %v", nv)
	}
	if nv := byField["delivery_address.city"]["newValue"]; nv != "Kumasi" {
		t.Errorf("delivery_address.city newValue %v", nv)
	}
	raw, _ := acct.OrderJSON(id)
	var o struct {
		Status    string
		ManagerID int64
		Delivery  struct {
			Cost    float64
			Address struct{ City string }
		}
		CustomFields map[string]any
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	if o.Status != "approved" || o.ManagerID != 99 || o.Delivery.Cost != 350 || o.Delivery.Address.City != "Kumasi" || o.CustomFields["gift_wrap"] != true {
		t.Errorf("order after the save: %s", raw)
	}
	if acct.PaymentStatus(id) != "paid" {
		t.Errorf("payment status %q, want paid", acct.PaymentStatus(id))
	}
	sets := acct.ChangeSets()
	if last := sets[len(sets)-1]; !slices.Equal(last.IDs, ids) || last.OrderID != id {
		t.Errorf("ground truth's last set %+v, want ids %v of order %d", last, ids, id)
	}
}

// A save hidden by a late commit becomes visible as a whole.
func TestLateSaveVisibleTogether(t *testing.T) {
	_, acct, srv, clk := setup(t, -1)
	acct.SetFaults(Faults{LateCommit: LateCommit{Probability: 1, Delay: time.Minute}})
	id := acct.CreateOrder("shop-a", "new")
	ids := acct.SaveOrder(id, Save{Status: "approved", ManagerID: 77, DeliveryCity: "Accra"})
	if n := len(allHistory(t, srv, testKey)); n != 0 {
		t.Fatalf("%d entries visible before the delay", n)
	}
	clk.Advance(time.Minute)
	got := allHistory(t, srv, testKey)
	if len(got) != 1+len(ids) {
		t.Fatalf("%d entries visible after the delay, want %d", len(got), 1+len(ids))
	}
}

// SaveWalk's saves are its change sets: no save follows one of the same
// order, every id is in exactly one set.
func TestSaveWalkGroundTruth(t *testing.T) {
	_, acct, _, _ := setup(t, -1)
	acct.SaveWalk(rand.New(rand.NewPCG(1, 2)), 10, 300)
	sets := acct.ChangeSets()
	n, multi := 0, 0
	for i, s := range sets {
		n += len(s.IDs)
		if len(s.IDs) > 1 {
			multi++
		}
		if i > 0 && sets[i-1].OrderID == s.OrderID {
			t.Errorf("sets %v and %v of one order follow each other", sets[i-1].IDs, s.IDs)
		}
	}
	if n != acct.HistoryLen() || multi < 50 {
		t.Errorf("%d ids in sets of %d entries; %d multi-field saves", n, acct.HistoryLen(), multi)
	}
}
