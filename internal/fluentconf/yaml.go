package fluentconf

import (
	"regexp"
	"strconv"
	"strings"
)

// A small ordered YAML tree, written by hand so the output keeps the
// fluent.conf order and can carry comments.

type ykind uint8

const (
	yMap ykind = iota
	yList
	yStr  // a string, quoted when needed
	yBare // written as is (numbers, booleans, durations, sizes)
)

type ynode struct {
	kind     ykind
	keys     []string
	vals     []*ynode
	items    []*ynode
	text     string
	comments []string // written on the lines before the node
}

func ymap() *ynode { return &ynode{kind: yMap} }

func ylist() *ynode { return &ynode{kind: yList} }

func ystr(s string) *ynode { return &ynode{kind: yStr, text: s} }

func ybare(s string) *ynode { return &ynode{kind: yBare, text: s} }

func ybool(b bool) *ynode { return ybare(strconv.FormatBool(b)) }

// set adds or replaces key.
func (n *ynode) set(key string, v *ynode) *ynode {
	for i, k := range n.keys {
		if k == key {
			v.comments = append(n.vals[i].comments, v.comments...)
			n.vals[i] = v
			return n
		}
	}
	n.keys = append(n.keys, key)
	n.vals = append(n.vals, v)
	return n
}

func (n *ynode) get(key string) *ynode {
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// sub returns the map under key, creating it.
func (n *ynode) sub(key string) *ynode {
	if v := n.get(key); v != nil {
		return v
	}
	m := ymap()
	n.set(key, m)
	return m
}

func (n *ynode) add(v *ynode) { n.items = append(n.items, v) }

func (n *ynode) comment(format string, args ...any) {
	n.comments = append(n.comments, sprintf(format, args...))
}

func (n *ynode) write(b *strings.Builder, indent int) {
	pad := strings.Repeat(" ", indent)
	switch n.kind {
	case yMap:
		for i, k := range n.keys {
			v := n.vals[i]
			writeComments(b, pad, v.comments)
			b.WriteString(pad + k + ":")
			v.writeValue(b, indent)
		}
	case yList:
		for _, it := range n.items {
			writeComments(b, pad, it.comments)
			if it.kind == yMap && len(it.keys) > 0 {
				var sub strings.Builder
				it.write(&sub, indent+2)
				s := sub.String()
				b.WriteString(pad + "- " + strings.TrimPrefix(s, pad+"  "))
				continue
			}
			b.WriteString(pad + "-")
			it.writeValue(b, indent)
		}
	}
}

func (n *ynode) writeValue(b *strings.Builder, indent int) {
	switch n.kind {
	case yMap:
		if len(n.keys) == 0 {
			b.WriteString(" {}\n")
			return
		}
		b.WriteString("\n")
		n.write(b, indent+2)
	case yList:
		if len(n.items) == 0 {
			b.WriteString(" []\n")
			return
		}
		b.WriteString("\n")
		n.write(b, indent+2)
	case yStr:
		b.WriteString(" " + quote(n.text) + "\n")
	case yBare:
		b.WriteString(" " + n.text + "\n")
	}
}

func writeComments(b *strings.Builder, pad string, cs []string) {
	for _, c := range cs {
		for _, line := range strings.Split(c, "\n") {
			b.WriteString(pad + "# " + line + "\n")
		}
	}
}

var plainRE = regexp.MustCompile(`^[A-Za-z0-9_/.$][A-Za-z0-9_./@${}\[\]*+-]*$`)
var numberLike = regexp.MustCompile(`^[-+]?(\.?[0-9]|0x|0o)`)

// quote writes s as a YAML string: plain when that reads back as the same
// string, single-quoted otherwise, double-quoted when it holds control
// characters.
func quote(s string) string {
	switch strings.ToLower(s) {
	case "", "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n":
		return "'" + s + "'"
	}
	if plainRE.MatchString(s) && !numberLike.MatchString(s) {
		return s
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return strconv.Quote(s)
		}
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
