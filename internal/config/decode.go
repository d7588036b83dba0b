package config

import (
	"errors"
	"fmt"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// maxDecodeErrors bounds the decode errors reported for one file (each
// costs one more decode of it).
const maxDecodeErrors = 100

// decode strictly decodes body into a Config. The decoder stops at the
// first error, so after each one the key at fault is left out of body and
// the rest decoded again, until it decodes: every error goes to col, every
// key left out to col.dropped. When an error cannot be pinned to a key,
// decoding stops there and the config is empty (ok false).
func decode(file string, body ast.Node, pos positions, col *collector) (c *Config, ok bool) {
	for range maxDecodeErrors {
		c = &Config{}
		err := yaml.NodeToValue(body, c, yaml.Strict())
		if err == nil {
			return c, true
		}
		col.decode = col.append(col.decode, yamlError(file, pos, err))
		key, ok := leaveOut(body, err)
		if !ok {
			break
		}
		col.dropped = append(col.dropped, key)
	}
	return &Config{}, false
}

// leaveOut removes from body the mapping key that err is about, or empties
// the list item (so later items keep their index), and returns its path.
func leaveOut(body ast.Node, err error) (string, bool) {
	var match func(ast.Node) bool
	var pe *posError
	var ye yaml.Error
	switch {
	case errors.As(err, &pe) && pe.node != nil:
		match = func(n ast.Node) bool { return n == pe.node }
	case errors.As(err, &pe):
		match = atPosition(pe.line, pe.col)
	case errors.As(err, &ye) && ye.GetToken() != nil:
		match = atPosition(ye.GetToken().Position.Line, ye.GetToken().Position.Column)
	default:
		return "", false
	}
	pl, found := locate(body, "", match)
	if found != foundPlace {
		return "", false
	}
	switch {
	case pl.m != nil:
		pl.m.Values = append(pl.m.Values[:pl.i:pl.i], pl.m.Values[pl.i+1:]...)
	case pl.seq != nil:
		tk := pl.seq.Values[pl.i].GetToken()
		pl.seq.Values[pl.i] = ast.Null(token.New("null", "null", tk.Position))
	}
	return pl.path, true
}

func atPosition(line, col int) func(ast.Node) bool {
	return func(n ast.Node) bool {
		if n == nil || n.GetToken() == nil {
			return false
		}
		p := n.GetToken().Position
		return p.Line == line && p.Column == col
	}
}

// place is a key of a mapping (pair i of m) or an item of a list (item i
// of seq), with its path.
type place struct {
	path string
	m    *ast.MappingNode
	seq  *ast.SequenceNode
	i    int
}

type found uint8

const (
	notFound    found = iota
	foundPlace        // the place to leave out
	foundInside       // the node matched, but its parent must make the place
)

// locate finds the innermost key or list item whose key, value or item
// matches, or that holds a node that does.
func locate(n ast.Node, path string, match func(ast.Node) bool) (place, found) {
	switch v := n.(type) {
	case *ast.MappingNode:
		for i, mv := range v.Values {
			p := childKey(path, mv)
			pl, f := locate(mv.Value, p, match)
			if f == foundPlace {
				return pl, f
			}
			if f == foundInside || match(mv.Key) || match(mv.Value) {
				return place{path: p, m: v, i: i}, foundPlace
			}
		}
	case *ast.MappingValueNode:
		// A lone pair: its parent (a key or a list item) is left out.
		if pl, f := locate(v.Value, childKey(path, v), match); f == foundPlace {
			return pl, f
		} else if f == foundInside || match(v.Key) || match(v.Value) {
			return place{}, foundInside
		}
	case *ast.SequenceNode:
		for i, e := range v.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			pl, f := locate(e, p, match)
			if f == foundPlace {
				return pl, f
			}
			if f == foundInside || match(e) {
				return place{path: p, seq: v, i: i}, foundPlace
			}
		}
	case *ast.TagNode:
		return locate(v.Value, path, match)
	case *ast.AnchorNode:
		return locate(v.Value, path, match)
	}
	if match(n) {
		return place{}, foundInside
	}
	return place{}, notFound
}

// childKey is the path of a mapping key under path, as positions names it.
func childKey(path string, mv *ast.MappingValueNode) string {
	key := mv.Key.String()
	if s, ok := mv.Key.(*ast.StringNode); ok {
		key = s.Value
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
