package athena

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks"
)

var update = flag.Bool("update", false, "rewrite the golden .sql files")

// TestDDLGolden renders the DDL of every testdata/*.yaml and compares it
// with testdata/<name>.sql. The first line "# ddl: alter since=N" selects
// options. Schemas are read from testdata/schema/.
func TestDDLGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no golden cases")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(f)
			opts := DDLOptions{DataDir: "testdata"}
			first, _, _ := strings.Cut(string(data), "\n")
			for _, w := range strings.Fields(strings.TrimPrefix(first, "# ddl:")) {
				switch {
				case w == "alter":
					opts.Alter = true
				case strings.HasPrefix(w, "since="):
					opts.Since, _ = strconv.Atoi(strings.TrimPrefix(w, "since="))
				}
			}
			got, err := DDL(cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".sql"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./athena -update)", err)
			}
			if got != string(want) {
				t.Errorf("DDL differs from %s (go test ./athena -update rewrites it)\n--- got\n%s", golden, got)
			}
		})
	}
}

func TestDDLOptionsAndErrors(t *testing.T) {
	cfg, err := config.Load("testdata/fluent-fixture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DDL(cfg, DDLOptions{Outputs: []string{"nope"}, DataDir: "testdata"}); err == nil || !strings.Contains(err.Error(), `no Parquet output named "nope"`) {
		t.Errorf("unknown output: %v", err)
	}
	if _, err := DDL(cfg, DDLOptions{Outputs: []string{"events_1"}, DataDir: "testdata"}); err == nil {
		t.Error("a jsonl output produced a table")
	}
	ts, err := Tables(cfg, DDLOptions{Outputs: []string{"events_0"}, DataDir: "testdata"})
	if err != nil || len(ts) != 1 || ts[0].Name != "shop_events" {
		t.Fatalf("tables %v, %v", ts, err)
	}
	if got := ts[0].AlterStatement(3); !strings.Contains(got, "no columns added after schema version 3") {
		t.Errorf("alter since the current version: %s", got)
	}
	// Two outputs defining one table is an error.
	dup, err := config.Parse("dup.yaml", []byte(`sources: [{type: forward}]
outputs:
  - {type: s3, name: a, bucket: b, region: r, athena: {table: t}}
  - {type: s3, name: b, bucket: b, region: r, athena: {table: t}}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DDL(dup, DDLOptions{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "both define table default.t") {
		t.Errorf("duplicate table: %v", err)
	}
	// A partition column named like a data column (a schema persisted
	// before the partition was named) cannot be created in Athena.
	clash, err := config.Parse("clash.yaml", []byte(`sources: [{type: forward}]
outputs:
  - type: s3
    name: a
    bucket: b
    region: r
    path: x/${tag}/
    schema: {columns: [{name: level, type: string}]}
    athena: {partitions: [{placeholder: tag, name: level}]}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DDL(clash, DDLOptions{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), `partition column "level"`) {
		t.Errorf("clash: %v", err)
	}
}

// TestDDLColumnsEqualDuckDB writes files through the sink and checks that
// the columns DuckDB sees (data columns and Hive partitions) are the DDL's.
func TestDDLColumnsEqualDuckDB(t *testing.T) {
	db := tu.NewDuckDB(t)
	cfg, dir := writeTestLake(t)
	tables, err := Tables(cfg, DDLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range tables[0].Columns {
		want = append(want, c.Name)
	}
	for _, p := range tables[0].Partitions {
		want = append(want, p.Name)
	}
	r := db.Query(t, "DESCRIBE SELECT * FROM read_parquet("+tu.SQLString(dir+"/lake/**/*.parquet")+", hive_partitioning=true, union_by_name=true)")
	var got []string
	for _, row := range r.Rows {
		got = append(got, fmt.Sprint(row[0]))
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("DuckDB columns %v\nDDL columns %v", got, want)
	}
	if !tables[0].hiveOnly() {
		t.Errorf("a dt=/hour= path needs no storage.location.template: %v", tables[0].Properties)
	}
}

// writeTestLake writes two chunks of records of several types through the
// file sink into <dir>/lake (a dt=/hour= layout) and returns the config,
// whose data_dir dir holds the persisted schema.
func writeTestLake(t *testing.T) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("t.yaml", []byte("node: n\ndata_dir: "+dir+"\nsources: [{type: forward}]\noutputs:\n  - {type: file, name: lake, path: "+dir+"/lake/dt=%Y-%m-%d/hour=%H/}\n"),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	out := cfg.LeafOutputs()[0]
	s, err := sinks.New(sinks.Options{Output: out, Node: "n", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	slice := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	recs := []map[string]any{
		{"container_name": "/a", "log": "x", "status": 200, "Time": "t", "nested": map[string]any{"a": 1}},
		{"container_name": "/b", "level": "info", "latency": 1.5, "ok": true, "user": "u"},
	}
	for i, r := range recs {
		b, _ := vm.Marshal(r)
		c := &chunk{info: delivery.ChunkInfo{ID: fmt.Sprint("c", i), Path: out.File.Path, Tag: "t", Slice: slice.Add(time.Duration(i) * time.Hour)},
			t: event.Time(slice.Add(time.Duration(i) * time.Hour).UnixNano()), rec: b}
		if err := s.Write(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, dir
}

// TestDDLFromSample: before any schema is persisted (a new data_dir, or
// another host), the DDL of a sample of the lake has the columns and types
// the writer persisted; without the sample only time and _overflow.
func TestDDLFromSample(t *testing.T) {
	cfg, dir := writeTestLake(t)
	persisted, err := Tables(cfg, DDLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	bare, err := Tables(cfg, DDLOptions{DataDir: empty})
	if err != nil {
		t.Fatal(err)
	}
	if got := columnList(bare[0]); got != "time timestamp, _overflow map<string,string>" {
		t.Fatalf("without a schema or sample: %s", got)
	}
	sampled, err := Tables(cfg, DDLOptions{DataDir: empty, Sample: filepath.Join(dir, "lake")})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(columnList(persisted[0]), ", ")
	got := strings.Split(columnList(sampled[0]), ", ")
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("columns from the sample:\n%v\nthe persisted schema's:\n%v", got, want)
	}
	if _, err := Tables(cfg, DDLOptions{DataDir: empty, Sample: empty}); err == nil || !strings.Contains(err.Error(), "no .parquet files") {
		t.Errorf("an empty sample: %v", err)
	}
}

func columnList(t Table) string {
	var s []string
	for _, c := range t.Columns {
		s = append(s, c.Name+" "+c.Type)
	}
	return strings.Join(s, ", ")
}

func (t Table) hiveOnly() bool {
	for _, kv := range t.Properties {
		if kv[0] == "storage.location.template" {
			return false
		}
	}
	return true
}

// chunk is a one-event delivery.Chunk.
type chunk struct {
	info delivery.ChunkInfo
	t    event.Time
	rec  []byte
}

func (c *chunk) Info() delivery.ChunkInfo { return c.info }
func (c *chunk) Scan(fn func(string, event.Time, []byte) error) error {
	return fn(c.info.Tag, c.t, c.rec)
}
