// Package tmpl renders trigger-style templates, the subset of Twig that a
// RetailCRM trigger's "HTTP request" action uses in its parameters:
// {{ order.id }}, nested paths, and the |json_encode filter. A missing path
// renders empty, as in Twig.
package tmpl

// Template is a parsed template. It is safe for concurrent use.
type Template struct {
	src string
}

// Parse compiles src. An unclosed tag, an empty expression or an unknown
// filter is an error that names the offending position.
func Parse(src string) (*Template, error) {
	panic("tmpl.Parse: to be implemented")
}

// Source returns the text the template was parsed from.
func (t *Template) Source() string { return t.src }

// Render evaluates the template against data, a JSON-like tree
// (map[string]any, []any, string, json.Number, float64, bool, nil).
func (t *Template) Render(data map[string]any) string {
	panic("tmpl.Render: to be implemented")
}
