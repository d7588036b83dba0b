package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration that `maruta run`
// uses without -c.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the embedded default configuration, loaded and validated.
func Default() (*Config, error) { return Parse("<embedded>", defaultYAML, os.LookupEnv) }

// Load reads, decodes, defaults and validates a YAML config file.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(file, data, os.LookupEnv)
}

// Parse decodes a YAML config named file (for messages), expands
// environment variables with lookup, sets defaults and validates. It
// reports every error it finds, as Errors sorted by line.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	c, _, err := ParseWith(file, data, Options{Lookup: lookup})
	return c, err
}

// Options say what ParseWith reports. The zero value reports every error,
// an unset variable included: what `maruta run` needs.
type Options struct {
	// Lookup reads environment variables. Default os.LookupEnv.
	Lookup func(string) (string, bool)
	// Reads lists the keys the caller uses, as KeyPattern paths ("http",
	// "data_dir", "outputs.bucket"); errors at other keys, unset variables
	// included, are not reported. Empty: every key.
	Reads []string
	// UnsetEnv is what an unset ${VAR} without a default is. Unless it is
	// an error, the value is empty and its key is not validated further.
	UnsetEnv EnvPolicy
	// Check builds components from the config as far as it decoded and
	// returns what only they can check (router.New: tag patterns, regular
	// expressions) as *Error or Errors, which join the config's own.
	Check func(*Config) error
}

// ParseWith is Parse with options. It returns the config and the warnings
// (unset variables under EnvWarning), or every error, sorted by line.
// Decoding goes on after an error: the key at fault is left out (a list
// item of an unknown type becomes empty) and the rest decoded again, so a
// file with five mistakes gets five errors in one run. A key left out, or
// whose variable is unset, is not validated further.
func ParseWith(file string, data []byte, o Options) (*Config, Errors, error) {
	lookup := o.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	col := &collector{file: file, reads: o.Reads}
	expanded, unset := expandEnv(data, lookup)
	f, err := parser.ParseBytes(expanded, 0)
	if err != nil {
		return nil, nil, yamlError(file, nil, err)
	}
	pos := positions{}
	for _, d := range f.Docs {
		pos.index("", d.Body)
	}
	for _, u := range unset {
		key := pos.keyAt(u.line, u.col)
		col.unset = append(col.unset, &Error{File: file, Line: u.line, Key: key, Msg: u.msg})
		col.dropped = append(col.dropped, key)
	}
	c, ok := &Config{}, true
	if len(f.Docs) > 0 && f.Docs[0].Body != nil {
		c, ok = decode(file, f.Docs[0].Body, pos, col)
	}
	c.File, c.pos = file, pos
	c.setDefaults()
	if ok {
		col.add(c.Validate())
		c.faulty = col.faultyKeys()
		if o.Check != nil {
			col.add(o.Check(c))
		}
	}
	errs, warnings := col.result(o.UnsetEnv)
	if len(errs) > 0 {
		return nil, warnings, errs
	}
	return c, warnings, nil
}

// yamlError turns a decoder error into an *Error with file, line and key.
func yamlError(file string, pos positions, err error) error {
	var pe *posError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.line, Key: pos.keyAt(pe.line, pe.col), Msg: pe.err.Error()}
	}
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		p := ye.GetToken().Position
		msg := ye.GetMessage()
		var ue *yaml.UnknownFieldError
		if errors.As(err, &ue) {
			msg = strings.Replace(msg, "unknown field", "unknown key", 1)
			key := pos.keyAt(p.Line, p.Column)
			return &Error{File: file, Line: p.Line, Key: key, Msg: msg}
		}
		return &Error{File: file, Line: p.Line, Key: pos.keyAt(p.Line, p.Column), Msg: typeMsg(msg)}
	}
	return &Error{File: file, Msg: err.Error()}
}

var typeErr = regexp.MustCompile(`^cannot unmarshal (.+?) into Go (?:struct field \S+|value) of type (.+)$`)

// typeMsg says in the config's words what a decoder's type error means:
// "cannot unmarshal string into Go struct field Config.HTTP of type int"
// becomes "a string where a whole number is expected".
func typeMsg(msg string) string {
	m := typeErr.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	words := func(t string) string {
		switch {
		case strings.HasPrefix(t, "[]"), t == "array", t == "sequence":
			return "a list"
		case strings.HasPrefix(t, "map"), t == "mapping", strings.Contains(t, "."):
			return "a mapping"
		case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
			return "a whole number"
		case strings.HasPrefix(t, "float"):
			return "a number"
		case t == "bool":
			return "true or false"
		}
		return "a " + t
	}
	return fmt.Sprintf("%s where %s is expected", words(m[1]), words(m[2]))
}

var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Z_][A-Z0-9_]*)(:-([^}]*))?\}`)

// ExpandEnv replaces ${VAR} and ${VAR:-default} (upper-case names) using
// lookup; $${ becomes a literal ${. A comment's text is left alone. Each
// unset variable without a default is an error naming its line.
func ExpandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	out, unset := expandEnv(data, lookup)
	var errs Errors
	for _, u := range unset {
		errs = append(errs, &Error{Line: u.line, Msg: u.msg})
	}
	if errs != nil {
		return nil, errs
	}
	return out, nil
}

// unsetRef is a ${VAR} whose variable is unset, where it is in the
// expanded text.
type unsetRef struct {
	line, col int
	msg       string
}

// expandEnv is ExpandEnv that replaces an unset variable with nothing and
// returns every one.
func expandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, []unsetRef) {
	var out strings.Builder
	out.Grow(len(data))
	var unset []unsetRef
	for i, line := range strings.SplitAfter(string(data), "\n") {
		body, comment := splitComment(line)
		col := 1
		last := 0
		for _, m := range envRef.FindAllStringSubmatchIndex(body, -1) {
			out.WriteString(body[last:m[0]])
			col += m[0] - last
			last = m[1]
			v := "${"
			if m[2] >= 0 {
				name := body[m[2]:m[3]]
				var ok bool
				v, ok = lookup(name)
				switch {
				case m[4] >= 0 && (!ok || v == ""):
					v = body[m[6]:m[7]]
				case m[4] < 0 && !ok:
					unset = append(unset, unsetRef{line: i + 1, col: col, msg: unsetMsg(name)})
				}
			}
			out.WriteString(v)
			col += len(v)
		}
		out.WriteString(body[last:])
		out.WriteString(comment)
	}
	return []byte(out.String()), unset
}

func unsetMsg(name string) string {
	return fmt.Sprintf("environment variable %s is not set (write ${%s:-default} for a default)", name, name)
}

// UnsetEnv returns the message for each variable s refers to (${VAR},
// without a default) that lookup does not find.
func UnsetEnv(s string, lookup func(string) (string, bool)) []string {
	_, unset := expandEnv([]byte(s), lookup)
	msgs := make([]string, len(unset))
	for i, u := range unset {
		msgs[i] = u.msg
	}
	return msgs
}

// splitComment splits a YAML line at the start of a comment: a '#' at the
// start or after a blank, outside quotes.
func splitComment(line string) (body, comment string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

// pos is a line and column in the YAML text.
type pos struct{ line, col int }

// positions maps key paths (outputs[1].buffer.timekey) to where their key
// appears, so Validate can name the line.
type positions map[string]pos

func (p positions) index(path string, n ast.Node) {
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, mv := range v.Values {
			p.indexPair(path, mv)
		}
	case *ast.MappingValueNode:
		p.indexPair(path, v)
	case *ast.SequenceNode:
		for i, e := range v.Values {
			sub := fmt.Sprintf("%s[%d]", path, i)
			if t := e.GetToken(); t != nil {
				p[sub] = pos{t.Position.Line, t.Position.Column}
			}
			p.index(sub, e)
		}
	case *ast.TagNode:
		p.index(path, v.Value)
	case *ast.AnchorNode:
		p.index(path, v.Value)
	}
}

func (p positions) indexPair(path string, mv *ast.MappingValueNode) {
	sub := childKey(path, mv)
	if t := mv.Key.GetToken(); t != nil {
		p[sub] = pos{t.Position.Line, t.Position.Column}
	}
	p.index(sub, mv.Value)
}

// line returns the line of path, or of its nearest ancestor that has one.
func (p positions) line(path string) int {
	for path != "" {
		if q, ok := p[path]; ok {
			return q.line
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// keyAt returns the path of the last key at or before line:col.
func (p positions) keyAt(line, col int) string {
	type kp struct {
		k string
		p pos
	}
	var all []kp
	for k, q := range p {
		all = append(all, kp{k, q})
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i].p, all[j].p
		if a.line != b.line {
			return a.line < b.line
		}
		if a.col != b.col {
			return a.col < b.col
		}
		return len(all[i].k) < len(all[j].k)
	})
	best := ""
	for _, e := range all {
		// A list item's position is its first key's ':', after that key:
		// the key, not the item, is the place.
		if (e.p.line < line || e.p.line == line && e.p.col <= col) && (best == "" || !keyUnder(best, e.k)) {
			best = e.k
		}
	}
	return best
}

// Errorf builds an *Error for the key path, with the line where it (or its
// nearest ancestor) is written. Components use it to report invalid values
// they find when they are built from the config (a regexp that RE2 cannot
// compile, say).
func (c *Config) Errorf(path, format string, args ...any) *Error {
	return &Error{File: c.File, Line: c.pos.line(path), Key: path, Msg: fmt.Sprintf(format, args...)}
}

// decodeUnion reads the `type` key of a mapping and strictly decodes the
// mapping into the struct newFn returns for that type.
func decodeUnion(n ast.Node, what string, types map[string]func() any) (string, any, error) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return "", nil, nodeError(n, fmt.Errorf("%s must be a mapping with a type key", what))
	}
	typ := ""
	var typNode ast.Node = n
	for _, v := range m.Values {
		if v.Key.String() == "type" {
			typ, typNode = scalarText(v.Value), v.Key
		}
	}
	names := sortedKeys(types)
	if typ == "" {
		return "", nil, nodeError(n, fmt.Errorf("%s needs a type (one of %s)", what, strings.Join(names, ", ")))
	}
	newFn, ok := types[typ]
	if !ok {
		return "", nil, dropError(typNode, n, fmt.Errorf("unknown %s type %q (supported: %s)", what, typ, strings.Join(names, ", ")))
	}
	v := newFn()
	if err := yaml.NodeToValue(n, v, yaml.Strict()); err != nil {
		return "", nil, err
	}
	return typ, v, nil
}

// UnmarshalYAML decodes a step by its type (the table stepKinds).
func (s *Step) UnmarshalYAML(n ast.Node) error {
	types := make(map[string]func() any, len(stepKinds))
	for name, k := range stepKinds {
		types[name] = func() any { return k.new() }
	}
	typ, v, err := decodeUnion(n, "pipeline step", types)
	if err != nil {
		return err
	}
	*s = Step{}
	b := v.(stepBody)
	stepKinds[typ].set(s, b)
	s.StepCommon = *b.common()
	s.Type = typ
	s.syncCommon()
	return nil
}

// Body returns the typed step struct.
func (s *Step) Body() any {
	if b := s.body(); b != nil {
		return b
	}
	return &s.StepCommon
}

// MarshalYAML writes the step flat, as it is read.
func (s Step) MarshalYAML() (any, error) { s.syncCommon(); return s.Body(), nil }

// syncCommon copies StepCommon into the typed struct (defaults set on s).
func (s *Step) syncCommon() {
	if b := s.body(); b != nil {
		*b.common() = s.StepCommon
	}
}

// UnmarshalYAML decodes an output by its type (the table outputKinds).
func (o *Output) UnmarshalYAML(n ast.Node) error {
	types := make(map[string]func() any, len(outputKinds))
	for name, k := range outputKinds {
		types[name] = func() any { return k.new() }
	}
	typ, v, err := decodeUnion(n, "output", types)
	if err != nil {
		return err
	}
	*o = Output{}
	b := v.(outputBody)
	outputKinds[typ].set(o, b)
	o.OutputCommon = *b.common()
	o.Type = typ
	o.syncCommon()
	return nil
}

// Body returns the typed output struct.
func (o *Output) Body() any {
	if b := o.body(); b != nil {
		return b
	}
	return &o.OutputCommon
}

// MarshalYAML writes the output flat, as it is read.
func (o Output) MarshalYAML() (any, error) { o.syncCommon(); return o.Body(), nil }

func (o *Output) syncCommon() {
	if b := o.body(); b != nil {
		*b.common() = o.OutputCommon
	}
}

// BufferConfig returns the output's buffer section, or nil for unbuffered
// outputs (stdout, null, copy).
func (o *Output) BufferConfig() *Buffer {
	if b := o.body(); b != nil {
		return b.buffer()
	}
	return nil
}

// ChunkPath returns the template the output's buffer keeps chunks apart
// by (resolved per tag): the path of file and s3, the destination of
// treasure_data and cloudwatch_logs; "" for others.
func (o *Output) ChunkPath() string {
	if b := o.body(); b != nil {
		return b.chunkPath()
	}
	return ""
}

// Encoding returns the object encoding of a file or s3 output, else nil.
func (o *Output) Encoding() *Encoding {
	if b := o.body(); b != nil {
		return b.encoding()
	}
	return nil
}

// Marshal renders c as YAML (for `maruta convert`).
func Marshal(c *Config) ([]byte, error) {
	return yaml.MarshalWithOptions(c, yaml.IndentSequence(true))
}
