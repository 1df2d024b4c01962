package condition

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// orderAliases are PipeLang's names of order properties that the API's
// order spells differently: the path in the API's order, and whether the
// value is a reference given by its code (the API's "status": "new" is
// PipeLang's Status object with code "new").
var orderAliases = map[string]struct {
	path []string
	kind string // "" for a plain value; a reference kind otherwise
	ref  bool
}{
	"status":          {path: []string{"status"}, kind: kindStatus, ref: true},
	"orderType":       {path: []string{"orderType"}, ref: true},
	"orderMethod":     {path: []string{"orderMethod"}, ref: true},
	"site":            {path: []string{"site"}, ref: true},
	"deliveryType":    {path: []string{"delivery", "code"}, ref: true},
	"deliveryService": {path: []string{"delivery", "service"}, ref: true},
	"deliveryCost":    {path: []string{"delivery", "cost"}},
	"deliveryNetCost": {path: []string{"delivery", "netCost"}},
	"deliveryDate":    {path: []string{"delivery", "date"}},
	"deliveryTime":    {path: []string{"delivery", "time"}},
	"deliveryAddress": {path: []string{"delivery", "address"}},
	"shipmentStore":   {path: []string{"shipmentStore"}, ref: true},
}

// getter maps a PipeLang getter to its property: getCode -> code,
// isExpired -> expired. ok is false for a name that is not a getter.
func getter(method string) (string, bool) {
	for _, prefix := range []string{"get", "is", "has"} {
		rest, found := strings.CutPrefix(method, prefix)
		if !found || rest == "" {
			continue
		}
		r, size := utf8.DecodeRuneInString(rest)
		if !unicode.IsUpper(r) {
			continue
		}
		return string(unicode.ToLower(r)) + rest[size:], true
	}
	return "", false
}

// get is x.name.
func get(x any, name string) (any, error) {
	switch x := x.(type) {
	case nil:
		return nil, fmt.Errorf("cannot read .%s of null", name)
	case *changeSet:
		return nil, fmt.Errorf("changeSet has no property %s (%s)", name, changeSetMethods)
	case *change:
		switch name {
		case "fieldName", "field":
			return x.entry.Field, nil
		case "newValue":
			return x.env.decode(x.entry.NewValue.Raw, fieldKind(x.entry.Field)), nil
		case "oldValue":
			return x.env.decode(x.entry.OldValue.Raw, fieldKind(x.entry.Field)), nil
		case "created":
			return x.entry.Created, nil
		case "deleted":
			return x.entry.Deleted, nil
		}
		return nil, fmt.Errorf("a change has no property %s (its properties: fieldName, oldValue, newValue, created, deleted)", name)
	case *orderObject:
		m, err := x.orderMap()
		if err != nil {
			return nil, err
		}
		return x.get(m, name), nil
	case *ref:
		return x.get(name)
	case map[string]any:
		return (*Env)(nil).wrap(x[name], ""), nil // a plain object holds no status
	case []any:
		if len(x) == 0 { // PHP's empty object: "customFields": []
			return nil, nil
		}
	}
	return nil, fmt.Errorf("cannot read .%s of a %s", name, typeName(x))
}

// get is order.name over the order's content m.
func (o *orderObject) get(m map[string]any, name string) any {
	if a, ok := orderAliases[name]; ok {
		var v any = m
		for _, p := range a.path {
			mm, _ := v.(map[string]any)
			v = mm[p]
		}
		if a.ref {
			return o.env.codeRef(v, a.kind)
		}
		return o.env.wrap(v, "")
	}
	switch name {
	case "anyPhone": // the phone, else the additional one
		if p, _ := m["phone"].(string); p != "" {
			return p
		}
		p, _ := m["additionalPhone"].(string)
		return p
	case "quantity": // of all items
		items, _ := m["items"].([]any)
		total := 0.0
		for _, it := range items {
			im, _ := it.(map[string]any)
			if q, ok := number(im["quantity"]); ok {
				total += q
			}
		}
		return total
	case "source": // the API's source.source is PipeLang's source.sourceName
		src, ok := m["source"].(map[string]any)
		if !ok {
			return o.env.wrap(m["source"], "")
		}
		withName := make(map[string]any, len(src)+1)
		for k, v := range src {
			withName[k] = v
		}
		if _, set := withName["sourceName"]; !set {
			withName["sourceName"] = src["source"]
		}
		return withName
	}
	return o.env.wrap(m[name], "")
}

func (r *ref) get(name string) (any, error) {
	switch name {
	case "code":
		return r.code, nil
	case "group", "groupCode":
		if r.kind != kindStatus {
			break
		}
		if r.env.refs == nil {
			return nil, fmt.Errorf("status %q: the statuses reference is not available", r.code)
		}
		g, ok := r.env.refs.StatusGroup(r.code)
		if !ok {
			return nil, fmt.Errorf("status %q is not in the statuses reference", r.code)
		}
		if name == "groupCode" {
			return g, nil
		}
		return &ref{env: r.env, kind: kindGroup, code: g}, nil
	}
	return r.env.wrap(r.fields[name], ""), nil
}

// callMethod is x.method(args).
func callMethod(x any, method string, args []any) (any, error) {
	if cs, ok := x.(*changeSet); ok {
		return cs.call(method, args)
	}
	if o, ok := x.(*orderObject); ok && method == "getCustomField" {
		code, err := oneString(method, args)
		if err != nil {
			return nil, err
		}
		m, err := o.orderMap()
		if err != nil {
			return nil, err
		}
		cf, _ := m["customFields"].(map[string]any)
		return o.env.wrap(cf[code], ""), nil
	}
	name, ok := getter(method)
	if !ok {
		return nil, fmt.Errorf("%s has no method %s", typeName(x), method)
	}
	if len(args) != 0 {
		return nil, fmt.Errorf("%s takes no arguments", method)
	}
	return get(x, name)
}

func (cs *changeSet) call(method string, args []any) (any, error) {
	switch method {
	case "isCreate", "isUpdate", "isDelete":
		if len(args) != 0 {
			return nil, fmt.Errorf("%s takes no arguments", method)
		}
		switch method {
		case "isCreate":
			return cs.isCreate(), nil
		case "isDelete":
			return cs.isDelete(), nil
		}
		return !cs.isCreate() && !cs.isDelete(), nil
	case "hasChangedField", "newValue", "getNewValue", "oldValue", "getOldValue":
		field, err := oneString(method, args)
		if err != nil {
			return nil, err
		}
		switch method {
		case "hasChangedField":
			return cs.has(field), nil
		case "newValue", "getNewValue":
			return cs.value(field, true), nil
		}
		return cs.value(field, false), nil
	}
	return nil, fmt.Errorf("changeSet has no method %s (%s)", method, changeSetMethods)
}

func oneString(method string, args []any) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("%s takes one argument, a field name", method)
	}
	s, ok := args[0].(string)
	if !ok {
		return "", fmt.Errorf("%s takes a field name, not a %s", method, typeName(args[0]))
	}
	return s, nil
}
