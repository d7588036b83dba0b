package fluentconf

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/marutalog/maruta/internal/config"
)

// element is one <directive arg> … </directive> with its parameters and
// nested directives, in file order.
type element struct {
	name   string
	arg    string
	line   int
	params []*param
	elems  []*element

	used    bool
	allowed map[string]bool // parameter names the converter understands
	allowE  map[string]bool // nested directive names it understands
	hostOK  map[string]bool // parameters where ${hostname} is expanded
}

// param is one "key value" line. val is ready for maruta's YAML: an
// environment reference "#{ENV['X']}" became ${X}, a literal "${UPPER" became
// "$${UPPER" (so the YAML loader does not read it as a variable).
type param struct {
	key  string
	val  string
	line int
	env  bool // val holds an environment reference
	host bool // val holds #{Socket.gethostname} (as ${hostname})
	used bool
}

type parser struct {
	file  string
	lines []string
	i     int // next line index
}

func (p *parser) errorf(line int, format string, args ...any) error {
	return &config.Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// parse reads a whole fluent.conf into a root element.
func parse(file string, data []byte) (*element, error) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	p := &parser{file: file, lines: strings.Split(text, "\n")}
	root := &element{name: "ROOT", line: 1}
	if err := p.body(root); err != nil {
		return nil, err
	}
	return root, nil
}

var (
	openRE  = regexp.MustCompile(`^<\s*([A-Za-z_@][\w.@-]*)\s*(.*?)\s*>\s*(?:#.*)?$`)
	closeRE = regexp.MustCompile(`^</\s*([A-Za-z_@][\w.@-]*)\s*>\s*(?:#.*)?$`)
)

// body reads parameters and nested elements until the element's closing
// tag (or the end of the file for the root).
func (p *parser) body(e *element) error {
	for p.i < len(p.lines) {
		lineNo := p.i + 1
		line := strings.TrimSpace(p.lines[p.i])
		p.i++
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "</") {
			m := closeRE.FindStringSubmatch(line)
			if m == nil {
				return p.errorf(lineNo, "malformed closing tag %q", line)
			}
			if e.name == "ROOT" {
				return p.errorf(lineNo, "</%s> without an opening <%s>", m[1], m[1])
			}
			if m[1] != e.name {
				return p.errorf(lineNo, "</%s> closes <%s> opened at line %d", m[1], e.name, e.line)
			}
			return nil
		}
		if line[0] == '<' {
			m := openRE.FindStringSubmatch(line)
			if m == nil {
				return p.errorf(lineNo, "malformed directive %q", line)
			}
			child := &element{name: m[1], arg: m[2], line: lineNo}
			if err := p.body(child); err != nil {
				return err
			}
			e.elems = append(e.elems, child)
			continue
		}
		if strings.HasPrefix(line, "@include") || strings.HasPrefix(line, "include ") {
			return p.errorf(lineNo, "@include is not supported: put the included files' directives in this file (maruta convert reads one file)")
		}
		key := line
		rest := ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, rest = line[:i], strings.TrimLeft(line[i:], " \t")
		}
		if e.name == "ROOT" {
			return p.errorf(lineNo, "parameter %q outside any directive", key)
		}
		val, env, err := p.value(rest, lineNo)
		if err != nil {
			return err
		}
		host := strings.Contains(rest, "#{") && strings.Contains(val, "${hostname}")
		e.params = append(e.params, &param{key: key, val: val, line: lineNo, env: env, host: host})
	}
	if e.name != "ROOT" {
		return p.errorf(e.line, "<%s> is not closed", e.name)
	}
	return nil
}

// value parses a parameter value starting at rest (the remainder of the
// current line; later lines are read for multi-line strings and arrays).
func (p *parser) value(rest string, lineNo int) (string, bool, error) {
	switch {
	case strings.HasPrefix(rest, `"`):
		return p.doubleQuoted(rest[1:], lineNo)
	case strings.HasPrefix(rest, `'`):
		return p.singleQuoted(rest[1:], lineNo)
	case strings.HasPrefix(rest, "[") || strings.HasPrefix(rest, "{"):
		// A JSON array or hash, possibly over several lines.
		text := rest
		for !balanced(text) {
			if p.i >= len(p.lines) {
				return "", false, p.errorf(lineNo, "unterminated %c…", rest[0])
			}
			text += "\n" + p.lines[p.i]
			p.i++
		}
		return escapeDollar(strings.TrimSpace(text)), false, nil
	}
	// Unquoted: to the end of the line; " #" starts a comment.
	v := rest
	for i := 0; i < len(v); i++ {
		if v[i] == '#' && i > 0 && (v[i-1] == ' ' || v[i-1] == '\t') {
			v = v[:i]
			break
		}
	}
	return escapeDollar(strings.TrimSpace(v)), false, nil
}

func balanced(s string) bool {
	depth := 0
	inStr := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		}
	}
	return depth <= 0
}

var upperVar = regexp.MustCompile(`\$\{([A-Z_])`)

// escapeDollar keeps a literal "${UPPER…" from being read as a variable by
// the YAML loader.
func escapeDollar(s string) string { return upperVar.ReplaceAllString(s, "$$$${$1") }

func (p *parser) singleQuoted(s string, lineNo int) (string, bool, error) {
	var b strings.Builder
	for {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '\\') {
				b.WriteByte(s[i+1])
				i++
				continue
			}
			if c == '\'' {
				if err := p.trailing(s[i+1:], lineNo); err != nil {
					return "", false, err
				}
				return escapeDollar(b.String()), false, nil
			}
			b.WriteByte(c)
		}
		if p.i >= len(p.lines) {
			return "", false, p.errorf(lineNo, "unterminated single-quoted string")
		}
		b.WriteByte('\n')
		s = p.lines[p.i]
		p.i++
	}
}

var envRefRE = regexp.MustCompile(`^ENV\[\s*(?:'([^']*)'|"([^"]*)")\s*\]$|^ENV\.fetch\(\s*(?:'([^']*)'|"([^"]*)")\s*(?:,\s*(?:'([^']*)'|"([^"]*)"|(nil))\s*)?\)$`)

var varName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

func (p *parser) doubleQuoted(s string, lineNo int) (string, bool, error) {
	var b strings.Builder
	env := false
	for {
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s):
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case 'f':
					b.WriteByte('\f')
				case 'b':
					b.WriteByte('\b')
				case 'a':
					b.WriteByte('\a')
				case 'e':
					b.WriteByte(0x1b)
				case 's':
					b.WriteByte(' ')
				case '0':
					b.WriteByte(0)
				default:
					b.WriteByte(s[i])
				}
			case c == '#' && i+1 < len(s) && s[i+1] == '{':
				end := strings.IndexByte(s[i:], '}')
				if end < 0 {
					return "", false, p.errorf(lineNo, "unterminated #{…} in a double-quoted string")
				}
				expr := strings.TrimSpace(s[i+2 : i+end])
				out, err := p.embedded(expr, lineNo)
				if err != nil {
					return "", false, err
				}
				b.WriteString(out)
				env = env || strings.HasPrefix(out, "${")
				i += end
			case c == '$' && i+2 < len(s) && s[i+1] == '{' && (s[i+2] >= 'A' && s[i+2] <= 'Z' || s[i+2] == '_'):
				b.WriteString("$${") // a literal ${UPPER, not a variable
				i++
			case c == '"':
				if err := p.trailing(s[i+1:], lineNo); err != nil {
					return "", false, err
				}
				return b.String(), env, nil
			default:
				b.WriteByte(c)
			}
		}
		if p.i >= len(p.lines) {
			return "", false, p.errorf(lineNo, "unterminated double-quoted string")
		}
		b.WriteByte('\n')
		s = p.lines[p.i]
		p.i++
	}
}

// embedded translates the Ruby code fluentd evaluates inside "#{…}".
func (p *parser) embedded(expr string, lineNo int) (string, error) {
	if m := envRefRE.FindStringSubmatch(expr); m != nil {
		name := m[1] + m[2] + m[3] + m[4]
		if !varName.MatchString(name) {
			return "", p.errorf(lineNo, "\"#{%s}\": maruta reads upper-case environment variables only ([A-Z_][A-Z0-9_]*); rename %s", expr, name)
		}
		if strings.HasPrefix(expr, "ENV[") || m[7] != "" {
			return "${" + name + "}", nil
		}
		if m[5] != "" || m[6] != "" || strings.Contains(expr, ",") {
			def := m[5] + m[6]
			if strings.ContainsAny(def, "}\n") {
				return "", p.errorf(lineNo, "\"#{%s}\": the default may not contain '}'", expr)
			}
			return "${" + name + ":-" + def + "}", nil
		}
		return "${" + name + "}", nil
	}
	switch expr {
	case "Socket.gethostname", "`hostname`.chomp", "`hostname -s`.chomp", "ENV['HOSTNAME']":
		return "${hostname}", nil
	}
	return "", p.errorf(lineNo, "\"#{%s}\": maruta evaluates no Ruby; supported: #{ENV['NAME']}, #{ENV.fetch('NAME', 'default')}, #{Socket.gethostname} (as ${hostname} where maruta expands it)", expr)
}

func (p *parser) trailing(s string, lineNo int) error {
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '#' {
		return nil
	}
	return p.errorf(lineNo, "unexpected %q after a quoted value", s)
}

// Access helpers used by the converters: every read marks the parameter
// used; check reports what was not.

// allow declares the parameters and nested directives a converter
// understands (for the "supported" list of errors).
func (e *element) allow(params ...string) {
	if e.allowed == nil {
		e.allowed = map[string]bool{}
	}
	for _, k := range params {
		e.allowed[k] = true
	}
}

func (e *element) allowElems(names ...string) {
	if e.allowE == nil {
		e.allowE = map[string]bool{}
	}
	for _, k := range names {
		e.allowE[k] = true
	}
}

// allowHost marks parameters whose ${hostname} maruta expands ("*": all).
func (e *element) allowHost(keys ...string) {
	if e.hostOK == nil {
		e.hostOK = map[string]bool{}
	}
	for _, k := range keys {
		e.hostOK[k] = true
	}
}

// get returns the last value of key (fluentd keeps the last one).
func (e *element) get(key string) (*param, bool) {
	var found *param
	for _, p := range e.params {
		if p.key == key {
			p.used = true
			found = p
		}
	}
	return found, found != nil
}

func (e *element) str(key string) (string, bool) {
	p, ok := e.get(key)
	if !ok {
		return "", false
	}
	return p.val, true
}

// typ returns @type (or v0.12's type).
func (e *element) typ() (string, int) {
	if p, ok := e.get("@type"); ok {
		e.get("type")
		return p.val, p.line
	}
	if p, ok := e.get("type"); ok {
		return p.val, p.line
	}
	return "", e.line
}

func (e *element) children(name string) []*element {
	var out []*element
	for _, c := range e.elems {
		if c.name == name {
			c.used = true
			out = append(out, c)
		}
	}
	return out
}

// check returns an error for the first parameter or nested directive no
// converter read, naming what is supported.
func (e *element) check(p *parser, what string) error {
	for _, prm := range e.params {
		if prm.host && prm.used && !e.hostOK[prm.key] && !e.hostOK["*"] {
			return p.errorf(prm.line, "%s: #{Socket.gethostname} in %s is not supported (maruta expands the host name in record values, rewrite tags and self_hostname)", what, prm.key)
		}
		if prm.used {
			continue
		}
		return p.errorf(prm.line, "%s: unsupported parameter %q (supported: %s)", what, prm.key, list(e.allowed))
	}
	for _, c := range e.elems {
		if c.used {
			continue
		}
		sup := list(e.allowE)
		if len(e.allowE) == 0 {
			sup = "none"
		}
		return p.errorf(c.line, "%s: unsupported section <%s> (supported: %s)", what, c.name, sup)
	}
	return nil
}

func list(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) == 0 {
		return "none"
	}
	return strings.Join(ks, ", ")
}

// describe names a directive in messages: <match docker.**> @type s3.
func (e *element) describe(typ string) string {
	d := "<" + e.name
	if e.arg != "" {
		d += " " + e.arg
	}
	d += ">"
	if typ != "" {
		d += " @type " + typ
	}
	return d
}
