package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// duckdbScript runs the SQL read from stdin (one or more statements) and
// prints the last statement's result as JSON: column names and types, and
// rows as arrays. BIGINT, HUGEINT, DECIMAL and timestamps come back as
// strings, so they are exact.
const duckdbScript = `
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(process.env.MARUTA_DUCKDB_DIR + '/');
const { DuckDBInstance } = require('@duckdb/node-api');
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const sql = Buffer.concat(chunks).toString('utf8');
const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
// Bytes read by read(2)/pread(2) of this process (all threads), Linux.
const rchar = () => Number((/rchar: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8')) || [0, 0])[1]);
try {
  await conn.runAndReadAll('SELECT 1');
  const before = rchar();
  const reader = await conn.runAndReadAll(sql);
  const bytesRead = rchar() - before;
  const types = reader.columnTypes().map((t) => t.toString());
  const out = { columns: reader.columnNames().map((n, i) => ({ name: n, type: types[i] })), rows: reader.getRowsJson(), bytesRead };
  process.stdout.write(JSON.stringify(out));
} catch (e) {
  process.stderr.write(String(e && e.message || e));
  process.exit(3);
}
`

// DuckDB runs SQL with DuckDB in a node process per query.
type DuckDB struct {
	dir    string // MARUTA_DUCKDB_DIR
	script string
}

// Column is a result column.
type Column struct {
	Name string
	Type string
}

// Result is a query result. Values are as JSON decodes them with
// UseNumber: strings (also for BIGINT and timestamps), json.Number, bool,
// nil, []any, map[string]any (a MAP is a list of {key, value} objects).
type Result struct {
	Columns []Column
	Rows    [][]any
	// BytesRead is what DuckDB read with read(2)/pread(2) while running
	// the SQL (from /proc/self/io; 0 where that does not exist): for a query
	// on Parquet files, the bytes of the column chunks it fetched, which is
	// what a per-byte-scanned engine such as Athena bills.
	BytesRead int64
}

// NewDuckDB finds DuckDB (MARUTA_DUCKDB_DIR and node) or skips the test.
func NewDuckDB(t testing.TB) *DuckDB {
	t.Helper()
	dir := Tool(t, "MARUTA_DUCKDB_DIR")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		Tool(t, "MARUTA_DUCKDB_DIR_WITH_NODE_API") // skip or fail with a message
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Helper()
		if os.Getenv("MARUTA_REQUIRE_TOOLS") == "1" {
			t.Fatal("node is not installed: DuckDB runs through node")
		}
		t.Skip("node is not installed")
	}
	script := filepath.Join(t.TempDir(), "duckdb-query.mjs")
	if err := os.WriteFile(script, []byte(duckdbScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return &DuckDB{dir: dir, script: script}
}

// Query runs sql and returns the last statement's result, failing the test
// on an error.
func (d *DuckDB) Query(t testing.TB, sql string) Result {
	t.Helper()
	r, err := d.Run(sql)
	if err != nil {
		t.Fatalf("duckdb: %v\nSQL: %s", err, sql)
	}
	return r
}

// Run runs sql and returns the last statement's result or DuckDB's error.
func (d *DuckDB) Run(sql string) (Result, error) {
	cmd := exec.Command("node", d.script)
	cmd.Env = append(os.Environ(), "MARUTA_DUCKDB_DIR="+d.dir)
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var out struct {
		Columns   []Column
		Rows      [][]any
		BytesRead int64
	}
	dec := json.NewDecoder(&stdout)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return Result{}, fmt.Errorf("decode duckdb output: %v", err)
	}
	return Result{Columns: out.Columns, Rows: out.Rows, BytesRead: out.BytesRead}, nil
}

// ColumnNames returns the result's column names.
func (r Result) ColumnNames() []string {
	s := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		s[i] = c.Name
	}
	return s
}

// Maps returns each row as a map from column name to value.
func (r Result) Maps() []map[string]any {
	out := make([]map[string]any, len(r.Rows))
	for i, row := range r.Rows {
		m := make(map[string]any, len(row))
		for j, v := range row {
			m[r.Columns[j].Name] = v
		}
		out[i] = m
	}
	return out
}

// SQLString quotes s as a SQL string literal.
func SQLString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// BytesRead runs one query and returns its result and the bytes DuckDB
// read from files for it (Result.BytesRead). DuckDB's own total_bytes_read
// profiling metric does not count local Parquet reads, so the process's
// read counters are used instead.
func (d *DuckDB) BytesRead(t testing.TB, sql string) (Result, int64) {
	t.Helper()
	r := d.Query(t, sql)
	return r, r.BytesRead
}
