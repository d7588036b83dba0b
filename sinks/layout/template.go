package layout

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/marutalog/maruta/internal/strftime"
)

// Templates: an output's path and object_key mix literal text, strftime
// directives (%Y, %m, %d, %H, …, rendered with the chunk's time slice in UTC)
// and ${name} placeholders:
//
//	${tag}, ${tag_parts[N]}   the tag, or its N-th dot-separated part
//	                          (negative N counts from the end)
//	${path}                   object_key only: the rendered path
//	${node}, ${chunk_id}      the node name and the chunk id
//	${ext}                    parquet, jsonl or jsonl.gz
//	${<chunk key>}            the value of a buffer chunk_keys record key
//
// Placeholder values are sanitized for object keys and file names by
// SanitizeValue. A template is parsed once (parseTemplate) and rendered
// without re-parsing.

type tokKind uint8

const (
	tokLit     tokKind = iota // literal text
	tokTime                   // a strftime directive
	tokTag                    // ${tag}
	tokTagPart                // ${tag_parts[N]}
	tokName                   // any other ${name}
)

type token struct {
	kind  tokKind
	text  string // literal text, or the original source of a directive/placeholder
	dir   byte   // strftime directive letter
	name  string // placeholder name
	index int    // tag_parts index
}

type template []token

// parseTemplate splits s into tokens. It never fails: text that is not a
// known construct stays literal.
func parseTemplate(s string) template {
	var t template
	lit := func(x string) {
		if x == "" {
			return
		}
		if n := len(t); n > 0 && t[n-1].kind == tokLit {
			t[n-1].text += x
			return
		}
		t = append(t, token{kind: tokLit, text: x})
	}
	for i := 0; i < len(s); {
		switch {
		case s[i] == '%' && i+1 < len(s):
			d := s[i+1]
			if d == '%' {
				lit("%")
			} else if strftime.Known(d) {
				t = append(t, token{kind: tokTime, text: s[i : i+2], dir: d})
			} else {
				lit(s[i : i+2])
			}
			i += 2
		case s[i] == '$' && strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				lit(s[i:])
				i = len(s)
				continue
			}
			src, name := s[i:i+end+1], s[i+2:i+end]
			i += end + 1
			switch {
			case name == "tag":
				t = append(t, token{kind: tokTag, text: src, name: name})
			case strings.HasPrefix(name, "tag_parts[") && strings.HasSuffix(name, "]"):
				n, err := strconv.Atoi(name[len("tag_parts[") : len(name)-1])
				if err != nil {
					lit(src)
					continue
				}
				t = append(t, token{kind: tokTagPart, text: src, name: name, index: n})
			case name != "":
				t = append(t, token{kind: tokName, text: src, name: name})
			default:
				lit(src)
			}
		default:
			j := i + 1
			for j < len(s) && s[j] != '%' && s[j] != '$' {
				j++
			}
			lit(s[i:j])
			i = j
		}
	}
	return t
}

// hasTag reports whether the template uses ${tag} or ${tag_parts[N]}.
func (t template) hasTag() bool {
	for _, tk := range t {
		if tk.kind == tokTag || tk.kind == tokTagPart {
			return true
		}
	}
	return false
}

// resolveTag renders the tag placeholders of t for tag and leaves every
// other construct as written.
func (t template) resolveTag(tag string) string {
	var b strings.Builder
	for _, tk := range t {
		switch tk.kind {
		case tokTag:
			b.WriteString(SanitizeValue(tag))
		case tokTagPart:
			b.WriteString(SanitizeValue(tagPart(tag, tk.index)))
		case tokLit:
			// A literal '%' must survive a later strftime pass.
			b.WriteString(strings.ReplaceAll(tk.text, "%", "%%"))
		default:
			b.WriteString(tk.text)
		}
	}
	return b.String()
}

// tagPart returns the n-th dot-separated part of tag (negative n counts
// from the end), or "" when there is none.
func tagPart(tag string, n int) string {
	parts := strings.Split(tag, ".")
	if n < 0 {
		n += len(parts)
	}
	if n < 0 || n >= len(parts) {
		return ""
	}
	return parts[n]
}

// renderVars holds the values a full render may use.
type renderVars struct {
	t      time.Time // UTC
	tag    string
	vars   map[string]string // path, node, chunk_id, ext (not sanitized again)
	keys   map[string]string // chunk keys (sanitized)
	strict bool              // unknown placeholders are errors
}

// render renders every construct of t.
func (t template) render(v *renderVars) (string, error) {
	var b strings.Builder
	for _, tk := range t {
		switch tk.kind {
		case tokLit:
			b.WriteString(tk.text)
		case tokTime:
			b.Write(strftime.AppendDirective(nil, tk.dir, v.t))
		case tokTag:
			b.WriteString(SanitizeValue(v.tag))
		case tokTagPart:
			b.WriteString(SanitizeValue(tagPart(v.tag, tk.index)))
		case tokName:
			if x, ok := v.vars[tk.name]; ok {
				b.WriteString(x)
			} else if x, ok := v.keys[tk.name]; ok {
				b.WriteString(SanitizeValue(x))
			} else if v.strict {
				return "", fmt.Errorf("unknown placeholder %s", tk.text)
			} else {
				b.WriteString(tk.text)
			}
		}
	}
	return b.String(), nil
}

// SanitizeValue makes a placeholder value safe inside an object key or a
// file name: '/', '\\', '%', '$', '{', '}', '=', control bytes and invalid
// UTF-8 become '_', ".." becomes "__", and an empty value becomes "_". The
// buffer uses it for chunk key values too.
func SanitizeValue(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c >= utf8.RuneSelf || strings.IndexByte(`/\%${}=`, c) >= 0 ||
			c == '.' && i+1 < len(s) && s[i+1] == '.' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteByte('_')
			} else {
				b.WriteString(s[i : i+size])
			}
			i += size
			continue
		}
		switch {
		case c < 0x20 || c == 0x7f || strings.IndexByte(`/\%${}=`, c) >= 0:
			b.WriteByte('_')
		case c == '.' && i+1 < len(s) && s[i+1] == '.':
			b.WriteString("__")
			i++
		default:
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

// TagResolver returns a function that resolves ${tag} and ${tag_parts[N]} in
// pathTemplate for a tag (values sanitized by SanitizeValue) and leaves
// strftime directives and other placeholders for the sink. A literal '%' of
// the template is written as "%%" so it survives the sink's strftime pass.
//
// The buffer calls the function for every event to build the chunk key, so
// results are cached per tag (up to 4096 tags; the cache restarts when
// full). The function is safe for concurrent use.
func TagResolver(pathTemplate string) func(tag string) string {
	t := parseTemplate(pathTemplate)
	if !t.hasTag() {
		fixed := t.resolveTag("")
		return func(string) string { return fixed }
	}
	const maxEntries = 4096
	var (
		cache atomic.Pointer[sync.Map]
		size  atomic.Int64
	)
	cache.Store(new(sync.Map))
	return func(tag string) string {
		m := cache.Load()
		if v, ok := m.Load(tag); ok {
			return v.(string)
		}
		r := t.resolveTag(tag)
		if size.Add(1) > maxEntries {
			size.Store(1)
			m = new(sync.Map)
			cache.Store(m)
		}
		m.Store(tag, r)
		return r
	}
}
