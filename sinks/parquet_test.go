package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/layout"
	"github.com/marutalog/maruta/sinks/schema"
	"github.com/marutalog/maruta/sinks/sinktest"
)

var slice13 = time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)

// lake is a file output under a temporary data_dir, with its sink.
type lake struct {
	dir  string
	cfg  *config.Config
	out  *config.Output
	sink delivery.Sink
	reg  *prometheus.Registry
	n    int
}

func newLake(t *testing.T, outputYAML string) *lake {
	t.Helper()
	l := &lake{dir: t.TempDir(), reg: prometheus.NewRegistry()}
	l.cfg, l.out = sinktest.Output(t, l.dir, outputYAML)
	s, err := New(Options{Output: l.out, Node: "node-1", DataDir: l.dir, Registerer: l.reg})
	if err != nil {
		t.Fatal(err)
	}
	l.sink = s
	return l
}

// chunk makes a chunk of the lake's output from events (tag of the first).
func (l *lake) chunk(slice time.Time, evs ...sinktest.Event) *sinktest.Chunk {
	l.n++
	path := l.out.File.Path
	return &sinktest.Chunk{
		ChunkInfo: delivery.ChunkInfo{
			ID: fmt.Sprintf("c%04d", l.n), Output: l.out.Name, Path: layout.TagResolver(path)(evs[0].Tag),
			Tag: evs[0].Tag, Slice: slice, Created: slice,
		},
		Events: evs,
	}
}

func (l *lake) write(t *testing.T, c delivery.Chunk) {
	t.Helper()
	if err := l.sink.Write(context.Background(), c); err != nil {
		t.Fatalf("write %s: %v", c.Info().ID, err)
	}
}

// glob is the DuckDB glob of every Parquet file of the lake.
func (l *lake) glob() string { return tu.SQLString(filepath.Join(l.dir, "lake", "**", "*.parquet")) }

func (l *lake) read() string {
	return "read_parquet(" + l.glob() + ", hive_partitioning=true, union_by_name=true)"
}

func ev(t testing.TB, tag string, tm time.Time, rec map[string]any) sinktest.Event {
	return sinktest.Event{Tag: tag, Time: event.Time(tm.UnixNano()), Record: sinktest.Msgpack(t, rec)}
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestParquetValuesReadByDuckDB(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, "  - type: file\n    name: lake\n")
	base := time.Date(2026, 11, 22, 13, 4, 5, 123456789, time.UTC)
	records := []map[string]any{
		{"msg": "", "n": int64(math.MaxInt64), "f": 1.5, "ok": true, "uni": "日本語 ✓ 😀 \u0000nul", "nested": map[string]any{"a": []any{1, "x"}}, "Mixed.Case-Key": "k1"},
		{"msg": "second", "n": int64(math.MinInt64), "f": -0.25, "ok": false, "uni": "e\u0301", "nested": []any{}, "Mixed.Case-Key": "k2"},
		{"msg": "bad utf8 \xff\xfe end", "n": 42, "f": int64(3), "ok": nil, "time": "app time", "dt": "x", "hour": 7},
		{"msg": 17, "n": "not a number", "f": "NaN?", "ok": "yes", "extra": nil},
		{"msg": "big", "n": uint64(math.MaxUint64), "f": 2.0},
	}
	var evs []sinktest.Event
	for i, r := range records {
		evs = append(evs, ev(t, "docker.shop", base.Add(time.Duration(i)*time.Millisecond), r))
	}
	l.write(t, l.chunk(slice13, evs...))

	r := db.Query(t, "SELECT epoch_ms(time) AS ms, msg, n::VARCHAR AS n, f, ok, uni, nested, mixed_case_key, time_, dt_, hour_, "+
		"_overflow, dt::VARCHAR AS dt, hour FROM "+l.read()+" ORDER BY time")
	rows := r.Maps()
	if len(rows) != len(records) {
		t.Fatalf("got %d rows, want %d", len(rows), len(records))
	}
	ms0 := base.UnixMilli()
	for i, row := range rows {
		if row["ms"] != fmt.Sprint(ms0+int64(i)) {
			t.Errorf("row %d: time %v, want %d ms (milliseconds kept, nanoseconds cut)", i, row["ms"], ms0+int64(i))
		}
		if row["dt"] != "2026-11-22" || fmt.Sprint(row["hour"]) != "13" {
			t.Errorf("row %d: partition dt=%v hour=%v", i, row["dt"], row["hour"])
		}
	}
	want := []struct {
		col  string
		vals []any
	}{
		{"msg", []any{"", "second", "bad utf8 \ufffd\ufffd end", "17", "big"}}, // a number in a string column: its JSON text
		{"n", []any{"9223372036854775807", "-9223372036854775808", "42", nil, nil}},
		{"f", []any{json.Number("1.5"), json.Number("-0.25"), json.Number("3"), nil, json.Number("2")}},
		{"ok", []any{true, false, nil, nil, nil}},
		{"uni", []any{"日本語 ✓ 😀 \u0000nul", "e\u0301", nil, nil, nil}},
		{"nested", []any{`{"a":[1,"x"]}`, `[]`, nil, nil, nil}},
		{"mixed_case_key", []any{"k1", "k2", nil, nil, nil}},
		{"time_", []any{nil, nil, "app time", nil, nil}},
		{"dt_", []any{nil, nil, "x", nil, nil}},
		{"hour_", []any{nil, nil, "7", nil, nil}},
	}
	for _, w := range want {
		for i, v := range w.vals {
			if got := rows[i][w.col]; fmt.Sprint(got) != fmt.Sprint(v) {
				t.Errorf("row %d column %s = %#v, want %#v", i, w.col, got, v)
			}
		}
	}
	// Values that do not fit their column's type are kept as text in the
	// overflow column; what converts without loss stays in the column.
	wantOverflow := []map[string]string{
		nil, nil, nil,
		{"n": "not a number", "f": "NaN?", "ok": "yes"},
		{"n": "18446744073709551615"},
	}
	for i, w := range wantOverflow {
		got := mapValue(rows[i]["_overflow"])
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("row %d _overflow = %v, want %v", i, got, w)
		}
	}
	if n := counter(t, l.reg, "maruta_sink_overflow_values_total", "reason", "type_conflict"); n != 4 {
		t.Errorf("type conflicts counted %v, want 4", n)
	}
	for _, m := range []struct {
		column, outcome string
		n               float64
	}{{"msg", "coerced", 1}, {"f", "coerced", 1}, {"n", "overflow", 2}, {"f", "overflow", 1}, {"ok", "overflow", 1}, {"msg", "overflow", 0}} {
		if got := counter(t, l.reg, "maruta_sink_type_mismatches_total", "column", m.column, "outcome", m.outcome); got != m.n {
			t.Errorf("maruta_sink_type_mismatches_total{column=%s,outcome=%s} = %v, want %v", m.column, m.outcome, got, m.n)
		}
	}
	if n := counter(t, l.reg, "maruta_sink_invalid_utf8_total"); n != 2 {
		t.Errorf("invalid UTF-8 counted %v, want 2", n)
	}
	if n := counter(t, l.reg, "maruta_sink_rows_total", "output", "lake"); n != 5 {
		t.Errorf("rows counted %v, want 5", n)
	}

	// The Parquet types are Athena-safe: INT64 TIMESTAMP(MILLIS, UTC) for
	// time, never INT96, strings as BYTE_ARRAY with the STRING type.
	sch := db.Query(t, "SELECT name, type, logical_type::VARCHAR AS lt, converted_type FROM parquet_schema("+l.glob()+")").Maps()
	for _, c := range sch {
		if c["type"] == "INT96" {
			t.Errorf("column %v is INT96", c["name"])
		}
		switch c["name"] {
		case "time":
			if c["type"] != "INT64" || !strings.Contains(fmt.Sprint(c["lt"]), "isAdjustedToUTC=1") || !strings.Contains(fmt.Sprint(c["lt"]), "MILLIS") {
				t.Errorf("time column: %v", c)
			}
		case "msg", "uni":
			if c["type"] != "BYTE_ARRAY" || c["converted_type"] != "UTF8" {
				t.Errorf("string column: %v", c)
			}
		case "n":
			if c["type"] != "INT64" {
				t.Errorf("bigint column: %v", c)
			}
		}
	}
}

// TestParquetTypesAcrossApps: one app writes level as text, the next as a
// number or a boolean; the column keeps them all as text (JSON text of the
// value), an integer latency fits the double column, and only what a
// column cannot hold without loss (text in a bigint column) goes to
// _overflow — counted per column either way.
func TestParquetTypesAcrossApps(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, "  - type: file\n    name: lake\n")
	at := func(s int) time.Time { return slice13.Add(time.Duration(s) * time.Second) }
	l.write(t, l.chunk(slice13, ev(t, "docker.a", at(1), map[string]any{"level": "info", "code": 200, "latency": 1.5})))
	l.write(t, l.chunk(slice13,
		ev(t, "docker.b", at(2), map[string]any{"level": 30, "code": "E1", "latency": 2}),
		ev(t, "docker.b", at(3), map[string]any{"level": true, "code": 201, "latency": 0.25}),
		ev(t, "docker.b", at(4), map[string]any{"level": 2.5, "code": 1.0, "latency": int64(1) << 60})))
	rows := db.Query(t, "SELECT level, code, latency, _overflow FROM "+l.read()+" ORDER BY time").Maps()
	want := []string{
		"info 200 1.5 map[]",
		"30 <nil> 2 map[code:E1]",
		"true 201 0.25 map[]",
		"2.5 <nil> <nil> map[code:1 latency:1152921504606846976]",
	}
	for i, r := range rows {
		got := fmt.Sprint(r["level"], " ", r["code"], " ", r["latency"], " ", mapValue(r["_overflow"]))
		if i >= len(want) || got != want[i] {
			t.Errorf("row %d: %s, want %s", i, got, want[min(i, len(want)-1)])
		}
	}
	for _, m := range []struct {
		column, outcome string
		n               float64
	}{{"level", "coerced", 3}, {"latency", "coerced", 1}, {"code", "overflow", 2}, {"latency", "overflow", 1}, {"level", "overflow", 0}} {
		if got := counter(t, l.reg, "maruta_sink_type_mismatches_total", "column", m.column, "outcome", m.outcome); got != m.n {
			t.Errorf("maruta_sink_type_mismatches_total{column=%s,outcome=%s} = %v, want %v", m.column, m.outcome, got, m.n)
		}
	}
}

// mapValue turns DuckDB's JSON of a MAP (a list of {key, value}) into a map.
func mapValue(v any) map[string]string {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, e := range list {
		kv := e.(map[string]any)
		m[fmt.Sprint(kv["key"])] = fmt.Sprint(kv["value"])
	}
	return m
}

func TestParquetSchemaEvolutionAndPartitions(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, "  - type: file\n    name: lake\n")
	h14 := slice13.Add(time.Hour)
	// Chunk 1: two columns. Chunk 2 (another tag, another hour): a third
	// column appears, and a value conflicting with an existing column.
	l.write(t, l.chunk(slice13,
		ev(t, "app.a", slice13.Add(time.Second), map[string]any{"level": "info", "code": 1}),
		ev(t, "app.a", slice13.Add(2*time.Second), map[string]any{"level": "warn", "code": 2})))
	s1, err := schema.Load(l.dir, l.out)
	if err != nil || s1.Version != 1 || len(s1.Columns) != 2 {
		t.Fatalf("schema after chunk 1: %+v, %v", s1, err)
	}
	l.write(t, l.chunk(h14,
		ev(t, "app.b", h14.Add(time.Second), map[string]any{"level": "error", "code": "E1", "user": "u1"})))
	s2, _ := schema.Load(l.dir, l.out)
	if s2.Version != 2 || len(s2.Columns) != 3 || s2.Columns[2] != (schema.Column{Name: "user", Type: schema.TypeString, Version: 2}) {
		t.Fatalf("schema after chunk 2: %+v", s2)
	}
	for _, c := range s2.Columns {
		if c.Name == "code" && c.Type != schema.TypeBigint {
			t.Errorf("code changed type: %+v", c)
		}
	}
	if got := counter(t, l.reg, "maruta_sink_schema_columns_added_total"); got != 3 {
		t.Errorf("columns added counted %v, want 3", got)
	}

	r := db.Query(t, "SELECT dt::VARCHAR AS dt, hour, level, code, \"user\", _overflow FROM "+l.read()+" ORDER BY time").Maps()
	if len(r) != 3 {
		t.Fatalf("%d rows", len(r))
	}
	if fmt.Sprint(r[2]["hour"]) != "14" || fmt.Sprint(r[0]["hour"]) != "13" || r[2]["user"] != "u1" || r[0]["user"] != nil {
		t.Errorf("rows: %v", r)
	}
	if fmt.Sprint(mapValue(r[2]["_overflow"])) != "map[code:E1]" || r[2]["code"] != nil {
		t.Errorf("conflict not kept in overflow: %v", r[2])
	}
	// One file per chunk, in tag/dt/hour folders.
	files, _ := filepath.Glob(filepath.Join(l.dir, "lake", "*", "*", "*", "*.parquet"))
	var rel []string
	for _, f := range files {
		p, _ := filepath.Rel(filepath.Join(l.dir, "lake"), f)
		rel = append(rel, filepath.ToSlash(p))
	}
	sort.Strings(rel)
	want := []string{"tag=app.a/dt=2026-11-22/hour=13/node-1-c0001.parquet", "tag=app.b/dt=2026-11-22/hour=14/node-1-c0002.parquet"}
	if !slices.Equal(rel, want) {
		t.Errorf("files %v, want %v", rel, want)
	}
}

func TestParquetDeclaredSchema(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, `  - type: file
    name: lake
    schema:
      columns:
        - {name: time, type: timestamp}
        - {name: level, type: string}
        - {name: status, type: int}
        - {name: labels, type: "map<string,string>"}
        - {name: at, type: timestamp}
        - {name: body, type: json}
`)
	at := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	l.write(t, l.chunk(slice13,
		ev(t, "a", slice13, map[string]any{"level": "info", "status": 200, "labels": map[string]any{"app": "shop", "tier": nil, "n": 3},
			"at": at.Format(time.RFC3339Nano), "body": "text", "other": "x"}),
		ev(t, "a", slice13.Add(time.Millisecond), map[string]any{"status": int64(1) << 40, "labels": map[string]any{}, "at": 12})))
	if _, err := os.Stat(schema.File(l.dir, "lake")); !os.IsNotExist(err) {
		t.Errorf("declared schema was persisted: %v", err)
	}
	r := db.Query(t, "SELECT level, status, labels, epoch_ms(\"at\") AS \"at\", body, _overflow FROM "+l.read()+" ORDER BY time").Maps()
	if r[0]["level"] != "info" || fmt.Sprint(r[0]["status"]) != "200" || r[0]["body"] != `"text"` || r[0]["at"] != fmt.Sprint(at.UnixMilli()) {
		t.Errorf("row 0: %v", r[0])
	}
	if got := mapValue(r[0]["labels"]); fmt.Sprint(got) != "map[app:shop n:3 tier:<nil>]" {
		t.Errorf("labels: %v", got)
	}
	if got := mapValue(r[0]["_overflow"]); fmt.Sprint(got) != "map[other:x]" {
		t.Errorf("undeclared key not in overflow: %v", got)
	}
	if got := mapValue(r[1]["_overflow"]); fmt.Sprint(got) != "map[at:12 status:1099511627776]" {
		t.Errorf("row 1 overflow: %v", got)
	}
	if l, ok := r[1]["labels"].([]any); !ok || len(l) != 0 {
		t.Errorf("empty map: %#v", r[1]["labels"])
	}
	if n := counter(t, l.reg, "maruta_sink_overflow_values_total", "reason", "undeclared"); n != 1 {
		t.Errorf("undeclared counted %v", n)
	}
}

// TestParquetSortsByContainer: by default the rows of a file are ordered by
// container_name, then time, in the first file (two passes) and in the
// next ones (one pass, with the file plan), across spilled runs; records
// without the key come first, in time order. So a row group's statistics
// on container_name span at most two containers, which lets readers skip
// the others.
func TestParquetSortsByContainer(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, "  - type: file\n    name: lake\n    row_group_rows: 500\n")
	if got := l.out.File.SortBy; !slices.Equal(got, []string{"container_name", "time"}) {
		t.Fatalf("default sort_by %v", got)
	}
	chunk := func(seed int) *sinktest.Chunk {
		var evs []sinktest.Event
		for i := range 3000 {
			j := (i*7919 + seed) % 3000 // times in a scrambled order
			rec := map[string]any{"container_name": fmt.Sprintf("/app-%d", (j*31)%5), "i": j}
			if j%100 == 0 {
				delete(rec, "container_name")
			}
			evs = append(evs, ev(t, "docker.x", slice13.Add(time.Duration(j)*time.Millisecond), rec))
		}
		return l.chunk(slice13, evs...)
	}
	// A chunk of one container in time order is checked and written as it
	// comes; the next, mixed, chunks are sorted all the same.
	var one []sinktest.Event
	for j := range 3000 {
		one = append(one, ev(t, "docker.x", slice13.Add(time.Duration(j)*time.Millisecond), map[string]any{"container_name": "/app-0", "i": j}))
	}
	l.write(t, l.chunk(slice13, one...)) // two passes: the first file
	l.write(t, chunk(1))                 // one pass: the plan of the first
	l.write(t, chunk(2))
	files, _ := filepath.Glob(filepath.Join(l.dir, "lake", "*", "*", "*", "*.parquet"))
	if len(files) != 3 {
		t.Fatalf("%d files", len(files))
	}
	for _, f := range files {
		rows := db.Query(t, "SELECT coalesce(container_name, '') AS c, epoch_ms(time) AS ms FROM read_parquet("+tu.SQLString(f)+", file_row_number = true) ORDER BY file_row_number").Rows
		if len(rows) != 3000 {
			t.Fatalf("%s: %d rows", f, len(rows))
		}
		for k := 1; k < len(rows); k++ {
			a, b := fmt.Sprint(rows[k-1][0]), fmt.Sprint(rows[k][0])
			ta, _ := strconv.ParseInt(fmt.Sprint(rows[k-1][1]), 10, 64)
			tb, _ := strconv.ParseInt(fmt.Sprint(rows[k][1]), 10, 64)
			if a > b || a == b && ta > tb {
				t.Fatalf("%s: row %d (%s, %d) after (%s, %d): not ordered by container_name, time", filepath.Base(f), k, b, tb, a, ta)
			}
		}
		if strings.HasSuffix(f, "c0001.parquet") {
			continue // the one-container chunk
		}
		if rows[0][0] != "" {
			t.Errorf("%s: records without container_name do not come first: %v", filepath.Base(f), rows[0])
		}
		// About 600 rows per container, 500 per row group: a row group's
		// [min, max] holds at most two of the five names.
		md := db.Query(t, "SELECT stats_min_value AS lo, stats_max_value AS hi FROM parquet_metadata("+tu.SQLString(f)+") WHERE path_in_schema = 'container_name'").Rows
		for _, g := range md {
			in := 0
			for c := range 5 {
				if name := fmt.Sprintf("/app-%d", c); fmt.Sprint(g[0]) <= name && name <= fmt.Sprint(g[1]) {
					in++
				}
			}
			if in > 2 {
				t.Errorf("%s: a row group spans %d containers (%v .. %v)", filepath.Base(f), in, g[0], g[1])
			}
		}
		if len(md) != 6 {
			t.Errorf("%s: %d row groups, want 6", filepath.Base(f), len(md))
		}
	}
}

func TestParquetSortByTimeAndRowGroups(t *testing.T) {
	db := tu.NewDuckDB(t)
	// 1000 rows per row group, 5000 shuffled Events: sorting spills runs
	// and merges them.
	l := newLake(t, "  - type: file\n    name: lake\n    sort_by_time: true\n    row_group_rows: 1000\n")
	var evs []sinktest.Event
	for i := 0; i < 5000; i++ {
		j := (i * 7919) % 5000 // a permutation
		evs = append(evs, ev(t, "s", slice13.Add(time.Duration(j)*time.Millisecond), map[string]any{"i": j, "level": []string{"a", "b"}[j%2]}))
	}
	// Equal times keep append order.
	evs = append(evs, ev(t, "s", slice13, map[string]any{"i": -1}))
	l.write(t, l.chunk(slice13, evs...))
	r := db.Query(t, "SELECT i FROM "+l.read())
	if len(r.Rows) != 5001 {
		t.Fatalf("%d rows", len(r.Rows))
	}
	if fmt.Sprint(r.Rows[0][0]) != "0" || fmt.Sprint(r.Rows[1][0]) != "-1" {
		t.Errorf("first rows %v %v", r.Rows[0], r.Rows[1])
	}
	for k := 2; k < len(r.Rows); k++ {
		if fmt.Sprint(r.Rows[k][0]) != fmt.Sprint(k-1) {
			t.Fatalf("row %d is %v: not sorted by time", k, r.Rows[k][0])
		}
	}
	md := db.Query(t, "SELECT row_group_id, row_group_num_rows, path_in_schema, encodings, stats_min_value, stats_max_value FROM parquet_metadata("+l.glob()+") WHERE path_in_schema IN ('time', 'level', 'i') ORDER BY row_group_id, path_in_schema").Maps()
	groups := map[string]bool{}
	for _, m := range md {
		groups[fmt.Sprint(m["row_group_id"])] = true
		if n := m["row_group_num_rows"]; n != "1000" && n != "1" {
			t.Errorf("row group of %v rows", n)
		}
		if m["stats_min_value"] == nil || m["stats_max_value"] == nil {
			t.Errorf("no statistics: %v", m)
		}
		if m["path_in_schema"] == "level" && !strings.Contains(fmt.Sprint(m["encodings"]), "RLE_DICTIONARY") {
			t.Errorf("low-cardinality column not dictionary encoded: %v", m)
		}
	}
	if len(groups) != 6 {
		t.Errorf("%d row groups, want 6", len(groups))
	}
	// The page index (column and offset indexes) is written.
	files, _ := filepath.Glob(filepath.Join(l.dir, "lake", "*", "*", "*", "*.parquet"))
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	cols := len(f.Metadata().RowGroups[0].Columns)
	if len(f.ColumnIndexes()) != 6*cols || len(f.OffsetIndexes()) != 6*cols {
		t.Errorf("page index: %d column indexes, %d offset indexes for 6 row groups of %d columns", len(f.ColumnIndexes()), len(f.OffsetIndexes()), cols)
	}
}

func TestParquetCompressionCodecs(t *testing.T) {
	db := tu.NewDuckDB(t)
	var q []string
	for _, codec := range []string{"zstd", "snappy", "gzip", "none"} {
		l := newLake(t, "  - type: file\n    name: lake\n    compression: "+codec+"\n")
		l.write(t, l.chunk(slice13, ev(t, "c", slice13, map[string]any{"v": strings.Repeat("compress me ", 100)})))
		q = append(q, fmt.Sprintf("SELECT %s AS codec, (SELECT string_agg(DISTINCT compression, ',') FROM parquet_metadata(%s)) AS c, (SELECT length(v) FROM %s) AS len",
			tu.SQLString(codec), l.glob(), l.read()))
	}
	for _, r := range db.Query(t, strings.Join(q, " UNION ALL ")+" ORDER BY codec").Maps() {
		want := map[string]string{"zstd": "ZSTD", "snappy": "SNAPPY", "gzip": "GZIP", "none": "UNCOMPRESSED"}[fmt.Sprint(r["codec"])]
		if r["c"] != want || fmt.Sprint(r["len"]) != "1200" {
			t.Errorf("%v: compression %v, length %v", r["codec"], r["c"], r["len"])
		}
	}
}

func TestParquetInvalidRecordsAndColumnLimit(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, "  - type: file\n    name: lake\n    schema: {max_columns: 2}\n")
	nonStringKey := msgpack.AppendString(msgpack.AppendInt(msgpack.AppendMapHeader(nil, 1), 5), "five")
	l.write(t, l.chunk(slice13,
		ev(t, "x", slice13, map[string]any{"a": 1, "b": 2, "c": 3, "": "empty key"}),
		sinktest.Event{Tag: "x", Time: event.Time(slice13.UnixNano()), Record: []byte{0x92, 0x01}}, // an array, not a map
		sinktest.Event{Tag: "x", Time: event.Time(slice13.UnixNano()), Record: []byte{0x81, 0xa1}}, // truncated
		sinktest.Event{Tag: "x", Time: event.Time(slice13.UnixNano()), Record: nonStringKey}))
	r := db.Query(t, "SELECT a, b, _overflow FROM "+l.read()+" ORDER BY a NULLS LAST").Maps()
	if len(r) != 2 {
		t.Fatalf("rows: %v", r)
	}
	if got := mapValue(r[0]["_overflow"]); fmt.Sprint(got) != "map[:empty key c:3]" {
		t.Errorf("overflow %v", got)
	}
	if got := mapValue(r[1]["_overflow"]); fmt.Sprint(got) != "map[5:five]" {
		t.Errorf("non-string key overflow %v", got)
	}
	if n := counter(t, l.reg, "maruta_sink_dropped_events_total", "reason", "invalid_record"); n != 2 {
		t.Errorf("invalid records counted %v, want 2", n)
	}
	if n := counter(t, l.reg, "maruta_sink_overflow_values_total", "reason", "column_limit"); n != 1 {
		t.Errorf("column limit counted %v", n)
	}
}

func TestParquetDuckDBColumnsEqualSchema(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, "  - type: file\n    name: lake\n")
	g := sinktest.NewDockerGen(3, 4, slice13, false)
	var evs []sinktest.Event
	for i := 0; i < 500; i++ {
		evs = append(evs, sinktest.Event(docker(t, g, i)))
	}
	l.write(t, l.chunk(slice13, evs...))
	l.write(t, l.chunk(slice13, ev(t, "docker.shop", slice13, map[string]any{"late_key": 1.5})))
	s, _ := schema.Load(l.dir, l.out)
	want := []string{schema.TimeColumn}
	for _, c := range s.Columns {
		want = append(want, c.Name)
	}
	want = append(want, s.Overflow)
	pl, err := layout.Parse(l.out.File.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pl.Partitions {
		want = append(want, p.Name)
	}
	got := db.Query(t, "DESCRIBE SELECT * FROM "+l.read())
	var names []string
	for _, row := range got.Rows {
		names = append(names, fmt.Sprint(row[0]))
	}
	sort.Strings(want)
	sort.Strings(names)
	if !slices.Equal(names, want) {
		t.Errorf("DuckDB columns %v\nschema columns %v", names, want)
	}
}

func docker(t testing.TB, g *sinktest.DockerGen, i int) sinktest.Event {
	tag, tm, rec := g.Next(t, i)
	return sinktest.Event{Tag: tag, Time: tm, Record: rec}
}

// After the first file a chunk is written in one pass with the columns of
// the files so far (a column it lacks is all NULL); a key outside them stops
// that pass, the chunk is written again in two passes, and the plan widens.
// Whatever the path, every row reads back with its values, each chunk is
// one file and no temporary file is left.
func TestParquetOnePassPlan(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, "  - type: file\n    name: lake\n")
	at := func(s int) time.Time { return slice13.Add(time.Duration(s) * time.Second) }
	write := func(evs ...sinktest.Event) string {
		c := l.chunk(slice13, evs...)
		l.write(t, c)
		return tu.SQLString(filepath.Join(l.dir, "lake", "tag=a", "dt=2026-11-22", "hour=13", "node-1-"+c.ChunkInfo.ID+".parquet"))
	}
	columns := func(file string) []string {
		var names []string
		for _, row := range db.Query(t, "DESCRIBE SELECT * FROM read_parquet("+file+", hive_partitioning=false)").Rows {
			names = append(names, fmt.Sprint(row[0]))
		}
		return names
	}
	replans := func() float64 { return counter(t, l.reg, "maruta_sink_parquet_replans_total") }

	// 1: no plan yet, two passes.
	f1 := write(ev(t, "a", at(1), map[string]any{"level": "info", "code": 1}),
		ev(t, "a", at(2), map[string]any{"level": "warn", "code": 2}))
	if got := columns(f1); !slices.Equal(got, []string{"time", "level", "code", "_overflow"}) && !slices.Equal(got, []string{"time", "code", "level", "_overflow"}) {
		t.Fatalf("file 1 columns %v", got)
	}
	// 2: a subset of the plan and a key that is only ever nil: one pass,
	// code is all NULL.
	f2 := write(ev(t, "a", at(3), map[string]any{"level": "error", "ghost": nil}))
	if n := replans(); n != 0 {
		t.Errorf("replans after a chunk inside the plan: %v", n)
	}
	if got := columns(f2); len(got) != 4 || !slices.Contains(got, "code") {
		t.Errorf("file 2 columns %v, want the plan's", got)
	}
	// 3: a new column: the one pass stops at row 2, two passes follow.
	f3 := write(ev(t, "a", at(4), map[string]any{"level": "debug"}),
		ev(t, "a", at(5), map[string]any{"level": "info", "user": "u1"}),
		ev(t, "a", at(6), map[string]any{"code": 7}))
	if n := replans(); n != 1 {
		t.Errorf("replans after a new column: %v, want 1", n)
	}
	if got := columns(f3); !slices.Contains(got, "user") {
		t.Errorf("file 3 columns %v", got)
	}
	// 4: the widened plan covers all three: one pass again.
	f4 := write(ev(t, "a", at(7), map[string]any{"user": "u2", "code": 9, "level": "info"}))
	if n := replans(); n != 1 {
		t.Errorf("replans after a chunk inside the widened plan: %v", n)
	}
	if got := columns(f4); len(got) != 5 {
		t.Errorf("file 4 columns %v", got)
	}

	r := db.Query(t, "SELECT epoch_ms(time) - "+fmt.Sprint(slice13.UnixMilli())+" AS ms, level, code, \"user\" FROM "+l.read()+" ORDER BY time").Maps()
	want := "[map[code:1 level:info ms:1000 user:<nil>] map[code:2 level:warn ms:2000 user:<nil>] map[code:<nil> level:error ms:3000 user:<nil>] " +
		"map[code:<nil> level:debug ms:4000 user:<nil>] map[code:<nil> level:info ms:5000 user:u1] map[code:7 level:<nil> ms:6000 user:<nil>] " +
		"map[code:9 level:info ms:7000 user:u2]]"
	if got := fmt.Sprint(r); got != want {
		t.Errorf("rows\n got %s\nwant %s", got, want)
	}
	dir := filepath.Join(l.dir, "lake", "tag=a", "dt=2026-11-22", "hour=13")
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	hidden, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(files) != 4 || len(hidden) != 0 {
		t.Errorf("files %v, temporary %v", files, hidden)
	}
	if n := counter(t, l.reg, "maruta_sink_rows_total"); n != 7 {
		t.Errorf("rows counted %v, want 7 (a replanned chunk counts once)", n)
	}
}
