package sinks

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/config"
)

func TestPathLayout(t *testing.T) {
	for _, c := range []struct {
		path   string
		athena *config.Athena
		want   string
	}{
		{"${tag}/dt=%Y-%m-%d/hour=%H/", nil,
			"prefix= hive=false template=${tag}/dt=${dt}/hour=${hour}/ | tag string injected | dt string date yyyy-MM-dd DAYS | hour int integer 0,23"},
		{"/data/lake/${tag}/dt=%Y-%m-%d/hour=%H/", nil,
			"prefix=/data/lake/ hive=false template=${tag}/dt=${dt}/hour=${hour}/ | tag string injected | dt string date yyyy-MM-dd DAYS | hour int integer 0,23"},
		{"logs/shop-event/${tag_parts[2]}/%Y/%m/%d/%H/", &config.Athena{Partitions: []config.AthenaPartition{{Placeholder: "tag_parts[2]", Name: "event_type"}}},
			"prefix=logs/shop-event/ hive=false template=${event_type}/${dt}/ | event_type string injected | dt string date yyyy/MM/dd/HH HOURS"},
		{"logs/dt=%Y-%m-%d/hour=%H/", nil,
			"prefix=logs/ hive=true template=dt=${dt}/hour=${hour}/ | dt string date yyyy-MM-dd DAYS | hour int integer 0,23"},
		{"logs/app=${tag_parts[0]}/%Y%m%d/", &config.Athena{Partitions: []config.AthenaPartition{{Placeholder: "tag_parts[0]", Values: []string{"web", "api"}}}},
			"prefix=logs/ hive=false template=app=${app}/${dt}/ | app string enum web,api | dt string date yyyyMMdd DAYS"},
		{"archive/v1/", nil, "prefix=archive/v1/ hive=true template="},
		{"x/day-%Y-%m-%d/svc-${tag}/${region}/", nil,
			"prefix=x/ hive=false template=${dt}/svc-${tag}/${region}/ | dt string date 'day'-yyyy-MM-dd DAYS | tag string injected | region string injected"},
	} {
		l, err := PathLayout(c.path, c.athena)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		got := fmt.Sprintf("prefix=%s hive=%v template=%s", l.Prefix, l.Hive, l.Template)
		for _, p := range l.Partitions {
			got += " | " + p.Name + " " + p.Type
			for _, kv := range p.Projection {
				switch kv[0] {
				case "type", "format", "interval.unit", "values":
					got += " " + kv[1]
				case "range":
					if p.Type == TypeInt {
						got += " " + kv[1]
					}
				}
			}
		}
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.path, got, c.want)
		}
	}
}

func TestPathLayoutErrors(t *testing.T) {
	for path, want := range map[string]string{
		"a/${tag}-%Y/":             "mixes a placeholder with strftime",
		"a/${tag}${tag_parts[1]}/": "two placeholders",
		"a/${tag}/x/${tag}/":       `two partition columns are named "tag"`,
		"a/%Y/${node}/":            "${node} cannot be a folder",
		"a/%c/":                    "",
	} {
		_, err := PathLayout(path, nil)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

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
	_, out := loadOutput(t, dir, "  - type: s3\n    name: s3out\n    bucket: b\n    region: us-east-1\n    schema:\n      mode: auto\n      columns: [{name: seeded, type: double}]\n")
	st, err := openSchemaStore(dir, out, []string{"dt"})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := st.columnFor("DT"); n != "dt_" {
		t.Errorf("reserved partition name: %q", n)
	}
	if n, _ := st.columnFor("time"); n != "time_" {
		t.Errorf("reserved time name: %q", n)
	}
	cols, added, err := st.add([]Column{{Name: "a", Type: TypeString}, {Name: "seeded", Type: TypeString}, {Name: "b", Type: TypeBigint}})
	if err != nil || added != 2 || len(cols) != 3 {
		t.Fatalf("add: %v %d %v", cols, added, err)
	}
	// A second store (a restart) sees the persisted schema; new columns
	// get the next version.
	st2, err := openSchemaStore(dir, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cols, v := st2.snapshot()
	if v != 2 || fmt.Sprint(cols) != "[{seeded double 1} {a string 2} {b bigint 2}]" {
		t.Errorf("reloaded: v%d %v", v, cols)
	}
	if _, _, err := st2.add([]Column{{Name: "c", Type: TypeBoolean}}); err != nil {
		t.Fatal(err)
	}
	s, _ := LoadSchema(dir, out)
	if s.Version != 3 || s.Columns[3] != (Column{"c", TypeBoolean, 3}) {
		t.Errorf("loaded %+v", s)
	}
	// A corrupt schema file is an error, not a silent reset.
	os.WriteFile(SchemaFile(dir, "s3out"), []byte("{"), 0o644)
	if _, err := LoadSchema(dir, out); err == nil {
		t.Error("corrupt schema accepted")
	}
}

func TestDeclaredTimeColumn(t *testing.T) {
	dir := t.TempDir()
	_, out := loadOutput(t, dir, "  - type: file\n    schema:\n      columns: [{name: time, type: string}]\n")
	if _, err := LoadSchema(dir, out); err == nil || !strings.Contains(err.Error(), "event time column") {
		t.Errorf("time declared as string: %v", err)
	}
	_, out = loadOutput(t, dir, "  - type: file\n    schema:\n      columns: [{name: Level, type: string}]\n")
	if _, err := LoadSchema(dir, out); err == nil || !strings.Contains(err.Error(), `use "level"`) {
		t.Errorf("upper-case declared name: %v", err)
	}
}
