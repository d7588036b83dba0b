package router

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/marutalog/maruta/internal/msgpack"
)

// maxDepth bounds nesting when the router scans records. The Forward server
// has already checked every record against its own limit.
const maxDepth = 100

// accessor is fluentd's record_accessor: a top-level key ("log"), or a path
// in dot notation ("$.kubernetes.labels.app", "$.items[0].id") or bracket
// notation ("$['kubernetes']['labels']['app.kubernetes.io/name']").
type accessor struct {
	src  string
	path []pathElem
}

type pathElem struct {
	key     string
	index   int
	isIndex bool
}

func (e pathElem) String() string {
	if e.isIndex {
		return "[" + strconv.Itoa(e.index) + "]"
	}
	return e.key
}

// parseAccessor parses a key the way fluentd's record_accessor does.
func parseAccessor(s string) (accessor, error) {
	a := accessor{src: s}
	switch {
	case strings.HasPrefix(s, "$."):
		for _, part := range strings.Split(s[2:], ".") {
			if !strings.Contains(part, "[") {
				a.path = append(a.path, pathElem{key: part})
				continue
			}
			open := strings.IndexByte(part, '[')
			if open > 0 {
				a.path = append(a.path, pathElem{key: part[:open]})
			}
			rest := part[open:]
			for rest != "" {
				if rest[0] != '[' {
					return a, fmt.Errorf("key %q: unexpected %q after ']'", s, rest)
				}
				end := strings.IndexByte(rest, ']')
				if end < 0 {
					return a, fmt.Errorf("key %q: '[' without ']'", s)
				}
				n, err := strconv.Atoi(rest[1:end])
				if err != nil {
					return a, fmt.Errorf("key %q: array index %q is not an integer", s, rest[1:end])
				}
				a.path = append(a.path, pathElem{index: n, isIndex: true})
				rest = rest[end+1:]
			}
		}
		for _, e := range a.path {
			if !e.isIndex && e.key == "" {
				return a, fmt.Errorf("key %q: empty name in dot notation", s)
			}
		}
	case strings.HasPrefix(s, "$["):
		rest := s[1:]
		for rest != "" {
			if rest[0] != '[' {
				return a, fmt.Errorf("key %q: unexpected %q after ']'", s, rest)
			}
			rest = rest[1:]
			if rest != "" && (rest[0] == '\'' || rest[0] == '"') {
				q := rest[0]
				end := strings.Index(rest[1:], string(q)+"]")
				if end < 0 {
					return a, fmt.Errorf("key %q: unterminated quoted name", s)
				}
				a.path = append(a.path, pathElem{key: rest[1 : 1+end]})
				rest = rest[end+3:]
				continue
			}
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return a, fmt.Errorf("key %q: '[' without ']'", s)
			}
			n, err := strconv.Atoi(rest[:end])
			if err != nil {
				return a, fmt.Errorf("key %q: array index %q is not an integer (quote names: ['name'])", s, rest[:end])
			}
			a.path = append(a.path, pathElem{index: n, isIndex: true})
			rest = rest[end+1:]
		}
	default:
		a.path = []pathElem{{key: s}}
	}
	if len(a.path) == 0 {
		return a, fmt.Errorf("key %q: empty path", s)
	}
	return a, nil
}

// topLevel returns the key when the accessor names a top-level key.
func (a accessor) topLevel() (string, bool) {
	if len(a.path) == 1 && !a.path[0].isIndex {
		return a.path[0].key, true
	}
	return "", false
}

// get returns the raw value the accessor points at in the record (a msgpack
// map), or found=false when any step is missing or of the wrong kind.
func (a accessor) get(rec []byte) (val []byte, found bool) {
	cur := rec
	for _, e := range a.path {
		v, ok := child(cur, e)
		if !ok {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

// child returns the element e of the map or array v.
func child(v []byte, e pathElem) ([]byte, bool) {
	if e.isIndex {
		n, rest, err := msgpack.ReadArrayHeader(v)
		if err != nil {
			return nil, false
		}
		i := e.index
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return nil, false
		}
		for ; i > 0; i-- {
			if _, rest, err = msgpack.ReadRaw(rest, maxDepth); err != nil {
				return nil, false
			}
		}
		el, _, err := msgpack.ReadRaw(rest, maxDepth)
		return el, err == nil
	}
	if msgpack.Peek(v) != msgpack.Map {
		return nil, false
	}
	el, ok, err := msgpack.MapGet(v, e.key, maxDepth)
	return el, ok && err == nil
}

// appendDelete appends to dst a copy of the container v without the element
// the path names. changed is false (and dst untouched) when there is nothing
// to delete.
func appendDelete(dst, v []byte, path []pathElem) (out []byte, changed bool) {
	e := path[0]
	if len(path) > 1 {
		c, ok := child(v, e)
		if !ok {
			return dst, false
		}
		var sub []byte
		sub, changed = appendDelete(nil, c, path[1:])
		if !changed {
			return dst, false
		}
		return appendReplaceChild(dst, v, e, sub), true
	}
	if e.isIndex {
		n, rest, err := msgpack.ReadArrayHeader(v)
		if err != nil {
			return dst, false
		}
		i := e.index
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return dst, false
		}
		dst = msgpack.AppendArrayHeader(dst, n-1)
		for j := 0; j < n; j++ {
			el, r, err := msgpack.ReadRaw(rest, maxDepth)
			if err != nil {
				return dst, false
			}
			rest = r
			if j != i {
				dst = append(dst, el...)
			}
		}
		return dst, true
	}
	n, rest, err := msgpack.ReadMapHeader(v)
	if err != nil {
		return dst, false
	}
	drop := 0
	body := rest
	for j := 0; j < n; j++ {
		k, r, err := msgpack.ReadRaw(body, maxDepth)
		if err != nil {
			return dst, false
		}
		_, r, err = msgpack.ReadRaw(r, maxDepth)
		if err != nil {
			return dst, false
		}
		if keyEquals(k, e.key) {
			drop++
		}
		body = r
	}
	if drop == 0 {
		return dst, false
	}
	dst = msgpack.AppendMapHeader(dst, n-drop)
	for j := 0; j < n; j++ {
		k, r, _ := msgpack.ReadRaw(rest, maxDepth)
		val, r2, _ := msgpack.ReadRaw(r, maxDepth)
		rest = r2
		if !keyEquals(k, e.key) {
			dst = append(dst, k...)
			dst = append(dst, val...)
		}
	}
	return dst, true
}

// appendReplaceChild appends v with its element e replaced by sub.
func appendReplaceChild(dst, v []byte, e pathElem, sub []byte) []byte {
	if e.isIndex {
		n, rest, _ := msgpack.ReadArrayHeader(v)
		i := e.index
		if i < 0 {
			i += n
		}
		dst = msgpack.AppendArrayHeader(dst, n)
		for j := 0; j < n; j++ {
			el, r, _ := msgpack.ReadRaw(rest, maxDepth)
			rest = r
			if j == i {
				dst = append(dst, sub...)
			} else {
				dst = append(dst, el...)
			}
		}
		return dst
	}
	n, rest, _ := msgpack.ReadMapHeader(v)
	dst = msgpack.AppendMapHeader(dst, n)
	done := false
	for j := 0; j < n; j++ {
		k, r, _ := msgpack.ReadRaw(rest, maxDepth)
		val, r2, _ := msgpack.ReadRaw(r, maxDepth)
		rest = r2
		dst = append(dst, k...)
		if !done && keyEquals(k, e.key) { // MapGet returns the first match
			dst = append(dst, sub...)
			done = true
		} else {
			dst = append(dst, val...)
		}
	}
	return dst
}

// keyEquals reports whether the raw msgpack key k is the str (or bin) key.
func keyEquals(k []byte, key string) bool {
	t := msgpack.Peek(k)
	if t != msgpack.Str && t != msgpack.Bin {
		return false
	}
	b, _, _, err := msgpack.ReadBytes(k)
	return err == nil && string(b) == key
}

// keyBytes returns the bytes of a str or bin key, or nil.
func keyBytes(k []byte) []byte {
	t := msgpack.Peek(k)
	if t != msgpack.Str && t != msgpack.Bin {
		return nil
	}
	b, _, _, err := msgpack.ReadBytes(k)
	if err != nil {
		return nil
	}
	return b
}
