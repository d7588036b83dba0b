package layout

import (
	"fmt"
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/sinks/schema"
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
		l, err := Parse(c.path, c.athena)
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
					if p.Type == schema.TypeInt {
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
		_, err := Parse(path, nil)
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

func TestKeysRoot(t *testing.T) {
	for _, c := range []struct{ path, key, want string }{
		{"/data/lake/tag=${tag}/dt=%Y-%m-%d/", "${path}${node}-${chunk_id}.${ext}", "/data/lake"},
		{"/data/lake/", "${path}${node}-${chunk_id}.${ext}", "/data/lake"},
		{"/data/lake/x-${tag}/", "${path}${chunk_id}", "/data/lake"},
		{"lake/${tag}/", "${path}${chunk_id}", "lake"},
		{"${tag}/", "${path}${chunk_id}", ""},
		{"/${tag}/", "${path}${chunk_id}", "/"},
		{"/ignored/${tag}/", "/other/%Y/${chunk_id}", "/other"},
		{"/a/", "/a/b/${path}${chunk_id}", "/a/b/a"},
	} {
		k, err := NewKeys(c.path, c.key, "n", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Root(); got != c.want {
			t.Errorf("Root(%q, %q) = %q, want %q", c.path, c.key, got, c.want)
		}
	}
}
