package condition

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// statuses is a statuses reference for the tests.
type statuses map[string]string

func (s statuses) StatusGroup(code string) (string, bool) { g, ok := s[code]; return g, ok }

var testRefs = statuses{"new": "new", "approved": "approval", "complete": "complete", "cancel-other": "cancel"}

func entries(t testing.TB, js string) []retailcrm.HistoryEntry {
	t.Helper()
	var set []retailcrm.HistoryEntry
	if err := json.Unmarshal([]byte(js), &set); err != nil {
		t.Fatal(err)
	}
	return set
}

const (
	paidSet = `[
		{"id": 11, "createdAt": "2026-12-01 10:00:00", "source": "user", "field": "status", "oldValue": {"code": "new"}, "newValue": {"code": "complete"}, "order": {"id": 5, "site": "s1", "status": "complete"}},
		{"id": 12, "createdAt": "2026-12-01 10:00:00", "source": "user", "field": "payments.status", "oldValue": {"code": "not-paid"}, "newValue": {"code": "paid"}, "order": {"id": 5, "site": "s1", "status": "complete"}, "payment": {"id": 3}},
		{"id": 13, "createdAt": "2026-12-01 10:00:00", "source": "user", "field": "delivery_date", "oldValue": null, "newValue": "2000-01-01", "order": {"id": 5, "site": "s1", "status": "complete"}}]`
	paidOrder = `{"id": 5, "site": "s1", "status": "complete", "orderType": "eshop-legal", "phone": "+74951111111", "totalSumm": 1600,
		"payments": {"3": {"id": 3, "status": "paid", "type": "cash", "amount": 1600}}, "source": {"source": "yandex"},
		"delivery": {"code": "russian-post", "cost": 100, "address": {"city": "Moscow"}}, "customFields": {"track": "A1"}}`
)

func TestEval(t *testing.T) {
	set := entries(t, paidSet)
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{`changeSet.hasChangedField("status") and changeSet.newValue("status").code == "complete"`, true},
		{`changeSet.hasChangedField("status") and changeSet.getNewValue("status").getCode() == "new"`, false},
		{`changeSet.getOldValue("status").getCode() == 'new'`, true},
		{`changeSet.newValue("status").group.code == "complete"`, true},
		{`changeSet.getNewValue("status").getGroupCode() in ["complete", "cancel"]`, true},
		{`changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "paid")`, true},
		{`changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "fail")`, false},
		{`changeSet | every(item => item.fieldName != "manager")`, true},
		{`changeSet.newValue("delivery_date") == date("01.01.2000")`, true},
		{`changeSet.isUpdate() and not changeSet.isCreate() and not changeSet.isDelete()`, true},
		{`order.status.code == "complete" and order.getDeliveryType().getCode() == "russian-post"`, true},
		{`order.deliveryCost <= 500 and order.getDeliveryAddress().city == "Moscow"`, true},
		{`order.phone not matches "/7495/"`, false},
		{`order.orderType.code == "eshop-legal" and order.customFields.track != null`, true},
		{`changeSet.newValue("manager") == null`, true},
	} {
		c, err := Compile(tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if got, err := c.Eval(set, json.RawMessage(paidOrder), testRefs); err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.src, got, err, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		src          string
		line, column int
	}{
		{`changeSet | filter(i => i.x)`, 1, 13},
		{`changeSet | length`, 1, 13},
		{`changeSet.isCreate() # creation`, 1, 22},
		{`changeSet.nope("x")`, 1, 11},
		{`changeSet.hasChangedField()`, 1, 11},
		{`changeSet.isCreate(1)`, 1, 11},
		{`order.status.code == "new" and changeSet.getNewValue`, 1, 42},
		{`changeSet.newValue("status").code == "new" and`, 1, 47},
		{`date("2000-13-45") == order.createdAt`, 1, 6},
		{`order.phone matches "/(/"`, 1, 21},
		{`order.phone matches "/a/x"`, 1, 21},
		{`len(order.items) > 1`, 1, 1},
		{`order?.status`, 1, 8},
		{`foo == 1`, 1, 1},
		{"changeSet.hasChangedField(\"status\") and\n  bar", 2, 3},
		{`changeSet.newValue("status") === "new"`, 1, 30},
		{`changeSet | contains(item => item.x == "a") and wat`, 1, 49},
	} {
		_, err := Compile(tc.src)
		var ce *Error
		if !errors.As(err, &ce) || ce.Line != tc.line || ce.Column != tc.column {
			t.Errorf("%q: error %v, want at %d:%d", tc.src, err, tc.line, tc.column)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	set := entries(t, paidSet)
	for _, src := range []string{
		`changeSet.newValue("manager").code == "x"`,
		`changeSet.newValue("status") < 5`,
		`order.status.group.code == "x" or changeSet.newValue("status").group.code == "y"`,
	} {
		c, err := Compile(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if _, err := c.Eval(set, nil, statuses{}); !errors.Is(err, ErrEval) {
			t.Errorf("%s: error %v, want ErrEval", src, err)
		}
	}
}
