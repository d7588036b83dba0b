package router

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	waitutil "github.com/marutalog/maruta/internal/testutil"
)

// TestDefaultPipeline checks the embedded default (internal/config/
// default.yaml) does what ARCHITECTURE.md ("The default pipeline") says:
// split lines reassembled, JSON log lines parsed into fields with the raw
// log dropped, other lines kept whole, Docker's identity fields never
// replaced by the log's (app_ keeps those).
func TestDefaultPipeline(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got strings.Builder
	outs := map[string]event.Consumer{}
	for _, o := range cfg.LeafOutputs() {
		outs[o.Name] = &recorder{name: o.Name, mu: &mu, out: &got}
	}
	r, err := New(Options{Config: cfg, Outputs: outs, Hostname: "h", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t0 := event.FromUnix(time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC).Unix(), 0)
	rec := func(s string) event.Event { return event.Event{Time: t0, Record: inputRecord(t, s)} }
	b := &event.Batch{Tag: "docker.web", Events: []event.Event{
		rec(`{"container_id":"c","source":"stdout","log":"{\"level\":\"error\",\"status\":500,\"time\":\"app time stays a field\"}"}`),
		rec(`{"container_id":"c","source":"stderr","log":"plain text line"}`),
		rec(`{"container_id":"c","source":"stdout","log":"{\"level\":\"info\",\"msg\":\"{{repeat "z" 16369}}","partial_message":"true","partial_id":"p","partial_ordinal":"1","partial_last":"false"}`),
		rec(`{"container_id":"c","source":"stdout","log":"\"}","partial_message":"true","partial_id":"p","partial_ordinal":"2","partial_last":"true"}`),
		rec(`{"container_id":"c","source":"stdout","log":"[\"an array is not an object\"]"}`),
		rec(`{"container_id":"c","container_name":"/web","source":"stdout","log":"{\"container_name\":\"x\",\"source\":\"y\",\"container_id\":\"z\"}"}`),
	}}
	if err := r.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	want := `lake docker.web 2026-11-22T13:00:00Z {"container_id":"c","source":"stdout","level":"error","status":500,"time":"app time stays a field"}
lake docker.web 2026-11-22T13:00:00Z {"container_id":"c","source":"stderr","log":"plain text line"}
lake docker.web 2026-11-22T13:00:00Z {"container_id":"c","source":"stdout","level":"info","msg":"{{repeat "z" 16369}}"}
lake docker.web 2026-11-22T13:00:00Z {"container_id":"c","source":"stdout","log":"[\"an array is not an object\"]"}
lake docker.web 2026-11-22T13:00:00Z {"container_id":"c","container_name":"/web","source":"stdout","app_container_name":"x","app_source":"y","app_container_id":"z"}
`
	if got.String() != want {
		t.Errorf("default pipeline:\n%s", diffLines(want, got.String()))
	}
	if err := r.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestDefaultPipelineTime: in the embedded default a JSON line's own time
// becomes the event time when it is one — RFC 3339 / ISO 8601 with a
// fraction and a zone (or none: UTC), epoch seconds (integer or with a
// fraction) or milliseconds — and the field is removed; a value that is
// not a time (text, a small number such as a duration) stays in the
// record, the event keeps Docker's time, and it is counted as kept, not
// as a failure.
func TestDefaultPipelineTime(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got strings.Builder
	reg := prometheus.NewRegistry()
	r, err := New(Options{Config: cfg, Outputs: map[string]event.Consumer{"lake": &recorder{name: "lake", mu: &mu, out: &got}},
		Hostname: "h", Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t0 := event.FromUnix(time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC).Unix(), 0)
	var evs []event.Event
	for _, line := range []string{
		`{\"time\":\"2026-11-22T13:04:05.123456789+09:00\",\"msg\":\"a\"}`,
		`{\"time\":\"2026-11-22T13:04:05.5Z\",\"msg\":\"b\"}`,
		`{\"time\":\"2026-11-22T13:04:05.25\",\"msg\":\"c\"}`,
		`{\"time\":1795352645,\"msg\":\"d\"}`,
		`{\"time\":1795352645.75,\"msg\":\"e\"}`,
		`{\"time\":1795352645123,\"msg\":\"f\"}`,
		`{\"time\":35,\"msg\":\"g\"}`,
		`{\"time\":\"soon\",\"msg\":\"h\"}`,
	} {
		evs = append(evs, event.Event{Time: t0, Record: inputRecord(t, `{"container_id":"c","source":"stdout","log":"`+line+`"}`)})
	}
	if err := r.Consume(context.Background(), &event.Batch{Tag: "docker.web", Events: evs}); err != nil {
		t.Fatal(err)
	}
	want := `lake docker.web 2026-11-22T04:04:05.123456789Z {"container_id":"c","source":"stdout","msg":"a"}
lake docker.web 2026-11-22T13:04:05.5Z {"container_id":"c","source":"stdout","msg":"b"}
lake docker.web 2026-11-22T13:04:05.25Z {"container_id":"c","source":"stdout","msg":"c"}
lake docker.web 2026-11-22T13:04:05Z {"container_id":"c","source":"stdout","msg":"d"}
lake docker.web 2026-11-22T13:04:05.75Z {"container_id":"c","source":"stdout","msg":"e"}
lake docker.web 2026-11-22T13:04:05.123Z {"container_id":"c","source":"stdout","msg":"f"}
lake docker.web 2026-11-22T13:00:00Z {"container_id":"c","source":"stdout","time":35,"msg":"g"}
lake docker.web 2026-11-22T13:00:00Z {"container_id":"c","source":"stdout","time":"soon","msg":"h"}
`
	if got.String() != want {
		t.Errorf("times:\n%s", diffLines(want, got.String()))
	}
	if n := testutil.ToFloat64(r.m.parseKept.WithLabelValues("json_log", "time")); n != 2 {
		t.Errorf("parse_kept_total{reason=time} = %v, want 2", n)
	}
	// Only what can happen has a series: a log that is not a string (the
	// error route, even with reserve_data, as in fluentd).
	if n := testutil.CollectAndCount(r.m.parseFailures); n != 1 || testutil.ToFloat64(r.m.parseFailures.WithLabelValues("json_log", "not_string", "error_route")) != 0 {
		t.Errorf("%d parse_failures_total series, want the not_string one only", n)
	}
}

// TestRunFlushesTimedOutPartials runs Run with a real clock: an unfinished
// line is passed on after its timeout, and Run returns when ctx is done.
func TestRunFlushesTimedOutPartials(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
sources: [{type: forward}]
pipeline:
  - type: concat_partials
    timeout: 50ms
outputs: [{type: stdout, name: out}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got strings.Builder
	r, err := New(Options{Config: cfg, Outputs: map[string]event.Consumer{"out": &recorder{name: "out", mu: &mu, out: &got}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	b := &event.Batch{Tag: "d", Events: []event.Event{{Record: inputRecord(t, `{"container_id":"c","source":"stdout","log":"{{repeat "u" 16384}}","partial_message":"true","partial_id":"p","partial_ordinal":"1","partial_last":"false"}`)}}}
	if err := r.Consume(ctx, b); err != nil {
		t.Fatal(err)
	}
	waitutil.WaitUntil(t, 5*time.Second, "the unfinished line passed on after its timeout", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(got.String(), `{{repeat "u" 16384}}`)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestCheckMode builds without outputs (maruta validate): everything
// compiles, Consume refuses.
func TestCheckMode(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Consume(context.Background(), &event.Batch{Tag: "x"}); err != ErrCheckMode {
		t.Fatalf("Consume in check mode: %v", err)
	}
	if got := r.Match("anything"); got != "lake" {
		t.Fatalf("Match = %q", got)
	}
}

// TestConcurrentConsume runs the fixture pipeline from several goroutines
// (run it with -race): every event arrives exactly once.
func TestConcurrentConsume(t *testing.T) {
	cfg, err := config.Parse("f.yaml", []byte(fixtureConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	c := event.ConsumerFunc(func(_ context.Context, b *event.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		for range b.Events {
			counts[b.Tag]++
		}
		return nil
	})
	outs := map[string]event.Consumer{}
	for _, o := range cfg.LeafOutputs() {
		outs[o.Name] = c
	}
	r, err := New(Options{Config: cfg, Outputs: outs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const workers, batches = 4, 20
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := dockerBatch("docker.shop", 64, eventLine)
			for i := 0; i < batches; i++ {
				if err := r.Consume(context.Background(), b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for tag, n := range counts {
		if !strings.HasPrefix(tag, "shop.event.") {
			t.Errorf("unexpected tag %q", tag)
		}
		total += n
	}
	// Two stores (copy) get every event.
	if want := 2 * workers * batches * 64; total != want {
		t.Fatalf("delivered %d events, want %d", total, want)
	}
}
