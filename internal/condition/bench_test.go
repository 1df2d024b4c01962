package condition

import (
	"encoding/json"
	"testing"
)

// BenchmarkEval is five webhooks' conditions over one change set of three
// entries, the order read by two of them: the per-set cost a tick adds.
func BenchmarkEval(b *testing.B) {
	set := entries(b, paidSet)
	order := json.RawMessage(paidOrder)
	var conds []*Condition
	for _, src := range []string{
		`changeSet | contains(item => item.fieldName == "payments.status" and item.newValue.code == "paid")`,
		`changeSet.hasChangedField("status") and changeSet.newValue("status").group.code == "complete"`,
		`changeSet.hasChangedField("custom_track") and changeSet.newValue("custom_track") != null`,
		`changeSet.hasChangedField("manager") and order.orderType.code == "eshop-legal"`,
		`order.status.code == "complete" and changeSet.hasChangedField("delivery_date")`,
	} {
		c, err := Compile(src)
		if err != nil {
			b.Fatal(err)
		}
		conds = append(conds, c)
	}
	b.ReportAllocs()
	for b.Loop() {
		env := NewEnv(set, order, testRefs)
		for _, c := range conds {
			if _, err := c.EvalEnv(env); err != nil {
				b.Fatal(err)
			}
		}
	}
}
