package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
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

// Error is a configuration error at a place in a file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted path such as outputs[1].buffer.timekey; may be empty
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of configuration errors; Validate reports all it finds.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Parse decodes a YAML config named file (for messages), expands
// environment variables with lookup, sets defaults and validates.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	expanded, err := ExpandEnv(data, lookup)
	if err != nil {
		var ee *Error
		if errors.As(err, &ee) {
			ee.File = file
		}
		return nil, err
	}
	f, err := parser.ParseBytes(expanded, 0)
	if err != nil {
		return nil, yamlError(file, nil, err)
	}
	pos := positions{}
	for _, d := range f.Docs {
		pos.index("", d.Body)
	}
	c := &Config{File: file, pos: pos}
	if len(f.Docs) > 0 && f.Docs[0].Body != nil {
		if err := yaml.NodeToValue(f.Docs[0].Body, c, yaml.Strict()); err != nil {
			return nil, yamlError(file, pos, err)
		}
	}
	c.File, c.pos = file, pos
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
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
		return &Error{File: file, Line: p.Line, Key: pos.keyAt(p.Line, p.Column), Msg: msg}
	}
	return &Error{File: file, Msg: err.Error()}
}

var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Z_][A-Z0-9_]*)(:-([^}]*))?\}`)

// ExpandEnv replaces ${VAR} and ${VAR:-default} (upper-case names) using
// lookup; $${ becomes a literal ${. A comment's text is left alone. An unset
// variable without a default is an error naming the line.
func ExpandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	lines := strings.SplitAfter(string(data), "\n")
	var out strings.Builder
	out.Grow(len(data))
	for i, line := range lines {
		body, comment := splitComment(line)
		var missing string
		body = envRef.ReplaceAllStringFunc(body, func(m string) string {
			if m == "$${" {
				return "${"
			}
			sm := envRef.FindStringSubmatch(m)
			v, ok := lookup(sm[1])
			if sm[2] != "" {
				if !ok || v == "" {
					return sm[3]
				}
				return v
			}
			if !ok && missing == "" {
				missing = sm[1]
			}
			return v
		})
		if missing != "" {
			return nil, &Error{Line: i + 1, Msg: fmt.Sprintf("environment variable %s is not set (write ${%s:-default} for a default)", missing, missing)}
		}
		out.WriteString(body)
		out.WriteString(comment)
	}
	return []byte(out.String()), nil
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
	key := mv.Key.String()
	if s, ok := mv.Key.(*ast.StringNode); ok {
		key = s.Value
	}
	sub := key
	if path != "" {
		sub = path + "." + key
	}
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
		if e.p.line < line || e.p.line == line && e.p.col <= col {
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
	names := make([]string, 0, len(types))
	for k := range types {
		names = append(names, k)
	}
	sort.Strings(names)
	if typ == "" {
		return "", nil, nodeError(n, fmt.Errorf("%s needs a type (one of %s)", what, strings.Join(names, ", ")))
	}
	newFn, ok := types[typ]
	if !ok {
		return "", nil, nodeError(typNode, fmt.Errorf("unknown %s type %q (supported: %s)", what, typ, strings.Join(names, ", ")))
	}
	v := newFn()
	if err := yaml.NodeToValue(n, v, yaml.Strict()); err != nil {
		return "", nil, err
	}
	return typ, v, nil
}

// UnmarshalYAML decodes a step by its type.
func (s *Step) UnmarshalYAML(n ast.Node) error {
	typ, v, err := decodeUnion(n, "pipeline step", map[string]func() any{
		"parse":           func() any { return new(ParseStep) },
		"rewrite_tag":     func() any { return new(RewriteTagStep) },
		"concat_partials": func() any { return new(ConcatPartialsStep) },
		"record":          func() any { return new(RecordStep) },
		"grep":            func() any { return new(GrepStep) },
	})
	if err != nil {
		return err
	}
	*s = Step{}
	switch x := v.(type) {
	case *ParseStep:
		s.Parse, s.StepCommon = x, x.StepCommon
	case *RewriteTagStep:
		s.RewriteTag, s.StepCommon = x, x.StepCommon
	case *ConcatPartialsStep:
		s.ConcatPartials, s.StepCommon = x, x.StepCommon
	case *RecordStep:
		s.Record, s.StepCommon = x, x.StepCommon
	case *GrepStep:
		s.Grep, s.StepCommon = x, x.StepCommon
	}
	s.Type = typ
	s.syncCommon()
	return nil
}

// Body returns the typed step struct.
func (s *Step) Body() any {
	switch {
	case s.Parse != nil:
		return s.Parse
	case s.RewriteTag != nil:
		return s.RewriteTag
	case s.ConcatPartials != nil:
		return s.ConcatPartials
	case s.Record != nil:
		return s.Record
	case s.Grep != nil:
		return s.Grep
	}
	return &s.StepCommon
}

// MarshalYAML writes the step flat, as it is read.
func (s Step) MarshalYAML() (any, error) { s.syncCommon(); return s.Body(), nil }

// syncCommon copies StepCommon into the typed struct (defaults set on s).
func (s *Step) syncCommon() {
	switch {
	case s.Parse != nil:
		s.Parse.StepCommon = s.StepCommon
	case s.RewriteTag != nil:
		s.RewriteTag.StepCommon = s.StepCommon
	case s.ConcatPartials != nil:
		s.ConcatPartials.StepCommon = s.StepCommon
	case s.Record != nil:
		s.Record.StepCommon = s.StepCommon
	case s.Grep != nil:
		s.Grep.StepCommon = s.StepCommon
	}
}

// UnmarshalYAML decodes an output by its type.
func (o *Output) UnmarshalYAML(n ast.Node) error {
	typ, v, err := decodeUnion(n, "output", map[string]func() any{
		"stdout":  func() any { return new(StdoutOutput) },
		"null":    func() any { return new(NullOutput) },
		"file":    func() any { return new(FileOutput) },
		"s3":      func() any { return new(S3Output) },
		"forward": func() any { return new(ForwardOutput) },
		"copy":    func() any { return new(CopyOutput) },

		"cloudwatch_logs": func() any { return new(CloudWatchLogsOutput) },
		"syslog":          func() any { return new(SyslogOutput) },
		"treasure_data":   func() any { return new(TreasureDataOutput) },
	})
	if err != nil {
		return err
	}
	*o = Output{}
	switch x := v.(type) {
	case *StdoutOutput:
		o.Stdout, o.OutputCommon = x, x.OutputCommon
	case *NullOutput:
		o.Null, o.OutputCommon = x, x.OutputCommon
	case *FileOutput:
		o.File, o.OutputCommon = x, x.OutputCommon
	case *S3Output:
		o.S3, o.OutputCommon = x, x.OutputCommon
	case *ForwardOutput:
		o.Forward, o.OutputCommon = x, x.OutputCommon
	case *CopyOutput:
		o.Copy, o.OutputCommon = x, x.OutputCommon
	case *CloudWatchLogsOutput:
		o.CloudWatchLogs, o.OutputCommon = x, x.OutputCommon
	case *SyslogOutput:
		o.Syslog, o.OutputCommon = x, x.OutputCommon
	case *TreasureDataOutput:
		o.TreasureData, o.OutputCommon = x, x.OutputCommon
	}
	o.Type = typ
	o.syncCommon()
	return nil
}

// Body returns the typed output struct.
func (o *Output) Body() any {
	switch {
	case o.Stdout != nil:
		return o.Stdout
	case o.Null != nil:
		return o.Null
	case o.File != nil:
		return o.File
	case o.S3 != nil:
		return o.S3
	case o.Forward != nil:
		return o.Forward
	case o.Copy != nil:
		return o.Copy
	case o.CloudWatchLogs != nil:
		return o.CloudWatchLogs
	case o.Syslog != nil:
		return o.Syslog
	case o.TreasureData != nil:
		return o.TreasureData
	}
	return &o.OutputCommon
}

// MarshalYAML writes the output flat, as it is read.
func (o Output) MarshalYAML() (any, error) { o.syncCommon(); return o.Body(), nil }

func (o *Output) syncCommon() {
	switch {
	case o.Stdout != nil:
		o.Stdout.OutputCommon = o.OutputCommon
	case o.Null != nil:
		o.Null.OutputCommon = o.OutputCommon
	case o.File != nil:
		o.File.OutputCommon = o.OutputCommon
	case o.S3 != nil:
		o.S3.OutputCommon = o.OutputCommon
	case o.Forward != nil:
		o.Forward.OutputCommon = o.OutputCommon
	case o.Copy != nil:
		o.Copy.OutputCommon = o.OutputCommon
	case o.CloudWatchLogs != nil:
		o.CloudWatchLogs.OutputCommon = o.OutputCommon
	case o.Syslog != nil:
		o.Syslog.OutputCommon = o.OutputCommon
	case o.TreasureData != nil:
		o.TreasureData.OutputCommon = o.OutputCommon
	}
}

// BufferConfig returns the output's buffer section, or nil for unbuffered
// outputs (stdout, null, copy).
func (o *Output) BufferConfig() *Buffer {
	switch {
	case o.File != nil:
		return &o.File.Buffer
	case o.S3 != nil:
		return &o.S3.Buffer
	case o.Forward != nil:
		return &o.Forward.Buffer
	case o.CloudWatchLogs != nil:
		return &o.CloudWatchLogs.Buffer
	case o.Syslog != nil:
		return &o.Syslog.Buffer
	case o.TreasureData != nil:
		return &o.TreasureData.Buffer
	}
	return nil
}

// Marshal renders c as YAML (for `maruta convert`).
func Marshal(c *Config) ([]byte, error) {
	return yaml.MarshalWithOptions(c, yaml.IndentSequence(true))
}
