package fluentconf

import (
	"fmt"
	"strings"
	"testing"
)

// TestUnsetEnv: each unset reference is reported at its fluent.conf line,
// with the parameter and the maruta config section it converts into; set
// variables and references with a default are not.
func TestUnsetEnv(t *testing.T) {
	conf := `<source>
  @type forward
  <security>
    shared_key "#{ENV['K']}"
  </security>
</source>
<source>
  @type monitor_agent
  bind "#{ENV['BIND']}"
</source>
<filter **>
  @type grep
  <regexp>
    key "#{ENV['SET']}"
    pattern "#{ENV.fetch('P', 'x')}"
  </regexp>
</filter>
<match **>
  @type s3
  s3_bucket "#{ENV['B']}-#{ENV['B2']}"
</match>
`
	env := map[string]string{"SET": "log"}
	got, err := UnsetEnv("f.conf", []byte(conf), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, u := range got {
		msg, _, _ := strings.Cut(u.Err.Error(), " is not set")
		lines = append(lines, fmt.Sprintf("%s [%s]", msg, u.Section))
	}
	want := []string{
		"f.conf:4: shared_key: environment variable K [sources]",
		"f.conf:9: bind: environment variable BIND [http]",
		"f.conf:20: s3_bucket: environment variable B [outputs]",
		"f.conf:20: s3_bucket: environment variable B2 [outputs]",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
