package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/testutil"
)

// TestDestinationsExample runs examples/destinations.yaml through the real
// binary, as a user would, with only the addresses changed: Treasure Data
// and CloudWatch Logs are the in-process servers that speak their wire
// protocols and enforce their limits, Papertrail is a real rsyslogd with
// TLS. Docker-shaped lines (container_name is Docker's "/name") of three kinds go in (shop events, web lines with
// and without a level, another app's lines); after a clean stop every line
// must be at each destination the example routes it to, once, and each
// output must show in /api/status with its deliveries.
func TestDestinationsExample(t *testing.T) {
	src, err := os.ReadFile("../../examples/destinations.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const tdKey = "1/destinations-example-key"
	td := testutil.StartTD(t, tdKey)
	cwl := testutil.StartCWL(t)
	rs := testutil.StartRsyslog(t, true)
	host, port, _ := strings.Cut(rs.TCP, ":")

	conf := string(src)
	edit := func(old, new string, n int) {
		t.Helper()
		if c := strings.Count(conf, old); c != n {
			t.Fatalf("examples/destinations.yaml: %q occurs %d times, the test expects %d (update the test with the example)", old, c, n)
		}
		conf = strings.ReplaceAll(conf, old, new)
	}
	edit("listen: 0.0.0.0:24220", "listen: 127.0.0.1:0", 1)
	edit("listen: 0.0.0.0:24224", "listen: 127.0.0.1:0", 1)
	edit("    region: us01\n", "    endpoint: "+td.URL+"\n    api_endpoint: "+td.URL+"\n", 1)
	edit("        tls: {}\n", "        tls: {ca_file: "+filepath.Join(rs.CertDir, "ca.crt")+"}\n", 1)
	edit("        name: cloudwatch_web\n", "        name: cloudwatch_web\n        endpoint: "+cwl.URL+"\n", 1)
	edit("  - type: cloudwatch_logs\n    name: cloudwatch\n", "  - type: cloudwatch_logs\n    name: cloudwatch\n    endpoint: "+cwl.URL+"\n", 1)
	edit("flush_interval: 10s", "flush_interval: 1s", 1)
	dir := t.TempDir()
	path := writeFile(t, dir, "destinations.yaml", conf)

	p := startMaruta(t, dir, []string{
		"MARUTA_DATA_DIR=" + filepath.Join(dir, "data"),
		"TD_API_KEY=" + tdKey,
		"PAPERTRAIL_HOST=" + host,
		"PAPERTRAIL_PORT=" + port,
		"AWS_REGION=" + cwl.Region,
		"AWS_ACCESS_KEY_ID=" + cwl.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + cwl.SecretKey,
	}, "-c", path)

	f := dockerLogger(t, p.Forward, false)
	post := func(tag, container, line string) {
		t.Helper()
		if err := f.Post(tag, dockerRecord(container, "stdout", line)); err != nil {
			t.Fatal(err)
		}
	}
	const n = 12
	for i := range n {
		typ := []string{"purchase", "login", "cart_add"}[i%3]
		post("docker.shop", "shop", fmt.Sprintf(`{"log_type":"EVENT","event_type":"%s","user":"u%d"}`, typ, i))
		if i%2 == 0 {
			post("docker.web", "web-1", fmt.Sprintf(`{"level":"error","msg":"web %d ünïcode"}`, i))
		} else {
			post("docker.web", "web-1", fmt.Sprintf("plain web line %d", i))
		}
		post("docker.api", "api-1", fmt.Sprintf("api line %d", i))
	}
	f.Close()

	code, status := p.get("/api/status")
	for _, name := range []string{"td_events", "papertrail", "cloudwatch_web", "cloudwatch"} {
		if code != 200 || !strings.Contains(status, `"`+name+`"`) {
			t.Errorf("/api/status (%d) does not show output %s:\n%s", code, name, status)
		}
	}
	// A clean stop flushes every buffer.
	p.stop(60 * time.Second)
	msgs := rs.WaitMessages(t, n)

	// Treasure Data: a table per event type, every event once.
	if errs := td.Errors(); len(errs) > 0 {
		t.Fatalf("the TD server refused imports: %v", errs)
	}
	if got := strings.Join(td.Tables(), " "); got != "shop.event_cart_add shop.event_login shop.event_purchase" {
		t.Fatalf("TD tables %q", got)
	}
	for k, typ := range []string{"purchase", "login", "cart_add"} {
		var got, want []string
		for _, r := range td.Rows("shop", "event_"+typ) {
			got = append(got, fmt.Sprint(r["user"]))
		}
		for i := k; i < n; i += 3 {
			want = append(want, fmt.Sprintf("u%d", i))
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("TD event_%s users %v, want %v", typ, got, want)
		}
	}
	if _, dups, _ := td.Stats(); dups != 0 {
		t.Errorf("%d duplicate TD imports", dups)
	}

	// Papertrail (rsyslog over TLS): the web lines, app name the container.
	var web []string
	for _, m := range msgs {
		if m.App != "/web-1" { // Docker's container_name
			t.Errorf("syslog message with app %q, want /web-1: %+v", m.App, m)
		}
		web = append(web, m.Msg)
	}
	if len(web) != n {
		t.Errorf("%d syslog messages, want %d: %q", len(web), n, web)
	}
	for i := range n {
		want := fmt.Sprintf("plain web line %d", i)
		if i%2 == 0 {
			want = fmt.Sprintf("web %d ünïcode", i)
		}
		found := false
		for _, m := range web {
			found = found || strings.Contains(m, want)
		}
		if !found {
			t.Errorf("no syslog message holds %q", want)
		}
	}

	// CloudWatch Logs: the web lines in /docker/web, the api lines in a
	// group of their own, a stream per container; the server enforced the
	// PutLogEvents limits.
	if v := cwl.Violations(); len(v) > 0 {
		t.Fatalf("PutLogEvents that the service would reject: %v", v)
	}
	if got := len(cwl.Events("/docker/web", "/web-1")); got != n {
		t.Errorf("%d events in /docker/web /web-1, want %d", got, n)
	}
	api := cwl.Events("/docker/api", "/api-1")
	if len(api) != n {
		t.Fatalf("%d events in /docker/api /api-1, want %d (streams: %v)", len(api), n, cwl.Streams())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(api[0].Message), &rec); err != nil || rec["container_name"] != "/api-1" {
		t.Errorf("an api event's message is not the record as JSON: %q (%v)", api[0].Message, err)
	}
	if days, _, ok := cwl.Group("/docker/api"); !ok || days != 14 {
		t.Errorf("group /docker/api retention %d days (exists %v), want 14", days, ok)
	}
	if strings.Contains(p.logs.String(), tdKey) || strings.Contains(p.logs.String(), cwl.SecretKey) {
		t.Error("maruta's log holds a secret")
	}
}
