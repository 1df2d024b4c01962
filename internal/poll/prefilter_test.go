package poll

import (
	"fmt"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
)

func TestPrefilter(t *testing.T) {
	tests := []struct {
		src  string
		want []string
	}{
		{`changeSet.hasChangedField("status") and changeSet.newValue("status").code == "approved" and order.orderType.code == "eshop-legal"`,
			[]string{`changeSet.hasChangedField("status") `, ` changeSet.newValue("status").code == "approved" `}},
		{`changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "paid") && order.site == "x"`, nil},
		{`(changeSet.hasChangedField("status") or changeSet.isCreate()) && order.site == "ä" && changeSet.hasChangedField("manager")`,
			[]string{`(changeSet.hasChangedField("status") or changeSet.isCreate()) `, ` changeSet.hasChangedField("manager")`}},
		{`changeSet.hasChangedField("status") or order.site == "x"`, nil},
		{`changeSet.isCreate() and order.totalSumm >= 10000 ? true : false`, nil},
		{`changeSet.isCreate()&&order.site == "x"&&changeSet.isUpdate()`, []string{`changeSet.isCreate()`, `changeSet.isUpdate()`}},
		{`order.site == "x"`, nil},
		{`order.site == "x" and order.status.code == "new"`, nil},
	}
	for _, tc := range tests {
		pre := prefilter(mustWhen(t, tc.src))
		var got []string
		for _, c := range pre {
			got = append(got, c.String())
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: parts %q, want %q", tc.src, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: part %d %q, want %q", tc.src, i, got[i], tc.want[i])
			}
		}
	}
}

// A condition over the order whose change-set part is false for a set
// decides it without an orders request.
func TestPrefilterSavesOrdersRequests(t *testing.T) {
	h := newHarness(t, harnessOptions{seed: 12, account: func(a *config.Account) {
		a.Statuses = []string{"complete"} // the status webhook finds nothing here
		withHooks(t, "main-status", `changeSet.hasChangedField("status") and order.site == "main"`)(a)
	}})
	id := h.crm.CreateOrder("main", "new")
	h.poll()
	_, before := h.requests()
	for i := range 50 {
		h.crm.SetField(id, "manager_comment", nil, fmt.Sprint("call ", i))
	}
	h.poll()
	if _, after := h.requests(); after != before {
		t.Errorf("%d orders requests for sets without a status change, want 0", after-before)
	}
	h.crm.SetStatus(id, "approved")
	h.poll()
	if _, after := h.requests(); after != before+1 {
		t.Errorf("%d orders requests for one status change, want 1", after-before)
	}
	if n := len(h.outboxOf("main-status")); n != 2 {
		t.Errorf("%d events, want 2 (the creation and the status change)", n)
	}
}
