package config

import (
	"reflect"
	"sync"
)

// checkValues applies the check tags of v, a raw struct, to every value set
// in it, nested structs and lists of them included. The builder runs it on
// the whole file: the defaults: block is checked as written, even where no
// account inherits a value (an account added later would), and what
// accounts inherit is reported once, at the line it was written.
func (b *builder) checkValues(v reflect.Value) {
	for i, p := range planOf(v.Type()) {
		fv := v.Field(i)
		if !p.isField {
			if p.nested {
				b.checkValues(fv)
			}
			continue
		}
		if !fv.Field(fSet).Bool() {
			continue
		}
		// Invalid: decoding reported an error in the value, or, for
		// mappings and lists, somewhere inside; the rest is checked.
		val, invalid := fv.Field(fV), fv.Field(fInvalid).Bool()
		if p.rule != nil && (!invalid || val.Kind() == reflect.Slice) {
			p.rule.check(b, view{v: val, raw: fv.Field(fRaw).String(), key: fv.Field(fKey).String(), line: int(fv.Field(fLine).Int()), invalid: invalid})
		}
		switch p.walk {
		case walkValue:
			b.checkValues(val)
		case walkItems:
			for j := range val.Len() {
				b.checkValues(val.Index(j).Field(fV))
			}
		}
	}
}

// The fields of a field[T], by index: checkValues runs over every account
// of a large file, where looking them up by name would show.
const (
	fV = iota
	fRaw
	fSet
	fInvalid
	fKey
	fLine
)

// fieldPlan is what checkValues does with one field of a raw struct.
type fieldPlan struct {
	isField bool // a field[T]
	nested  bool // a plain struct (log:, retry:): walked
	rule    rule
	walk    int
}

// What checkValues walks into after a field's own rule.
const (
	walkNone  = iota
	walkValue // a mapping (alerts.email)
	walkItems // a list of mappings (accounts, webhooks)
)

var (
	setterType = reflect.TypeFor[setter]()
	plans      sync.Map // reflect.Type -> []fieldPlan
)

func planOf(t reflect.Type) []fieldPlan {
	if p, ok := plans.Load(t); ok {
		return p.([]fieldPlan)
	}
	out := make([]fieldPlan, t.NumField())
	for i := range out {
		ft := t.Field(i).Type
		p := &out[i]
		p.rule = ruleOf(t.Field(i).Tag.Get("check"))
		if !reflect.PointerTo(ft).Implements(setterType) {
			p.nested = ft.Kind() == reflect.Struct
			continue
		}
		for j, name := range []string{"V", "Raw", "Set", "Invalid", "Key", "Line"} {
			if ft.Field(j).Name != name {
				panic("config: field[T] has " + ft.Field(j).Name + " where " + name + " was")
			}
		}
		p.isField = true
		switch vt := ft.Field(fV).Type; {
		case vt.Kind() == reflect.Struct:
			p.walk = walkValue
		case vt.Kind() == reflect.Slice && vt.Elem().Field(fV).Type.Kind() == reflect.Struct:
			p.walk = walkItems
		}
	}
	plans.Store(t, out)
	return out
}

// fieldRule is the rule of t's field i.
func fieldRule(t reflect.Type, i int) rule { return planOf(t)[i].rule }
