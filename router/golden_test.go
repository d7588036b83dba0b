package router

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite the expected sections of testdata/*.golden")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Golden files (testdata/*.golden) hold sections "-- name --":
//
//	config.yaml  the maruta config (sources are added when missing)
//	env          KEY=VALUE lines for ${VAR}
//	fail         output names whose consumer returns an error
//	input        events "tag RFC3339-time JSON", and directives:
//	             @batch (start a new batch), @advance DURATION (move the
//	             clock), @tick (run the partial-line timeout), @drain
//	output       expected: "output tag time record" per delivered event,
//	             "! error" per Consume/Drain error
//	error        expected error from New (instead of input/output)
//	metrics      expected non-zero maruta_router_* series
//	log          expected warnings the router logged (compared only when
//	             the section exists; -update writes it when there are any)
//
// In input JSON, \xHH is a raw byte and {{repeat "c" N}} repeats a
// character; records print with the same notations.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".golden"), func(t *testing.T) { runGolden(t, f) })
	}
}

type section struct {
	name string
	body string
}

func readSections(t *testing.T, file string) []section {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var secs []section
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.HasPrefix(line, "-- ") && strings.HasSuffix(strings.TrimRight(line, "\n"), " --") {
			name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimRight(line, "\n"), "-- "), " --")
			secs = append(secs, section{name: name})
			continue
		}
		if len(secs) == 0 {
			continue // comment before the first section
		}
		secs[len(secs)-1].body += line
	}
	return secs
}

func writeSections(t *testing.T, file string, secs []section) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	head := ""
	if i := strings.Index(string(data), "\n-- "); i >= 0 && !strings.HasPrefix(string(data), "-- ") {
		head = string(data[:i+1])
	}
	var b strings.Builder
	b.WriteString(head)
	for _, s := range secs {
		fmt.Fprintf(&b, "-- %s --\n%s", s.name, s.body)
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func get(secs []section, name string) (string, bool) {
	for _, s := range secs {
		if s.name == name {
			return s.body, true
		}
	}
	return "", false
}

// recorder is an output that records what it receives.
type recorder struct {
	name string
	mu   *sync.Mutex
	out  *strings.Builder
	fail bool
}

func (c *recorder) Consume(_ context.Context, b *event.Batch) error {
	if c.fail {
		return errors.New("output " + c.name + " is failing")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range b.Events {
		fmt.Fprintf(c.out, "%s %s %s %s\n", c.name, b.Tag, ev.Time.Std().Format(time.RFC3339Nano), formatRecord(ev.Record))
	}
	return nil
}

var rawByte = regexp.MustCompile(`\\x([0-9a-fA-F]{2})`)
var repeatMacro = regexp.MustCompile(`\{\{repeat "(.)" ([0-9]+)\}\}`)

func inputRecord(t *testing.T, s string) []byte {
	t.Helper()
	s = repeatMacro.ReplaceAllStringFunc(s, func(m string) string {
		sm := repeatMacro.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sm[2])
		return strings.Repeat(sm[1], n)
	})
	s = rawByte.ReplaceAllStringFunc(s, func(m string) string {
		v, _ := strconv.ParseUint(m[2:], 16, 8)
		return string([]byte{byte(v)})
	})
	rec, err := msgpack.AppendFromJSON(nil, []byte(s), 100)
	if err != nil {
		t.Fatalf("input record %q: %v", s, err)
	}
	return rec
}

// formatRecord prints a msgpack value exactly: strings Go-quoted (invalid
// bytes as \x..), bin as b"…", floats always with a '.' or exponent, long
// runs of one character as {{repeat "c" N}}.
func formatRecord(v []byte) string {
	var b strings.Builder
	formatValue(&b, v)
	return b.String()
}

func formatValue(b *strings.Builder, v []byte) []byte {
	switch msgpack.Peek(v) {
	case msgpack.Nil:
		b.WriteString("null")
		return v[1:]
	case msgpack.Bool:
		x, rest, _ := msgpack.ReadBool(v)
		fmt.Fprint(b, x)
		return rest
	case msgpack.Int:
		if msgpack.IsUint64(v) {
			u, rest, _ := msgpack.ReadUint64(v)
			fmt.Fprint(b, u)
			return rest
		}
		i, rest, _ := msgpack.ReadInt(v)
		fmt.Fprint(b, i)
		return rest
	case msgpack.Float:
		f, rest, _ := msgpack.ReadFloat(v)
		s := strconv.FormatFloat(f, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eIN") {
			s += ".0"
		}
		b.WriteString(s)
		return rest
	case msgpack.Str, msgpack.Bin:
		x, isBin, rest, _ := msgpack.ReadBytes(v)
		if isBin {
			b.WriteByte('b')
		}
		b.WriteString(quoteRuns(x))
		return rest
	case msgpack.Array:
		n, rest, _ := msgpack.ReadArrayHeader(v)
		b.WriteByte('[')
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			rest = formatValue(b, rest)
		}
		b.WriteByte(']')
		return rest
	case msgpack.Map:
		n, rest, _ := msgpack.ReadMapHeader(v)
		b.WriteByte('{')
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			rest = formatValue(b, rest)
			b.WriteByte(':')
			rest = formatValue(b, rest)
		}
		b.WriteByte('}')
		return rest
	case msgpack.Ext:
		typ, data, rest, _ := msgpack.ReadExt(v)
		fmt.Fprintf(b, "ext(%d,%x)", typ, data)
		return rest
	}
	b.WriteString("?")
	return nil
}

func quoteRuns(x []byte) string {
	var out strings.Builder
	out.WriteByte('"')
	for i := 0; i < len(x); {
		j := i
		for j < len(x) && x[j] == x[i] {
			j++
		}
		if j-i >= 16 && x[i] >= 0x20 && x[i] < 0x7f && x[i] != '"' && x[i] != '\\' {
			fmt.Fprintf(&out, `{{repeat "%c" %d}}`, x[i], j-i)
			i = j
			continue
		}
		q := strconv.Quote(string(x[i : i+1]))
		if x[i] >= 0x80 { // keep valid UTF-8 sequences whole
			end := i + 1
			for end < len(x) && x[end]&0xc0 == 0x80 && end-i < 4 {
				end++
			}
			q = strconv.Quote(string(x[i:end]))
			if strings.Contains(q, `\x`) {
				q = strconv.Quote(string(x[i : i+1]))
				end = i + 1
			}
			out.WriteString(q[1 : len(q)-1])
			i = end
			continue
		}
		out.WriteString(q[1 : len(q)-1])
		i++
	}
	out.WriteByte('"')
	return out.String()
}

func runGolden(t *testing.T, file string) {
	secs := readSections(t, file)
	cfgText, ok := get(secs, "config.yaml")
	if !ok {
		t.Fatal("no config.yaml section")
	}
	if !strings.Contains(cfgText, "sources:") {
		cfgText = "sources:\n  - type: forward\n" + cfgText
	}
	env := map[string]string{}
	if e, ok := get(secs, "env"); ok {
		for _, line := range strings.Split(strings.TrimSpace(e), "\n") {
			k, v, _ := strings.Cut(line, "=")
			env[k] = v
		}
	}
	var got strings.Builder
	var gotErr string
	var gotMetrics string
	var gotLog bytes.Buffer
	cfg, err := config.Parse("config.yaml", []byte(cfgText), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		gotErr = err.Error() + "\n"
	} else {
		failing := map[string]bool{}
		if f, ok := get(secs, "fail"); ok {
			for _, n := range strings.Fields(f) {
				failing[n] = true
			}
		}
		var mu sync.Mutex
		outs := map[string]event.Consumer{}
		for _, o := range cfg.LeafOutputs() {
			outs[o.Name] = &recorder{name: o.Name, mu: &mu, out: &got, fail: failing[o.Name]}
		}
		reg := prometheus.NewRegistry()
		logger := slog.New(slog.NewTextHandler(&gotLog, &slog.HandlerOptions{Level: slog.LevelWarn,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey && len(groups) == 0 {
					return slog.Attr{}
				}
				return a
			}}))
		r, err := New(Options{Config: cfg, Outputs: outs, Hostname: "testhost", Registerer: reg, Logger: logger})
		if err != nil {
			gotErr = err.Error() + "\n"
		} else {
			clock := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
			for _, c := range r.concats {
				c.now = func() time.Time { return clock }
			}
			in, _ := get(secs, "input")
			playInput(t, r, in, &clock, &got, &mu)
			gotMetrics = gatherMetrics(t, reg)
		}
	}
	want := map[string]string{}
	for _, s := range secs {
		want[s.name] = s.body
	}
	if *update {
		var out []section
		for _, s := range secs {
			if s.name != "output" && s.name != "error" && s.name != "metrics" && s.name != "log" {
				out = append(out, s)
			}
		}
		if gotErr != "" {
			out = append(out, section{"error", gotErr})
		} else {
			out = append(out, section{"output", got.String()}, section{"metrics", gotMetrics})
			if gotLog.Len() > 0 {
				out = append(out, section{"log", gotLog.String()})
			}
		}
		writeSections(t, file, out)
		return
	}
	if gotErr != "" || want["error"] != "" {
		if gotErr != want["error"] {
			t.Fatalf("error:\n got: %s\nwant: %s", gotErr, want["error"])
		}
		return
	}
	if got.String() != want["output"] {
		t.Errorf("output differs:\n%s", diffLines(want["output"], got.String()))
	}
	if w, ok := want["metrics"]; ok && gotMetrics != w {
		t.Errorf("metrics differ:\n%s", diffLines(w, gotMetrics))
	}
	if w, ok := want["log"]; ok && gotLog.String() != w {
		t.Errorf("log differs:\n%s", diffLines(w, gotLog.String()))
	}
}

func playInput(t *testing.T, r *Router, in string, clock *time.Time, got *strings.Builder, mu *sync.Mutex) {
	ctx := context.Background()
	var batch *event.Batch
	flush := func() {
		if batch == nil {
			return
		}
		if err := r.Consume(ctx, batch); err != nil {
			mu.Lock()
			fmt.Fprintf(got, "! consume %s: %v\n", batch.Tag, err)
			mu.Unlock()
		}
		batch = nil
	}
	for _, line := range strings.Split(in, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "@") {
			flush()
			f := strings.Fields(line)
			switch f[0] {
			case "@batch":
			case "@advance":
				d, err := time.ParseDuration(f[1])
				if err != nil {
					t.Fatal(err)
				}
				*clock = clock.Add(d)
			case "@tick":
				if err := r.flushPartials(ctx, *clock, false); err != nil {
					mu.Lock()
					fmt.Fprintf(got, "! tick: %v\n", err)
					mu.Unlock()
				}
			case "@drain":
				if err := r.Drain(ctx); err != nil {
					mu.Lock()
					fmt.Fprintf(got, "! drain: %v\n", err)
					mu.Unlock()
				}
			default:
				t.Fatalf("unknown directive %q", line)
			}
			continue
		}
		tag, rest, _ := strings.Cut(line, " ")
		ts, js, _ := strings.Cut(rest, " ")
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("input time %q: %v", ts, err)
		}
		if batch != nil && batch.Tag != tag {
			flush()
		}
		if batch == nil {
			batch = &event.Batch{Tag: tag}
		}
		batch.Events = append(batch.Events, event.Event{Time: event.Time(tm.UnixNano()), Record: inputRecord(t, js)})
	}
	flush()
}

func gatherMetrics(t *testing.T, reg *prometheus.Registry) string {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var v float64
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			}
			if v == 0 {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %s", mf.GetName(), strings.Join(labels, ","), strconv.FormatFloat(v, 'f', -1, 64)))
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func diffLines(want, got string) string {
	w := strings.Split(want, "\n")
	g := strings.Split(got, "\n")
	var b bytes.Buffer
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  want %s\n   got %s\n", i+1, a, c)
		}
	}
	return b.String()
}

var _ = math.Inf
