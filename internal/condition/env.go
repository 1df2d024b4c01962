package condition

import (
	"bytes"
	"encoding/json"
	"sort"

	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// Env is what an expression sees of one change set: built once per set
// and shared by every condition evaluated over it, so that the order is
// decoded at most once, and only when an expression reads it. An Env is
// not safe for concurrent use.
type Env struct {
	set      []retailcrm.HistoryEntry
	orderRaw json.RawMessage
	noOrder  bool // NewEnvWithoutOrder: reading the order is ErrNeedsOrder
	refs     Refs
	v        vars

	cs      *changeSet
	order   *orderObject
	items   []any          // the change set as a list, built on first use
	values  map[string]any // decoded old and new values, by "new:"/"old:" + field
	decoded bool           // order.m is set
}

// NewEnv builds the environment of one change set for EvalEnv; see Eval for
// its arguments.
func NewEnv(set []retailcrm.HistoryEntry, order json.RawMessage, refs Refs) *Env {
	e := &Env{set: set, orderRaw: order, refs: refs}
	e.cs = &changeSet{env: e}
	e.order = &orderObject{env: e}
	e.v = vars{ChangeSet: e.cs, Order: e.order}
	return e
}

// NewEnvWithoutOrder builds the environment of one change set before its
// order is fetched: EvalEnv decides what it can from the entries and
// returns ErrNeedsOrder where the verdict depends on the order, so that
// the order is fetched only for the sets whose verdict needs it.
func NewEnvWithoutOrder(set []retailcrm.HistoryEntry, refs Refs) *Env {
	e := NewEnv(set, nil, refs)
	e.noOrder = true
	return e
}

func (e *Env) vars() *vars { return &e.v }

// changeSet is `changeSet`: the entries of one save.
type changeSet struct{ env *Env }

// change is one entry of the change set, as a filter's item sees it.
type change struct {
	env   *Env
	entry *retailcrm.HistoryEntry
}

// orderObject is `order`: the API's order, decoded on first use.
type orderObject struct {
	env *Env
	m   map[string]any
}

// ref is a reference value (a status, a delivery type, a payment status):
// an object with a code. kind is "status" for an order status, whose group
// comes from the statuses reference, and "group" for that group.
type ref struct {
	env    *Env
	kind   string
	code   string
	fields map[string]any // the object's other keys as sent, nil for a bare code
}

const (
	kindStatus = "status"
	kindGroup  = "group"
)

func (cs *changeSet) isCreate() bool {
	for i := range cs.env.set {
		if cs.env.set[i].Created {
			return true
		}
	}
	return false
}

func (cs *changeSet) isDelete() bool {
	for i := range cs.env.set {
		if cs.env.set[i].Deleted {
			return true
		}
	}
	return false
}

func (cs *changeSet) has(field string) bool {
	for i := range cs.env.set {
		if cs.env.set[i].Field == field {
			return true
		}
	}
	return false
}

// newValue is the new value of the field's last entry in the set, oldValue
// the old value of its first: the change the whole save made. Both are
// null when the set does not change the field.
func (cs *changeSet) value(field string, isNew bool) any {
	key := "old:" + field
	if isNew {
		key = "new:" + field
	}
	if v, ok := cs.env.values[key]; ok {
		return v
	}
	var raw json.RawMessage
	for i := range cs.env.set {
		en := &cs.env.set[i]
		if en.Field != field {
			continue
		}
		if isNew {
			raw = en.NewValue.Raw
		} else if raw == nil {
			raw = en.OldValue.Raw
			if raw == nil {
				raw = json.RawMessage("null")
			}
		}
	}
	v := cs.env.decode(raw, fieldKind(field))
	if cs.env.values == nil {
		cs.env.values = make(map[string]any)
	}
	cs.env.values[key] = v
	return v
}

// list is the change set as a list of its entries, for the filters.
func (cs *changeSet) list() []any {
	if cs.env.items == nil {
		cs.env.items = make([]any, len(cs.env.set))
		for i := range cs.env.set {
			cs.env.items[i] = &change{env: cs.env, entry: &cs.env.set[i]}
		}
	}
	return cs.env.items
}

// fieldKind tells which history fields hold an order status.
func fieldKind(field string) string {
	if field == "status" {
		return kindStatus
	}
	return ""
}

// decode turns a JSON value into the language's values: null, booleans,
// numbers (float64), strings, lists, objects, and references (objects with
// a code). What does not decode is null.
func (e *Env) decode(raw json.RawMessage, kind string) any {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return e.wrap(v, kind)
}

// wrap makes an object with a string code a reference.
func (e *Env) wrap(v any, kind string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if code, ok := m["code"].(string); ok {
		return &ref{env: e, kind: kind, code: code, fields: m}
	}
	return m
}

// codeRef is a reference given by its bare code, as the API's order gives
// its status; an empty or absent code is null.
func (e *Env) codeRef(v any, kind string) any {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return &ref{env: e, kind: kind, code: v}
	case map[string]any:
		return e.wrap(v, kind)
	}
	return nil
}

// orderMap is the order as decoded: the API's order, or when there is none
// the richest order object of the entries (a creation entry carries the
// full order, others a few fields). It is the one way to the order's
// content, so an Env without the order stops here (ErrNeedsOrder).
func (o *orderObject) orderMap() (map[string]any, error) {
	e := o.env
	if e.noOrder {
		return nil, ErrNeedsOrder
	}
	if e.decoded {
		return o.m, nil
	}
	e.decoded = true
	raw := bytes.TrimSpace(e.orderRaw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = nil
		for i := range e.set {
			if en := &e.set[i]; en.Order != nil && !en.Order.NotObject && (raw == nil || en.Created) {
				raw = en.Order.Raw
			}
		}
	}
	var m map[string]any
	if raw != nil && json.Unmarshal(raw, &m) == nil {
		o.m = m
	}
	if o.m == nil {
		o.m = map[string]any{}
	}
	return o.m, nil
}

// sortedValues lists an object's values by key, for a filter over an
// object keyed by id (the order's payments).
func sortedValues(m map[string]any) []any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
