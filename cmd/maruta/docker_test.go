package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/testutil"
)

// The tests in this file run real containers of a real Docker daemon
// (testutil.StartDocker: Debian's docker.io, one daemon per test binary)
// with --log-driver fluentd against a maruta process on the embedded
// default (`maruta run` without -c: concat_partials, JSON parse, local
// Parquet lake), and read the lake back with DuckDB. Docker's driver sends
// one Message-mode request per line; in its default mode nothing is acked,
// and 10 s after a container exits it discards what it has not sent.

// dockerMaruta is a maruta process on the embedded default with its own
// data folder and ports, restartable on the same ones.
type dockerMaruta struct {
	t    *testing.T
	dir  string
	addr string // Forward listen address, for fluentd-address
	env  []string
	p    *proc
	// growing: the last waitEvents ended at its timeout with the count
	// still growing (maruta reads slower than Docker sent).
	growing bool
}

func startDockerMaruta(t *testing.T) *dockerMaruta {
	t.Helper()
	dir := t.TempDir()
	m := &dockerMaruta{t: t, dir: dir, addr: freeTCPPort(t)}
	m.env = []string{"MARUTA_LISTEN=" + m.addr, "MARUTA_HTTP_LISTEN=" + freeTCPPort(t),
		"MARUTA_DATA_DIR=" + filepath.Join(dir, "maruta-data")}
	m.start()
	return m
}

func (m *dockerMaruta) start() {
	m.t.Helper()
	m.p = startMarutaBin(m.t, plainMarutaBin(m.t), m.dir, m.env)
}

var (
	plainOnce sync.Once
	plainBin  string
	plainErr  error
)

// plainMarutaBin is the maruta binary the Docker tests run: marutaBin, or,
// when the tests run with -race, a build without the race detector (these
// tests assert that maruta keeps up with Docker, which a race-instrumented
// binary, several times slower, does not). MARUTA_DOCKER_TEST_BIN names
// another build instead: to check that a test fails against an older
// receive path.
func plainMarutaBin(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("MARUTA_DOCKER_TEST_BIN"); bin != "" {
		return bin
	}
	if !raceBuild {
		return marutaBin
	}
	plainOnce.Do(func() {
		plainBin = filepath.Join(filepath.Dir(marutaBin), "maruta-norace")
		out, err := exec.Command("go", "build", "-o", plainBin, ".").CombinedOutput()
		if err != nil {
			plainErr = fmt.Errorf("build maruta without -race: %v\n%s", err, out)
		}
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainBin
}

// events is maruta_forward_events_total of the running process.
func (m *dockerMaruta) events() float64 { return m.p.metric("maruta_forward_events_total") }

// lake is the DuckDB table expression over the whole local lake.
func (m *dockerMaruta) lake() string {
	return "read_parquet(" + testutil.SQLString(filepath.Join(m.dir, "maruta-data/lake/**/*.parquet")) +
		", hive_partitioning=true, union_by_name=true)"
}

// container is one `docker run` of a test.
type container struct {
	Name string
	Err  error // docker run or docker wait failed
	Exit string
}

// runContainers starts one container per name, each running script with
// the fluentd log driver pointed at addr (tag docker.<name>) and the extra
// docker-run arguments, all at once, and waits until every one exited or
// the timeout passed (then the rest are removed by force). The containers
// are removed when the test ends.
func runContainers(t *testing.T, d *testutil.Docker, addr string, names []string, extra []string, script func(i int) string, timeout time.Duration) []container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]container, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		out[i].Name = name
		t.Cleanup(func() { d.Command(context.Background(), "rm", "-f", name).Run() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"run", "-d", "--name", name, "--network", "none",
				"--log-driver", "fluentd", "--log-opt", "fluentd-address=" + addr,
				"--log-opt", "tag=docker.{{.Name}}"}, extra...)
			args = append(args, d.Image, "sh", "-c", script(i))
			if b, err := d.Command(ctx, args...).CombinedOutput(); err != nil {
				out[i].Err = fmt.Errorf("docker run: %v: %s", err, strings.TrimSpace(string(b)))
				return
			}
			b, err := d.Command(ctx, "wait", name).CombinedOutput()
			if err != nil {
				out[i].Err = fmt.Errorf("docker wait: %v: %s", err, strings.TrimSpace(string(b)))
				return
			}
			out[i].Exit = strings.TrimSpace(string(b))
		}()
	}
	wg.Wait()
	return out
}

// same is a script for runContainers that every container runs.
func same(script string) func(int) string { return func(int) string { return script } }

// containerNames returns n names unique to this run.
func containerNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, i)
	}
	return names
}

// waitEvents waits until maruta has received want events, or until the
// count stopped growing for quiet (Docker gives up 10 s after a
// container's exit) or the timeout passed. It returns the count; growing
// tells whether it still grew when the timeout passed.
func (m *dockerMaruta) waitEvents(want float64, quiet, timeout time.Duration) float64 {
	deadline := time.Now().Add(timeout)
	last, since := -1.0, time.Now()
	m.growing = false
	for {
		n := m.events()
		if n >= want || time.Since(since) > quiet {
			return n
		}
		if time.Now().After(deadline) {
			m.growing = n != last || time.Since(since) < time.Second
			return n
		}
		if n != last {
			last, since = n, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dockerDrops summarises what the daemon logged about lines it could not
// send: "Failed to log msg" per line, "Logger didn't exit in time" per
// container, and the fluent client's own complaints.
var failedMsg = regexp.MustCompile(`Failed to log msg \\"(.*?)\\" for logger fluentd: (.*?)"`)

func dockerDrops(log string) string {
	counts := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, "Failed to log msg"):
			reason := "?"
			if m := failedMsg.FindStringSubmatch(line); m != nil {
				reason = m[2]
			}
			counts["Failed to log msg ("+reason+")"]++
		case strings.Contains(line, "shim"), strings.Contains(line, "cleanup warnings"):
			// container clean-up chatter of containerd
		case strings.Contains(line, "level=error"), strings.Contains(line, "level=warning"):
			if m := logrusMsg.FindStringSubmatch(line); m != nil {
				counts[hexOrNumber.ReplaceAllString(m[1], "…")]++
			}
		case strings.HasPrefix(line, "["): // the fluent client's own lines
			counts[strings.TrimSpace(line[strings.Index(line, "]")+1:])]++
		}
	}
	if len(counts) == 0 {
		return "the daemon logged no error or warning"
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	if len(keys) > 8 {
		keys = keys[:8]
	}
	var b strings.Builder
	b.WriteString("the daemon logged:")
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %d× %s", counts[k], k)
	}
	return b.String()
}

var (
	logrusMsg   = regexp.MustCompile(`msg="((?:[^"\\]|\\.)*)"`)
	hexOrNumber = regexp.MustCompile(`[0-9a-f]{12,}|[0-9]+`)
)

// failedLines returns the lines the daemon logged as not sent
// ("Failed to log msg").
func failedLines(log string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		if m := failedMsg.FindStringSubmatch(line); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// seqCounts reads, per container, how many rows the lake holds, how many
// distinct log values, and the smallest and largest (as numbers).
type seqCount struct{ rows, distinct, min, max int }

func (m *dockerMaruta) seqCounts(db *testutil.DuckDB) map[string]seqCount {
	r := db.Query(m.t, "SELECT container_name AS name, count(*) AS n, count(DISTINCT log) AS d, "+
		"min(CAST(log AS BIGINT)) AS lo, max(CAST(log AS BIGINT)) AS hi FROM "+m.lake()+" GROUP BY 1")
	out := map[string]seqCount{}
	for _, row := range r.Maps() {
		num := func(k string) int { n, _ := strconv.Atoi(fmt.Sprint(row[k])); return n }
		out[strings.TrimPrefix(fmt.Sprint(row["name"]), "/")] = seqCount{num("n"), num("d"), num("lo"), num("hi")}
	}
	return out
}

// burst is what the containers of a burst print: lines numbered 1…lines
// (seq's short lines, or zero-padded to width bytes), then each container
// stays alive for stay before it exits.
type burst struct {
	containers, lines, width int
	stay                     time.Duration
	opts                     []string // --log-opt values besides address and tag
}

func (b burst) script() string {
	s := fmt.Sprintf("seq 1 %d", b.lines)
	if b.width > 0 {
		s = fmt.Sprintf("i=1; while [ $i -le %d ]; do printf '%%0%dd\\n' $i; i=$((i+1)); done", b.lines, b.width)
	}
	if b.stay > 0 {
		s += fmt.Sprintf("; sleep %g", b.stay.Seconds())
	}
	return s
}

// dockerBurst runs the burst against maruta on the embedded default and
// checks that every line is in the lake exactly once.
func dockerBurst(t *testing.T, b burst) {
	d := testutil.StartDocker(t)
	db := testutil.NewDuckDB(t)
	m := startDockerMaruta(t)
	logAt := d.LogOffset()
	var extra []string
	for _, o := range b.opts {
		extra = append(extra, "--log-opt", o)
	}
	start := time.Now()
	names := containerNames("burst", b.containers)
	res := runContainers(t, d, m.addr, names, extra, same(b.script()), 90*time.Second)
	ran := time.Since(start)
	want := float64(b.containers * b.lines)
	got := m.waitEvents(want, 12*time.Second, 60*time.Second)
	t.Logf("%d containers × %d lines (%s): exited after %s, maruta received %.0f events after %s",
		b.containers, b.lines, strings.Join(b.opts, " "), ran.Round(time.Millisecond), got, time.Since(start).Round(time.Millisecond))
	m.p.stop(60 * time.Second)
	for _, c := range res {
		if c.Err != nil {
			t.Errorf("container %s: %v", c.Name, c.Err)
		}
	}
	why := dockerDrops(d.LogSince(logAt))
	if m.growing {
		why = "maruta was still receiving when the wait ended (it reads slower than Docker sent); " + why
	}
	checkSeq(t, m.seqCounts(db), names, b.lines, why)
}

// checkSeq checks each container stored 1..lines once.
func checkSeq(t *testing.T, counts map[string]seqCount, names []string, lines int, why string) {
	t.Helper()
	bad, stored := 0, 0
	for _, n := range names {
		c := counts[n]
		stored += c.distinct
		if c.rows != lines || c.distinct != lines || c.min != 1 || c.max != lines {
			bad++
			if bad <= 3 {
				t.Errorf("container %s: %d rows, %d distinct lines of %d (range %d–%d)", n, c.rows, c.distinct, lines, c.min, c.max)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d containers incomplete: %d of %d lines stored; %s", bad, len(names), stored, lines*len(names), why)
	}
}

// TestDockerBurstDefault: 20 containers print as fast as they can with
// Docker's default log options (no ack, blocking). Every line must be
// stored once: a slow reader here blocks the containers, and what is
// still unsent 10 s after a container's exit is discarded by Docker.
// (20000 lines each: with fewer, everything fits in Docker's pipes and the
// loopback socket buffers, and even a reader that waits for an fsync per
// line gets it all, a minute late.)
func TestDockerBurstDefault(t *testing.T) { dockerBurst(t, burst{containers: 20, lines: 20000}) }

// TestDockerBurstAsync: 5 containers print 20000 lines of 500 bytes at
// once with fluentd-async=true, then live on for 5 s. The driver queues
// every line in memory (the container never waits) and one goroutine per
// container writes them, one request per line. At the container's exit
// Docker 20.10 closes the logger with ForceStopAsyncSend (set whenever
// fluentd-async is): whatever the queue still holds is discarded
// ("Discarding queued events"), whoever reads — so a container that exits
// right after its burst loses lines even to an instant reader, and a test of
// that shape fails on a busy machine for Docker's sake. Here the container
// lives on long enough for the driver to send its queue to a reader that
// keeps up; a reader that waits for an fsync per line (the receive path
// before issue 12) takes ~10 MB per connection far slower than that, the
// socket buffers hold 1–2 MB of it, and the rest is discarded at the exit
// (measured: 54,162 of 100,000 stored, while this one stores all by the
// containers' exit, at load 14).
func TestDockerBurstAsync(t *testing.T) {
	dockerBurst(t, burst{containers: 5, lines: 20000, width: 500, stay: 5 * time.Second, opts: []string{"fluentd-async=true"}})
}

// TestDockerBurstRequestAck: 20 containers print 200 lines of 1000 bytes
// with fluentd-request-ack=true: the driver writes one line and waits for
// its ack (sent after the fsync that covers it) before it reads the next
// from the container's pipe. 64 KiB of pipe (plus Docker's 16 KiB read
// buffer) hold under 100 such lines, so the container is paced by its acks
// and at its exit fewer than 100 lines wait for Docker's 10 s: robust on any
// disk that fsyncs in under 100 ms. (With short lines the pipe holds all of
// them at the exit, and the 10 s window carries lines × one fsync round:
// 2000 seq lines failed whenever the shared disk's fsync median rose over
// 5 ms.) The receive path before issue 12 passes this too: with one request
// in flight per connection it also answered in about one commit round
// (measured beside the current one at load 14: 300 seq lines per container
// in 13.8 s vs 12.5 s, both complete); what issue 12 changed for
// request-ack (ack latency ≤ 1.5× fsync) is measured by maruta bench.
func TestDockerBurstRequestAck(t *testing.T) {
	dockerBurst(t, burst{containers: 20, lines: 200, width: 1000, opts: []string{"fluentd-request-ack=true"}})
}

// longLine is what the container of TestDockerLongLines prints for a
// line of size bytes: "L" and the numbers 1, 2, 3, … without separators,
// cut to size, so a fragment out of place changes the bytes.
func longLine(size int) string {
	var b strings.Builder
	b.WriteString("L")
	for i := 1; b.Len() < size; i++ {
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()[:size]
}

// TestDockerLongLines: lines of 20 KiB, 100 KiB and 1 MiB (the default
// concat_partials max_size) arrive as 16 KiB partial messages and are
// stored as one row each, byte for byte what the container printed.
func TestDockerLongLines(t *testing.T) {
	d := testutil.StartDocker(t)
	db := testutil.NewDuckDB(t)
	m := startDockerMaruta(t)
	logAt := d.LogOffset()
	sizes := []int{20 << 10, 100 << 10, 1 << 20}
	var script strings.Builder
	fragments := 0
	for _, n := range sizes {
		fmt.Fprintf(&script, "{ printf L; seq 1 200000 | tr -d '\\n'; } | head -c %d; echo; ", n)
		fragments += (n + 16<<10 - 1) / (16 << 10)
	}
	script.WriteString("echo short")
	names := containerNames("long", 1)
	for _, c := range runContainers(t, d, m.addr, names, nil, same(script.String()), 60*time.Second) {
		if c.Err != nil {
			t.Fatal(c.Err)
		}
	}
	got := m.waitEvents(float64(fragments+1), 12*time.Second, 60*time.Second)
	m.p.stop(60 * time.Second)
	rows := db.Query(t, "SELECT length(log) AS len, md5(log) AS sum, left(log, 40) AS head FROM "+m.lake()+" ORDER BY len").Maps()
	want := []string{fmt.Sprintf("5 %x", md5.Sum([]byte("short")))}
	for _, n := range sizes {
		sum := md5.Sum([]byte(longLine(n)))
		want = append(want, fmt.Sprintf("%d %s", n, hex.EncodeToString(sum[:])))
	}
	var have []string
	for _, r := range rows {
		have = append(have, fmt.Sprintf("%v %v", r["len"], r["sum"]))
	}
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Errorf("stored lines (length md5), %0.f events received:\n%s\nwant:\n%s\n%s\nmaruta log:\n%s",
			got, strings.Join(have, "\n"), strings.Join(want, "\n"), dockerDrops(d.LogSince(logAt)), m.p.logs)
	}
}

// TestDockerStdoutStderr: the source column tells the streams apart.
func TestDockerStdoutStderr(t *testing.T) {
	d := testutil.StartDocker(t)
	db := testutil.NewDuckDB(t)
	m := startDockerMaruta(t)
	names := containerNames("streams", 1)
	script := `for i in $(seq 1 100); do echo out$i; echo err$i >&2; done`
	for _, c := range runContainers(t, d, m.addr, names, nil, same(script), 60*time.Second) {
		if c.Err != nil {
			t.Fatal(c.Err)
		}
	}
	m.waitEvents(200, 12*time.Second, 60*time.Second)
	m.p.stop(60 * time.Second)
	rows := db.Query(t, "SELECT source, count(*) AS n, count(DISTINCT log) AS d, min(left(log, 3)) AS lo, max(left(log, 3)) AS hi FROM "+
		m.lake()+" GROUP BY source ORDER BY source").Maps()
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%v:%v:%v:%v:%v", r["source"], r["n"], r["d"], r["lo"], r["hi"]))
	}
	if want := "stderr:100:100:err:err stdout:100:100:out:out"; strings.Join(got, " ") != want {
		t.Errorf("per source (source:rows:distinct:prefixes) %v, want %s", got, want)
	}
}

// TestDockerLabelsEnv: --log-opt labels=… and env=… add the named labels
// and environment variables of the container to every record; they become
// columns (lower-cased, as every column name of the lake). Labels and
// variables not named stay out. A JSON line's own source and
// container_name do not replace Docker's (they become app_source,
// app_container_name).
func TestDockerLabelsEnv(t *testing.T) {
	d := testutil.StartDocker(t)
	db := testutil.NewDuckDB(t)
	m := startDockerMaruta(t)
	names := containerNames("labels", 1)
	extra := []string{"--label", "team=payments", "--label", "tier=web", "--label", "unlisted=x",
		"--env", "APP_ENV=prod", "--env", "OTHER=y",
		"--log-opt", "labels=team,tier", "--log-opt", "env=APP_ENV"}
	for _, c := range runContainers(t, d, m.addr, names, extra, same(`echo '{"msg":"hello","source":"app","container_name":"x"}'; echo plain`), 60*time.Second) {
		if c.Err != nil {
			t.Fatal(c.Err)
		}
	}
	m.waitEvents(2, 12*time.Second, 60*time.Second)
	m.p.stop(60 * time.Second)
	r := db.Query(t, "SELECT * FROM "+m.lake()+" ORDER BY msg NULLS LAST")
	cols := strings.Join(r.ColumnNames(), ",")
	for _, c := range []string{"team", "tier", "app_env", "container_id", "container_name", "source"} {
		if !strings.Contains(","+cols+",", ","+c+",") {
			t.Errorf("no column %s in %s", c, cols)
		}
	}
	for _, c := range []string{"unlisted", "other"} {
		if strings.Contains(","+cols+",", ","+c+",") {
			t.Errorf("column %s was not asked for: %s", c, cols)
		}
	}
	rows := r.Maps()
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2: %v", len(rows), rows)
	}
	for _, row := range rows {
		if row["team"] != "payments" || row["tier"] != "web" || row["app_env"] != "prod" || row["container_name"] != "/"+names[0] {
			t.Errorf("row %v", row)
		}
	}
	// Docker's source and container_name win over the JSON line's.
	if rows[0]["msg"] != "hello" || rows[0]["source"] != "stdout" || rows[0]["app_source"] != "app" ||
		rows[0]["app_container_name"] != "x" || rows[1]["log"] != "plain" {
		t.Errorf("rows %v", rows)
	}
}

// interruptedBurst runs the containers (each printing lines lines), calls
// interrupt (which restarts maruta) once maruta has received at events,
// waits for the containers and the restarted maruta's drain, and stops it.
func (m *dockerMaruta) interruptedBurst(d *testutil.Docker, names, extra []string, script func(int) string, at int, interrupt func()) {
	t := m.t
	t.Helper()
	done := make(chan []container, 1)
	go func() { done <- runContainers(t, d, m.addr, names, extra, script, 120*time.Second) }()
	testutil.WaitUntil(t, 60*time.Second, fmt.Sprintf("%d events", at), func() bool { return m.events() >= float64(at) })
	interrupt()
	res := <-done
	m.waitEvents(math.Inf(1), 12*time.Second, 60*time.Second)
	m.p.stop(60 * time.Second)
	for _, c := range res {
		if c.Err != nil {
			t.Errorf("container %s: %v", c.Name, c.Err)
		}
	}
}

// TestDockerKill9RequestAck: maruta is killed with SIGKILL in the middle of
// a request-ack burst and started again on the same data folder and port.
// Docker's driver resends what was not acked (it retries the connection,
// with the same chunk id), so every line must be stored, and once: a line
// stored but not acked before the kill is recognised by the dedup index the
// restart rebuilt.
func TestDockerKill9RequestAck(t *testing.T) {
	d := testutil.StartDocker(t)
	db := testutil.NewDuckDB(t)
	m := startDockerMaruta(t)
	logAt := d.LogOffset()
	const containers, lines = 4, 1500
	names := containerNames("kill9", containers)
	m.interruptedBurst(d, names, []string{"--log-opt", "fluentd-request-ack=true"}, same(fmt.Sprintf("seq 1 %d", lines)),
		containers*lines/3, func() { m.p.kill(); m.start() })
	counts := m.seqCounts(db)
	dups := 0
	for _, n := range names {
		c := counts[n]
		dups += c.rows - c.distinct
		counts[n] = seqCount{c.distinct, c.distinct, c.min, c.max} // duplicates are reported above
	}
	t.Logf("duplicates after kill -9: %d", dups)
	if dups > 0 {
		t.Errorf("%d lines stored twice after kill -9", dups)
	}
	checkSeq(t, counts, names, lines, dockerDrops(d.LogSince(logAt)))
}

// TestDockerSIGTERMDefaultBurst: SIGTERM in the middle of a burst with
// Docker's default options. maruta must store what Docker wrote into its
// connections before it stops reading (it keeps reading until they are
// quiet); after a restart the containers go on. Every line Docker did not
// log as failed ("Failed to log msg") must be in the lake. Docker writes
// far ahead of a slow reader: loopback socket buffers hold megabytes per
// connection, so a reader that stops at once loses lines Docker counts as
// sent (and logs nothing about).
func TestDockerSIGTERMDefaultBurst(t *testing.T) {
	d := testutil.StartDocker(t)
	db := testutil.NewDuckDB(t)
	m := startDockerMaruta(t)
	logAt := d.LogOffset()
	const containers, lines = 10, 20000
	names := containerNames("term", containers)
	// Container i prints i*10^6+1 … i*10^6+lines: a line names its container.
	m.interruptedBurst(d, names, nil, func(i int) string { return fmt.Sprintf("seq %d %d", (i+1)*1000000+1, (i+1)*1000000+lines) },
		containers*lines/4, func() { m.p.stop(60 * time.Second); m.start() })
	log := d.LogSince(logAt)
	failed := failedLines(log)
	r := db.Query(t, "SELECT log FROM "+m.lake())
	stored := map[string]bool{}
	for _, row := range r.Rows {
		stored[fmt.Sprint(row[0])] = true
	}
	lost := 0
	for i := range names {
		for j := 1; j <= lines; j++ {
			s := strconv.Itoa((i+1)*1000000 + j)
			if !stored[s] && !failed[s] {
				lost++
				if lost <= 3 {
					t.Errorf("container %s: line %s was sent without error and is not in the lake", names[i], s)
				}
			}
		}
	}
	failedTotal := len(failed)
	t.Logf("%d rows stored, %d lines logged as failed by Docker", len(r.Rows), failedTotal)
	if lost > 0 {
		t.Errorf("%d lines Docker sent without error are not in the lake; %s", lost, dockerDrops(log))
	}
}

// TestDockerAsyncBeforeMaruta: a container with fluentd-async=true starts
// while nothing listens (the driver connects in the background); its lines
// arrive once maruta starts.
func TestDockerAsyncBeforeMaruta(t *testing.T) {
	d := testutil.StartDocker(t)
	db := testutil.NewDuckDB(t)
	dir := t.TempDir()
	m := &dockerMaruta{t: t, dir: dir, addr: freeTCPPort(t)}
	m.env = []string{"MARUTA_LISTEN=" + m.addr, "MARUTA_HTTP_LISTEN=" + freeTCPPort(t),
		"MARUTA_DATA_DIR=" + filepath.Join(dir, "maruta-data")}
	logAt := d.LogOffset()
	names := containerNames("early", 1)
	done := make(chan []container, 1)
	go func() {
		done <- runContainers(t, d, m.addr, names, []string{"--log-opt", "fluentd-async=true"},
			same("seq 1 100; while [ ! -e /tmp/stop ]; do sleep 0.1; done"), 90*time.Second)
	}()
	// Docker 20.10 keeps a local copy for `docker logs` beside the fluentd
	// driver ("dual logging"): it shows when the container has printed.
	testutil.WaitUntil(t, 30*time.Second, "the container to print its 100 lines", func() bool {
		out, _ := d.Command(context.Background(), "logs", names[0]).Output()
		return strings.HasSuffix(string(out), "\n100\n")
	})
	m.start()
	got := m.waitEvents(100, 30*time.Second, 45*time.Second)
	d.Run(t, "exec", names[0], "sh", "-c", ": > /tmp/stop")
	res := <-done
	if res[0].Err != nil {
		t.Error(res[0].Err)
	}
	m.p.stop(60 * time.Second)
	counts := m.seqCounts(db)
	if got < 100 {
		t.Logf("maruta received %.0f events", got)
	}
	checkSeq(t, counts, names, 100, dockerDrops(d.LogSince(logAt)))
}
