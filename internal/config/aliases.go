package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// A yaml.Node tree keeps an alias as one node, but decoding visits its
// anchor's nodes once per use: a few KB of nested anchors fan out to
// billions of values. checkAliases counts the values a document expands to
// before anything is decoded, so a fan-out is refused in time and memory
// proportional to the file. The bound leaves room for real reuse: without
// aliases a file expands to its own node count, and 10,000 accounts
// sharing anchored webhooks stay far below it.
const (
	baseValues    = 100_000
	valuesPerNode = 20
)

// aliasCheck walks a document in order, adding up its expanded size.
type aliasCheck struct {
	file       string
	limit      int
	nodes      int                // the document's own node count
	total      int                // values so far, expanded
	size       map[*yaml.Node]int // expanded size of each anchor reached
	inProgress map[*yaml.Node]bool
	err        *Error
}

// checkAliases refuses a document that refers to an anchor from inside it
// (endless) or expands beyond baseValues + valuesPerNode × its nodes. The
// error names the alias where the bound was crossed.
func checkAliases(file string, doc *yaml.Node) error {
	nodes := countNodes(doc)
	c := &aliasCheck{
		file: file, nodes: nodes, limit: baseValues + valuesPerNode*nodes,
		size: map[*yaml.Node]int{}, inProgress: map[*yaml.Node]bool{},
	}
	c.walk(doc, "")
	if c.err != nil {
		return c.err
	}
	return nil
}

// countNodes counts the nodes of a document as written: an alias is one.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

func (c *aliasCheck) walk(n *yaml.Node, key string) {
	if c.err != nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		c.total = c.add(c.total, c.expanded(n, key))
		if c.err == nil && c.total > c.limit {
			c.fail(n, key, "aliases expand to more than %d values, the limit for this file (%d + %d × its %d YAML nodes): refusing an alias fan-out",
				c.limit, baseValues, valuesPerNode, c.nodes)
		}
		return
	}
	c.total++
	for i, k := range n.Content {
		switch {
		case n.Kind == yaml.SequenceNode:
			c.walk(k, fmt.Sprintf("%s[%d]", key, i))
		case n.Kind != yaml.MappingNode || i%2 == 0:
			c.walk(k, key)
		case n.Content[i-1].ShortTag() == "!!merge":
			// <<: *a or <<: [*a, *b] adds to the mapping itself.
			if k.Kind == yaml.SequenceNode {
				c.total++
				for _, m := range k.Content {
					c.walk(m, key)
				}
				continue
			}
			c.walk(k, key)
		default:
			c.walk(k, join(key, n.Content[i-1].Value))
		}
	}
}

// expanded is the number of values n stands for once its aliases are
// followed; key is where it is used, for the error about a cycle.
func (c *aliasCheck) expanded(n *yaml.Node, key string) int {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 1
		}
		if c.inProgress[n.Alias] {
			c.fail(n, key, "alias *%s is inside its own anchor: it would expand forever", n.Value)
			return c.limit + 1
		}
		n = n.Alias
	}
	if s, ok := c.size[n]; ok {
		return s
	}
	c.inProgress[n] = true
	s := 1
	for _, k := range n.Content {
		if c.err != nil {
			break
		}
		s = c.add(s, c.expanded(k, key))
	}
	delete(c.inProgress, n)
	c.size[n] = s
	return s
}

// add saturates just above the limit: sizes grow exponentially with
// nesting and must not overflow.
func (c *aliasCheck) add(a, b int) int {
	return min(a+b, c.limit+1)
}

func (c *aliasCheck) fail(n *yaml.Node, key, format string, args ...any) {
	if c.err == nil {
		c.err = &Error{File: c.file, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
}
