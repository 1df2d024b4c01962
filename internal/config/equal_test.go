package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/tmpl"
)

// TestEqualSameFile: two loads of one file are Equal, though their
// templates and locations are distinct pointers.
func TestEqualSameFile(t *testing.T) {
	a, b := loadValid(t), loadValid(t)
	for i := range a.Accounts {
		if !a.Accounts[i].Equal(b.Accounts[i]) {
			t.Errorf("account %s differs from itself loaded again", a.Accounts[i].Name)
		}
		for j := range a.Accounts[i].Webhooks {
			if !a.Accounts[i].Webhooks[j].Equal(b.Accounts[i].Webhooks[j]) {
				t.Errorf("webhook %s differs from itself loaded again", a.Accounts[i].Webhooks[j].Name)
			}
		}
	}
	if !a.Alerts.Equal(b.Alerts) || !(Alerts{}).Equal(Alerts{}) || a.Alerts.Equal(Alerts{}) || (Alerts{}).Equal(a.Alerts) {
		t.Error("Alerts.Equal: nil or loaded e-mail settings compare wrongly")
	}
	if a.Accounts[0].Equal(a.Accounts[1]) {
		t.Error("two different accounts are Equal")
	}
}

// TestEqualCoversEveryField changes one value at a time, every field of
// Account, Webhook, Email and what they contain, and expects Equal to tell.
// A field added to one of them without a line in Equal fails here, as does
// a field of a type the test cannot change (then extend changeValue).
func TestEqualCoversEveryField(t *testing.T) {
	type target struct {
		name  string
		get   func(*Config) reflect.Value // addressable
		equal func(a, b *Config) bool
	}
	targets := []target{
		{"Account", func(c *Config) reflect.Value { return reflect.ValueOf(&c.Accounts[0]).Elem() },
			func(a, b *Config) bool { return a.Accounts[0].Equal(b.Accounts[0]) }},
		{"Webhook", func(c *Config) reflect.Value { return reflect.ValueOf(&c.Accounts[0].Webhooks[1]).Elem() },
			func(a, b *Config) bool { return a.Accounts[0].Webhooks[1].Equal(b.Accounts[0].Webhooks[1]) }},
		{"Webhook with params", func(c *Config) reflect.Value { return reflect.ValueOf(&c.Accounts[0].Webhooks[0]).Elem() },
			func(a, b *Config) bool { return a.Accounts[0].Webhooks[0].Equal(b.Accounts[0].Webhooks[0]) }},
		{"Alerts", func(c *Config) reflect.Value { return reflect.ValueOf(&c.Alerts).Elem() },
			func(a, b *Config) bool { return a.Alerts.Equal(b.Alerts) }},
	}
	for _, tg := range targets {
		base := loadValid(t)
		leaves := 0
		var visit func(path []int, v reflect.Value, name string)
		visit = func(path []int, v reflect.Value, name string) {
			if v.Kind() == reflect.Struct && !leafTypes[v.Type()] {
				for i := range v.NumField() {
					visit(append(path[:len(path):len(path)], i), v.Field(i), name+"."+v.Type().Field(i).Name)
				}
				return
			}
			if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct && !leafTypes[v.Type()] {
				visit(append(path[:len(path):len(path)], -1), v.Elem(), name)
				return
			}
			// Element 0 of a list of structs, each of its fields.
			if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct && v.Len() > 0 {
				visit(append(path[:len(path):len(path)], -2), v.Index(0), name+"[0]")
			}
			leaves++
			changed := loadValid(t)
			if err := changeValue(walkPath(tg.get(changed), path)); err != nil {
				t.Errorf("%s%s: %v", tg.name, name, err)
				return
			}
			if tg.equal(base, changed) {
				t.Errorf("%s%s changed, yet Equal reports no change", tg.name, name)
			}
		}
		visit(nil, tg.get(base), "")
		if leaves < 5 {
			t.Errorf("%s: only %d fields visited", tg.name, leaves)
		}
	}
}

// leafTypes are compared as a whole (by value, source or name).
var leafTypes = map[reflect.Type]bool{
	reflect.TypeFor[time.Time]():            true,
	reflect.TypeFor[*time.Location]():       true,
	reflect.TypeFor[*tmpl.Template]():       true,
	reflect.TypeFor[*condition.Condition](): true,
	reflect.TypeFor[Secret]():               true,
	reflect.TypeFor[Headers]():              true,
	reflect.TypeFor[time.Duration]():        true,
	reflect.TypeFor[[]string]():             true,
	reflect.TypeFor[[]Secret]():             true,
}

// walkPath follows field indexes; -1 dereferences, -2 takes element 0.
func walkPath(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		switch i {
		case -1:
			v = v.Elem()
		case -2:
			v = v.Index(0)
		default:
			v = v.Field(i)
		}
	}
	return v
}

// changeValue sets v to a different value of its type.
func changeValue(v reflect.Value) error {
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second)))
		return nil
	case reflect.TypeFor[*time.Location]():
		v.Set(reflect.ValueOf(time.FixedZone("Elsewhere", 3600)))
		return nil
	case reflect.TypeFor[*tmpl.Template]():
		src := "changed"
		if t, _ := v.Interface().(*tmpl.Template); t != nil {
			src = t.Source() + " changed"
		}
		v.Set(reflect.ValueOf(mustTemplate(src)))
		return nil
	case reflect.TypeFor[*condition.Condition]():
		src := "changeSet.isCreate()"
		if c, _ := v.Interface().(*condition.Condition); c != nil {
			src = c.String() + " or true"
		}
		c, err := condition.Compile(src)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(c))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Float64:
		v.SetFloat(v.Float() + 1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for _, k := range v.MapKeys() {
			m.SetMapIndex(k, v.MapIndex(k))
		}
		m.SetMapIndex(reflect.ValueOf("X-Changed"), reflect.ValueOf("1"))
		v.Set(m)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		} else {
			v.SetZero()
		}
	default:
		return fmt.Errorf("the test cannot change a %s: extend changeValue (and Equal)", v.Type())
	}
	return nil
}

func TestEqualTemplatesBySource(t *testing.T) {
	w := Webhook{Body: mustTemplate("{{ order.id }}")}
	if !w.Equal(Webhook{Body: mustTemplate("{{ order.id }}")}) || w.Equal(Webhook{}) || (Webhook{}).Equal(w) {
		t.Error("templates must compare by source, nil only equal to nil")
	}
	if !strings.Contains(Account{Name: "x"}.String(), "name=x") {
		t.Error("Account.String lost the name")
	}
}

func mustTemplate(src string) *tmpl.Template {
	t, err := tmpl.Parse(src)
	if err != nil {
		panic(err)
	}
	return t
}
