package examples_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/buffer"
	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/router"
	"github.com/marutalog/maruta/sinks"
)

// family is a metric family maruta exposes: its type (when known) and
// every label name its series carry.
type family struct {
	typ    string
	labels map[string]bool
}

type knownMetrics map[string]*family

func (k knownMetrics) add(name, typ string, labels ...string) {
	f := k[name]
	if f == nil {
		f = &family{labels: map[string]bool{}}
		k[name] = f
	}
	if typ != "" && typ != "untyped" {
		f.typ = typ
	}
	for _, l := range labels {
		f.labels[l] = true
	}
}

// descRecorder is a prometheus.Registerer that keeps every descriptor
// registered on it (variable labels included, which a scrape shows only
// once a series exists) and registers the collector on a real registry,
// whose Gather tells the types of the series that exist.
type descRecorder struct {
	descs map[string]*prometheus.Desc
	reg   *prometheus.Registry
}

func (r *descRecorder) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		r.descs[d.String()] = d
	}
	return nil
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r *descRecorder) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// descCollector emits one series with empty label values per descriptor,
// so a registry's Gather reveals names and label names through public API.
type descCollector struct{ descs []*prometheus.Desc }

func (c descCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c descCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.descs {
		for n := 0; n <= 8; n++ {
			if m, err := prometheus.NewConstMetric(d, prometheus.UntypedValue, 0, make([]string, n)...); err == nil {
				ch <- m
				break
			}
		}
	}
}

// metricsConfig exercises every source option, step type and output type
// whose metrics a dashboard might show.
const metricsConfig = `
data_dir: %s
http: {listen: "127.0.0.1:0"}
sources:
  - type: forward
    name: in
    listen: 127.0.0.1:0
    dedup: {window: 1m}
pipeline:
  - {type: concat_partials, name: partials}
  - {type: parse, name: json_log, key: log, format: json, reserve_data: true, remove_key_name_field: true}
  - type: rewrite_tag
    name: split
    match: app.split
    rules: [{key: kind, pattern: '^(\w+)$', tag: 'split.$1'}]
  - {type: record, name: host, set: [{key: host, value: "${hostname}"}]}
  - {type: grep, name: no_trace, exclude: [{key: level, pattern: ^trace$}]}
outputs:
  - {type: "null", name: discard, match: discard.**}
  - type: copy
    name: all
    match: "**"
    stores:
      - {type: file, name: lake, buffer: {flush_interval: 1s, timekey_wait: 1s}}
      - {type: stdout, name: console}
%s`

// componentMetrics builds each component the way cmd/maruta wires them,
// on a registerer that records descriptors, and adds what they register.
func componentMetrics(t *testing.T, known knownMetrics) {
	dir := t.TempDir()
	extra := `  - type: s3
    name: bucket
    match: never.**
    bucket: b
    region: us-east-1
    endpoint: http://127.0.0.1:9
    access_key_id: k
    secret_access_key: s
  - type: forward
    name: upstream
    match: never.**
    servers: [{host: 127.0.0.1, port: 9}]
  - {type: cloudwatch_logs, name: cwl, match: never.**, region: us-east-1, endpoint: "http://127.0.0.1:9", access_key_id: k, secret_access_key: s, log_group_name: g, log_stream_name: s}
  - {type: syslog, name: papertrail, match: never.**, host: 127.0.0.1, port: 9}
  - {type: treasure_data, name: td, match: never.**, apikey: k, endpoint: "http://127.0.0.1:9", api_endpoint: "http://127.0.0.1:9", database: db1, table: tb1}
`
	cfg, err := config.Parse("metrics.yaml", []byte(fmt.Sprintf(metricsConfig, dir, extra)), lookupIn(nil))
	if err != nil {
		t.Fatal(err)
	}
	rec := &descRecorder{descs: map[string]*prometheus.Desc{}, reg: prometheus.NewRegistry()}
	log := slog.New(slog.DiscardHandler)
	outputs := map[string]event.Consumer{}
	var bufs []*buffer.Buffer
	var sks []delivery.Sink
	defer func() {
		for _, b := range bufs {
			b.Close()
		}
		for _, s := range sks {
			s.Close()
		}
	}()
	for _, o := range cfg.LeafOutputs() {
		opts := sinks.Options{Output: o, Node: "test", DataDir: cfg.DataDir, Logger: log, Registerer: rec}
		switch {
		case o.Stdout != nil:
			outputs[o.Name] = sinks.NewStdout(io.Discard, opts)
			continue
		case o.Null != nil:
			outputs[o.Name] = sinks.NewNull(opts)
			continue
		}
		sk, err := sinks.New(opts)
		if err != nil {
			// An output type without a sink here (yet) registers nothing,
			// so the dashboard cannot use its metrics either.
			t.Logf("output %s (%s): %v", o.Name, o.Type, err)
			outputs[o.Name] = sinks.NewNull(sinks.Options{Output: o, Logger: log})
			continue
		}
		sks = append(sks, sk)
		b, err := buffer.New(buffer.Options{Name: o.Name, Config: *o.BufferConfig(), Sink: sk, Node: "test",
			DeadLetterDir: filepath.Join(dir, "deadletter", o.Name), Logger: log, Registerer: rec})
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
		outputs[o.Name] = b
	}
	r, err := router.New(router.Options{Config: cfg, Outputs: outputs, Hostname: "h", Logger: log, Registerer: rec})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := forward.NewServer(forward.ServerOptions{Config: cfg.Sources[0], Next: r, Logger: log, Registerer: rec})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()

	real, err := rec.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range real {
		typ := strings.ToLower(mf.GetType().String())
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName())
			}
			known.add(mf.GetName(), typ, labels...)
		}
	}
	descs := make([]*prometheus.Desc, 0, len(rec.descs))
	for _, d := range rec.descs {
		descs = append(descs, d)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(descCollector{descs}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName())
			}
			known.add(mf.GetName(), "", labels...)
		}
	}
}

// scrapeMetrics runs the built binary, sends Docker-shaped events through
// it until a chunk is delivered, and adds what /metrics shows (the process
// and Go collectors and every instantiated series, with types).
func scrapeMetrics(t *testing.T, known knownMetrics) {
	dir := t.TempDir()
	file := filepath.Join(dir, "maruta.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(metricsConfig, filepath.Join(dir, "data"), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(marutaBin, "run", "-c", file, "-log-format", "json")
	cmd.Env = cleanEnv(nil)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	started := make(chan map[string]any, 1)
	var logs strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "maruta started" {
				started <- m
			}
		}
	}()
	go func() { <-logDone; exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("maruta did not stop on SIGTERM within 20s")
		}
	}
	defer stop()

	var fwdAddr, httpAddr string
	select {
	case m := <-started:
		if l, ok := m["listen"].([]any); ok && len(l) > 0 {
			fwdAddr, _ = l[0].(string)
		}
		httpAddr, _ = m["http"].(string)
	case <-time.After(20 * time.Second):
		t.Fatalf("maruta did not start within 20s")
	}
	host, portS, err := net.SplitHostPort(fwdAddr)
	if err != nil {
		t.Fatalf("forward address %q: %v", fwdAddr, err)
	}
	p, _ := strconv.Atoi(portS)
	f, err := fluent.New(fluent.Config{FluentHost: host, FluentPort: p, FluentNetwork: "tcp",
		RequestAck: true, SubSecondPrecision: true, Timeout: 5 * time.Second, MaxRetry: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i, tag := range []string{"app.web", "app.split", "discard.x", "app.web"} {
		rec := map[string]string{"container_name": "/web", "source": "stdout",
			"log": fmt.Sprintf(`{"level":"info","kind":"order","n":%d}`, i)}
		if err := f.Post(tag, rec); err != nil {
			t.Fatal(err)
		}
	}
	f.Post("app.web", map[string]string{"log": "not json"})
	f.Close()

	client := &http.Client{Timeout: 5 * time.Second}
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if regexp.MustCompile(`(?m)^maruta_buffer_delivered_events_total\{output="lake"\} [1-9]`).MatchString(body) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("no chunk delivered within 30s; /metrics:\n%s\nlogs:\n%s", body, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	parseExposition(t, body, known)
}

var sampleLineRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? `)

// parseExposition reads the Prometheus text format.
func parseExposition(t *testing.T, body string, known knownMetrics) {
	types := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) == 4 {
				types[f[2]] = f[3]
				known.add(f[2], f[3])
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		m := sampleLineRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected /metrics line %q", line)
		}
		name := m[1]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suf); base != name && (types[base] == "histogram" || types[base] == "summary") {
				name = base
			}
		}
		var labels []string
		for _, lm := range regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`).FindAllStringSubmatch(m[3], -1) {
			if lm[1] != "le" && lm[1] != "quantile" {
				labels = append(labels, lm[1])
			}
		}
		known.add(name, "", labels...)
	}
}

// ---- PromQL references ----

// selector is a metric name and the label names matched on it.
type selector struct {
	metric string
	labels []string
}

// promRefs is what one PromQL expression refers to.
type promRefs struct {
	selectors []selector
	grouping  []string // labels of by, without, on, ignoring, group_left/right
}

var promKeywords = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
	"limitk": true, "limit_ratio": true, "and": true, "or": true, "unless": true, "offset": true,
	"bool": true, "atan2": true, "inf": true, "nan": true,
}

var promGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// parsePromQL finds the metric names, their label matchers and the
// grouping labels of a PromQL expression (Grafana variables allowed in
// strings and ranges). It is not a full parser; it is strict enough to
// reject what it does not understand.
func parsePromQL(expr string) (promRefs, error) {
	var r promRefs
	i := 0
	lastMetric := -1 // index in r.selectors of a metric name just read
	skipSpace := func() {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
	}
	readString := func() error {
		q := expr[i]
		i++
		for i < len(expr) && expr[i] != q {
			if expr[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(expr) {
			return fmt.Errorf("unterminated string in %q", expr)
		}
		i++
		return nil
	}
	readIdent := func() string {
		s := i
		for i < len(expr) && isIdent(expr[i]) {
			i++
		}
		return expr[s:i]
	}
	for {
		skipSpace()
		if i >= len(expr) {
			return r, nil
		}
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			if err := readString(); err != nil {
				return r, err
			}
			lastMetric = -1
		case c == '[':
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return r, fmt.Errorf("unterminated range in %q", expr)
			}
			i += j + 1
		case c == '{':
			if lastMetric < 0 {
				return r, fmt.Errorf("a selector without a metric name in %q", expr)
			}
			i++
			for {
				skipSpace()
				if i < len(expr) && expr[i] == '}' {
					i++
					break
				}
				if i >= len(expr) || !isIdentStart(expr[i]) {
					return r, fmt.Errorf("bad label matcher in %q", expr)
				}
				r.selectors[lastMetric].labels = append(r.selectors[lastMetric].labels, readIdent())
				skipSpace()
				for i < len(expr) && strings.IndexByte("=!~", expr[i]) >= 0 {
					i++
				}
				skipSpace()
				if i >= len(expr) || expr[i] != '"' {
					return r, fmt.Errorf("bad label matcher value in %q", expr)
				}
				if err := readString(); err != nil {
					return r, err
				}
				skipSpace()
				if i < len(expr) && expr[i] == ',' {
					i++
				}
			}
			lastMetric = -1
		case c == '$':
			i++
			readIdent()
			lastMetric = -1
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
			lastMetric = -1
		case isIdentStart(c):
			id := readIdent()
			skipSpace()
			next := byte(0)
			if i < len(expr) {
				next = expr[i]
			}
			switch {
			case promGrouping[id]:
				lastMetric = -1
				if next != '(' {
					continue
				}
				end := strings.IndexByte(expr[i:], ')')
				if end < 0 {
					return r, fmt.Errorf("unterminated %s ( in %q", id, expr)
				}
				for _, l := range strings.Split(expr[i+1:i+end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						r.grouping = append(r.grouping, l)
					}
				}
				i += end + 1
			case next == '(' || promKeywords[id]:
				lastMetric = -1
			default:
				r.selectors = append(r.selectors, selector{metric: id})
				lastMetric = len(r.selectors) - 1
			}
		default:
			i++
			lastMetric = -1
		}
	}
}

// scrapeLabels are added by Prometheus to every series it scrapes.
var scrapeLabels = map[string]bool{"instance": true, "job": true}

// checkQuery checks that expr refers only to metrics and labels maruta has;
// legend is a Grafana legendFormat whose {{label}} must exist too.
func checkQuery(known knownMetrics, expr, legend string) []string {
	var problems []string
	refs, err := parsePromQL(expr)
	if err != nil {
		return []string{err.Error()}
	}
	if len(refs.selectors) == 0 {
		return []string{fmt.Sprintf("no metric in %q", expr)}
	}
	all := map[string]bool{}
	for l := range scrapeLabels {
		all[l] = true
	}
	for _, s := range refs.selectors {
		name, extra := s.metric, ""
		f := known[name]
		if f == nil {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				base := strings.TrimSuffix(name, suf)
				if bf := known[base]; base != name && bf != nil && (bf.typ == "histogram" || bf.typ == "summary") {
					f = bf
					if suf == "_bucket" {
						extra = "le"
					}
				}
			}
		}
		if f == nil {
			problems = append(problems, fmt.Sprintf("metric %s is not registered by maruta (in %q)", name, expr))
			continue
		}
		allowed := func(l string) bool { return f.labels[l] || scrapeLabels[l] || l == extra }
		for l := range f.labels {
			all[l] = true
		}
		if extra != "" {
			all[extra] = true
		}
		for _, l := range s.labels {
			if !allowed(l) {
				problems = append(problems, fmt.Sprintf("metric %s has no label %s (it has %v) in %q", name, l, keys(f.labels), expr))
			}
		}
	}
	for _, l := range refs.grouping {
		if !all[l] {
			problems = append(problems, fmt.Sprintf("grouping label %s is on none of the metrics of %q", l, expr))
		}
	}
	for _, m := range regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`).FindAllStringSubmatch(legend, -1) {
		if !all[m[1]] {
			problems = append(problems, fmt.Sprintf("legend %q uses label %s, which %q does not have", legend, m[1], expr))
		}
	}
	return problems
}

func TestPromQLChecker(t *testing.T) {
	known := knownMetrics{}
	known.add("maruta_x_total", "counter", "output")
	known.add("maruta_d_seconds", "histogram", "output")
	for _, tc := range []struct {
		expr, legend string
		ok           bool
	}{
		{`sum by (output) (rate(maruta_x_total{instance=~"$instance", output=~"$output"}[$__rate_interval]))`, "{{output}}", true},
		{`histogram_quantile(0.99, sum by (le, output) (rate(maruta_d_seconds_bucket{output="a"}[5m])))`, "p99 {{output}}", true},
		{`maruta_x_total / maruta_d_seconds_count > 0`, "", true},
		{`rate(maruta_y_total[1m])`, "", false},
		{`maruta_x_total{kind="a"}`, "", false},
		{`sum by (kind) (maruta_x_total)`, "", false},
		{`maruta_x_total`, "{{kind}}", false},
		{`maruta_x_total_bucket`, "", false},
		{`{output="a"}`, "", false},
	} {
		got := checkQuery(known, tc.expr, tc.legend)
		if (len(got) == 0) != tc.ok {
			t.Errorf("%q: problems %v, want ok=%v", tc.expr, got, tc.ok)
		}
	}
}

// dashboardQueries returns every PromQL query of a Grafana dashboard with
// its legend: panel targets (in rows too) and query variables.
func dashboardQueries(t *testing.T, dash map[string]any) (queries [][2]string, datasources []any) {
	var walkPanels func(ps []any)
	walkPanels = func(ps []any) {
		for _, p := range ps {
			pm, _ := p.(map[string]any)
			if pm["type"] != "row" {
				datasources = append(datasources, pm["datasource"])
			}
			targets, _ := pm["targets"].([]any)
			for _, tg := range targets {
				tm, _ := tg.(map[string]any)
				expr, _ := tm["expr"].(string)
				legend, _ := tm["legendFormat"].(string)
				if expr == "" {
					t.Errorf("panel %v: a target without expr", pm["title"])
				}
				queries = append(queries, [2]string{expr, legend})
				datasources = append(datasources, tm["datasource"])
			}
			if sub, ok := pm["panels"].([]any); ok {
				walkPanels(sub)
			}
		}
	}
	panels, _ := dash["panels"].([]any)
	walkPanels(panels)
	return queries, datasources
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// TestDashboardUsesRealMetrics checks every query of the Grafana dashboard
// against the metrics maruta registers: those of its components built the
// way cmd/maruta builds them, and those the running binary serves.
func TestDashboardUsesRealMetrics(t *testing.T) {
	known := knownMetrics{}
	componentMetrics(t, known)
	scrapeMetrics(t, known)
	for _, name := range []string{"maruta_forward_events_total", "maruta_buffer_dead_lettered_chunks_total", "maruta_sink_upload_duration_seconds", "maruta_process_resident_memory_bytes"} {
		if known[name] == nil {
			t.Fatalf("metric %s not found: the metric discovery is broken", name)
		}
	}
	if f := known["maruta_buffer_flush_duration_seconds"]; f == nil || f.typ != "histogram" {
		t.Fatalf("maruta_buffer_flush_duration_seconds is not a histogram in the scrape: %+v", f)
	}

	const file = "grafana/maruta-dashboard.json"
	var dash map[string]any
	if err := json.Unmarshal(readFile(t, file), &dash); err != nil {
		t.Fatal(err)
	}
	queries, datasources := dashboardQueries(t, dash)

	// The data source is a variable.
	tmpl, _ := dash["templating"].(map[string]any)
	vars, _ := tmpl["list"].([]any)
	dsVar := ""
	for _, v := range vars {
		vm, _ := v.(map[string]any)
		switch vm["type"] {
		case "datasource":
			if vm["query"] == "prometheus" {
				dsVar = "${" + vm["name"].(string) + "}"
			}
		case "query":
			q := ""
			switch x := vm["query"].(type) {
			case string:
				q = x
			case map[string]any:
				q, _ = x["query"].(string)
			}
			m := labelValuesRE.FindStringSubmatch(q)
			if m == nil {
				t.Errorf("%s: variable %v: query %q is not label_values(selector, label)", file, vm["name"], q)
				continue
			}
			for _, p := range checkQuery(known, m[1], "{{"+m[2]+"}}") {
				t.Errorf("%s: variable %v: %s", file, vm["name"], p)
			}
			datasources = append(datasources, vm["datasource"])
		}
	}
	if dsVar == "" {
		t.Fatalf("%s: no Prometheus data source variable", file)
	}
	for _, ds := range datasources {
		m, _ := ds.(map[string]any)
		if m["uid"] != dsVar {
			t.Errorf("%s: data source %v, want uid %s", file, ds, dsVar)
		}
	}

	used := map[string]bool{}
	for _, q := range queries {
		for _, p := range checkQuery(known, q[0], q[1]) {
			t.Errorf("%s: %s", file, p)
		}
		refs, _ := parsePromQL(q[0])
		for _, s := range refs.selectors {
			used[s.metric] = true
		}
	}
	if len(queries) < 30 || len(used) < 30 {
		t.Errorf("%s: %d queries over %d metrics; the dashboard (or its parsing) lost panels", file, len(queries), len(used))
	}
	// What an operator must see: ingest, acks, errors, buffer state and age,
	// flushes, retries, dead letters, drops, sinks, routing failures.
	for _, want := range []string{
		"maruta_forward_events_total", "maruta_forward_acks_total", "maruta_forward_errors_total",
		"maruta_buffer_bytes", "maruta_buffer_chunks", "maruta_buffer_oldest_event_age_seconds",
		"maruta_buffer_flush_duration_seconds_bucket", "maruta_buffer_retries_total",
		"maruta_buffer_dead_lettered_chunks_total", "maruta_buffer_dropped_events_total",
		"maruta_sink_objects_total", "maruta_sink_bytes_total", "maruta_sink_upload_duration_seconds_bucket",
		"maruta_router_unroutable_events_total", "maruta_router_parse_failures_total", "maruta_router_parse_kept_total",
	} {
		if !used[want] {
			t.Errorf("%s: no panel shows %s", file, want)
		}
	}
	var unused []string
	for name := range known {
		if strings.HasPrefix(name, "maruta_") && !strings.HasPrefix(name, "maruta_process_") && !used[name] && !used[name+"_bucket"] && !used[name+"_count"] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	t.Logf("maruta metrics not on the dashboard: %v", unused)
}

// TestDashboardLossIsLoss: the "Lost or set aside" panel adds up what was
// lost or set aside — buffer drops, dead letters, router drops — but not
// what grep steps filtered out on purpose.
func TestDashboardLossIsLoss(t *testing.T) {
	var dash map[string]any
	if err := json.Unmarshal(readFile(t, "grafana/maruta-dashboard.json"), &dash); err != nil {
		t.Fatal(err)
	}
	panels, _ := dash["panels"].([]any)
	found := false
	for _, p := range panels {
		pm, _ := p.(map[string]any)
		if title, _ := pm["title"].(string); !strings.HasPrefix(title, "Lost or set aside") {
			continue
		}
		found = true
		q, _ := dashboardQueries(t, map[string]any{"panels": []any{pm}})
		var exprs []string
		for _, e := range q {
			exprs = append(exprs, e[0])
		}
		all := strings.Join(exprs, " ")
		for _, m := range []string{"maruta_buffer_dropped_events_total", "maruta_buffer_dead_lettered_events_total", "maruta_router_dropped_events_total"} {
			if !strings.Contains(all, m) {
				t.Errorf("the loss panel does not count %s: %s", m, all)
			}
		}
		for _, sel := range regexp.MustCompile(`maruta_router_dropped_events_total\{[^}]*\}`).FindAllString(all, -1) {
			if !strings.Contains(sel, `reason!="grep"`) {
				t.Errorf("the loss panel counts grep's filtering as loss: %s", sel)
			}
		}
	}
	if !found {
		t.Fatal(`no panel "Lost or set aside"`)
	}
}
