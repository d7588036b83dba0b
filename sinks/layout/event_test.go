package layout

import (
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

func TestEventTemplate(t *testing.T) {
	rec := msgpack.AppendMapHeader(nil, 4)
	rec = msgpack.AppendString(msgpack.AppendString(rec, "container_name"), "/web-1")
	rec = msgpack.AppendInt(msgpack.AppendString(rec, "n"), 42)
	rec = msgpack.AppendString(msgpack.AppendString(rec, "empty"), "")
	rec = msgpack.AppendFloat64(msgpack.AppendString(rec, "f"), 1)
	ts := event.FromUnix(time.Date(2026, 11, 22, 13, 4, 5, 0, time.UTC).Unix(), 0)
	for _, c := range []struct {
		tmpl, tag, want, missing string
		record, timed            bool
	}{
		{"static", "a.b", "static", "", false, false},
		{"event_${tag_parts[2]}", "shop.event.purchase", "event_purchase", "", false, false},
		{"${tag_parts[-1]}/${tag}", "shop.event.login", "login/shop.event.login", "", false, false},
		{"${tag_parts[5]}x", "a.b", "x", "${tag_parts[5]}", false, false},
		{"${container_name}-${n}-${f}", "a", "/web-1-42-1.0", "", true, false},
		{"${missing}|${empty}", "a", "|", "${missing}", true, false},
		{"${missing:-none}|${empty:-e}|${n:-0}", "a", "none|e|42", "", true, false},
		{"day-%Y-%m-%d", "a", "day-2026-11-22", "", false, true},
	} {
		et := ParseEventTemplate(c.tmpl)
		got, missing := et.Render(nil, c.tag, ts, rec)
		if string(got) != c.want || missing != c.missing {
			t.Errorf("%s with tag %s: got %q missing %q, want %q missing %q", c.tmpl, c.tag, got, missing, c.want, c.missing)
		}
		if et.UsesRecord() != c.record || et.UsesTime() != c.timed {
			t.Errorf("%s: UsesRecord %v UsesTime %v", c.tmpl, et.UsesRecord(), et.UsesTime())
		}
		if s, ok := et.Static(); ok != (c.tmpl == "static") || ok && s != "static" {
			t.Errorf("%s: Static() = %q, %v", c.tmpl, s, ok)
		}
	}
	// A record that is not a map has no keys.
	if _, missing := ParseEventTemplate("${k}").Render(nil, "a", ts, msgpack.AppendString(nil, "x")); missing != "${k}" {
		t.Errorf("non-map record: missing %q", missing)
	}
}
