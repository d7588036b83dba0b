package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/testutil"
)

// TestFluentConfFixture runs the user's fluent.conf (../shared/fixtures/
// event-split.fluent.conf) with `maruta run -c`, its environment variables
// set and S3 pointed at a real S3 server, sends what Docker's driver sends,
// and checks the event split: one Parquet folder per event type, hourly, plus
// the archive copy.
func TestFluentConfFixture(t *testing.T) {
	// The only edit: the archive store writes under /fluentd/log in the
	// fluentd container; here it goes to the test's folder.
	dir, _ := runEventSplit(t, "event-split.fluent.conf", func(conf, dir string) string {
		return strings.ReplaceAll(conf, "/fluentd/log", dir+"/fluentd-log")
	}, nil)

	// The archive store: JSON lines per event type.
	lines := 0
	for _, typ := range []string{"purchase", "login", "cart_add"} {
		files, _ := filepath.Glob(filepath.Join(dir, "fluentd-log/archive/shop-event-"+typ, "20261122", "*.jsonl"))
		if len(files) == 0 {
			t.Errorf("no archive file for %s", typ)
		}
		for _, fn := range files {
			b, _ := os.ReadFile(fn)
			lines += strings.Count(string(b), "\n")
		}
	}
	if lines != 30 {
		t.Errorf("archive holds %d lines, want 30", lines)
	}
}

// TestFluentConfFixtureTD runs the production config with its tdlog store
// (../shared/fixtures/event-split-td.fluent.conf): the S3 store as above
// and, from the same copy, one Treasure Data import per event type into
// event_<type> of TD_DATABASE, created on the way (auto_create_table).
// The only edit points the TD store at the in-process TD server.
func TestFluentConfFixtureTD(t *testing.T) {
	const key = "1/fixture-td-key"
	td := testutil.StartTD(t, key)
	_, p := runEventSplit(t, "event-split-td.fluent.conf", func(conf, _ string) string {
		return strings.Replace(conf, "type tdlog\n", "type tdlog\n      endpoint "+td.URL+"\n      api_endpoint "+td.URL+"\n", 1)
	}, []string{"TD_API_KEY=" + key, "TD_DATABASE=shop"})

	if errs := td.Errors(); len(errs) > 0 {
		t.Fatalf("the TD server refused imports: %v", errs)
	}
	if got := strings.Join(td.Tables(), " "); got != "shop.event_cart_add shop.event_login shop.event_purchase" {
		t.Fatalf("TD tables %q", got)
	}
	base := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC).Unix()
	for k, typ := range []string{"purchase", "login", "cart_add"} {
		rows := td.Rows("shop", "event_"+typ)
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprintf("%v %v %v %v", r["user"], r["amount"], r["time"], r["log_type"]))
		}
		sort.Strings(got)
		var want []string
		for i := k; i < 30; i += 3 {
			// time: the record's time field, parsed by the filter, in seconds.
			want = append(want, fmt.Sprintf("u%d %d %d EVENT", i, i*100, base+int64(i)*60))
		}
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("event_%s rows:\n%s\nwant:\n%s", typ, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if _, dups, _ := td.Stats(); dups != 0 {
		t.Errorf("%d duplicate imports", dups)
	}
	if strings.Contains(p.logs.String(), key) {
		t.Error("maruta's log holds the TD API key")
	}
}

// runEventSplit runs a fixture of the event-split family (edited by edit,
// with env added) against a real S3 server, sends Docker-shaped EVENT lines
// of three event types and some that fluentd would drop, stops maruta and
// checks the S3 side: one Parquet folder per event type, read back by
// DuckDB. It returns the test's folder and the stopped maruta.
func runEventSplit(t *testing.T, fixtureName string, edit func(conf, dir string) string, env []string) (string, *proc) {
	fixture, err := os.ReadFile("../../../shared/fixtures/" + fixtureName)
	if err != nil {
		t.Skipf("fixture not found beside the repository: %v", err)
	}
	s3 := testutil.StartS3(t, testutil.WithRegion("ap-northeast-1")) // the fixture's s3_region
	s3.CreateBucket(t, "shop-logs")
	dir := t.TempDir()
	conf := writeFile(t, dir, "fluent.conf", edit(string(fixture), dir))

	p := startMaruta(t, dir, append([]string{
		"AWS_ACCESS_KEY=" + s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
		"AWS_S3_BUCKET=shop-logs",
		"AWS_ENDPOINT_URL_S3=" + s3.Endpoint,
		"MARUTA_LISTEN=127.0.0.1:0",
		"MARUTA_HTTP_LISTEN=127.0.0.1:0",
		"MARUTA_DATA_DIR=" + dir + "/data",
	}, env...), "-c", conf)

	f := dockerLogger(t, p.Forward, false)
	send := func(line string) {
		t.Helper()
		if err := f.Post("docker.shop", dockerRecord("shop", "stdout", line)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		typ := []string{"purchase", "login", "cart_add"}[i%3]
		send(fmt.Sprintf(`{"log_type":"EVENT","event_type":"%s","user":"u%d","amount":%d,"time":"2026-11-22T13:%02d:00Z"}`, typ, i, i*100, i))
	}
	send(`{"log_type":"ACCESS","path":"/","time":"2026-11-22T13:00:00Z"}`)              // no rule: fluentd drops it
	send(`{"log_type":"EVENT","event_type":"bad type!","time":"2026-11-22T13:00:00Z"}`) // second rule fails: dropped
	send(`not json at all`)                                                             // parser error route
	f.Close()
	p.stop(60 * time.Second)

	// S3: logs/shop-event/<event type>/2026/11/22/13/<node>-<chunk id>.parquet
	objs := s3.Objects(t, "shop-logs", "")
	var folders []string
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".parquet") {
			t.Errorf("unexpected object %s", o.Key)
		}
		folders = append(folders, o.Key[:strings.LastIndexByte(o.Key, '/')+1])
	}
	sort.Strings(folders)
	want := []string{"logs/shop-event/cart_add/2026/11/22/13/", "logs/shop-event/login/2026/11/22/13/", "logs/shop-event/purchase/2026/11/22/13/"}
	if strings.Join(folders, " ") != strings.Join(want, " ") {
		t.Fatalf("S3 objects in %v, want one in each of %v\n%s", folders, want, p.logs)
	}
	local := filepath.Join(dir, "s3")
	s3.Download(t, "shop-logs", "logs/", local)
	db := testutil.NewDuckDB(t)
	rows := db.Query(t, "SELECT event_type, count(*) AS n, sum(amount) AS total, min(time) AS first FROM read_parquet("+
		testutil.SQLString(local+"/logs/shop-event/*/*/*/*/*/*.parquet")+", union_by_name=true) GROUP BY event_type ORDER BY event_type").Maps()
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%v n=%v total=%v first=%v", r["event_type"], r["n"], r["total"], r["first"]))
	}
	// Event times come from the records' time field, parsed with time_format.
	wantRows := []string{
		"cart_add n=10 total=15500 first=2026-11-22 13:02:00+00",
		"login n=10 total=14500 first=2026-11-22 13:01:00+00",
		"purchase n=10 total=13500 first=2026-11-22 13:00:00+00",
	}
	if strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("DuckDB rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}
	return dir, p
}
