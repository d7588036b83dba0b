package router

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/marutalog/maruta/internal/ruby"
)

// Pattern is a compiled fluentd tag pattern: the argument of <match> and
// <filter>, and maruta's match keys. It matches exactly as fluentd's
// MatchPattern does:
//
//   - the pattern is split at white space; a tag matches if any part does;
//   - "*" matches one tag part (no dot), "**" zero or more parts: "a.**"
//     matches "a", "a.b" and "a.b.c", "**.b" matches "b" and "x.y.b";
//   - "{x,y}" matches either alternative; alternatives may hold globs and
//     nest;
//   - "\" makes the next character literal;
//   - "/re/" is a Ruby regular expression anchored at both ends, translated
//     to RE2 (see ruby.CompileRegexp).
//
// A Pattern is immutable and safe for concurrent use.
type Pattern struct {
	src  string
	all  bool   // some alternative is exactly "**"
	alts []glob // glob alternatives
	res  []*regexp.Regexp
}

// CompilePattern compiles a tag pattern. An empty pattern is "**".
func CompilePattern(src string) (*Pattern, error) {
	p := &Pattern{src: src}
	fields := strings.Fields(src)
	if len(fields) == 0 {
		fields = []string{"**"}
	}
	for _, f := range fields {
		switch {
		case f == "**":
			p.all = true
		case strings.HasPrefix(f, "/"):
			if len(f) < 2 || !strings.HasSuffix(f, "/") {
				return nil, fmt.Errorf("tag pattern %q: a regular expression must end with '/'", f)
			}
			re, err := ruby.CompileRegexp(`\A(?:`+f[1:len(f)-1]+`)\Z`, "")
			if err != nil {
				return nil, fmt.Errorf("tag pattern %q: %w", f, err)
			}
			p.res = append(p.res, re.RE2())
		default:
			g, err := compileGlob(f)
			if err != nil {
				return nil, fmt.Errorf("tag pattern %q: %w", f, err)
			}
			p.alts = append(p.alts, g)
		}
	}
	return p, nil
}

// MustCompilePattern is CompilePattern that panics on error (for tests and
// constants).
func MustCompilePattern(src string) *Pattern {
	p, err := CompilePattern(src)
	if err != nil {
		panic(err)
	}
	return p
}

func (p *Pattern) String() string { return p.src }

// Match reports whether tag matches the pattern.
func (p *Pattern) Match(tag string) bool {
	if p.all {
		return true
	}
	for _, g := range p.alts {
		if g.match(tag) {
			return true
		}
	}
	for _, re := range p.res {
		if re.MatchString(tag) {
			return true
		}
	}
	return false
}

// glob is a sequence of nodes, matched by backtracking. fluentd builds a
// Ruby regexp from the pattern; the nodes are the pieces of that regexp.
type glob []gnode

type gkind uint8

const (
	gLit      gkind = iota // literal text
	gStar                  // [^.]*
	gAny                   // .*   (Ruby: no newline)
	gDotAhead              // (?![^.]) : at the end, or before a '.'
	gAnyDot                // (?:.*\.|\A)
	gAlt                   // (?:a|b|…)
)

type gnode struct {
	kind gkind
	lit  string
	alts []glob
}

// compileGlob follows fluentd's GlobMatchPattern character by character,
// including its quirks: a '.' is emitted only when the next character is
// not "**" (so "a.**" also matches "a"), and a trailing '.' is dropped.
func compileGlob(pat string) (glob, error) {
	type frame struct {
		done []glob
		cur  glob
	}
	stack := []frame{{}}
	cur := func() *glob { return &stack[len(stack)-1].cur }
	lit := func(s string) {
		g := cur()
		if n := len(*g); n > 0 && (*g)[n-1].kind == gLit {
			(*g)[n-1].lit += s
			return
		}
		*g = append(*g, gnode{kind: gLit, lit: s})
	}
	escape, dot := false, false
	for i := 0; i < len(pat); {
		c := pat[i]
		if escape {
			lit(string(c))
			escape = false
			i++
			continue
		}
		if strings.HasPrefix(pat[i:], "**") {
			if dot {
				*cur() = append(*cur(), gnode{kind: gDotAhead})
				dot = false
			}
			if i+2 < len(pat) && pat[i+2] == '.' {
				*cur() = append(*cur(), gnode{kind: gAnyDot})
				i += 3
			} else {
				*cur() = append(*cur(), gnode{kind: gAny})
				i += 2
			}
			continue
		}
		if dot {
			lit(".")
			dot = false
		}
		switch {
		case c == '\\':
			escape = true
		case c == '.':
			dot = true
		case c == '*':
			*cur() = append(*cur(), gnode{kind: gStar})
		case c == '{':
			stack = append(stack, frame{})
		case c == '}' && len(stack) > 1:
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			*cur() = append(*cur(), gnode{kind: gAlt, alts: append(f.done, f.cur)})
		case c == ',' && len(stack) > 1:
			f := &stack[len(stack)-1]
			f.done = append(f.done, f.cur)
			f.cur = nil
		default:
			lit(string(c))
		}
		i++
	}
	if len(stack) > 1 {
		return nil, fmt.Errorf("'{' is not closed")
	}
	if escape {
		return nil, fmt.Errorf("ends with a lone '\\'")
	}
	return stack[0].cur, nil
}

// match reports whether the whole of s matches g. Like Ruby's \Z, the end
// may be followed by one final newline.
func (g glob) match(s string) bool {
	if len(g) == 1 && g[0].kind == gLit { // the common case: a plain tag
		return s == g[0].lit || len(s) == len(g[0].lit)+1 && s[len(s)-1] == '\n' && s[:len(s)-1] == g[0].lit
	}
	return g.matchAt(s, 0, func(pos int) bool {
		return pos == len(s) || pos == len(s)-1 && s[pos] == '\n'
	})
}

// matchAt matches g against s from pos and calls k with every end position
// it can reach, stopping at the first k that returns true.
func (g glob) matchAt(s string, pos int, k func(int) bool) bool {
	if len(g) == 0 {
		return k(pos)
	}
	n, rest := g[0], g[1:]
	switch n.kind {
	case gLit:
		if !strings.HasPrefix(s[pos:], n.lit) {
			return false
		}
		return rest.matchAt(s, pos+len(n.lit), k)
	case gStar:
		end := pos
		for end < len(s) && s[end] != '.' {
			end++
		}
		for e := end; e >= pos; e-- { // greedy, backtracking
			if rest.matchAt(s, e, k) {
				return true
			}
		}
		return false
	case gAny:
		end := pos
		for end < len(s) && s[end] != '\n' {
			end++
		}
		for e := end; e >= pos; e-- {
			if rest.matchAt(s, e, k) {
				return true
			}
		}
		return false
	case gDotAhead:
		if pos < len(s) && s[pos] != '.' {
			return false
		}
		return rest.matchAt(s, pos, k)
	case gAnyDot:
		end := pos
		for end < len(s) && s[end] != '\n' {
			end++
		}
		for e := end; e > pos; e-- { // .*\. : the last char consumed is a dot
			if s[e-1] == '.' && rest.matchAt(s, e, k) {
				return true
			}
		}
		if pos == 0 { // \A
			return rest.matchAt(s, pos, k)
		}
		return false
	case gAlt:
		for _, a := range n.alts {
			if a.matchAt(s, pos, func(p int) bool { return rest.matchAt(s, p, k) }) {
				return true
			}
		}
		return false
	}
	return false
}
