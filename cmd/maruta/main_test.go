package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/marutalog/maruta/internal/testutil"
)

// dockerLogger returns a fluent-logger-golang client configured the way
// Docker's fluentd log driver configures it (daemon/logger/fluentd), with
// fluentd-request-ack and fluentd-sub-second-precision on.
func dockerLogger(t testing.TB, addr string, async bool) *fluent.Fluent {
	t.Helper()
	c := fluentConfig(t, addr)
	c.MaxRetry, c.MaxRetryWait = 50, 1000
	c.Async, c.ForceStopAsyncSend = async, async
	c.SubSecondPrecision, c.RequestAck = true, true
	return newFluent(t, c)
}

// fluentConfig is the fluent.Config Docker's driver starts from for addr
// (1 MiB buffer), with a 100 ms retry wait.
func fluentConfig(t testing.TB, addr string) fluent.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return fluent.Config{FluentHost: host, FluentPort: p, FluentNetwork: "tcp", BufferLimit: 1024 * 1024, RetryWait: 100}
}

func newFluent(t testing.TB, c fluent.Config) *fluent.Fluent {
	t.Helper()
	f, err := fluent.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// dockerRecord is what Docker's driver sends for one line.
func dockerRecord(name, source, line string) map[string]string {
	return map[string]string{
		"container_id":   strings.Repeat("a1b2c3d4", 8),
		"container_name": "/" + name,
		"source":         source,
		"log":            line,
	}
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(marutaBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "maruta ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, errs := runCLI(t, "frobnicate")
	if code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "sources:\n  - type: forward\noutputs:\n  - type: file\n    name: lake\n")
	if code, out, errs := runCLI(t, "validate", "-c", good); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("good config: exit %d, %q %q", code, out, errs)
	}
	bad := writeFile(t, dir, "bad.yaml", "sources:\n  - type: forward\noutputs:\n  - type: s3\n    bucket: b\n    buffer:\n      chunk_limt_size: 1m\n")
	code, _, errs := runCLI(t, "validate", "-c", bad)
	if want := bad + `:7: outputs[0].buffer.chunk_limt_size: unknown key "chunk_limt_size"`; code != 1 || strings.TrimSpace(errs) != want {
		t.Fatalf("bad config: exit %d, stderr %q, want %q", code, errs, want)
	}
	// An error only a component can find (a regexp RE2 cannot run) also names file:line:key.
	re := writeFile(t, dir, "re.yaml", "sources:\n  - type: forward\npipeline:\n  - type: grep\n    regexp:\n      - {key: log, pattern: 'a(?=b)'}\noutputs:\n  - type: stdout\n")
	code, _, errs = runCLI(t, "validate", "-c", re)
	if code != 1 || !strings.HasPrefix(errs, re+":6: pipeline[0].regexp[0].pattern: ") {
		t.Fatalf("regexp: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := runCLI(t, "validate"); code != 2 || !strings.Contains(errs, "no config file (give -c FILE or FILE") {
		t.Fatalf("no -c: exit %d %q", code, errs)
	}
}

// TestRunEmbeddedDefault runs `maruta run` with no config, as a user would,
// sends what Docker's driver sends, and reads the Parquet lake back with DuckDB.
func TestRunEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	p := startMaruta(t, dir, []string{"MARUTA_LISTEN=127.0.0.1:0", "MARUTA_HTTP_LISTEN=127.0.0.1:0"})
	if code, body := p.get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}

	f := dockerLogger(t, p.Forward, false)
	for i := range 50 {
		line := fmt.Sprintf(`{"level":"%s","msg":"request %d","status":%d,"latency_ms":%d.5}`,
			[]string{"info", "error"}[i%2], i, 200+i%3, i)
		if err := f.Post("docker.web", dockerRecord("web", "stdout", line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Post("docker.web", dockerRecord("web", "stderr", "panic: not json")); err != nil {
		t.Fatal(err)
	}
	// A 40 KiB JSON line split by Docker into three partial messages.
	long := `{"level":"warn","msg":"` + strings.Repeat("x", 40<<10) + `"}`
	parts := []string{long[:16<<10], long[16<<10 : 32<<10], long[32<<10:]}
	for i, part := range parts {
		r := dockerRecord("web", "stdout", part)
		r["partial_message"] = "true"
		r["partial_id"] = "p1"
		r["partial_ordinal"] = strconv.Itoa(i + 1)
		r["partial_last"] = strconv.FormatBool(i == len(parts)-1)
		if err := f.Post("docker.web", r); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	if got := p.metric("maruta_forward_events_total"); got != 54 {
		t.Errorf("maruta_forward_events_total = %v, want 54", got)
	}
	p.stop(30 * time.Second) // the shutdown seals and flushes the buffer

	files, _ := filepath.Glob(filepath.Join(dir, "maruta-data/lake/tag=docker.web/dt=*/hour=*/*.parquet"))
	if len(files) == 0 {
		t.Fatalf("no parquet files in the lake:\n%s", p.logs)
	}
	db := testutil.NewDuckDB(t)
	glob := testutil.SQLString(filepath.Join(dir, "maruta-data/lake/**/*.parquet"))
	src := "read_parquet(" + glob + ", hive_partitioning=true, union_by_name=true)"
	rows := db.Query(t, "SELECT level, count(*) AS n, count(log) AS raw FROM "+src+" GROUP BY level ORDER BY level").Maps()
	want := []string{"error:25:0", "info:25:0", "warn:1:0", "<nil>:1:1"}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%v:%v:%v", r["level"], r["n"], r["raw"]))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("level counts = %v, want %v", got, want)
	}
	r := db.Query(t, "SELECT length(msg) AS len, container_name FROM "+src+" WHERE level = 'warn'").Maps()
	if len(r) != 1 || fmt.Sprint(r[0]["len"]) != strconv.Itoa(40<<10) || r[0]["container_name"] != "/web" {
		t.Errorf("reassembled partial line: %v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "maruta-data/buffer/lake")); err != nil {
		t.Errorf("buffer folder: %v", err)
	}
}

// TestRunRefusesBusyPort: a start on a busy port fails, and the error
// says which listener's port it is (a source's, or http.listen's).
func TestRunRefusesBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	for _, tc := range []struct{ http, forward, names string }{
		{"off", ln.Addr().String(), "source forward_0: "},
		{ln.Addr().String(), "127.0.0.1:0", "HTTP server (http.listen"},
	} {
		cfg := writeFile(t, dir, "m.yaml", fmt.Sprintf("data_dir: %s\nhttp: {listen: %q}\nsources:\n  - type: forward\n    listen: %s\noutputs:\n  - type: null\n", dir, tc.http, tc.forward))
		out, err := exec.Command(marutaBin, "run", "-c", cfg).CombinedOutput()
		if err == nil || !strings.Contains(string(out), ln.Addr().String()+": bind: address already in use") || !strings.Contains(string(out), tc.names) {
			t.Errorf("want a start failure naming %q and the busy address, got %v:\n%s", tc.names, err, out)
		}
	}
}

// TestHealthcheck probes a running maruta the way the image's HEALTHCHECK
// does: no flags, the config named by $MARUTA_CONFIG.
func TestHealthcheck(t *testing.T) {
	dir := t.TempDir()
	httpAddr := freeTCPPort(t)
	cfg := writeFile(t, dir, "m.yaml", fmt.Sprintf("data_dir: %s/data\nhttp: {listen: %q}\nsources:\n  - type: forward\n    listen: 127.0.0.1:0\noutputs:\n  - type: null\n", dir, httpAddr))
	p := startMaruta(t, dir, []string{"MARUTA_CONFIG=" + cfg})
	if p.HTTP != httpAddr {
		t.Fatalf("maruta did not run $MARUTA_CONFIG: http on %s, want %s", p.HTTP, httpAddr)
	}
	probe := func(args ...string) (int, string) {
		cmd := exec.Command(marutaBin, append([]string{"healthcheck"}, args...)...)
		cmd.Env = append(os.Environ(), "MARUTA_CONFIG="+cfg, "MARUTA_HTTP_LISTEN=127.0.0.1:1")
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := probe(); code != 0 || out != "ok\n" {
		t.Errorf("healthcheck: exit %d %q", code, out)
	}
	if code, out := probe("-ready"); code != 0 || !strings.Contains(out, `"ready": true`) {
		t.Errorf("healthcheck -ready: exit %d %q", code, out)
	}
	p.stop(10 * time.Second)
	if code, out := probe(); code != 1 || !strings.Contains(out, "unhealthy") {
		t.Errorf("healthcheck of a stopped maruta: exit %d %q", code, out)
	}
}
