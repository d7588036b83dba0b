package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/layout"
	"github.com/marutalog/maruta/sinks/sinktest"
)

// s3Out makes an s3 output for srv with extra YAML keys.
func s3Out(t *testing.T, srv *tu.S3Server, dataDir, bucket, extra string) (*config.Config, *config.Output) {
	t.Helper()
	return sinktest.Output(t, dataDir, fmt.Sprintf(`  - type: s3
    name: s3lake
    bucket: %s
    endpoint: %s
    access_key_id: %s
    secret_access_key: %s
    timeout: 20s
%s`, bucket, srv.Endpoint, srv.AccessKey, srv.SecretKey, extra))
}

// s3Env is an s3 output (with extra YAML keys) writing to bucket on a
// fresh S3 server that has the bucket "logs".
type s3Env struct {
	srv  *tu.S3Server
	dir  string
	reg  *prometheus.Registry
	out  *config.Output
	sink delivery.Sink
}

func newS3Env(t *testing.T, bucket, extra string) *s3Env {
	t.Helper()
	e := &s3Env{srv: tu.StartS3(t), dir: t.TempDir(), reg: prometheus.NewRegistry()}
	e.srv.CreateBucket(t, "logs")
	_, e.out = s3Out(t, e.srv, e.dir, bucket, extra)
	e.sink = newS3(t, e.out, e.dir, e.reg)
	return e
}

func newS3(t *testing.T, out *config.Output, dataDir string, reg prometheus.Registerer) delivery.Sink {
	t.Helper()
	s, err := New(Options{Output: out, Node: "node-1", DataDir: dataDir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dockerChunk(t testing.TB, id, path string, n int, raw bool) *sinktest.Chunk {
	g := sinktest.NewDockerGen(uint64(len(id)), 8, slice13, raw)
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: id, Output: "s3lake", Path: layout.TagResolver(path)("docker.shop"), Tag: "docker.shop", Slice: slice13, Created: slice13}}
	for i := 0; i < n; i++ {
		c.Events = append(c.Events, docker(t, g, i))
	}
	return c
}

func TestS3UploadReadByDuckDB(t *testing.T) {
	e := newS3Env(t, "logs", "    path: lake/${tag}/dt=%Y-%m-%d/hour=%H/\n    storage_class: STANDARD\n")
	srv, dir, reg, out, s := e.srv, e.dir, e.reg, e.out, e.sink
	db := tu.NewDuckDB(t)
	c := dockerChunk(t, "c1", out.S3.Path, 2000, false)
	if err := s.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	objs := srv.Objects(t, "logs", "")
	if len(objs) != 1 || objs[0].Key != "lake/docker.shop/dt=2026-11-22/hour=13/node-1-c1.parquet" {
		t.Fatalf("objects %v", objs)
	}
	local := t.TempDir()
	srv.Download(t, "logs", "", local)
	r := db.Query(t, "SELECT count(*) AS n, count(DISTINCT container_name) AS c, min(epoch_ms(time))::VARCHAR AS t0, any_value(dt)::VARCHAR AS dt, any_value(hour) AS h FROM read_parquet("+
		tu.SQLString(local+"/**/*.parquet")+", hive_partitioning=true)").Maps()[0]
	if fmt.Sprint(r["n"]) != "2000" || fmt.Sprint(r["c"]) != "8" || r["t0"] != fmt.Sprint(slice13.UnixMilli()) || r["dt"] != "2026-11-22" || fmt.Sprint(r["h"]) != "13" {
		t.Errorf("read back: %v", r)
	}
	if n := counter(t, reg, "maruta_sink_objects_total"); n != 1 {
		t.Errorf("objects %v", n)
	}
	if n := counter(t, reg, "maruta_sink_bytes_total"); n != float64(objs[0].Size) {
		t.Errorf("bytes %v, object %d", n, objs[0].Size)
	}
	// Staged files are removed.
	if left, _ := filepath.Glob(filepath.Join(dir, "tmp", "s3lake", ".upload-*")); len(left) != 0 {
		t.Errorf("staged files left: %v", left)
	}
}

func TestS3MultipartAndConditionalPut(t *testing.T) {
	// JSON lines without compression make a large object from few records:
	// ≥ 20 MB crosses a 6 MiB threshold, in 5 MiB parts.
	e := newS3Env(t, "logs", "    format: jsonl\n    multipart_threshold: 6MiB\n    part_size: 5MiB\n")
	srv, reg, out, s := e.srv, e.reg, e.out, e.sink
	n := 70000
	if testing.Short() {
		n = 70000 // the size is the point: keep it
	}
	c := dockerChunk(t, "big", out.S3.Path, n, true)
	if err := s.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	objs := srv.Objects(t, "logs", "")
	if len(objs) != 1 || objs[0].Size < 20<<20 || !strings.HasSuffix(objs[0].Key, "node-1-big.jsonl") {
		t.Fatalf("objects %v", objs)
	}
	// DuckDB reads the assembled object: every line, in order.
	local := t.TempDir()
	srv.Download(t, "logs", "", local)
	r := tu.NewDuckDB(t).Query(t, "SELECT count(*), count(DISTINCT container_name), min(\"time\")::VARCHAR, max(\"time\")::VARCHAR FROM read_json("+
		tu.SQLString(local+"/**/*.jsonl")+", format='newline_delimited')")
	if fmt.Sprint(r.Rows) != fmt.Sprintf("[[%d 8 2026-11-22 13:00:00 2026-11-22 13:01:09.999]]", n) {
		t.Errorf("read back: %v", r.Rows)
	}
	// The same chunk again (a retry after a crash before the buffer deleted
	// it): the conditional put is refused and counted as delivered.
	if err := s.Write(context.Background(), c); err != nil {
		t.Fatalf("second write of the same chunk: %v", err)
	}
	// Also for a small object (single PutObject).
	small := dockerChunk(t, "small", out.S3.Path, 10, true)
	for i := 0; i < 2; i++ {
		if err := s.Write(context.Background(), small); err != nil {
			t.Fatalf("small write %d: %v", i, err)
		}
	}
	if got := counter(t, reg, "maruta_sink_conflicts_total"); got != 2 {
		t.Errorf("conflicts %v, want 2", got)
	}
	if got := len(srv.Objects(t, "logs", "")); got != 2 {
		t.Errorf("%d objects, want 2", got)
	}
	// An object of another size under the chunk's key is not this chunk:
	// Permanent, so the buffer keeps the data in its dead letter.
	other := dockerChunk(t, "other", out.S3.Path, 10, true)
	key := strings.TrimSuffix(objs[0].Key, "node-1-big.jsonl") + "node-1-other.jsonl"
	srv.PutObject(t, "logs", key, []byte("someone else's object"))
	err := s.Write(context.Background(), other)
	if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "node name") {
		t.Errorf("write over a foreign object: %v", err)
	}
}

func TestS3ServerDownThenBack(t *testing.T) {
	e := newS3Env(t, "logs", "")
	srv, reg, out, s := e.srv, e.reg, e.out, e.sink
	c := dockerChunk(t, "c1", out.S3.Path, 500, false)

	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Write(ctx, c)
	if err == nil || delivery.IsPermanent(err) {
		t.Fatalf("write with the server down: %v (want a retryable error)", err)
	}
	if n := counter(t, reg, "maruta_sink_errors_total", "kind", "network"); n != 1 {
		t.Errorf("network errors %v", n)
	}
	// The buffer retries; after the server is back the chunk is delivered
	// once, and a further retry does not duplicate it.
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Write(ctx, c); err != nil {
			t.Fatalf("retry %d: %v", i, err)
		}
	}
	if objs := srv.Objects(t, "logs", ""); len(objs) != 1 {
		t.Errorf("objects %v", objs)
	}
}

// cutProxy forwards requests to srv. When the first UploadPart request of
// a multipart upload arrives it stops srv and drops the connection, as if
// the server died in the middle of the upload.
func cutProxy(t *testing.T, srv *tu.S3Server) (endpoint string, cut <-chan struct{}) {
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorHandler = func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) }
	rp.ErrorLog = log.New(io.Discard, "", 0)
	ch := make(chan struct{})
	var once sync.Once
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("partNumber") {
			once.Do(func() { srv.Stop(); close(ch) })
		}
		rp.ServeHTTP(w, r)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.URL, ch
}

func TestS3ServerStopsDuringUpload(t *testing.T) {
	srv := tu.StartS3(t)
	srv.CreateBucket(t, "logs")
	dir := t.TempDir()
	_, out := s3Out(t, srv, dir, "logs", "    format: jsonl\n    multipart_threshold: 5MiB\n    part_size: 5MiB\n")
	endpoint, cut := cutProxy(t, srv)
	out.S3.Endpoint = endpoint
	reg := prometheus.NewRegistry()
	s := newS3(t, out, dir, reg)
	c := dockerChunk(t, "mid", out.S3.Path, 40000, true)
	err := s.Write(context.Background(), c)
	select {
	case <-cut:
	default:
		t.Fatalf("the upload did not reach UploadPart (err %v)", err)
	}
	if err == nil || delivery.IsPermanent(err) {
		t.Fatalf("a server dying mid-upload must give a retryable error, got %v", err)
	}
	if n := counter(t, reg, "maruta_sink_errors_total", "kind", "network"); n != 1 {
		t.Errorf("network errors %v", n)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if len(srv.Objects(t, "logs", "")) != 0 {
		t.Fatal("an object exists after the failed upload")
	}
	for i := 0; i < 2; i++ { // the retry delivers; a further retry does not duplicate
		if err := s.Write(context.Background(), c); err != nil {
			t.Fatalf("retry %d: %v", i, err)
		}
	}
	objs := srv.Objects(t, "logs", "")
	if len(objs) != 1 || objs[0].Size < 10<<20 {
		t.Errorf("objects %v", objs)
	}
}

func TestS3PermanentErrors(t *testing.T) {
	e := newS3Env(t, "no-such-bucket", "")
	srv, dir, reg, out, s := e.srv, e.dir, e.reg, e.out, e.sink
	err := s.Write(context.Background(), dockerChunk(t, "c1", out.S3.Path, 10, false))
	if !delivery.IsPermanent(err) {
		t.Errorf("no such bucket: %v (want Permanent)", err)
	}

	_, out = s3Out(t, srv, t.TempDir(), "logs", "")
	out.S3.SecretAccessKey = "wrong"
	s = newS3(t, out, dir, prometheus.NewRegistry())
	err = s.Write(context.Background(), dockerChunk(t, "c2", out.S3.Path, 10, false))
	if !delivery.IsPermanent(err) {
		t.Errorf("bad credentials: %v (want Permanent)", err)
	}
	if n := counter(t, reg, "maruta_sink_errors_total", "kind", "permanent"); n != 1 {
		t.Errorf("permanent errors %v", n)
	}
}

func TestS3EndpointFromEnvironment(t *testing.T) {
	srv := tu.StartS3(t, tu.WithRegion("ap-northeast-1"))
	srv.CreateBucket(t, "logs")
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "ap-northeast-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	dir := t.TempDir()
	// A converted fluent.conf names only bucket and region.
	_, out := sinktest.Output(t, dir, "  - type: s3\n    name: conv\n    bucket: logs\n    region: ap-northeast-1\n    path: logs/shop-event/${tag_parts[2]}/%Y/%m/%d/%H/\n")
	if out.S3.ForcePathStyle != nil {
		t.Fatalf("force_path_style defaulted without an endpoint")
	}
	s := newS3(t, out, dir, nil)
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: "e1", Tag: "shop.event.order_placed", Path: layout.TagResolver(out.S3.Path)("shop.event.order_placed"), Slice: slice13},
		Events: []sinktest.Event{ev(t, "shop.event.order_placed", slice13, map[string]any{"event_type": "order_placed"})}}
	if err := s.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	objs := srv.Objects(t, "logs", "")
	if len(objs) != 1 || objs[0].Key != "logs/shop-event/order_placed/2026/11/22/13/node-1-e1.parquet" {
		t.Errorf("objects %v", objs)
	}
}

func TestClassifyS3Error(t *testing.T) {
	if k, p := classifyS3Error(context.DeadlineExceeded); k != kindNetwork || p {
		t.Errorf("deadline: %s %v", k, p)
	}
	if k, p := classifyS3Error(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}); k != kindNetwork || p {
		t.Errorf("refused: %s %v", k, p)
	}
	if k, p := classifyS3Error(errors.New("something else")); k != kindOther || p {
		t.Errorf("other: %s %v", k, p)
	}
}

// A chunk with a column outside the Parquet file plan is staged again from
// the start (the one-pass attempt's bytes are truncated away) and uploads as
// one readable object.
func TestS3ReplannedChunk(t *testing.T) {
	e := newS3Env(t, "logs", "    path: lake/dt=%Y-%m-%d/\n    row_group_rows: 4096\n")
	srv, dir, reg, out, s := e.srv, e.dir, e.reg, e.out, e.sink
	db := tu.NewDuckDB(t)
	if err := s.Write(context.Background(), dockerChunk(t, "c1", out.S3.Path, 3000, false)); err != nil {
		t.Fatal(err)
	}
	// 80000 more records (several row groups, more than the 1 MiB write
	// buffer); the last one brings a new column, so the one pass has staged
	// most of a file when it stops.
	c2 := dockerChunk(t, "c2", out.S3.Path, 80000, false)
	c2.Events = append(c2.Events, ev(t, "docker.shop", slice13.Add(time.Hour-time.Second), map[string]any{"log": "last", "trace_id": "t-1"}))
	if err := s.Write(context.Background(), c2); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, reg, "maruta_sink_parquet_replans_total"); n != 1 {
		t.Errorf("replans %v, want 1", n)
	}
	local := t.TempDir()
	srv.Download(t, "logs", "", local)
	r := db.Query(t, "SELECT count(*) AS n, count(trace_id) AS traced, max(time) FILTER (WHERE trace_id = 't-1') IS NOT NULL AS found FROM read_parquet("+
		tu.SQLString(local+"/**/node-1-c2.parquet")+", hive_partitioning=false)").Maps()[0]
	if fmt.Sprint(r["n"]) != "80001" || fmt.Sprint(r["traced"]) != "1" || fmt.Sprint(r["found"]) != "true" {
		t.Errorf("object of the replanned chunk: %v", r)
	}
	if n := counter(t, reg, "maruta_sink_objects_total"); n != 2 {
		t.Errorf("objects %v", n)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "tmp", "s3lake", ".upload-*")); len(left) != 0 {
		t.Errorf("staged files left: %v", left)
	}
}

// A chunk uploaded, then written again by a restarted maruta (killed between
// the upload and the buffer's delete) encodes to other Parquet bytes — the
// one-pass file plan depends on the files written before — but is the same
// chunk: the 412 is resolved by the chunk id and record digest in the
// object's metadata, and the chunk counts as delivered. An object naming
// another chunk, or the same chunk id with other records, is a conflict.
func TestS3RedeliveryAfterRestartParquet(t *testing.T) {
	e := newS3Env(t, "logs", "    path: lake/dt=%Y-%m-%d/\n")
	ctx := context.Background()
	// Before the "crash": chunks of raw and of parsed Docker records make
	// the file plan wide, then c1 (raw records, few columns) is written in
	// one pass with the plan's columns (the parsed ones all NULL).
	for _, c := range []*sinktest.Chunk{dockerChunk(t, "c0", e.out.S3.Path, 200, true), dockerChunk(t, "c00", e.out.S3.Path, 200, false)} {
		if err := e.sink.Write(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	c1 := dockerChunk(t, "c1", e.out.S3.Path, 300, true)
	if err := e.sink.Write(ctx, c1); err != nil {
		t.Fatal(err)
	}
	var before int64
	for _, o := range e.srv.Objects(t, "logs", "") {
		if strings.HasSuffix(o.Key, "node-1-c1.parquet") {
			before = o.Size
		}
	}

	// The restart: a new sink on the same data folder writes c1 again.
	reg := prometheus.NewRegistry()
	s := newS3(t, e.out, e.dir, reg)
	if err := s.Write(ctx, c1); err != nil {
		t.Fatalf("c1 again after the restart: %v (a delivered chunk must not be refused)", err)
	}
	if n := counter(t, reg, "maruta_sink_conflicts_total"); n != 1 {
		t.Errorf("conflicts %v, want 1", n)
	}
	again := int64(counter(t, reg, "maruta_sink_bytes_total"))
	if again == before {
		t.Fatalf("c1 encoded to %d bytes before and after the restart: the test needs encodings that differ", again)
	}
	t.Logf("c1: %d bytes before the restart, %d after; recognised by its metadata", before, again)
	if objs := e.srv.Objects(t, "logs", ""); len(objs) != 3 {
		t.Errorf("objects %v, want c0, c00 and c1", objs)
	}

	client := s.(*objectSink).store.(*s3Store).client
	keyOf := func(id string) string { return "lake/dt=2026-11-22/node-1-" + id + ".parquet" }
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String(keyOf("c1"))})
	if err != nil {
		t.Fatal(err)
	}
	want := &digestChunk{Chunk: c1}
	want.ensure()
	if m := head.Metadata; m[metaChunk] != "c1" || m[metaDigest] != want.digest || m[metaEvents] != "300" {
		t.Errorf("metadata %v, want chunk c1, digest %s, 300 events", m, want.digest)
	}

	// Objects under a chunk's key that hold something else.
	for _, c := range []struct{ id, metaID, digest string }{
		{"c2", "c9", want.digest},              // another chunk
		{"c3", "c3", "xxh64:0000000000000000"}, // the same id, other records
	} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("logs"), Key: aws.String(keyOf(c.id)), Body: strings.NewReader("foreign"),
			Metadata: map[string]string{metaChunk: c.metaID, metaDigest: c.digest},
		}); err != nil {
			t.Fatal(err)
		}
		err := s.Write(ctx, dockerChunk(t, c.id, e.out.S3.Path, 10, true))
		if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "node name") {
			t.Errorf("%s over an object of %s: %v (want a Permanent conflict)", c.id, c.metaID, err)
		}
	}
	if n := counter(t, reg, "maruta_sink_errors_total", "kind", "conflict"); n != 2 {
		t.Errorf("conflict errors %v, want 2", n)
	}
}

// TestS3OneTryPerRequest: a request fails at once when S3 throttles — the
// buffer retries the chunk (one log line and one count per attempt) —
// except a part of a multipart upload, which the SDK tries again on its
// own (counted), so a throttled part does not send the whole object again.
func TestS3OneTryPerRequest(t *testing.T) {
	srv := tu.StartS3(t)
	srv.CreateBucket(t, "logs")
	dir := t.TempDir()
	proxy := srv.FaultProxy(t, func(op string, n int) bool {
		return op == "PutObject" && n == 1 || op == "UploadPart" && n == 2
	})
	_, out := s3Out(t, srv, dir, "logs", "    format: jsonl\n    multipart_threshold: 5MiB\n    part_size: 5MiB\n")
	out.S3.Endpoint = proxy.URL
	reg := prometheus.NewRegistry()
	s := newS3(t, out, dir, reg)

	small := dockerChunk(t, "small", out.S3.Path, 100, true)
	err := s.Write(context.Background(), small)
	if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "(throttle)") {
		t.Fatalf("a throttled PutObject: %v, want a retryable throttle error", err)
	}
	if n := proxy.Count("PutObject"); n != 1 {
		t.Errorf("a throttled PutObject was sent %d times, want 1 (no SDK retries)", n)
	}
	if err := s.Write(context.Background(), small); err != nil { // the buffer's retry
		t.Fatalf("retry: %v", err)
	}

	big := dockerChunk(t, "big", out.S3.Path, 40000, true) // 3 parts
	if err := s.Write(context.Background(), big); err != nil {
		t.Fatalf("a multipart upload with a throttled part: %v", err)
	}
	if n := counter(t, reg, "maruta_sink_s3_part_retries_total"); n != 1 {
		t.Errorf("maruta_sink_s3_part_retries_total = %v, want 1", n)
	}
	if n, c := proxy.Count("UploadPart"), proxy.Count("CreateMultipartUpload"); n < 3 || c != 1 {
		t.Errorf("UploadPart %d times, CreateMultipartUpload %d times: want the parts plus one retry, one upload", n, c)
	}
	if objs := srv.Objects(t, "logs", ""); len(objs) != 2 {
		t.Errorf("objects %v", objs)
	}
}
