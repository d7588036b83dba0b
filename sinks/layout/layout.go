package layout

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/sinks/schema"
)

// Layout is what an output's path template means to a query engine: a
// constant prefix (the table location) followed by partition columns.
type Layout struct {
	// Prefix is the constant leading folders of the path, ending with '/'
	// (or empty).
	Prefix string
	// Partitions are the partition columns, in path order.
	Partitions []Partition
	// Template is the path after Prefix with ${name} for each partition
	// column: Athena's storage.location.template, relative to the location.
	Template string
	// Hive is true when Template is exactly name=${name}/… for every
	// partition in order, so Athena's default Hive layout applies.
	Hive bool
}

// Partition is one partition column and its Athena partition projection.
type Partition struct {
	Name string
	// Type is the Athena column type: string or int.
	Type string
	// Projection holds the projection.<name>.* properties, in order, as
	// [suffix, value] pairs (suffix without the "projection.<name>." part).
	Projection [][2]string
	// Source is what the column comes from: a strftime format, or a
	// placeholder such as ${tag}.
	Source string
}

// DateProjectionRange is the range of date partition projections: relative
// to the query time, five years back.
const DateProjectionRange = "NOW-5YEARS,NOW"

// Parse derives the table layout of a path template. athena (may be nil)
// names placeholder partitions and lists enum values. It fails for paths a
// projection cannot describe, such as a folder mixing a placeholder with a
// strftime directive.
func Parse(path string, athena *config.Athena) (Layout, error) {
	var l Layout
	segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	i := 0
	for i < len(segs) && !dynamic(parseTemplate(segs[i])) {
		i++
	}
	if i > 0 {
		l.Prefix = strings.Join(segs[:i], "/") + "/"
	}
	l.Hive = true
	var tmpl []string
	names := map[string]bool{}
	addPart := func(p Partition) error {
		if names[p.Name] {
			return fmt.Errorf("path %q: two partition columns are named %q (name them under athena.partitions)", path, p.Name)
		}
		names[p.Name] = true
		l.Partitions = append(l.Partitions, p)
		return nil
	}
	for i < len(segs) {
		seg := segs[i]
		toks := parseTemplate(seg)
		switch {
		case !dynamic(toks):
			tmpl = append(tmpl, seg)
			l.Hive = false
			i++
		case hiveKey(toks) != "":
			key := hiveKey(toks)
			name, ok := schema.ColumnName(key)
			if !ok {
				return l, fmt.Errorf("path %q: %q is not a usable partition name", path, key)
			}
			val := toks.afterEquals()
			var p Partition
			var err error
			switch {
			case val.onlyTime():
				p, err = timePartition(name, val)
			case len(val) == 1 && val[0].kind != tokTime && val[0].kind != tokLit:
				p, err = placeholderPartition(val[0], athena)
				p.Name = name
			default:
				err = fmt.Errorf("folder %q mixes placeholders, strftime and text", seg)
			}
			if err != nil {
				return l, fmt.Errorf("path %q: %w", path, err)
			}
			if name != key {
				l.Hive = false
			}
			if err := addPart(p); err != nil {
				return l, err
			}
			tmpl = append(tmpl, key+"=${"+name+"}")
			i++
		case toks.onlyTime():
			// A run of time-only folders (%Y/%m/%d/%H) is one date column.
			var run template
			j := i
			for j < len(segs) {
				tj := parseTemplate(segs[j])
				if !dynamic(tj) || !tj.onlyTime() {
					break
				}
				if j > i {
					run = append(run, token{kind: tokLit, text: "/"})
				}
				run = append(run, tj...)
				j++
			}
			name := "dt"
			for k := 2; names[name]; k++ {
				name = "dt" + strconv.Itoa(k)
			}
			p, err := timePartition(name, run)
			if err != nil {
				return l, fmt.Errorf("path %q: %w", path, err)
			}
			p.Type = schema.TypeString
			if err := addPart(p); err != nil {
				return l, err
			}
			tmpl = append(tmpl, "${"+name+"}")
			l.Hive = false
			i = j
		default:
			// Literal text around exactly one placeholder.
			var ph *token
			var out strings.Builder
			for k := range toks {
				tk := &toks[k]
				switch tk.kind {
				case tokLit:
					out.WriteString(tk.text)
				case tokTime:
					return l, fmt.Errorf("path %q: folder %q mixes a placeholder with strftime; put them in separate folders", path, seg)
				default:
					if ph != nil {
						return l, fmt.Errorf("path %q: folder %q has two placeholders; put them in separate folders", path, seg)
					}
					ph = tk
					out.WriteString("\x00")
				}
			}
			p, err := placeholderPartition(*ph, athena)
			if err != nil {
				return l, fmt.Errorf("path %q: %w", path, err)
			}
			if err := addPart(p); err != nil {
				return l, err
			}
			tmpl = append(tmpl, strings.Replace(out.String(), "\x00", "${"+p.Name+"}", 1))
			l.Hive = false
			i++
		}
	}
	if len(tmpl) > 0 {
		l.Template = strings.Join(tmpl, "/") + "/"
	}
	if len(l.Partitions) == 0 {
		l.Hive = true
	}
	return l, nil
}

// dynamic reports whether a folder has anything but literal text.
func dynamic(t template) bool {
	for _, tk := range t {
		if tk.kind != tokLit {
			return true
		}
	}
	return false
}

// onlyTime reports whether t has strftime directives and literal text only.
func (t template) onlyTime() bool {
	has := false
	for _, tk := range t {
		switch tk.kind {
		case tokTime:
			has = true
		case tokLit:
		default:
			return false
		}
	}
	return has
}

// hiveKey returns k for a folder "k=<dynamic>" whose k is literal text.
func hiveKey(t template) string {
	if len(t) < 2 || t[0].kind != tokLit {
		return ""
	}
	k, rest, ok := strings.Cut(t[0].text, "=")
	if !ok || k == "" || rest != "" {
		return ""
	}
	return k
}

// afterEquals returns the tokens after the "k=" of a Hive folder.
func (t template) afterEquals() template {
	return t[1:]
}

// javaDate maps strftime directives to Java DateTimeFormatter patterns and
// the projection interval unit they imply.
var javaDate = map[byte]struct {
	pattern, unit string
	rank          int
}{
	'Y': {"yyyy", "YEARS", 6}, 'y': {"yy", "YEARS", 6}, 'm': {"MM", "MONTHS", 5}, 'b': {"MMM", "MONTHS", 5},
	'd': {"dd", "DAYS", 4}, 'j': {"DDD", "DAYS", 4}, 'F': {"yyyy-MM-dd", "DAYS", 4},
	'H': {"HH", "HOURS", 3}, 'M': {"mm", "MINUTES", 2}, 'S': {"ss", "SECONDS", 1},
	'T': {"HH:mm:ss", "SECONDS", 1}, 'R': {"HH:mm", "MINUTES", 2},
}

// timePartition makes the partition of a time-only value: an integer
// projection for a lone %H, %M, %S, %d or %m, a date projection otherwise.
func timePartition(name string, t template) (Partition, error) {
	if len(t) == 1 {
		var lo, hi int
		switch t[0].dir {
		case 'H':
			lo, hi = 0, 23
		case 'M', 'S':
			lo, hi = 0, 59
		case 'd':
			lo, hi = 1, 31
		case 'm':
			lo, hi = 1, 12
		}
		if hi > 0 {
			return Partition{Name: name, Type: schema.TypeInt, Source: t[0].text, Projection: [][2]string{
				{"type", "integer"}, {"range", fmt.Sprintf("%d,%d", lo, hi)}, {"digits", "2"},
			}}, nil
		}
	}
	var format, src strings.Builder
	unit, rank := "", 99
	for _, tk := range t {
		if tk.kind == tokLit {
			src.WriteString(tk.text)
			format.WriteString(javaLiteral(tk.text))
			continue
		}
		src.WriteString(tk.text)
		j, ok := javaDate[tk.dir]
		if !ok {
			return Partition{}, fmt.Errorf("strftime %s cannot be projected by Athena (use %%Y %%m %%d %%H %%M %%S)", tk.text)
		}
		format.WriteString(j.pattern)
		if j.rank < rank {
			unit, rank = j.unit, j.rank
		}
	}
	return Partition{Name: name, Type: schema.TypeString, Source: src.String(), Projection: [][2]string{
		{"type", "date"}, {"format", format.String()}, {"range", DateProjectionRange},
		{"interval", "1"}, {"interval.unit", unit},
	}}, nil
}

// javaLiteral quotes the letters of literal text for a Java date pattern.
func javaLiteral(s string) string {
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		special := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("[]{}#'", c) >= 0
		if special != quoted {
			b.WriteByte('\'')
			quoted = special
		}
		if c == '\'' {
			b.WriteByte('\'')
		}
		b.WriteByte(c)
	}
	if quoted {
		b.WriteByte('\'')
	}
	return b.String()
}

// placeholderPartition makes the partition of ${tag}, ${tag_parts[N]} or a
// chunk key: enum when athena lists values, injected otherwise.
func placeholderPartition(tk token, athena *config.Athena) (Partition, error) {
	var name string
	switch tk.kind {
	case tokTag:
		name = "tag"
	case tokTagPart:
		if tk.index < 0 {
			name = "tag_part_neg" + strconv.Itoa(-tk.index)
		} else {
			name = "tag_part_" + strconv.Itoa(tk.index)
		}
	case tokName:
		switch tk.name {
		case "node", "hostname", "chunk_id", "ext", "path":
			return Partition{}, fmt.Errorf("${%s} cannot be a folder of the path: use it in object_key", tk.name)
		}
		n, ok := schema.ColumnName(tk.name)
		if !ok {
			return Partition{}, fmt.Errorf("%s is not a usable partition name", tk.text)
		}
		name = n
	}
	p := Partition{Name: name, Type: schema.TypeString, Source: tk.text}
	var values []string
	if athena != nil {
		for _, ap := range athena.Partitions {
			if ap.Placeholder == tk.name || "${"+ap.Placeholder+"}" == tk.text {
				if ap.Name != "" {
					p.Name = ap.Name
				}
				values = ap.Values
			}
		}
	}
	if len(values) > 0 {
		clean := make([]string, len(values))
		for i, v := range values {
			clean[i] = SanitizeValue(v)
		}
		p.Projection = [][2]string{{"type", "enum"}, {"values", strings.Join(clean, ",")}}
	} else {
		p.Projection = [][2]string{{"type", "injected"}}
	}
	return p, nil
}
