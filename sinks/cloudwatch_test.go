package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/sinktest"
)

func init() { cwMaxBackoff = 50 * time.Millisecond }

func newCWSink(t *testing.T, srv *tu.CWLServer, dataDir, extra string) *CloudWatchLogs {
	t.Helper()
	_, out := sinktest.Output(t, dataDir, fmt.Sprintf(`  - type: cloudwatch_logs
    name: cwl
    region: %s
    endpoint: %s
    access_key_id: %s
    secret_access_key: %s
%s`, srv.Region, srv.URL, srv.AccessKey, srv.SecretKey, extra))
	s, err := NewCloudWatchLogs(Options{Output: out, Node: "node-1", DataDir: dataDir, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func cwChunk(id string, evs ...sinktest.Event) *sinktest.Chunk {
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: id, Output: "cwl", Created: time.Now()}, Events: evs}
	c.ChunkInfo.Events = int64(len(evs))
	return c
}

func noViolations(t *testing.T, srv *tu.CWLServer) {
	t.Helper()
	if v := srv.Violations(); len(v) > 0 {
		t.Fatalf("CloudWatch Logs would refuse %d requests: %v", len(v), v[:min(len(v), 3)])
	}
}

// TestCloudWatchLogsStreams: events go to a stream per container in a
// group per tag part, created with retention and KMS key, sorted by time,
// each message the record as JSON or message_keys' values.
func TestCloudWatchLogsStreams(t *testing.T) {
	srv := tu.StartCWL(t)
	s := newCWSink(t, srv, t.TempDir(), `    log_group_name: /ecs/${tag_parts[1]}
    log_stream_name: ${container_name:-unknown}
    auto_create_stream: true
    retention_in_days: 7
    kms_key_id: arn:aws:kms:ap-northeast-1:111122223333:key/abcd
`)
	now := time.Now().Truncate(time.Millisecond)
	var evs []sinktest.Event
	for i := range 12 {
		rec := map[string]any{"log": fmt.Sprintf("line %d ✓", i), "source": "stdout"}
		if i%4 != 3 {
			rec["container_name"] = fmt.Sprintf("/web-%d", i%2)
		}
		// Out of order in the chunk: CloudWatch Logs wants them sorted.
		ts := now.Add(-time.Duration((i*7)%12) * time.Second)
		evs = append(evs, sinktest.Event{Tag: "docker.shop", Time: event.FromUnix(0, ts.UnixNano()), Record: sinktest.Msgpack(t, rec)})
	}
	if err := s.Write(context.Background(), cwChunk("s1", evs...)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, srv)
	if got := strings.Join(srv.Streams(), ","); got != "/ecs/shop /web-0,/ecs/shop /web-1,/ecs/shop unknown" {
		t.Fatalf("streams %s", got)
	}
	if ret, kms, ok := srv.Group("/ecs/shop"); !ok || ret != 7 || !strings.HasSuffix(kms, "key/abcd") {
		t.Errorf("group: retention %d kms %q", ret, kms)
	}
	total := 0
	for _, st := range []string{"/web-0", "/web-1", "unknown"} {
		got := srv.Events("/ecs/shop", st)
		total += len(got)
		for i, e := range got {
			var rec map[string]any
			if err := json.Unmarshal([]byte(e.Message), &rec); err != nil || !strings.HasPrefix(rec["log"].(string), "line ") {
				t.Errorf("%s: message %q is not the record as JSON", st, e.Message)
			}
			if i > 0 && e.Timestamp < got[i-1].Timestamp {
				t.Errorf("%s: not sorted", st)
			}
		}
	}
	if total != 12 {
		t.Errorf("%d events stored, want 12", total)
	}

	// message_keys: the values joined by a space; an event whose keys are
	// all empty is dropped and counted (the service takes no empty message).
	s2 := newCWSink(t, srv, t.TempDir(), "    log_group_name: g\n    log_stream_name: s\n    auto_create_stream: true\n    message_keys: [level, log]\n")
	err := s2.Write(context.Background(), cwChunk("s2",
		sinktest.Event{Tag: "a", Time: event.FromUnix(now.Unix(), 0), Record: sinktest.Msgpack(t, map[string]any{"level": "warn", "log": "disk 91%"})},
		sinktest.Event{Tag: "a", Time: event.FromUnix(now.Unix(), 0), Record: sinktest.Msgpack(t, map[string]any{"log": "only log"})},
		sinktest.Event{Tag: "a", Time: event.FromUnix(now.Unix(), 0), Record: sinktest.Msgpack(t, map[string]any{"other": 1})}))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range srv.Events("g", "s") {
		msgs = append(msgs, e.Message)
	}
	if strings.Join(msgs, "|") != "warn disk 91%|only log" || testutil.ToFloat64(s2.sm.dropped.WithLabelValues("empty_message")) != 1 {
		t.Errorf("messages %q, empty dropped %v", msgs, testutil.ToFloat64(s2.sm.dropped.WithLabelValues("empty_message")))
	}
}

// TestCloudWatchLogsLimits sends what needs every limit: more events than
// a batch holds, more bytes than a batch holds, events spread over three
// days, and messages above the event size (split and truncated). The
// server refuses any batch the service would refuse.
func TestCloudWatchLogsLimits(t *testing.T) {
	srv := tu.StartCWL(t)
	srv.CreateStream("g", "count")
	srv.CreateStream("g", "bytes")
	srv.CreateStream("g", "span")
	srv.CreateStream("g", "big")
	s := newCWSink(t, srv, t.TempDir(), "    log_group_name: g\n    log_stream_name: ${tag}\n    message_keys: [log]\n")
	now := time.Now()
	var evs []sinktest.Event
	add := func(tag string, ts time.Time, log string) {
		evs = append(evs, sinktest.Event{Tag: tag, Time: event.FromUnix(0, ts.UnixNano()), Record: sinktest.Msgpack(t, map[string]any{"log": log})})
	}
	for i := range 25000 {
		add("count", now.Add(-time.Duration(i)*time.Millisecond), "x")
	}
	kb := strings.Repeat("é", 5000) // 10,000 bytes
	for range 300 {                 // 3 MB
		add("bytes", now, kb)
	}
	for h := range 72 {
		add("span", now.Add(-time.Duration(h)*time.Hour), fmt.Sprintf("hour %d", h))
	}
	big := strings.Repeat("日", 1<<20) // 3 MiB of 3-byte characters
	add("big", now, big)
	if err := s.Write(context.Background(), cwChunk("l1", evs...)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, srv)
	for _, c := range []struct {
		stream string
		events int
	}{{"count", 25000}, {"bytes", 300}, {"span", 72}, {"big", 4}} {
		if n := len(srv.Events("g", c.stream)); n != c.events {
			t.Errorf("stream %s: %d events, want %d", c.stream, n, c.events)
		}
	}
	var joined strings.Builder
	for _, e := range srv.Events("g", "big") {
		joined.WriteString(e.Message)
	}
	if joined.String() != big {
		t.Errorf("the split message does not join back to the original (%d bytes, want %d)", joined.Len(), len(big))
	}
	if calls := srv.Calls("PutLogEvents"); calls < 3+3+3+4 {
		t.Errorf("%d PutLogEvents calls: the batches cannot have respected every limit", calls)
	}
	if n := testutil.ToFloat64(s.oversize.WithLabelValues("split")); n != 1 {
		t.Errorf("oversize split %v, want 1", n)
	}

	// truncate: one event of the longest allowed message.
	s2 := newCWSink(t, srv, t.TempDir(), "    log_group_name: g\n    log_stream_name: trunc\n    auto_create_stream: true\n    message_keys: [log]\n    oversize: truncate\n")
	if err := s2.Write(context.Background(), cwChunk("l2", sinktest.Event{Tag: "a", Time: event.FromUnix(now.Unix(), 0),
		Record: sinktest.Msgpack(t, map[string]any{"log": big})})); err != nil {
		t.Fatal(err)
	}
	if got := srv.Events("g", "trunc"); len(got) != 1 || len(got[0].Message) > 1048550 || len(got[0].Message) < 1048550-2 || !strings.HasPrefix(big, got[0].Message) {
		t.Errorf("truncated: %d events", len(got))
	}
	noViolations(t, srv)
}

// TestCloudWatchLogsRejected: events too old, older than the retention and
// too new are rejected by the service; they are counted and logged, the
// others stored, and nothing is retried.
func TestCloudWatchLogsRejected(t *testing.T) {
	srv := tu.StartCWL(t)
	srv.CreateStream("g", "s")
	s := newCWSink(t, srv, t.TempDir(), "    log_group_name: g\n    log_stream_name: s\n    message_keys: [log]\n")
	now := time.Now()
	var evs []sinktest.Event
	for i, age := range []time.Duration{20 * 24 * time.Hour, 15 * 24 * time.Hour, time.Hour, 0, -3 * time.Hour} {
		evs = append(evs, sinktest.Event{Tag: "a", Time: event.FromUnix(0, now.Add(-age).UnixNano()),
			Record: sinktest.Msgpack(t, map[string]any{"log": fmt.Sprint("e", i)})})
	}
	if err := s.Write(context.Background(), cwChunk("r1", evs...)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, srv)
	var got []string
	for _, e := range srv.Events("g", "s") {
		got = append(got, e.Message)
	}
	if strings.Join(got, ",") != "e2,e3" {
		t.Errorf("stored %v, want e2,e3", got)
	}
	if old, nw := testutil.ToFloat64(s.sm.dropped.WithLabelValues("too_old")), testutil.ToFloat64(s.sm.dropped.WithLabelValues("too_new")); old != 2 || nw != 1 {
		t.Errorf("dropped too_old %v too_new %v, want 2 and 1", old, nw)
	}
	// Batches are cut at 24 hours of all events (the service counts valid
	// ones only; cutting on all is never wrong): 20 days, 15 days, the
	// rest. Each is sent once: rejected events are not retried.
	if calls := srv.Calls("PutLogEvents"); calls != 3 {
		t.Errorf("%d calls, want 3", calls)
	}
}

// TestCloudWatchLogsRetries: throttling is retried by the SDK; a failure
// that outlasts its tries goes back to the buffer, whose retry sends only
// the batches not yet accepted — also after a restart (progress on disk).
func TestCloudWatchLogsRetries(t *testing.T) {
	srv := tu.StartCWL(t)
	srv.CreateStream("g", "s")
	dataDir := t.TempDir()
	const extra = "    log_group_name: g\n    log_stream_name: s\n    message_keys: [log]\n"
	s := newCWSink(t, srv, dataDir, extra)
	now := time.Now()
	var evs []sinktest.Event
	for i := range 25000 {
		evs = append(evs, sinktest.Event{Tag: "a", Time: event.FromUnix(0, now.Add(time.Duration(i)*time.Millisecond-time.Hour).UnixNano()),
			Record: sinktest.Msgpack(t, map[string]any{"log": fmt.Sprint(i)})})
	}
	c := cwChunk("t1", evs...)

	srv.Inject("ThrottlingException", "ServiceUnavailableException")
	if err := s.Write(context.Background(), cwChunk("t0", evs[:10]...)); err != nil {
		t.Fatalf("two failures within the SDK's three tries: %v", err)
	}
	// The first batch goes through, the second fails all three tries.
	srv.InjectAfter(1, "ThrottlingException", "ThrottlingException", "ThrottlingException")
	err := s.Write(context.Background(), c)
	if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Fatalf("got %v, want a retryable throttling error", err)
	}
	if stored := len(srv.Events("g", "s")); stored != 10+10000 {
		t.Fatalf("%d events stored before the failure, want 10010", stored)
	}
	// A restart: a new sink on the same data_dir resumes.
	s2 := newCWSink(t, srv, dataDir, extra)
	if err := s2.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	noViolations(t, srv)
	if n := len(srv.Events("g", "s")); n != 25010 {
		t.Errorf("%d events after the retry, want 25010 (each once)", n)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "progress", "cwl", "t1.json")); !os.IsNotExist(err) {
		t.Errorf("progress file left after delivery: %v", err)
	}
}

func TestCloudWatchLogsErrors(t *testing.T) {
	now := time.Now()
	ev := sinktest.Event{Tag: "a.b", Time: event.FromUnix(now.Unix(), 0), Record: []byte{0x81, 0xa3, 'l', 'o', 'g', 0xa1, 'x'}}
	t.Run("no stream", func(t *testing.T) {
		srv := tu.StartCWL(t)
		s := newCWSink(t, srv, t.TempDir(), "    log_group_name: g\n    log_stream_name: s\n")
		err := s.Write(context.Background(), cwChunk("e1", ev))
		if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "ResourceNotFoundException") {
			t.Errorf("missing group without auto_create_stream: got %v, want Permanent ResourceNotFound", err)
		}
	})
	t.Run("access denied", func(t *testing.T) {
		srv := tu.StartCWL(t)
		srv.CreateStream("g", "s")
		srv.Inject("AccessDeniedException")
		s := newCWSink(t, srv, t.TempDir(), "    log_group_name: g\n    log_stream_name: s\n")
		if err := s.Write(context.Background(), cwChunk("e2", ev)); !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("got %v, want Permanent AccessDenied", err)
		}
	})
	t.Run("missing key", func(t *testing.T) {
		srv := tu.StartCWL(t)
		s := newCWSink(t, srv, t.TempDir(), "    log_group_name: g\n    log_stream_name: ${container_name}\n    auto_create_stream: true\n")
		err := s.Write(context.Background(), cwChunk("e3", ev))
		if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "1 events have no value for ${container_name}") {
			t.Errorf("got %v", err)
		}
		if srv.Calls("PutLogEvents")+srv.Calls("CreateLogStream") != 0 {
			t.Error("calls made for a chunk that cannot be routed")
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		srv := tu.StartCWL(t)
		srv.Close()
		s := newCWSink(t, srv, t.TempDir(), "    log_group_name: g\n    log_stream_name: s\n")
		err := s.Write(context.Background(), cwChunk("e4", ev))
		if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "connect") {
			t.Errorf("got %v, want a retryable connect error", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		srv := tu.StartCWL(t)
		srv.CreateStream("g", "s")
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN",
			"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
			t.Setenv(k, "")
		}
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true") // never reach for 169.254.169.254
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
		_, out := sinktest.Output(t, t.TempDir(), fmt.Sprintf("  - {type: cloudwatch_logs, name: cwl, region: %s, endpoint: %s, log_group_name: g, log_stream_name: s}\n", srv.Region, srv.URL))
		s, err := NewCloudWatchLogs(Options{Output: out, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Write(context.Background(), cwChunk("e5", ev))
		if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("got %v, want a retryable error about credentials", err)
		}
	})
}
