package layout

import (
	"strings"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/ruby"
	"github.com/marutalog/maruta/internal/strftime"
)

// EventTemplate names something per event, for the event transports
// (a CloudWatch Logs group or stream, a Treasure Data table, a syslog
// header field):
//
//	${tag}, ${tag_parts[N]}   the event's tag or its N-th part (negative N
//	                          counts from the end)
//	${key}                    the record's value of key, as Ruby's to_s
//	                          (fluentd's placeholders)
//	${key:-default}           the same, or default when the key is missing
//	                          or its value is empty
//	%Y, %m, %d, %H, …         strftime on the event time, UTC
//
// Values are not sanitized: each transport cleans a rendered name for its
// destination. An EventTemplate is read-only once parsed: safe for
// concurrent use.
type EventTemplate struct {
	src      string
	t        template
	defaults map[int]string // token index → default of ${key:-default}
	record   bool           // uses record keys
	tagged   bool           // uses the tag
	timed    bool           // uses strftime
}

// ParseEventTemplate parses s. It never fails: text that is not a known
// construct stays literal.
func ParseEventTemplate(s string) *EventTemplate {
	et := &EventTemplate{src: s, t: parseTemplate(s)}
	for i := range et.t {
		tk := &et.t[i]
		switch tk.kind {
		case tokName:
			if name, def, ok := strings.Cut(tk.name, ":-"); ok {
				tk.name = name
				if et.defaults == nil {
					et.defaults = map[int]string{}
				}
				et.defaults[i] = def
			}
			et.record = true
		case tokTag, tokTagPart:
			et.tagged = true
		case tokTime:
			et.timed = true
		}
	}
	return et
}

// String returns the template as written.
func (et *EventTemplate) String() string { return et.src }

// UsesRecord reports whether rendering reads record keys; UsesTime whether
// it reads the event time. A template that uses neither renders the same
// for every event of a tag.
func (et *EventTemplate) UsesRecord() bool { return et.record }
func (et *EventTemplate) UsesTime() bool   { return et.timed }

// Static returns the rendering when the template has no placeholder at all.
func (et *EventTemplate) Static() (string, bool) {
	if et.record || et.tagged || et.timed {
		return "", false
	}
	out, _ := et.Render(nil, "", 0, nil)
	return string(out), true
}

// Render appends the template rendered for one event to dst. missing is
// the source of the first placeholder that had no value (a record key
// that is absent or empty without a default, a tag part beyond the tag's
// parts, a record that is not a map); the rest is still rendered, with
// nothing in its place.
func (et *EventTemplate) Render(dst []byte, tag string, t event.Time, record []byte) (out []byte, missing string) {
	for i, tk := range et.t {
		switch tk.kind {
		case tokLit:
			dst = append(dst, tk.text...)
		case tokTime:
			dst = strftime.AppendDirective(dst, tk.dir, t.Std())
		case tokTag:
			if tag == "" && missing == "" {
				missing = tk.text
			}
			dst = append(dst, tag...)
		case tokTagPart:
			p := tagPart(tag, tk.index)
			if p == "" && missing == "" {
				missing = tk.text
			}
			dst = append(dst, p...)
		case tokName:
			n := len(dst)
			if v, found, err := msgpack.MapGet(record, tk.name, 100); err == nil && found {
				dst = ruby.AppendToS(dst, v)
			}
			if len(dst) == n {
				if def, ok := et.defaults[i]; ok {
					dst = append(dst, def...)
				} else if missing == "" {
					missing = tk.text
				}
			}
		}
	}
	return dst, missing
}
