package schema

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/marutalog/maruta/sinks/sinktest"
)

func TestColumnName(t *testing.T) {
	for in, want := range map[string]string{
		"level": "level", "Level": "level", "http.method": "http_method", "user-agent": "user_agent",
		"@timestamp": "_timestamp", "日本": "______", "a b": "a_b", "0x": "0x",
	} {
		if got, ok := ColumnName(in); !ok || got != want {
			t.Errorf("ColumnName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := ColumnName(""); ok {
		t.Error("empty name accepted")
	}
	if _, ok := ColumnName(strings.Repeat("x", 200)); ok {
		t.Error("200-byte name accepted")
	}
}

func TestSchemaStorePersistsAndAppends(t *testing.T) {
	dir := t.TempDir()
	_, out := sinktest.Output(t, dir, "  - type: s3\n    name: s3out\n    bucket: b\n    region: us-east-1\n    schema:\n      mode: auto\n      columns: [{name: seeded, type: double}]\n")
	st, err := Open(dir, out, []string{"dt"})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := st.ColumnFor("DT"); n != "dt_" {
		t.Errorf("reserved partition name: %q", n)
	}
	if n, _ := st.ColumnFor("time"); n != "time_" {
		t.Errorf("reserved time name: %q", n)
	}
	cols, added, err := st.Add([]Column{{Name: "a", Type: TypeString}, {Name: "seeded", Type: TypeString}, {Name: "b", Type: TypeBigint}})
	if err != nil || added != 2 || len(cols) != 3 {
		t.Fatalf("add: %v %d %v", cols, added, err)
	}
	// A second store (a restart) sees the persisted schema; new columns
	// get the next version.
	st2, err := Open(dir, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cols, v := st2.Snapshot()
	if v != 2 || fmt.Sprint(cols) != "[{seeded double 1} {a string 2} {b bigint 2}]" {
		t.Errorf("reloaded: v%d %v", v, cols)
	}
	if _, _, err := st2.Add([]Column{{Name: "c", Type: TypeBoolean}}); err != nil {
		t.Fatal(err)
	}
	s, _ := Load(dir, out)
	if s.Version != 3 || s.Columns[3] != (Column{"c", TypeBoolean, 3}) {
		t.Errorf("loaded %+v", s)
	}
	// A corrupt schema file is an error, not a silent reset.
	os.WriteFile(File(dir, "s3out"), []byte("{"), 0o644)
	if _, err := Load(dir, out); err == nil {
		t.Error("corrupt schema accepted")
	}
}

func TestDeclaredTimeColumn(t *testing.T) {
	dir := t.TempDir()
	_, out := sinktest.Output(t, dir, "  - type: file\n    schema:\n      columns: [{name: time, type: string}]\n")
	if _, err := Load(dir, out); err == nil || !strings.Contains(err.Error(), "event time column") {
		t.Errorf("time declared as string: %v", err)
	}
	_, out = sinktest.Output(t, dir, "  - type: file\n    schema:\n      columns: [{name: Level, type: string}]\n")
	if _, err := Load(dir, out); err == nil || !strings.Contains(err.Error(), `use "level"`) {
		t.Errorf("upper-case declared name: %v", err)
	}
}
